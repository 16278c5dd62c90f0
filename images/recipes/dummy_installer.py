"""The dummy installer: a busybox initrd that proves a node can netboot and reach its kickstart.

The Debian kernel has its NIC drivers as modules, so the initrd carries them, in dependency order computed
from the kernel's modules.dep (a wrong order fails with "Unknown symbol").
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from images import cpio, debs, kmod, store
from images.recipes import kernel

FILES = Path(__file__).resolve().parent.parent / "files"
# Drivers for the NICs the lab uses: QEMU's virtio-net and e1000, and Xen's netfront for PV guests.
MODULES = ("virtio_pci", "virtio_net", "e1000", "xen-netfront")


def build() -> Path:
    kernel_image = kernel.build()
    busybox = debs.resolve("busybox-static")
    sources = [FILES / "dummy-installer-init.sh", FILES / "udhcpc.script", Path(__file__), Path(cpio.__file__)]

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "root"
            for d in ("bin", "etc", "lib/modules", "proc", "sys", "dev", "tmp"):
                (root / d).mkdir(parents=True)
            unpacked = Path(tmp) / "busybox"
            debs.extract(debs.fetch(busybox), unpacked)
            shutil.copy2(unpacked / "bin" / "busybox", root / "bin" / "busybox")
            (root / "bin" / "sh").symlink_to("busybox")
            shutil.copy2(FILES / "dummy-installer-init.sh", root / "init")
            (root / "init").chmod(0o755)
            shutil.copy2(FILES / "udhcpc.script", root / "etc" / "udhcpc.script")
            (root / "etc" / "udhcpc.script").chmod(0o755)
            mods = kernel.modules_dir(kernel_image)
            order = kmod.load_order(kernel.module_deps(kernel_image), MODULES)
            for rel in order:
                target = root / "lib" / "modules" / Path(rel).name
                shutil.copy2(mods / rel, target)
            (root / "lib" / "modules" / "load-order").write_text("".join(Path(r).name + "\n" for r in order))
            cpio.write_initrd(root, out / "initrd.img")
        (out / "vmlinuz").symlink_to(kernel_image / "vmlinuz")

    inputs = {
        "kernel": kernel_image.name,
        "busybox": busybox.as_input(),
        "modules": list(MODULES),
        "recipe": store.source_digest(*sources),
    }
    return store.build_or_reuse("dummy-installer", inputs, make)
