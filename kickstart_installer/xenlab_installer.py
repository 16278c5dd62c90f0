#!/usr/bin/python3
"""xenlab-installer: install a machine from a kickstart, the lab's stand-in for Anaconda.

It runs as the installer initramfs's program.  It brings the NIC up by DHCP, applies an updates image named
by `inst.updates=` or `updates=` (its files overlay the installer's, then it starts again), fetches the
kickstart named by `inst.ks=` or `ks=` on the kernel command line, parses it with pykickstart (Anaconda's
own parser), and
carries out what AII generates and what a site's own kickstarts commonly add: network, rootpw (crypted),
sshkey, user, group, services, lang, timezone, zerombr, clearpart, part (swap and LVM physical volumes too),
volgroup, logvol, liveimg --url (a tar payload), bootloader, %pre, %post (also --nochroot), %onerror, reboot
and poweroff.  As Anaconda does, every file system the kickstart names is made and mounted at its mount
point under /mnt/sysimage before the payload goes in, and the installed fstab names them all.  A command it
does not support stops the install with its name; nothing is skipped silently.  One progress line per step;
on failure the kickstart's %onerror scripts run, the reason goes to the console and to the install server, and
the machine stops.

Standard library and pykickstart only: this file is copied alone into the initramfs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
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
    "user",
    "group",
    "services",
    "lang",
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
    seen = [aliases for aliases, cmd in command_aliases(parser.handler) if getattr(cmd, "seen", False)]
    unsupported = sorted(min(aliases) for aliases in seen if not aliases & SUPPORTED)
    if unsupported:
        raise InstallError(f"unsupported kickstart command(s): {', '.join(unsupported)}")
    return parser.handler


def command_aliases(handler: Handler) -> list[tuple[set[str], Any]]:
    """pykickstart's commands, each with all its names (aliases share one object: text/graphical/cmdline,
    reboot/poweroff/halt/shutdown, part/partition)."""
    by_object: dict[int, tuple[set[str], Any]] = {}
    for name, cmd in handler.commands.items():
        by_object.setdefault(id(cmd), (set(), cmd))[0].add(name)
    return list(by_object.values())


def command_table() -> list[tuple[str, bool]]:
    """Every command of pykickstart's handler for the newest kickstart version, and whether this installer
    carries it out (`--commands` prints it)."""
    from pykickstart.version import makeVersion

    return sorted(
        (name, bool(aliases & SUPPORTED)) for aliases, _ in command_aliases(makeVersion()) for name in aliases
    )


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
        fstype = None if p.mountpoint.startswith("pv.") else filesystem_type(p.mountpoint, p.fstype, "partition")
        parts.append(Part(p.mountpoint, int(p.size or 1), bool(p.grow), fstype, p.label or None, number))
    if len(parts) > 4:
        raise InstallError("more than 4 partitions need an extended partition, which is not supported")
    needed = 1 + sum(p.size_mib for p in parts)
    if needed > disk_mib:
        raise InstallError(f"the partitions need {needed} MiB but the disk has {disk_mib} MiB")
    return parts


FILESYSTEMS = ("ext4", "ext3", "ext2", "swap")


def filesystem_type(mountpoint: str, fstype: str, what: str) -> str:
    """The file system a `part` or `logvol` gets: its --fstype, swap for `swap`, else ext4 (Anaconda's default
    is its platform's; the lab's payloads are ext4 systems)."""
    chosen = "swap" if mountpoint == "swap" else (fstype or "ext4")
    if chosen not in FILESYSTEMS:
        raise InstallError(f"{what} {mountpoint}: file system {chosen} is not supported ({', '.join(FILESYSTEMS)})")
    if mountpoint != "swap" and not mountpoint.startswith("/"):
        raise InstallError(f"{what} {mountpoint}: a mount point must be absolute, or swap")
    return chosen


@dataclass(frozen=True)
class Volume:
    """A file system or swap area the install made: where it is mounted and how the installed fstab names it."""

    mountpoint: str  # "/", "/var", "/srv"; "swap"
    device: str  # /dev/xvda2, /dev/mapper/vg0-srv
    fstype: str
    spec: str  # LABEL=root, UUID=…, /dev/mapper/vg0-srv

    @property
    def mounted(self) -> bool:
        return self.mountpoint.startswith("/")

    def fstab_line(self) -> str:
        if not self.mounted:
            return f"{self.spec} none swap defaults 0 0"
        return f"{self.spec} {self.mountpoint} {self.fstype} defaults 0 {1 if self.mountpoint == '/' else 2}"


def mount_order(volumes: list[Volume]) -> list[Volume]:
    """Parents before children (/ before /var before /var/log), as the installed system mounts them."""
    return sorted((v for v in volumes if v.mounted), key=lambda v: (len(Path(v.mountpoint).parts), v.mountpoint))


def fstab(volumes: list[Volume]) -> str:
    return "".join(v.fstab_line() + "\n" for v in (*mount_order(volumes), *(v for v in volumes if not v.mounted)))


def sfdisk_script(parts: list[Part]) -> str:
    lines = ["label: dos"]
    for p in parts:
        size = "" if p.grow else f", size={p.size_mib}MiB"
        kind = "8e" if p.is_pv else ("82" if p.fstype == "swap" else "83")
        boot = ", bootable" if p.name == "/" else ""
        lines.append(f"start=, type={kind}{size}{boot}" if p.number > 1 else f"start=2048, type={kind}{size}{boot}")
    return "\n".join(lines) + "\n"


# --- running things --------------------------------------------------------------------------------------------
# eatmydata's library, from the installer's own image: the installer's own commands in the installed system run
# with it preloaded (fsync and sync do nothing) while it configures it.  grub-install fsyncs each of the ~290
# files it copies, 28 ms each through a PV guest's disk under TCG; the install's final sync writes it all once.
NOSYNC_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/libeatmydata.so.1")
NOSYNC_IN_TARGET = "/tmp/xenlab-nosync.so"  # every payload has a /tmp, 2007 ones no /run
_target_preload: list[str] = []  # what run() puts before a command in the installed system (env LD_PRELOAD=...)


@contextlib.contextmanager
def unsynced_target_commands() -> Iterator[None]:
    """Within it, the installer's commands in the installed system skip fsync, when the installed system's C
    library can load the preload (Debian 12's needs glibc 2.34: an older payload's commands sync as usual, and
    the log says why).  The library's copy in the target is gone afterwards; %post scripts never get it."""
    copy = TARGET / NOSYNC_IN_TARGET.lstrip("/")
    preload = ["env", f"LD_PRELOAD={NOSYNC_IN_TARGET}"]
    try:
        if NOSYNC_LIBRARY.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(NOSYNC_LIBRARY, copy)
            probe = subprocess.run(
                ["chroot", str(TARGET), *preload, "/bin/sh", "-c", ":"], capture_output=True, timeout=120, check=False
            )
            if probe.returncode == 0 and not probe.stderr.strip():
                _target_preload[:] = preload
            else:
                why = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"status {probe.returncode}"]
                progress("configure", f"commands in the installed system sync as usual (eatmydata: {why[0]})")
        yield
    finally:
        _target_preload.clear()
        copy.unlink(missing_ok=True)


def run(argv: list[str], *, what: str, chroot: bool = False, input: bytes | None = None, timeout: float = 1800) -> str:
    if chroot:
        argv = ["chroot", str(TARGET), *_target_preload, *argv]
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise InstallError(f"{what} failed ({shlex.join(argv)} exited {proc.returncode}): {' / '.join(tail)}")
    return proc.stdout.decode(errors="replace")


def asks_yes(argv: list[str]) -> bool:
    """A question to the installed system (its own tool, by chroot) answered by its exit status and output:
    no output or a non-zero status is no (`getent` and `systemctl list-unit-files` say no so)."""
    proc = subprocess.run(["chroot", str(TARGET), *argv], capture_output=True, timeout=300, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


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


def partition(handler: Handler, disk: str) -> list[Volume]:
    """Partitions, volume groups and logical volumes, each with its file system or swap area made."""
    disk_mib = int((SYS_BLOCK / disk / "size").read_text()) * 512 // MiB
    parts = plan(handler, disk_mib)
    if handler.zerombr.zerombr or handler.clearpart.initAll:
        run(["wipefs", "-a", f"/dev/{disk}"], what="clearing the disk")
    run(["sfdisk", "-q", "--wipe", "always", f"/dev/{disk}"], what="partitioning", input=sfdisk_script(parts).encode())
    volumes = []
    for p in parts:
        dev = part_device(disk, p.number)
        for _ in range(50):
            if Path(dev).exists():
                break
            time.sleep(0.1)
        if p.is_pv:
            run(["pvcreate", "-ff", "-y", dev], what=f"physical volume {dev}")
        else:
            assert p.fstype is not None  # only physical volumes have none
            volumes.append(make_filesystem(p.name, dev, p.fstype, p.label))
        progress("partition", f"{p.name} on {dev} ({'rest of disk' if p.grow else f'{p.size_mib} MiB'})")
    pvs = {p.name: part_device(disk, p.number) for p in parts if p.is_pv}
    for vg in handler.volgroup.vgList:
        devices = [pvs[pv] for pv in vg.physvols if pv in pvs]
        if len(devices) != len(vg.physvols):
            raise InstallError(f"volgroup {vg.vgname} names physical volumes the partitions do not make")
        run(["vgcreate", "-y", vg.vgname, *devices], what=f"volume group {vg.vgname}")
        progress("volgroup", f"{vg.vgname} on {', '.join(devices)}")
    for lv in handler.logvol.lvList:
        fstype = filesystem_type(lv.mountpoint, lv.fstype, "logvol")
        size = ["-L", f"{lv.size}M"]
        if lv.percent or lv.grow:
            size = ["-l", f"{lv.percent or 100}%FREE"]
        run(["lvcreate", "-y", "-Wy", *size, "-n", lv.name, lv.vgname], what=f"logical volume {lv.name}")
        device = f"/dev/mapper/{lv.vgname.replace('-', '--')}-{lv.name.replace('-', '--')}"
        volumes.append(make_filesystem(lv.mountpoint, device, fstype, lv.label or None, spec=device))
        progress("logvol", f"{lv.vgname}/{lv.name} ({' '.join(size[1:])}) for {lv.mountpoint}")
    return volumes


def make_filesystem(mountpoint: str, device: str, fstype: str, label: str | None, spec: str = "") -> Volume:
    """mkfs or mkswap on `device`; the fstab names it by `spec`, else its label, else its UUID."""
    labelled = ["-L", label] if label else []
    if fstype == "swap":
        run(["mkswap", *labelled, device], what=f"swap on {device}")
    else:
        run([f"mkfs.{fstype}", "-q", "-F", *labelled, device], what=f"file system {device}")
    if not spec and label:
        spec = f"LABEL={label}"
    elif not spec:
        spec = "UUID=" + run(["blkid", "-s", "UUID", "-o", "value", device], what=f"the UUID of {device}").strip()
    return Volume(mountpoint, device, fstype, spec)


def mount_all(volumes: list[Volume]) -> None:
    ordered = mount_order(volumes)
    for v in ordered:
        where = TARGET / v.mountpoint.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", v.fstype, v.device, str(where)], what=f"mounting {v.mountpoint}")
    progress("mount", ", ".join(f"{v.mountpoint} ({v.device})" for v in ordered))


def unmount_all(volumes: list[Volume]) -> None:
    """Children before parents; quietly, as it also runs after a failure (what is not mounted stays so)."""
    for v in reversed(mount_order(volumes)):
        subprocess.run(["umount", str(TARGET / v.mountpoint.lstrip("/"))], check=False, capture_output=True)


def payload(handler: Handler) -> None:
    url = handler.liveimg.url
    if not url:
        raise InstallError("no liveimg --url: this installer installs tar payloads only")
    progress("payload", url)
    with Unpacker(url) as unpacker:
        total = 0
        clock = PayloadClock()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := clock.timed("network", resp.read, 1 << 20):
                    if not clock.timed("unpack", unpacker.feed, chunk):
                        break  # tar or the decompressor stopped reading: their status and errors say why
                    total += len(chunk)
        except OSError as exc:
            unpacker.kill()
            raise InstallError(f"payload {url} could not be fetched: {getattr(exc, 'reason', exc)}") from None
        failure = clock.timed("unpack", unpacker.finish)
    if failure:
        raise InstallError(f"payload {url} did not {failure[0]} ({total // MiB} MiB read): {failure[1]}")
    progress("payload", f"{total // MiB} MiB unpacked ({clock.summary()})")


class Unpacker:
    """tar reading the payload from a pipe, with the decompressor its name calls for in front of it.

    The decompressor runs beside tar, not under it (`tar --zstd`): reading a pipe, tar forks a copier between
    its input and the decompressor, and its 10 KiB records cost a context switch each, which a Xen PV guest
    pays dearly (a page-table switch through Xen, under emulation).  Measured in an installed PV guest, the
    seed's payload unpacked in 68 s as `cat | tar --zstd` and in 17-21 s as `zstd -dc | tar -b 2048`.
    Complaints go to files: a full disk makes tar complain once per file, more than a pipe holds while we
    feed it."""

    def __init__(self, url: str) -> None:
        self.command = _decompressor(url)
        if self.command and not shutil.which(self.command[0]):
            raise InstallError(f"payload {url} needs {self.command[0]} to decompress, which this installer lacks")
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.dec_errors = tempfile.TemporaryFile()  # noqa: SIM115
        pipe = subprocess.PIPE
        self.dec = (
            subprocess.Popen(self.command, stdin=pipe, stdout=pipe, stderr=self.dec_errors) if self.command else None
        )
        tar = ["tar", "-x", "--numeric-owner", "-b", str(TAR_RECORD_BLOCKS), "-C", str(TARGET), "-f", "-"]
        self.tar = subprocess.Popen(tar, stdin=self.dec.stdout if self.dec else pipe, stderr=self.errors)
        self.sink = self.dec.stdin if self.dec else self.tar.stdin
        if self.dec and self.dec.stdout:
            _widen_pipe(self.dec.stdout)
            self.dec.stdout.close()  # tar's now: the decompressor sees tar stop reading
        _widen_pipe(self.sink)

    def __enter__(self) -> Unpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.errors.close()
        self.dec_errors.close()

    def feed(self, chunk: bytes) -> bool:
        """Write the next chunk; False once the reader stopped."""
        assert self.sink is not None
        try:
            self.sink.write(chunk)
        except BrokenPipeError:
            return False
        return True

    def kill(self) -> None:
        for proc in (self.dec, self.tar):
            if proc:
                proc.kill()

    def finish(self) -> tuple[str, str] | None:
        """End of input; wait for both.  What failed (decompress or unpack) and why, or None."""
        assert self.sink is not None
        with contextlib.suppress(BrokenPipeError):
            self.sink.close()
        dec_status = self.dec.wait() if self.dec else 0
        status = self.tar.wait()
        # A decompressor killed by SIGPIPE only saw tar stop first: tar's reason is the one
        if dec_status != 0 and not (status != 0 and dec_status == -signal.SIGPIPE):
            self.dec_errors.seek(0)
            said = self.dec_errors.read().decode(errors="replace").strip().splitlines()
            return "decompress", f"{self.command[0]}: {said[0][:240] if said else f'exited with status {dec_status}'}"
        if status != 0:
            self.errors.seek(0)
            return "unpack", tar_reason(self.errors.read().decode(errors="replace"), status)
        return None


# tar's reads from its pipe: 1 MiB records (2048 blocks of 512 bytes) instead of its default 10 KiB; reading
# standard input, tar takes short reads as they come (--read-full-records is its default there).
TAR_RECORD_BLOCKS = 2048
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged pipe (/proc/sys/fs/pipe-max-size)


def _widen_pipe(pipe: Any) -> None:
    """Let a pipe hold 1 MiB instead of 64 KiB: fewer turns between its writer and reader."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class PayloadClock:
    """Where a payload's install spends its time: waiting on the network for the next chunk, or on tar (and
    its decompressor) to take it, and the CPU tar and its decompressor used, in user space (decompressing,
    mostly) and in the kernel (writing the files); the installer's own copying is the rest.  Under emulation
    these decide which cut pays: a smaller download, a cheaper format, fewer bytes or files to write."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.waited = {"network": 0.0, "unpack": 0.0}
        self.cpu_before = self._children_cpu()

    @staticmethod
    def _children_cpu() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime, usage.ru_stime

    def timed(self, what: str, call: Any, *args: Any) -> Any:
        before = time.monotonic()
        try:
            return call(*args)
        finally:
            self.waited[what] += time.monotonic() - before

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        (user0, system0), (user1, system1) = self.cpu_before, self._children_cpu()
        return (
            f"{elapsed:.1f} s: {self.waited['network']:.1f} s waiting on the network, {self.waited['unpack']:.1f} s"
            f" on tar, whose CPU was {user1 - user0:.1f} s user and {system1 - system0:.1f} s kernel"
        )


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


def _decompressor(url: str) -> list[str]:
    """The command that decompresses the payload, named by its file name's suffix; none for a plain tar."""
    path = urllib.parse.urlsplit(url).path
    for suffix, command in (
        (".tar.zst", ["zstd", "-dc"]),
        (".tar.gz", ["gzip", "-dc"]),
        (".tgz", ["gzip", "-dc"]),
        (".tar.xz", ["xz", "-dc"]),
    ):
        if path.endswith(suffix):
            return command
    return []


def configure_target(handler: Handler, volumes: list[Volume]) -> None:
    """The installed system's own configuration, in Anaconda's order: storage, network, time, language,
    accounts, services (the target's /dev, /proc and /sys are bound: its own tools run in it)."""
    (TARGET / "etc/fstab").write_text(fstab(volumes))
    configure_network(handler)
    configure_timezone(handler.timezone.timezone)
    configure_language(handler.lang.lang)
    configure_accounts(handler)
    configure_services(handler.services.enabled, handler.services.disabled)
    configure_machine_id()
    progress("configure", "fstab, hostname, network, time zone, language, accounts, ssh keys, services, machine id")


def configure_network(handler: Handler) -> None:
    net = handler.network.network[0] if handler.network.network else None
    if net and net.hostname:
        (TARGET / "etc/hostname").write_text(net.hostname.split(".")[0] + "\n")
        (TARGET / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n{net.ip or '127.0.1.1'} {net.hostname} {net.hostname.split('.')[0]}\n"
        )
    (TARGET / "etc/xenlab").mkdir(exist_ok=True)
    if net:
        (TARGET / "etc/xenlab/network.env").write_text(
            f"DEVICE={net.device or 'eth0'}\nBOOTPROTO={net.bootProto or 'dhcp'}\nIP={net.ip or ''}\n"
            f"NETMASK={net.netmask or ''}\nNAMESERVER={(net.nameserver or '').split(',')[0]}\n"
        )
    server = urllib.parse.urlsplit(cmdline_arg("inst.ks", "ks") or "")
    (TARGET / "etc/xenlab/install-server.env").write_text(f"INSTALL_SERVER={server.scheme}://{server.netloc}\n")


ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


def configure_timezone(zone: str) -> None:
    """/etc/localtime links to the payload's zone, /etc/timezone names it (Debian's tzdata reads both)."""
    if not zone:
        return
    zonefile = TARGET / "usr/share/zoneinfo" / zone  # a link in it may be absolute: its own root, not ours
    if not ZONE_NAME.match(zone) or not (zonefile.is_file() or zonefile.is_symlink()):
        raise InstallError(f"timezone {zone!r} is not a zone of the payload (no /usr/share/zoneinfo/{zone})")
    (TARGET / "etc/localtime").unlink(missing_ok=True)
    (TARGET / "etc/localtime").symlink_to(f"/usr/share/zoneinfo/{zone}")
    (TARGET / "etc/timezone").write_text(zone + "\n")


LOCALE_NAME = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?(\.[A-Za-z0-9-]+)?(@[a-z]+)?$")


def configure_language(lang: str) -> None:
    """`lang`: LANG in /etc/locale.conf (systemd's) and /etc/default/locale (Debian's); the locale is generated
    when the payload carries locale-gen and its definitions, and the log says when it does not."""
    if not lang:
        return
    if not LOCALE_NAME.match(lang):
        raise InstallError(f"lang {lang!r} is not a locale name (language_TERRITORY.CHARSET, as en_IE.UTF-8)")
    for name in ("etc/locale.conf", "etc/default/locale"):
        (TARGET / name).parent.mkdir(parents=True, exist_ok=True)
        (TARGET / name).write_text(f"LANG={lang}\n")
    if (TARGET / "usr/sbin/locale-gen").exists() and (TARGET / "usr/share/i18n/SUPPORTED").exists():
        charset = lang.partition(".")[2] or "ISO-8859-1"
        with open(TARGET / "etc/locale.gen", "a") as f:
            f.write(f"{lang} {charset}\n")
        run(["locale-gen"], what=f"generating the locale {lang}", chroot=True)
        progress("lang", f"{lang}, generated")
    else:
        progress("lang", f"{lang} (the payload has no locale-gen and definitions: set, not generated)")


def configure_accounts(handler: Handler) -> None:
    """rootpw, group, user and sshkey.  Passwords must come crypted: a plain one would be kept in the kickstart
    the install server serves.  A user's --groups that do not exist are made, as Anaconda does."""
    for who, password, crypted in [("root", handler.rootpw.password, handler.rootpw.isCrypted)] + [
        (u.name, u.password, u.isCrypted) for u in handler.user.userList
    ]:
        if password and not crypted:
            raise InstallError(
                f"the password of {who} must be crypted (--iscrypted): a plain one stays in the kickstart"
            )
    if handler.rootpw.password:
        run(["usermod", "-p", handler.rootpw.password, "root"], what="setting root's password", chroot=True)
    for group in handler.group.groupList:
        gid = ["-g", str(group.gid)] if group.gid else []
        run(["groupadd", *gid, group.name], what=f"group {group.name}", chroot=True)
    for user in handler.user.userList:
        for name in user.groups:
            if not asks_yes(["getent", "group", name]):
                run(["groupadd", name], what=f"group {name} of user {user.name}", chroot=True)
        argv = ["useradd", "-m", "-s", user.shell or "/bin/bash"]
        argv += ["-d", user.homedir] if user.homedir else []
        argv += ["-u", str(user.uid)] if user.uid is not None else []
        argv += ["-g", str(user.gid)] if user.gid is not None else []
        argv += ["-c", user.gecos] if user.gecos else []
        argv += ["-G", ",".join(user.groups)] if user.groups else []
        argv += ["-p", user.password] if user.password else []
        run([*argv, user.name], what=f"user {user.name}", chroot=True)
        if user.lock:
            run(["usermod", "-L", user.name], what=f"locking user {user.name}", chroot=True)
    for key in handler.sshkey.sshUserList:
        home = run(["getent", "passwd", key.username], what=f"sshkey: user {key.username}", chroot=True).split(":")[5]
        ssh = TARGET / home.lstrip("/") / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(ssh / "authorized_keys", "a") as f:
            f.write(key.key.strip() + "\n")
        run(["chown", "-R", f"{key.username}:", f"{home}/.ssh"], what=f"the ssh keys of {key.username}", chroot=True)


def configure_services(enabled: list[str], disabled: list[str]) -> None:
    """`services`: systemctl in the installed system.  A unit the payload lacks is skipped with a line, as
    Anaconda does (disabling what is not there is already done; enabling it cannot be)."""
    for action, names in (("disable", disabled), ("enable", enabled)):
        for name in names:
            unit = name if "." in name else f"{name}.service"
            if not asks_yes(["systemctl", "list-unit-files", "--no-legend", unit]):
                progress("services", f"{unit} is not in the payload: not {action}d")
                continue
            run(["systemctl", action, unit], what=f"systemctl {action} {unit}", chroot=True)
            progress("services", f"{unit} {action}d")


MACHINE_ID_SETUP = ("usr/bin/systemd-machine-id-setup", "bin/systemd-machine-id-setup")


def configure_machine_id() -> None:
    """The installed system's machine ID made now, by its own systemd-machine-id-setup, as installing systemd's
    package makes it on Fedora and RHEL (its %post runs the same command): otherwise its first boot invents a
    transient one and systemd-machine-id-commit writes it.  Only over an empty /etc/machine-id (an image's
    "an ID is wanted here"): a missing one or "uninitialized" asks for systemd's first-boot handling, and a
    payload without systemd (an older system) keeps what it has."""
    path = TARGET / "etc/machine-id"
    if not path.is_file() or path.is_symlink() or path.read_bytes().strip():
        return
    if not any((TARGET / tool).exists() for tool in MACHINE_ID_SETUP):
        return
    run(["systemd-machine-id-setup"], what="the machine ID", chroot=True)


GUEST_TYPE = Path("/sys/hypervisor/guest_type")  # Linux's: PV, HVM or PVH in a Xen guest
PV_KERNEL_DIR = "xen"  # in /boot


def xen_pv_guest() -> bool:
    try:
        return GUEST_TYPE.read_text().strip() == "PV"
    except OSError:
        return False


def grub_entry(handler: Handler, volumes: list[Volume]) -> str:
    """The menu entry for the installed kernel, with the kickstart's --append (Anaconda writes one too).  Its
    commands are the ones GRUB and Xen's pygrub both read; with a /boot of its own, paths are that file
    system's.  In a Xen PV guest it names the payload's PV kernel when there is one (boot/xen/vmlinuz-<release>:
    the same kernel as a gzipped ELF, which Xen's domain builder in dom0 loads without undoing XZ), as Anaconda
    in a PV guest installed kernel-xen."""
    kernels = sorted((TARGET / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise InstallError("the payload has no kernel in /boot (vmlinuz-*)")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    root = next(v for v in volumes if v.mountpoint == "/")
    boot = next((v for v in volumes if v.mountpoint == "/boot"), root)
    prefix = "" if boot is not root else "/boot"
    device = root.spec if root.spec.startswith("LABEL=") else root.device
    append = handler.bootloader.appendLine or ""
    kernel = f"{prefix}/vmlinuz-{release}"
    if xen_pv_guest() and (TARGET / "boot" / PV_KERNEL_DIR / f"vmlinuz-{release}").exists():
        kernel = f"{prefix}/{PV_KERNEL_DIR}/vmlinuz-{release}"
    initrd = f"\tinitrd {prefix}/initrd.img-{release}\n" if (TARGET / f"boot/initrd.img-{release}").exists() else ""
    label = boot.spec.removeprefix("LABEL=") if boot.spec.startswith("LABEL=") else ""
    search = f"\tsearch --no-floppy --label --set=root {label}\n" if label else ""
    return (
        f"menuentry 'Debian GNU/Linux, {release}' {{\n{search}\tlinux {kernel} root={device} ro {append}\n{initrd}}}\n"
    )


def bootloader(handler: Handler, disk: str, volumes: list[Volume]) -> None:
    location = handler.bootloader.location or "mbr"
    if location == "none":
        progress("bootloader", "none asked for")
        return
    if location != "mbr":
        raise InstallError(f"bootloader --location={location} is not supported (mbr or none)")
    run(["grub-install", "--target=i386-pc", f"/dev/{disk}"], what="grub-install", chroot=True, timeout=900)
    # A Xen host's entries come from ncm-grub, run by %post from the profile; its default wins.
    entry = grub_entry(handler, volumes)
    (TARGET / "boot/grub/grub.cfg").write_text(GRUB_HEADER + entry)
    kernel = entry.partition("\tlinux ")[2].split(" ", 1)[0]
    progress("bootloader", f"GRUB in the MBR of /dev/{disk}, its entry boots {kernel}")


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
    return carry_out(parse(text))


def onerror(handler: Handler) -> None:
    """Anaconda's %onerror: after a failure of the install, each %onerror script runs (outside the installed
    system, which is still mounted at /mnt/sysimage if the failure came after it was), whatever its status;
    what they wrote is synced before the machine stops."""
    try:
        scripts(handler, "onerror")
    except (InstallError, OSError, subprocess.SubprocessError) as exc:
        print(f"XENLAB-INSTALL onerror: {exc}", flush=True)
    subprocess.run(["sync"], check=False)


def carry_out(handler: Handler) -> str:
    """What the parsed kickstart says, from %pre to %post; returns what to do at the end.  After a failure the
    kickstart's %onerror scripts run, with what was mounted still mounted."""
    volumes: list[Volume] = []
    try:
        scripts(handler, "pre")
        disk = find_disk(handler)
        volumes = partition(handler, disk)
        root = next((v for v in volumes if v.mountpoint == "/"), None)
        if root is None:
            raise InstallError("no partition or logical volume for /")
        if any(v.mountpoint in ("/", "/boot") and v.device.startswith("/dev/mapper/") for v in volumes):
            raise InstallError("/ or /boot on a logical volume is not supported (GRUB and pygrub read partitions)")
        TARGET.mkdir(parents=True, exist_ok=True)
        mount_all(volumes)
        payload(handler)
        Path(TARGET / "etc/resolv.conf").unlink(missing_ok=True)
        Path(TARGET / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
        bind_mounts(True)
        try:
            with unsynced_target_commands():
                configure_target(handler, volumes)
                bootloader(handler, disk, volumes)
            scripts(handler, "post")
        finally:
            bind_mounts(False)
        run(["sync"], what="sync")
    except InstallError:
        onerror(handler)
        raise
    finally:
        unmount_all(volumes)
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
    if sys.argv[1:] == ["--commands"]:
        for name, supported in command_table():
            print(f"{name:20} {'carried out' if supported else 'not carried out: the install stops naming it'}")
        return 0
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
