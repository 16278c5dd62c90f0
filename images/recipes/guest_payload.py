"""The guest payload, a Xen PV guest's `liveimg`: Debian 12 with its kernel, GRUB (whose grub.cfg pygrub
reads at the guest's local boot), OpenSSH and the lab's network service, as a zstd tarball.

The initrd carries only what a PV guest's root needs (xen-blkfront, ext4), and the kernel modules keep only
what a PV guest loads: ext4, Xen's block and network front ends, device-mapper, crypto and library code.
Nothing the installed system does not use at all: `usrmerge` and the Perl it brings go (a fifth of the
tree; mmdebstrap merged /usr already, `usr-is-merged` says so to init-system-helpers), and udev's
generated hardware database (no hardware to look up in a PV guest).  Every byte left is unpacked by each
guest's install under emulation.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from images import debian_tree, debs, mmdebstrap, store

PACKAGES = (
    "usr-is-merged",  # init-system-helpers' other alternative to usrmerge, purged below
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "grub-pc",
    "openssh-server",
    "busybox",
    "iproute2",
    "procps",
    "kmod",
    "wget",
)
INITRD_MODULES = ("xen-blkfront", "ext4", "crc32c_generic")
KEEP_MODULES = (
    "arch",
    "crypto",
    "lib",
    "fs/ext4",
    "fs/jbd2",
    "fs/mbcache.ko",
    "fs/autofs",
    "drivers/block",
    "drivers/md",
    "drivers/xen",
    "drivers/net/xen-netfront.ko",
)
UNITS = ("xenlab-ready.service",)
# usrmerge (chosen for init-system-helpers while the essential packages go in) and what only it needs.
UNUSED_PACKAGES = (
    "usrmerge",
    "libfile-find-rule-perl",
    "libnumber-compare-perl",
    "libtext-glob-perl",
    "perl",
    "perl-modules-5.36",
    "libperl5.36",
)


def build() -> Path:
    resolved = [debs.resolve(p) for p in PACKAGES]

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            root = Path(tmp) / "root"
            mmdebstrap.bootstrap(root, PACKAGES, timeout=1800)
            shutil.rmtree(root / "var/cache/apt", ignore_errors=True)
            shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
            debian_tree.small_initrd(root, INITRD_MODULES)
            debian_tree.install_network(root)
            debian_tree.install_units(root, UNITS)
            debian_tree.fresh_ssh_host_keys(root)
            debian_tree.drop_timers(root)
            debian_tree.mask_units(root, debian_tree.UNUSED_UNITS + debian_tree.UNUSED_MODULE_LOADS)
            debian_tree.keep_only_modules(root, KEEP_MODULES)
            debian_tree.purge(root, UNUSED_PACKAGES)
            (root / "usr/lib/udev/hwdb.bin").unlink(missing_ok=True)  # made by udev's postinst, owned by nothing
            debian_tree.pack(root, out / "guest.tar.zst")

    inputs = {
        "packages": [d.as_input() for d in resolved],
        "initrd": list(INITRD_MODULES),
        "modules": list(KEEP_MODULES),
        "purged": list(UNUSED_PACKAGES),
        "recipe": store.source_digest(
            Path(__file__),
            Path(mmdebstrap.__file__),
            *debian_tree.sources("xenlab-network", "xenlab-network.service", "udhcpc.script", *UNITS),
        ),
    }
    return store.build_or_reuse("guest-payload", inputs, make)
