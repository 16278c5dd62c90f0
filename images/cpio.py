"""A minimal writer of the "newc" cpio format the Linux kernel unpacks as an initramfs.

Written here rather than shelling out to cpio so that the same inputs give the same bytes (mtimes and
inode numbers are fixed), which keeps initrds content-addressable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from foundation.process import run


def _header(ino: int, mode: int, size: int, name: bytes, nlink: int = 1) -> bytes:
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields)
    entry = head + name + b"\0"
    return entry + b"\0" * (-len(entry) % 4)


def archive(root: Path) -> bytes:
    """All files, directories and symlinks below `root`, sorted, as one newc archive.

    Device nodes, FIFOs and sockets are left out (opening one can block forever); the kernel's devtmpfs
    provides /dev at boot.
    """
    out = bytearray()
    ino = 1
    paths = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    for path in paths:
        rel = path.relative_to(root).as_posix().encode()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
            mode = stat.S_IFLNK | 0o777
        elif stat.S_ISDIR(st.st_mode):
            data, mode = b"", stat.S_IFDIR | stat.S_IMODE(st.st_mode)
        elif stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
            mode = stat.S_IFREG | stat.S_IMODE(st.st_mode)
        else:
            continue
        out += _header(ino, mode, len(data), rel, 2 if stat.S_ISDIR(mode) else 1)
        out += data + b"\0" * (-len(data) % 4)
        ino += 1
    out += _header(0, 0, 0, b"TRAILER!!!")
    return bytes(out)


ZSTD_LEVEL = 12  # the kernel unpacks every level about as fast; higher ones only cost build time for a few MB less


def write_initrd(root: Path, dest: Path) -> None:
    """The tree as a zstd-compressed newc archive.  zstd, not gzip: the kernel unpacks it about three times as
    fast, which counts under TCG and far more in a nested HVM guest (a 120 MB installer root took minutes
    to gunzip there).  Debian's own initramfs-tools uses zstd too."""
    raw = dest.with_name(f".{dest.name}.cpio")
    raw.write_bytes(archive(root))
    try:
        run(
            ["zstd", "-q", "-f", f"-{ZSTD_LEVEL}", "-T0", raw, "-o", dest],
            timeout=900,
            hint="./xenlab setup installs zstd (tools/host-packages.txt)",
        )
    finally:
        raw.unlink(missing_ok=True)


def write_overlay(dest: Path, files: dict[str, bytes], trees: dict[str, Path] | None = None) -> None:
    """A small initrd of `files` (path in the initramfs -> content) and whole `trees` (target -> source
    directory, without __pycache__), to append after a base initrd: the kernel unpacks both, in order."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for target, source in (trees or {}).items():
            shutil.copytree(source, root / target.lstrip("/"), ignore=shutil.ignore_patterns("__pycache__"))
        for target, content in files.items():
            path = root / target.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if content.startswith(b"#!"):
                path.chmod(0o755)
        write_initrd(root, dest)


def concatenate(dest: Path, *parts: Path) -> Path:
    """One initrd file of several compressed archives (QEMU's -initrd takes a single file)."""
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
    return dest
