"""The installer's initramfs as built from Debian's packages: its Python runs from the .pyc files it carries,
and its eatmydata loads in a Debian 12 installed system.

The cpio writer fixes every mtime (same inputs, same bytes), which turns Debian's mtime-stamped .pyc files
into stale ones: each process would compile each module it imports afresh, under emulation, at every boot.
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from images.recipes import installer_base
from kickstart_installer import xenlab_installer as inst
from tests.test_images import read_newc

CHECKED_HASH = 0b11  # PEP 552: hash-based, checked against the source


@pytest.mark.integration
def test_every_python_module_of_the_installer_has_a_pyc_checked_by_its_sources_hash() -> None:
    image = installer_base.build() / "base.cpio.zst"
    entries = read_newc(subprocess.run(["zstd", "-dc", image], capture_output=True, check=True).stdout)
    sources = [n for n in entries if n.startswith("usr/lib/python3") and n.endswith(".py")]
    assert len(sources) > 500, f"only {len(sources)} Python sources in {image}: is python3 still in it?"
    (stdlib,) = {n.split("/")[2] for n in sources if re.fullmatch(r"usr/lib/python3\.\d+/\w+\.py", n)}
    tag = "cpython-" + stdlib.removeprefix("python").replace(".", "")  # the image's own Python, as it names .pyc
    stale = []
    for name in sources:
        folder, _, module = name.rpartition("/")
        pyc = entries.get(f"{folder}/__pycache__/{module[:-3]}.{tag}.pyc")
        if pyc is None:
            stale.append(f"{name}: no .pyc")
            continue
        magic, flags = pyc[1][:4], struct.unpack("<I", pyc[1][4:8])[0]
        if flags != CHECKED_HASH:
            stale.append(f"{name}: flags {flags}")
        elif magic == importlib.util.MAGIC_NUMBER and pyc[1][8:16] != importlib.util.source_hash(
            content(entries, name)
        ):
            stale.append(f"{name}: hash of another source")
    assert not stale, f"{len(stale)} of {len(sources)} modules would compile at every boot: {stale[:5]}"


def content(entries: dict[str, tuple[int, bytes]], name: str) -> bytes:
    """A file's bytes, through symlinks (Debian links sitecustomize.py into /etc), as the importer reads it."""
    for _ in range(8):
        mode, data = entries[name]
        if not stat.S_ISLNK(mode):
            return data
        target = data.decode()
        name = posixpath.normpath(target[1:] if target.startswith("/") else f"{posixpath.dirname(name)}/{target}")
    raise AssertionError(f"{name}: a loop of symlinks")


# The kernel refuses fsync on a pipe (EINVAL); eatmydata's fsync, which makes no system call, does not.
FSYNC_INTERPOSED = """
import os
try:
    os.fsync(os.pipe()[1])
except OSError:
    print(False)
else:
    print(True)
"""


@pytest.fixture(scope="module")
def installer_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installer's base image unpacked: a Debian 12 tree with Python, standing in for an installed system."""
    tree = tmp_path_factory.mktemp("installer") / "root"
    tree.mkdir()
    image = installer_base.build() / "base.cpio.zst"
    unpacked = subprocess.run(["zstd", "-dc", image], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=unpacked, cwd=tree, check=True)
    return tree


@pytest.mark.integration
def test_the_installers_commands_in_the_installed_system_skip_fsync_and_leave_nothing_behind(
    installer_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """eatmydata from the installer's image loads in a Debian 12 system: inside unsynced_target_commands the
    installer's commands there find its fsync, outside (and in %post) the C library's; its copy goes."""
    monkeypatch.setattr(inst, "TARGET", installer_tree)
    monkeypatch.setattr(inst, "NOSYNC_LIBRARY", installer_tree / inst.NOSYNC_LIBRARY.relative_to("/"))
    check = ["python3", "-c", FSYNC_INTERPOSED]
    with inst.unsynced_target_commands():
        inside = inst.run(check, what="fsync check", chroot=True).strip()
        assert (installer_tree / inst.NOSYNC_IN_TARGET.lstrip("/")).is_file()
    assert (inside, inst.run(check, what="fsync check", chroot=True).strip()) == ("True", "False")
    assert not (installer_tree / inst.NOSYNC_IN_TARGET.lstrip("/")).exists()
    assert "sync as usual" not in capsys.readouterr().out


@pytest.mark.integration
def test_a_system_that_cannot_load_the_preload_syncs_as_usual_and_the_log_says_why(
    installer_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a 2007 payload's glibc would refuse Debian 12's library, the probe refuses a library that is no ELF
    object at all: nothing is preloaded, and the progress line gives the loader's reason."""
    (tmp_path / "not-elf.so").write_text("not a shared object\n")
    monkeypatch.setattr(inst, "TARGET", installer_tree)
    monkeypatch.setattr(inst, "NOSYNC_LIBRARY", tmp_path / "not-elf.so")
    with inst.unsynced_target_commands():
        inside = inst.run(["python3", "-c", FSYNC_INTERPOSED], what="fsync check", chroot=True).strip()
    assert inside == "False"
    out = capsys.readouterr().out
    assert "sync as usual (eatmydata:" in out and "xenlab-nosync.so" in out, out
    assert not (installer_tree / inst.NOSYNC_IN_TARGET.lstrip("/")).exists()
