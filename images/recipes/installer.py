"""The installer the lab netboots: installer-base plus the kickstart installer program, as one initrd; its
kernel as a bzImage (`vmlinuz`, for PXE and HVM guests) and as a Xen PV guest's (`vmlinuz-xen`, the
pv-kernel image)."""

from __future__ import annotations

from pathlib import Path

from foundation.paths import REPO
from images import cpio, store
from images.recipes import installer_base, pv_kernel

FILES = Path(__file__).resolve().parent.parent / "files"


def build() -> Path:
    base = installer_base.build()
    pv = pv_kernel.build()
    program = REPO / "kickstart_installer" / "xenlab_installer.py"  # packed into the initrd, never imported here

    def make(out: Path) -> None:
        overlay = out / "overlay.cpio.zst"
        cpio.write_overlay(
            overlay,
            {
                "/usr/local/bin/xenlab-installer": program.read_bytes(),
                "/etc/xenlab/udhcpc.script": (FILES / "udhcpc.script").read_bytes(),
            },
        )
        cpio.concatenate(out / "initrd.img", base / "base.cpio.zst", overlay)
        overlay.unlink()
        (out / "vmlinuz").symlink_to((base / "vmlinuz").resolve())
        (out / pv_kernel.FILE).symlink_to(pv / pv_kernel.FILE)

    inputs = {
        "base": base.name,
        "pv_kernel": pv.name,
        "recipe": store.source_digest(Path(__file__), program, FILES / "udhcpc.script"),
    }
    return store.build_or_reuse("installer", inputs, make)
