"""The dom0 payload: Debian 12 with Xen 4.17, its xl toolstack, GRUB, LVM and SSH.  This project's
pypxeboot, ncm-ncd and components are installed into each copy of it (`install_sut`: into Python's
dist-packages, with their commands on PATH, the way a site's packages put them), so that a change to
them does not rebuild the payload.

It is a root filesystem tree the host installer (or a disk-image builder) copies onto a disk.  Its initrd
is rebuilt small (virtio and ext4 only) on the build machine, in the chroot: doing it inside the emulated
dom0 took almost 3 minutes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from foundation.paths import REPO
from foundation.process import run
from images import debian_tree, debs, mmdebstrap, store

PACKAGES = (
    "xen-system-amd64",
    "xen-utils-4.17",
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "grub-pc",
    "lvm2",
    "openssh-server",
    "python3",
    "busybox",
    "iproute2",
    "procps",
    "kmod",
    "qemu-system-xen",
    "seabios",
    "less",
    "wget",
)
SUT = ("quattor", "pypxeboot")
COMMANDS = {
    "usr/bin/pypxeboot": "pypxeboot.cli",
    "usr/sbin/ncm-ncd": "quattor.ncm.ncd",
    "usr/sbin/aii-shellfe": "quattor.aii.shellfe",
}


MODULES = ("virtio_pci", "virtio_blk", "ext4", "xen-blkfront")
UNITS = ("xenlab-ready.service", "xenlab-firstboot.service")
# e2fsprogs' snapshot reaper: no LVM snapshots of ext4 in dom0.
MASKED_UNITS = (*debian_tree.VT_LOGINS, "e2scrub_reap.service")


def build() -> Path:
    resolved = [debs.resolve(p) for p in PACKAGES]

    def make(out: Path) -> None:
        rootfs = out / "rootfs"
        mmdebstrap.bootstrap(rootfs, PACKAGES, timeout=3600)
        configure(rootfs)
        debian_tree.small_initrd(rootfs, MODULES)
        shutil.rmtree(rootfs / "var/cache/apt", ignore_errors=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)

    inputs = {
        "packages": [d.as_input() for d in resolved],
        "modules": list(MODULES),
        "recipe": store.source_digest(Path(__file__), Path(mmdebstrap.__file__), *debian_tree.sources(*UNITS)),
    }
    return store.build_or_reuse("dom0", inputs, make)


def configure(rootfs: Path) -> None:
    (rootfs / "etc/fstab").write_text("LABEL=root / ext4 errors=remount-ro 0 1\n")
    # Root logs in on the Xen console without a password (the lab drives it); SSH takes keys only.
    run(["chroot", rootfs, "passwd", "-d", "root"])
    getty = rootfs / "etc/systemd/system/serial-getty@hvc0.service.d"
    getty.mkdir(parents=True)
    (getty / "autologin.conf").write_text(
        "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root "
        "--noclear --keep-baud 115200,38400,9600 %I xterm\n"
    )
    debian_tree.install_units(rootfs, UNITS)
    debian_tree.mask_units(rootfs, MASKED_UNITS)
    # Not the sysv generator: Debian starts Xen with /etc/init.d/xen and xendomains, which have no native unit.
    debian_tree.mask_generators(rootfs, debian_tree.UNUSED_GENERATORS)
    debian_tree.drop_timers(rootfs)


def sut_digest() -> str:
    """Changes whenever the system under test does: images that install it include this in their key."""
    return store.source_digest(*(f for pkg in SUT for f in sorted((REPO / pkg).rglob("*.py"))))


def install_sut(rootfs: Path) -> None:
    """Install pypxeboot, ncm-ncd and AII into a copy of the payload, as a site's packages would (over an
    earlier version too, which is removed whole: an installed system being updated)."""
    site = rootfs / "usr/lib/python3/dist-packages"
    for pkg in SUT:
        if (site / pkg).exists():
            shutil.rmtree(site / pkg)
        shutil.copytree(REPO / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    debian_tree.byte_compile(rootfs, *SUT)
    for path, module in COMMANDS.items():
        target = rootfs / path
        target.write_text(f"#!/usr/bin/python3\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        target.chmod(0o755)


def release(image: Path) -> str:
    return debian_tree.kernel_release(image / "rootfs")
