"""The Debian kernel as a Xen PV guest boots it fastest: its ELF, gzipped (images.bzimage).  Its own image,
keyed by the kernel's: made once per kernel, not at every build of the installer that carries it."""

from __future__ import annotations

from pathlib import Path

from images import bzimage, store
from images.recipes import kernel

FILE = "vmlinuz-xen"


def build() -> Path:
    kernel_image = kernel.build()

    def make(out: Path) -> None:
        bzimage.write_pv_kernel(kernel_image / "vmlinuz", out / FILE)

    inputs = {"kernel": kernel_image.name, "recipe": store.source_digest(Path(__file__), Path(bzimage.__file__))}
    return store.build_or_reuse("pv-kernel", inputs, make)
