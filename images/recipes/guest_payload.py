"""The guest payload, a Xen PV guest's `liveimg`: Debian 12 with its kernel, GRUB (whose grub.cfg pygrub
reads at the guest's local boot), OpenSSH and the lab's network service, as a zstd tarball.

The initrd carries only what a PV guest's root needs (xen-blkfront, ext4), /boot/xen has the kernel as a PV
guest boots it fastest, and the kernel modules keep only what a PV guest loads (GUEST_MODULES and what they
depend on, and Xen's own drivers).  Nothing the installed system does not use at all: `usrmerge` and the Perl
it brings go (a fifth of the tree; mmdebstrap merged /usr already, `usr-is-merged` says so to
init-system-helpers), udev's hardware database and its sources (no hardware to look up in a PV guest),
glibc's iconv converters (nothing in it converts charsets).  Every byte and file left is unpacked by each
guest's install under emulation, where writing them is three quarters of the payload's time (the installer's
payload line says so).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from images import bzimage, debian_tree, debs, kmod, mmdebstrap, store

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
# The NIC's front end too: without udev in the initrd nothing else loads it before the root's udev does, and
# the lab's network unit would wait for it.
INITRD_MODULES = ("xen-blkfront", "xen-netfront", "ext4", "crc32c_generic")
# What a PV guest loads: its disk and NIC front ends, its root's file system (crc32c: ext4's checksums, a soft
# dependency), systemd's autofs4, and device-mapper and loop for what a site's guest may add.
GUEST_MODULES = ("xen-blkfront", "xen-netfront", "ext4", "crc32c_generic", "autofs4", "dm-mod", "loop")
XEN_DRIVERS = "drivers/xen"  # xenfs, evtchn, gntdev, privcmd: a guest's own Xen tools
UNITS = ("xenlab-ready.service",)
# Early loads of modules a PV guest does not use at boot (their device nodes are still made from
# modules.devname, and opening one loads its module).  e2scrub_reap stays: a site's kickstart disables it with
# `services` (the suite's services case does), which a mask would turn into "masked".
MASKED_UNITS = (
    *debian_tree.VT_LOGINS,
    *(f"modprobe@{m}.service" for m in ("configfs", "efi_pstore", "fuse", "loop", "dm_mod")),
)
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


GCONV = "usr/lib/x86_64-linux-gnu/gconv"


def kept_modules(root: Path) -> list[str]:
    """GUEST_MODULES and their dependencies (read from the modules themselves), and Xen's drivers: as
    debian_tree.keep_only_modules takes them, relative to the kernel's module tree."""
    tree = root / "lib/modules" / debian_tree.kernel_release(root)
    order = kmod.load_order(kmod.dependency_map(tree), GUEST_MODULES)
    return [XEN_DRIVERS, *(path.removeprefix("kernel/") for path in order)]


def build() -> Path:
    resolved = [debs.resolve(p) for p in PACKAGES]

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            root = Path(tmp) / "root"
            mmdebstrap.bootstrap(root, PACKAGES, timeout=1800)
            shutil.rmtree(root / "var/cache/apt", ignore_errors=True)
            shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
            debian_tree.small_initrd(root, INITRD_MODULES)
            # The kernel again as a Xen PV guest's domain builder loads it fastest (its ELF, gzipped: undoing
            # Debian's XZ took 5.1 s of dom0's CPU at each boot, under xl's lock), as RHEL 5's kernel-xen was.
            # The installer's entry names it in a PV guest; GRUB on an HVM guest boots the bzImage beside it.
            release = debian_tree.kernel_release(root)
            (root / "boot/xen").mkdir()
            bzimage.write_pv_kernel(root / f"boot/vmlinuz-{release}", root / f"boot/xen/vmlinuz-{release}")
            debian_tree.install_network(root)
            debian_tree.install_units(root, UNITS)
            debian_tree.fresh_ssh_host_keys(root)
            debian_tree.drop_timers(root)
            debian_tree.mask_units(root, MASKED_UNITS)
            # Every /etc/init.d script here has a native unit: the sysv generator makes nothing.
            debian_tree.mask_generators(root, (*debian_tree.UNUSED_GENERATORS, debian_tree.SYSV_GENERATOR))
            debian_tree.keep_only_modules(root, kept_modules(root))
            debian_tree.purge(root, UNUSED_PACKAGES)
            (root / "usr/lib/udev/hwdb.bin").unlink(missing_ok=True)  # made by udev's postinst, owned by nothing
            for unused in (*(root / "usr/lib/udev/hwdb.d").glob("*.hwdb"), *(root / GCONV).glob("*.so")):
                unused.unlink()
            debian_tree.mark_up_to_date(root)
            debian_tree.pack(root, out / "guest.tar.zst")

    inputs = {
        "packages": [d.as_input() for d in resolved],
        "initrd": list(INITRD_MODULES),
        "modules": [*GUEST_MODULES, XEN_DRIVERS],
        "purged": list(UNUSED_PACKAGES),
        "recipe": store.source_digest(
            Path(__file__),
            Path(mmdebstrap.__file__),
            Path(kmod.__file__),
            Path(bzimage.__file__),
            *debian_tree.sources("xenlab-network", "xenlab-network.service", "udhcpc.script", *UNITS),
        ),
    }
    return store.build_or_reuse("guest-payload", inputs, make)
