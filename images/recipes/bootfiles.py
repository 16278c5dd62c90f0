"""Network boot loaders for the TFTP root: pxelinux.0 and its ldlinux.c32 (BIOS)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from images import debs, store

FILES = {
    "pxelinux": {"usr/lib/PXELINUX/pxelinux.0": "pxelinux.0"},
    "syslinux-common": {"usr/lib/syslinux/modules/bios/ldlinux.c32": "ldlinux.c32"},
}


def build() -> Path:
    packages = {name: debs.resolve(name) for name in FILES}

    def make(out: Path) -> None:
        for name, deb in packages.items():
            with tempfile.TemporaryDirectory() as tmp:
                debs.extract(debs.fetch(deb), Path(tmp))
                for src, dst in FILES[name].items():
                    shutil.copy2(Path(tmp) / src, out / dst)

    return store.build_or_reuse("bootfiles", {p.name: p.as_input() for p in packages.values()}, make)
