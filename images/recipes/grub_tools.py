"""GRUB's user-space tools from Debian's grub-common, unpacked (not installed): grub-script-check for tests.

grub-common's binaries link libdevmapper, which a fresh Debian 12 may not have: it is unpacked beside them
and found through LD_LIBRARY_PATH.
"""

from __future__ import annotations

from pathlib import Path

from images import debs, store

PACKAGES = ("grub-common", "libdevmapper1.02.1")


def build() -> Path:
    resolved = [debs.resolve(p) for p in PACKAGES]

    def make(out: Path) -> None:
        for deb in resolved:
            debs.extract(debs.fetch(deb), out / "root")

    return store.build_or_reuse("grub-tools", {"debs": [d.as_input() for d in resolved]}, make)


def script_check(image: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run grub-script-check from the unpacked packages."""
    root = image / "root"
    return [str(root / "usr/bin/grub-script-check")], {"LD_LIBRARY_PATH": str(root / "lib/x86_64-linux-gnu")}
