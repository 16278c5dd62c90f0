"""Shaping a Debian root filesystem tree into a payload a kickstart installs: small initrd, the lab's own
units, fresh SSH host keys per machine, fewer kernel modules, and the zstd tarball the installer unpacks.

Shared by the dom0 and the guest payloads, so both are made the same way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from foundation.process import run

FILES = Path(__file__).resolve().parent / "files"


def kernel_release(rootfs: Path) -> str:
    return next((rootfs / "lib/modules").iterdir()).name


# udev's part of initramfs-tools: its hook copies udevd and its rules into every initrd, its scripts start
# udevd, trigger every device and wait for the events to settle before the root is looked for.
UDEV_IN_INITRD = (
    "usr/share/initramfs-tools/hooks/udev",
    "usr/share/initramfs-tools/scripts/init-top/udev",
    "usr/share/initramfs-tools/scripts/init-bottom/udev",
)
DIVERTED = "usr/lib/xenlab/diverted"
# util-linux's blkid, which udev's hook used to bring: initramfs-tools finds LABEL=root with `blkid -l -t`,
# which busybox's blkid does not know.  The hooks in /etc run after the packages' (busybox's made its blkid
# link by then), and copy_exec never replaces a file: the link goes first.
BLKID_HOOK = """#!/bin/sh
# xenlab: util-linux's blkid for initramfs-tools' resolve_device (udev's hook, which brought it, is diverted)
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
rm -f "${DESTDIR}/usr/sbin/blkid" "${DESTDIR}/sbin/blkid"
copy_exec /sbin/blkid /sbin
"""


def small_initrd(rootfs: Path, modules: Iterable[str]) -> None:
    """Rebuild the tree's initrd with only `modules` (on the build machine: inside an emulated machine it took
    minutes), loaded by initramfs-tools itself in the list's order, and without udev.

    A lab machine's root is a partition of a disk whose driver is in the list (virtio or Xen's blkfront):
    devtmpfs makes its node as the driver finds it, and blkid, which initramfs-tools asks for LABEL=root,
    reads the partitions the kernel lists.  udev in the initrd only started a daemon and waited for every
    device's events to settle, about 6 s of a PV guest's boot under emulation; the installed system's own
    udev (in the root, started by systemd) still handles every device.  udev's initramfs files are diverted
    with dpkg-divert, so a later update of the udev package leaves them where mkinitramfs does not look."""
    conf = rootfs / "etc/initramfs-tools"
    text = (conf / "initramfs.conf").read_text().replace("MODULES=most", "MODULES=list")
    (conf / "initramfs.conf").write_text(text)
    (conf / "modules").write_text("".join(m + "\n" for m in modules))
    hook = conf / "hooks/xenlab-blkid"
    hook.write_text(BLKID_HOOK)
    hook.chmod(0o755)
    (rootfs / DIVERTED).mkdir(parents=True, exist_ok=True)
    for path in UDEV_IN_INITRD:
        if (rootfs / path).exists():
            aside = f"/{DIVERTED}/{path.replace('/', '_')}"
            run(["chroot", rootfs, "dpkg-divert", "--local", "--rename", "--divert", aside, "--add", f"/{path}"])
    for fs, target in (("proc", "proc"), ("sysfs", "sys")):
        run(["mount", "-t", fs, fs, rootfs / target])
    try:
        run(["chroot", rootfs, "update-initramfs", "-u", "-k", kernel_release(rootfs)], timeout=600)
    finally:
        for target in ("sys", "proc"):
            run(["umount", rootfs / target], check=False)


def drop_timers(rootfs: Path) -> None:
    """apt and man-db timers only cost time under emulation."""
    for timer in (rootfs / "etc/systemd/system/timers.target.wants").glob("*"):
        timer.unlink()


# The virtual terminals' logins: no lab machine has a display (their consoles are serial or Xen's, which keep
# their getty), and each costs a process at every boot under emulation.
VT_LOGINS = ("getty@tty1.service", "getty-static.service")


def mask_units(rootfs: Path, units: Iterable[str]) -> None:
    """Mask units as `systemctl mask` does (a link to /dev/null in /etc): what wants them goes on without."""
    for unit in units:
        link = rootfs / "etc/systemd/system" / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")


# systemd's generators a lab machine gives no input to: no /etc/crypttab, veritytab or integritytab, no GPT
# disk, no resume= or systemd.run= on its command line, no /etc/rc.local, no /system-update.  systemd runs
# every generator at each boot and each daemon-reload, and each costs 0.17-0.37 s to start in a PV guest under
# TCG (they link libsystemd-shared); these add up to over 2 s of a boot.  fstab, getty and debug stay (the last
# reads systemd.mask= and systemd.debug_shell on the command line: what a person debugging a boot types).
UNUSED_GENERATORS = (
    "systemd-cryptsetup-generator",
    "systemd-veritysetup-generator",
    "systemd-integritysetup-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-run-generator",
    "systemd-rc-local-generator",
    "systemd-system-update-generator",
)
SYSV_GENERATOR = "systemd-sysv-generator"  # a tree whose /etc/init.d scripts have no native unit needs it


def mask_generators(rootfs: Path, generators: Iterable[str]) -> None:
    """Disable systemd generators as systemd.generator(7) says: a link to /dev/null of the same name in
    /etc/systemd/system-generators.  A name the tree's systemd does not ship is an error (a renamed generator
    would otherwise go on running unnoticed)."""
    shipped = rootfs / "usr/lib/systemd/system-generators"
    missing = [g for g in generators if not (shipped / g).exists()]
    if missing:
        raise FileNotFoundError(f"{shipped} has no {', '.join(missing)}: this systemd names its generators otherwise")
    masks = rootfs / "etc/systemd/system-generators"
    masks.mkdir(parents=True, exist_ok=True)
    for generator in generators:
        (masks / generator).unlink(missing_ok=True)
        (masks / generator).symlink_to("/dev/null")


def install_units(rootfs: Path, units: Iterable[str]) -> None:
    """Copy the lab's systemd units from images/files and enable them for multi-user.target."""
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in units:
        shutil.copy2(FILES / unit, rootfs / "etc/systemd/system" / unit)
        (wants / unit).unlink(missing_ok=True)
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")


def install_network(rootfs: Path, *, bridge: str | None = None) -> None:
    """The lab's network service: the address the kickstart gave (/etc/xenlab/network.env, written by the
    installer), on the NIC itself or on a bridge carrying it (dom0's xenbr0)."""
    shutil.copy2(FILES / "xenlab-network", rootfs / "usr/local/sbin/xenlab-network")
    (rootfs / "usr/local/sbin/xenlab-network").chmod(0o755)
    (rootfs / "etc/xenlab").mkdir(exist_ok=True)
    shutil.copy2(FILES / "udhcpc.script", rootfs / "etc/xenlab/udhcpc.script")
    (rootfs / "etc/xenlab/network.conf").write_text(f"BRIDGE={bridge or ''}\n")
    install_units(rootfs, ("xenlab-network.service",))


def fresh_ssh_host_keys(rootfs: Path) -> None:
    """Every installed machine makes its own SSH host keys at first boot, never the image's shared ones."""
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = rootfs / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    # Before Debian's own `sshd -t`, which fails without keys; ed25519 only: RSA keygen costs seconds under TCG.
    (dropin / "xenlab-host-keys.conf").write_text(
        "[Service]\nExecStartPre=\n"
        "ExecStartPre=/bin/sh -c 'test -e /etc/ssh/ssh_host_ed25519_key || "
        'ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key\'\n'
        "ExecStartPre=/usr/sbin/sshd -t\n"
    )


def prune_modules(rootfs: Path, unneeded: Iterable[str]) -> None:
    """Remove kernel module subtrees no lab machine loads, and refresh modules.dep."""
    release = kernel_release(rootfs)
    modules = rootfs / "lib/modules" / release / "kernel"
    for sub in unneeded:
        shutil.rmtree(modules / sub, ignore_errors=True)
    run(["chroot", rootfs, "depmod", release])


def keep_only_modules(rootfs: Path, keep: Iterable[str]) -> None:
    """Remove every kernel module but those under the `keep` paths (relative to the kernel's module tree:
    `fs/ext4`, `drivers/block`, or one file like `drivers/net/xen-netfront.ko`), and refresh modules.dep."""
    release = kernel_release(rootfs)
    modules = rootfs / "lib/modules" / release / "kernel"
    kept = tuple(keep)
    for module in sorted(modules.rglob("*.ko*")):
        rel = module.relative_to(modules).as_posix()
        if not any(rel == k or rel.startswith(k.rstrip("/") + "/") for k in kept):
            module.unlink()
    run(["chroot", rootfs, "depmod", release])


def purge(rootfs: Path, packages: Iterable[str]) -> None:
    """Remove installed packages the tree does not use, by dpkg (which refuses one something still needs)."""
    run(["chroot", rootfs, "dpkg", "--purge", *packages], timeout=600)


def byte_compile(rootfs: Path, *packages: str) -> None:
    """Byte-compile Python packages copied into the tree by the tree's own python3, as a Debian package's
    postinst does (py3compile): otherwise every run compiles every module it imports, under emulation, and a
    read-only root (an initramfs copy, a fresh install) compiles again at each boot.  The .pyc files carry a
    hash of their source, so an edited module is still compiled afresh rather than run stale."""
    site = "/usr/lib/python3/dist-packages"
    _compile(rootfs, [f"{site}/{p}" for p in packages])


def byte_compile_for_fixed_mtimes(rootfs: Path) -> None:
    """Byte-compile all of the tree's Python (the standard library, every installed package) again with a hash
    of each source in its .pyc, for a tree packed with every mtime fixed (the initramfs's cpio).  Debian's
    py3compile stamps a .pyc with its source's mtime; once the packer has zeroed that, every stamp mismatches
    and each Python process in the initramfs compiles every module it imports afresh: measured on the build
    machine, the installer's imports took 0.77 s with Debian's .pyc and 0.14 s with these, and an emulated
    guest pays that ratio on seconds, not milliseconds."""
    _compile(rootfs, sorted(f"/{p.relative_to(rootfs)}" for p in (rootfs / "usr/lib").glob("python3*")), force=True)


def _compile(rootfs: Path, paths: list[str], *, force: bool = False) -> None:
    if not (rootfs / "usr/bin/python3").exists():
        return  # nothing in this tree could run them either (a test's stand-in for a disk)
    argv = ["python3", "-m", "compileall", "-q", *(["-f"] if force else []), "--invalidation-mode", "checked-hash"]
    run(["chroot", rootfs, *argv, *paths], timeout=600)


UPDATE_STAMPS = ("etc/.updated", "var/.updated")


def mark_up_to_date(rootfs: Path) -> None:
    """Stamp /etc and /var as updated for the tree's /usr, as systemd-update-done does (its file, with /usr's
    time): units with ConditionNeedsUpdate (systemd-sysusers) then skip, their work done by the packages' own
    scripts when they installed.  Debian ships no systemd-update-done, so without the stamps they run at every
    boot, on the critical chain of dom0 and of every guest.  Call it last before packing: the stamps hold /usr's
    time as it is then."""
    usr = (rootfs / "usr").stat()
    for stamp in UPDATE_STAMPS:
        path = rootfs / stamp
        path.write_text(
            "# Written by xenlab's image builder as systemd-update-done writes it: this directory is as new as\n"
            f"# /usr (see systemd-update-done.service(8)).\nTIMESTAMP_NSEC={usr.st_mtime_ns}\n"
        )
        os.utime(path, ns=(usr.st_mtime_ns, usr.st_mtime_ns))


def pack(rootfs: Path, tarball: Path) -> None:
    """The tree as the zstd tarball `liveimg --url` points at."""
    run(["tar", "--zstd", "--numeric-owner", "-C", rootfs, "-cf", tarball, "."], timeout=1800)


def sources(*names: str) -> list[Path]:
    """The files of images/files a recipe uses, for its cache key."""
    return [Path(__file__), *(FILES / n for n in names)]
