"""The installer's initramfs as built from Debian's packages: its Python runs from the .pyc files it carries.

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

import pytest

from images.recipes import installer_base
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
