"""The dom0 payload as the host installer's `liveimg`: a zstd tarball of the dom0 tree with the system under
test installed and the lab's dom0 network service, less the kernel modules a VM never loads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from images import store
from images.recipes import dom0
from lab.process import run

FILES = Path(__file__).resolve().parent.parent / "files"
# Kernel module trees no lab machine needs: a third of the payload's size.
UNNEEDED_MODULES = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/net/wireless",
    "drivers/staging",
    "drivers/usb",
    "drivers/bluetooth",
    "net/wireless",
    "drivers/iio",
    "drivers/hid",
    "drivers/input/touchscreen",
    "drivers/net/ethernet/mellanox",
    "drivers/net/ethernet/chelsio",
    "drivers/scsi/lpfc",
    "drivers/scsi/qla2xxx",
    "drivers/isdn",
)


def build() -> Path:
    tree = dom0.build()
    sources = [Path(__file__), FILES / "xenlab-network", FILES / "xenlab-network.service", FILES / "udhcpc.script"]

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            root = Path(tmp) / "root"
            run(["cp", "-a", tree / "rootfs", root], timeout=600)
            dom0.install_sut(root)
            shutil.copy2(FILES / "xenlab-network", root / "usr/local/sbin/xenlab-network")
            (root / "usr/local/sbin/xenlab-network").chmod(0o755)
            (root / "etc/xenlab").mkdir(exist_ok=True)
            shutil.copy2(FILES / "udhcpc.script", root / "etc/xenlab/udhcpc.script")
            shutil.copy2(FILES / "xenlab-network.service", root / "etc/systemd/system/xenlab-network.service")
            (root / "etc/systemd/system/multi-user.target.wants/xenlab-network.service").symlink_to(
                "/etc/systemd/system/xenlab-network.service"
            )
            modules = root / "lib/modules" / dom0.release(tree) / "kernel"
            for sub in UNNEEDED_MODULES:
                shutil.rmtree(modules / sub, ignore_errors=True)
            run(["chroot", root, "depmod", dom0.release(tree)])
            run(["tar", "--zstd", "--numeric-owner", "-C", root, "-cf", out / "dom0.tar.zst", "."], timeout=1800)

    inputs = {"tree": tree.name, "sut": dom0.sut_digest(), "recipe": store.source_digest(*sources)}
    return store.build_or_reuse("dom0-payload", inputs, make)
