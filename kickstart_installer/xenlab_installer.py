#!/usr/bin/python3
"""xenlab-installer: install a machine from a kickstart, the lab's stand-in for Anaconda.

It runs as the installer initramfs's program.  It brings the NIC up by DHCP, applies an updates image named
by `inst.updates=` or `updates=` (its files overlay the installer's, then it starts again), fetches the
kickstart named by `inst.ks=` or `ks=` on the kernel command line, parses it with pykickstart (Anaconda's
own parser), and
carries out what AII generates: network, rootpw (crypted), sshkey, timezone, zerombr, clearpart, part
(LVM physical volumes too), volgroup, logvol, liveimg --url (a tar payload), bootloader, %pre, %post
(also --nochroot), %onerror, reboot and poweroff.  A command it does not support stops the install with its
name; nothing is skipped silently.  One progress line per step; on failure the kickstart's %onerror scripts
run, the reason goes to the console and to the install server, and the machine stops.

Standard library and pykickstart only: this file is copied alone into the initramfs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pykickstart's handler: a class made per kickstart version, without type information.
Handler = Any

SUPPORTED = {
    "text",
    "network",
    "rootpw",
    "sshkey",
    "timezone",
    "zerombr",
    "clearpart",
    "part",
    "partition",
    "volgroup",
    "logvol",
    "liveimg",
    "bootloader",
    "reboot",
    "poweroff",
    "halt",
    "shutdown",
}
TARGET = Path("/mnt/sysimage")
SYS_BLOCK = Path("/sys/block")
GRUB_HEADER = "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset timeout=1\n"
MiB = 1024 * 1024


class InstallError(Exception):
    """Why the install stopped; it becomes the console line and the report to the install server."""


def progress(step: str, detail: str = "") -> None:
    print(f"XENLAB-INSTALL {step}{': ' + detail if detail else ''} uptime={_uptime()}", flush=True)


def _uptime() -> str:
    try:
        return Path("/proc/uptime").read_text().split()[0]
    except OSError:
        return "?"


# --- the kickstart ---------------------------------------------------------------------------------------------
def parse(text: str) -> Handler:
    from pykickstart.errors import KickstartError
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion

    parser = KickstartParser(makeVersion(), followIncludes=False)
    try:
        parser.readKickstartFromString(text)
    except KickstartError as exc:
        raise InstallError(f"kickstart does not parse: {exc}") from None
    names: dict[int, set[str]] = {}  # aliases share one command object (text/graphical, reboot/poweroff…)
    for name, cmd in parser.handler.commands.items():
        if getattr(cmd, "seen", False):
            names.setdefault(id(cmd), set()).add(name)
    unsupported = sorted(min(aliases) for aliases in names.values() if not aliases & SUPPORTED)
    if unsupported:
        raise InstallError(f"unsupported kickstart command(s): {', '.join(unsupported)}")
    return parser.handler


@dataclass(frozen=True)
class Part:
    name: str  # mount point, or pv.NN
    size_mib: int
    grow: bool
    fstype: str | None
    label: str | None
    number: int = 0  # the partition number, once planned

    @property
    def is_pv(self) -> bool:
        return self.name.startswith("pv.")


def plan(handler: Handler, disk_mib: int) -> list[Part]:
    """The partitions in order, numbered, checked against the disk (1 MiB is kept for the MBR and GRUB)."""
    parts = []
    for number, p in enumerate(handler.partition.partitions, 1):
        if not p.size and not p.grow:
            raise InstallError(f"partition {p.mountpoint} has no --size")
        fstype = None if p.mountpoint.startswith("pv.") else (p.fstype or "ext4")
        if fstype not in (None, "ext4", "ext3", "ext2", "swap"):
            raise InstallError(f"partition {p.mountpoint}: file system {fstype} is not supported")
        parts.append(Part(p.mountpoint, int(p.size or 1), bool(p.grow), fstype, p.label or None, number))
    if len(parts) > 4:
        raise InstallError("more than 4 partitions need an extended partition, which is not supported")
    needed = 1 + sum(p.size_mib for p in parts)
    if needed > disk_mib:
        raise InstallError(f"the partitions need {needed} MiB but the disk has {disk_mib} MiB")
    return parts


def sfdisk_script(parts: list[Part]) -> str:
    lines = ["label: dos"]
    for p in parts:
        size = "" if p.grow else f", size={p.size_mib}MiB"
        kind = "8e" if p.is_pv else ("82" if p.fstype == "swap" else "83")
        boot = ", bootable" if p.name == "/" else ""
        lines.append(f"start=, type={kind}{size}{boot}" if p.number > 1 else f"start=2048, type={kind}{size}{boot}")
    return "\n".join(lines) + "\n"


# --- running things --------------------------------------------------------------------------------------------
def run(argv: list[str], *, what: str, chroot: bool = False, input: bytes | None = None, timeout: float = 1800) -> str:
    if chroot:
        argv = ["chroot", str(TARGET), *argv]
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise InstallError(f"{what} failed ({shlex.join(argv)} exited {proc.returncode}): {' / '.join(tail)}")
    return proc.stdout.decode(errors="replace")


def cmdline_arg(*names: str) -> str | None:
    for token in Path("/proc/cmdline").read_text().split():
        key, _, value = token.partition("=")
        if key in names:
            return value
    return None


# --- the steps -------------------------------------------------------------------------------------------------
def network_up() -> str:
    wanted = cmdline_arg("ksdevice")
    nics = sorted(n.name for n in Path("/sys/class/net").iterdir() if n.name != "lo")
    deadline = time.monotonic() + 10
    while not nics and time.monotonic() < deadline:
        time.sleep(0.1)
        nics = sorted(n.name for n in Path("/sys/class/net").iterdir() if n.name != "lo")
    nic = wanted if wanted in nics else (nics[0] if nics else None)
    if nic is None:
        raise InstallError("no network interface")
    run(["ip", "link", "set", nic, "up"], what="bringing up " + nic)
    run(
        ["busybox", "udhcpc", "-i", nic, "-s", "/etc/xenlab/udhcpc.script", "-n", "-q", "-t", "10", "-T", "1"],
        what=f"DHCP on {nic}",
    )
    return nic


def fetch(url: str, what: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data: bytes = resp.read()
            return data
    except urllib.error.HTTPError as exc:
        raise InstallError(f"{what} {url} could not be fetched: HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:
        raise InstallError(f"{what} {url} could not be fetched: {getattr(exc, 'reason', exc)}") from None


def find_disk(handler: Handler) -> str:
    """The disk the kickstart names, else the largest one (a Xen guest may also see small extra disks, like
    a swap volume exported as a single partition)."""
    named = handler.clearpart.drives or [p.disk for p in handler.partition.partitions if p.disk]
    disks = {
        d.name: int((d / "size").read_text())
        for d in SYS_BLOCK.iterdir()
        if d.name.startswith(("vd", "xvd", "sd", "hd"))
    }
    if named:
        if named[0] not in disks:
            raise InstallError(
                f"the kickstart names disk {named[0]}, this machine has {', '.join(sorted(disks)) or 'none'}"
            )
        return str(named[0])
    if not disks:
        raise InstallError("no disk to install on")
    return max(sorted(disks), key=lambda name: disks[name])


def part_device(disk: str, number: int) -> str:
    return f"/dev/{disk}{'p' if disk[-1].isdigit() else ''}{number}"


def partition(handler: Handler, disk: str) -> list[Part]:
    disk_mib = int((SYS_BLOCK / disk / "size").read_text()) * 512 // MiB
    parts = plan(handler, disk_mib)
    if handler.zerombr.zerombr or handler.clearpart.initAll:
        run(["wipefs", "-a", f"/dev/{disk}"], what="clearing the disk")
    run(["sfdisk", "-q", "--wipe", "always", f"/dev/{disk}"], what="partitioning", input=sfdisk_script(parts).encode())
    for p in parts:
        dev = part_device(disk, p.number)
        for _ in range(50):
            if Path(dev).exists():
                break
            time.sleep(0.1)
        if p.is_pv:
            run(["pvcreate", "-ff", "-y", dev], what=f"physical volume {dev}")
        elif p.fstype == "swap":
            run(["mkswap", dev], what=f"swap on {dev}")
        else:
            run([f"mkfs.{p.fstype}", "-q", "-F", *(["-L", p.label] if p.label else []), dev], what=f"file system {dev}")
        progress("partition", f"{p.name} on {dev} ({'rest of disk' if p.grow else f'{p.size_mib} MiB'})")
    pvs = {p.name: part_device(disk, p.number) for p in parts if p.is_pv}
    for vg in handler.volgroup.vgList:
        devices = [pvs[pv] for pv in vg.physvols if pv in pvs]
        if len(devices) != len(vg.physvols):
            raise InstallError(f"volgroup {vg.vgname} names physical volumes the partitions do not make")
        run(["vgcreate", "-y", vg.vgname, *devices], what=f"volume group {vg.vgname}")
        progress("volgroup", f"{vg.vgname} on {', '.join(devices)}")
    for lv in handler.logvol.lvList:
        run(["lvcreate", "-y", "-L", f"{lv.size}M", "-n", lv.name, lv.vgname], what=f"logical volume {lv.name}")
        progress("logvol", f"{lv.vgname}/{lv.name} ({lv.size} MiB)")
    return parts


def payload(handler: Handler) -> None:
    url = handler.liveimg.url
    if not url:
        raise InstallError("no liveimg --url: this installer installs tar payloads only")
    progress("payload", url)
    # tar's complaints go to a file: a full disk makes one per file, more than a pipe holds while we feed it
    with tempfile.TemporaryFile() as errors:
        tar = subprocess.Popen(
            ["tar", "-x", "--numeric-owner", "-C", str(TARGET), "-f", "-", *_compression(url)],
            stdin=subprocess.PIPE,
            stderr=errors,
        )
        assert tar.stdin is not None
        total = 0
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := resp.read(1 << 20):
                    try:
                        tar.stdin.write(chunk)
                    except BrokenPipeError:
                        break  # tar stopped reading: its status and its errors say why
                    total += len(chunk)
        except OSError as exc:
            tar.kill()
            raise InstallError(f"payload {url} could not be fetched: {getattr(exc, 'reason', exc)}") from None
        finally:
            with contextlib.suppress(BrokenPipeError):
                tar.stdin.close()
        status = tar.wait()
        errors.seek(0)
        complaints = errors.read().decode(errors="replace")
    if status != 0:
        raise InstallError(f"payload {url} did not unpack ({total // MiB} MiB read): {tar_reason(complaints, status)}")
    progress("payload", f"{total // MiB} MiB unpacked")


TAR_COMPLAINT = re.compile(r"^tar: (?P<path>.+?): (?P<what>[^:]+): (?P<why>[^:]+)$")


def tar_reason(complaints: str, status: int) -> str:
    """tar's first complaint, its cause first ("No space left on device (cannot write ./usr/bin/x, and 800 more
    complaints)": a full disk gives one per file it could not write)."""
    lines = [line for line in complaints.splitlines() if line.strip() and "Exiting with failure status" not in line]
    if not lines:
        return f"tar exited with status {status}"
    more = f", and {len(lines) - 1} more complaints" if len(lines) > 1 else ""
    if found := TAR_COMPLAINT.match(lines[0]):
        return f"{found['why']} ({found['what'].lower()} {found['path'][:120]}{more})"
    first = lines[0] if len(lines[0]) <= 240 else lines[0][:239] + "..."
    return first + (f" ({more.removeprefix(', and ')})" if more else "")


def _compression(url: str) -> list[str]:
    path = urllib.parse.urlsplit(url).path
    for suffix, flag in ((".tar.zst", "--zstd"), (".tar.gz", "-z"), (".tgz", "-z"), (".tar.xz", "-J")):
        if path.endswith(suffix):
            return [flag]
    return []


def configure_target(handler: Handler, parts: list[Part], disk: str) -> None:
    fstab = [
        f"LABEL={p.label} {p.name} {p.fstype} defaults 0 {1 if p.name == '/' else 2}"
        for p in parts
        if p.label and not p.is_pv and p.fstype != "swap"
    ]
    (TARGET / "etc/fstab").write_text("\n".join(fstab) + "\n")
    net = handler.network.network[0] if handler.network.network else None
    if net and net.hostname:
        (TARGET / "etc/hostname").write_text(net.hostname.split(".")[0] + "\n")
        (TARGET / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n{net.ip or '127.0.1.1'} {net.hostname} {net.hostname.split('.')[0]}\n"
        )
    if net:
        (TARGET / "etc/xenlab").mkdir(exist_ok=True)
        (TARGET / "etc/xenlab/network.env").write_text(
            f"DEVICE={net.device or 'eth0'}\nBOOTPROTO={net.bootProto or 'dhcp'}\nIP={net.ip or ''}\n"
            f"NETMASK={net.netmask or ''}\nNAMESERVER={(net.nameserver or '').split(',')[0]}\n"
        )
    server = urllib.parse.urlsplit(cmdline_arg("inst.ks", "ks") or "")
    (TARGET / "etc/xenlab").mkdir(exist_ok=True)
    (TARGET / "etc/xenlab/install-server.env").write_text(f"INSTALL_SERVER={server.scheme}://{server.netloc}\n")
    if handler.rootpw.password:
        if not handler.rootpw.isCrypted:
            raise InstallError("rootpw must be crypted (--iscrypted): a plain password would be kept in the kickstart")
        run(["usermod", "-p", handler.rootpw.password, "root"], what="setting root's password", chroot=True)
    for key in handler.sshkey.sshUserList:
        home = TARGET / ("root" if key.username == "root" else f"home/{key.username}")
        (home / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(home / ".ssh/authorized_keys", "a") as f:
            f.write(key.key.strip() + "\n")
    if handler.timezone.timezone:
        zone = TARGET / "usr/share/zoneinfo" / handler.timezone.timezone
        if zone.exists():
            (TARGET / "etc/localtime").unlink(missing_ok=True)
            (TARGET / "etc/localtime").symlink_to(f"/usr/share/zoneinfo/{handler.timezone.timezone}")
    progress("configure", "fstab, hostname, network, root password, ssh keys, time zone")


def grub_entry(handler: Handler, root: Part, disk: str) -> str:
    """The menu entry for the installed kernel, with the kickstart's --append (Anaconda writes one too).  Its
    commands are the ones GRUB and Xen's pygrub both read."""
    kernels = sorted((TARGET / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise InstallError("the payload has no kernel in /boot (vmlinuz-*)")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    device = f"LABEL={root.label}" if root.label else part_device(disk, root.number)
    append = handler.bootloader.appendLine or ""
    initrd = f"\tinitrd /boot/initrd.img-{release}\n" if (TARGET / f"boot/initrd.img-{release}").exists() else ""
    search = f"\tsearch --no-floppy --label --set=root {root.label}\n" if root.label else ""
    return (
        f"menuentry 'Debian GNU/Linux, {release}' {{\n{search}"
        f"\tlinux /boot/vmlinuz-{release} root={device} ro {append}\n{initrd}}}\n"
    )


def bootloader(handler: Handler, disk: str, root: Part) -> None:
    location = handler.bootloader.location or "mbr"
    if location == "none":
        progress("bootloader", "none asked for")
        return
    if location != "mbr":
        raise InstallError(f"bootloader --location={location} is not supported (mbr or none)")
    run(["grub-install", "--target=i386-pc", f"/dev/{disk}"], what="grub-install", chroot=True, timeout=900)
    # A Xen host's entries come from ncm-grub, run by %post from the profile; its default wins.
    (TARGET / "boot/grub/grub.cfg").write_text(GRUB_HEADER + grub_entry(handler, root, disk))
    progress("bootloader", f"GRUB in the MBR of /dev/{disk}")


def scripts(handler: Handler, section: str) -> None:
    from pykickstart.constants import KS_SCRIPT_ONERROR, KS_SCRIPT_POST, KS_SCRIPT_PRE

    kind = {"pre": KS_SCRIPT_PRE, "post": KS_SCRIPT_POST, "onerror": KS_SCRIPT_ONERROR}[section]
    for n, script in enumerate(s for s in handler.scripts if s.type == kind):
        chroot = section == "post" and script.inChroot
        path = (TARGET if chroot else Path("/")) / f"tmp/ks-{section}-{n}.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script.script)
        interp = script.interp or "/bin/sh"
        argv = [interp, f"/tmp/{path.name}"] if chroot else [interp, str(path)]
        progress(section, f"script {n + 1}" + (" (in the installed system)" if chroot else ""))
        proc = subprocess.run(
            ["chroot", str(TARGET), *argv] if chroot else argv, capture_output=True, timeout=1800, check=False
        )
        # print, not sys.stdout.write: without a console device (console=hvc0 on a machine that has none)
        # Python starts with no stdout at all, and print() is then quietly nothing
        print(proc.stdout.decode(errors="replace"), end="", flush=True)
        print(proc.stderr.decode(errors="replace"), end="", flush=True)
        if proc.returncode != 0 and script.errorOnFail:
            raise InstallError(f"%{section} script {n + 1} failed with status {proc.returncode}")


def bind_mounts(on: bool) -> None:
    for fs in ("dev", "proc", "sys"):
        target = TARGET / fs
        if on:
            target.mkdir(exist_ok=True)
            run(["mount", "--bind", f"/{fs}", str(target)], what=f"mounting /{fs} in the target")
        else:
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


UPDATES_APPLIED = "XENLAB_UPDATES_APPLIED"  # set in the environment of the installer an updates image started


def apply_updates(url: str, root: Path = Path("/")) -> list[str]:
    """Anaconda's `inst.updates=` (EL5: `updates=`): a gzip- or zstd-compressed cpio (newc) whose files
    overlay the installer's own; returns the paths it wrote.  Its members are plain paths under `root`: one
    that climbs out (`..`, an absolute link target) is refused."""
    data = fetch(url, "updates image")
    for magic, tool in ((b"\x1f\x8b", ["gzip", "-dc"]), (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"])):
        if data.startswith(magic):
            data = subprocess.run(tool, input=data, capture_output=True, check=False).stdout
            break
    if not data.startswith(b"070701"):
        raise InstallError(f"updates image {url} is not a (compressed) newc cpio archive")
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=False)
    names = [n for n in listing.stdout.decode(errors="replace").splitlines() if n and n != "."]
    bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
    if listing.returncode != 0 or bad:
        raise InstallError(f"updates image {url}: unsafe or unreadable members {bad[:3] or listing.stderr[-200:]!r}")
    unpack = subprocess.run(
        ["cpio", "-idmu", "--quiet", "--no-absolute-filenames"], input=data, cwd=root, capture_output=True
    )
    if unpack.returncode != 0:
        raise InstallError(f"updates image {url} did not unpack: {unpack.stderr.decode(errors='replace')[-200:]}")
    return names


def updates_first() -> None:
    """If the kernel command line names an updates image, overlay it and start the installer again, so that
    what it changed (this very program too) runs; once only."""
    url = cmdline_arg("inst.updates", "updates")
    if not url or os.environ.get(UPDATES_APPLIED):
        return
    names = apply_updates(url)
    progress("updates", f"{url}: {len(names)} files over the installer's own")
    os.environ[UPDATES_APPLIED] = url
    os.execv(sys.executable, [sys.executable, sys.argv[0], *sys.argv[1:]])


def install() -> str:
    """The whole install; returns what to do at the end (`reboot` or `poweroff`)."""
    progress("start")
    nic = network_up()
    progress("network", f"{nic} is up")
    updates_first()
    url = cmdline_arg("inst.ks", "ks")
    if not url:
        raise InstallError("no ks= or inst.ks= on the kernel command line")
    text = fetch(url, "kickstart").decode()
    progress("kickstart", f"{url} ({len(text)} bytes)")
    handler = parse(text)
    try:
        return carry_out(handler)
    except InstallError:
        onerror(handler)
        raise


def onerror(handler: Handler) -> None:
    """Anaconda's %onerror: after a failure of the install, each %onerror script runs (outside the installed
    system, which is still mounted at /mnt/sysimage if the failure came after it was), whatever its status;
    what they wrote is synced before the machine stops."""
    try:
        scripts(handler, "onerror")
    except (InstallError, OSError, subprocess.SubprocessError) as exc:
        print(f"XENLAB-INSTALL onerror: {exc}", flush=True)
    subprocess.run(["sync"], check=False)
    subprocess.run(["umount", str(TARGET)], check=False, capture_output=True)


def carry_out(handler: Handler) -> str:
    """What the parsed kickstart says, from %pre to %post; returns what to do at the end."""
    scripts(handler, "pre")
    disk = find_disk(handler)
    parts = partition(handler, disk)
    root = next((p for p in parts if p.name == "/"), None)
    if root is None:
        raise InstallError("no partition for /")
    TARGET.mkdir(parents=True, exist_ok=True)
    run(["mount", part_device(disk, root.number), str(TARGET)], what="mounting /")
    payload(handler)
    configure_target(handler, parts, disk)
    Path(TARGET / "etc/resolv.conf").unlink(missing_ok=True)
    Path(TARGET / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
    bind_mounts(True)
    try:
        bootloader(handler, disk, root)
        scripts(handler, "post")
    finally:
        bind_mounts(False)
    run(["sync"], what="sync")
    subprocess.run(["umount", str(TARGET)], check=False)
    action = handler.reboot.action
    from pykickstart.constants import KS_REBOOT, KS_SHUTDOWN

    return "reboot" if action == KS_REBOOT else ("poweroff" if action == KS_SHUTDOWN else "reboot")


def report_failure(reason: str) -> None:
    url = cmdline_arg("inst.ks", "ks")
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    report = f"{parts.scheme}://{parts.netloc}/xenlab/install-failed?" + urllib.parse.urlencode({"reason": reason})
    with contextlib.suppress(OSError):
        urllib.request.urlopen(report, timeout=10).read()


def main() -> int:
    try:
        action = install()
    except InstallError as exc:
        print(f"XENLAB-INSTALL-FAILED {exc}", flush=True)
        report_failure(str(exc))
        return 1
    except Exception as exc:  # a bug of the installer: still a reason on the console, never a silent stop
        print(f"XENLAB-INSTALL-FAILED installer error: {exc!r}", flush=True)
        report_failure(f"installer error: {exc!r}")
        raise
    print(f"XENLAB-INSTALL-DONE {action}", flush=True)
    subprocess.run(["busybox", action, "-f"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
