"""One network boot: DHCP, the config, the kernel and initrd, and the answer.

With `--runas`, everything that reads the network after DHCP (the config, its parsing, the downloads)
runs in a child that has dropped to that user, writing only into files the parent created for it: the
approach pygrub took after XSA-443.  The child dies with its parent (PR_SET_PDEATHSIG) and is killed and
reaped at the run's deadline, whatever ends the parent's wait.  The parent keeps root only for the raw
DHCP socket; LOCALBOOT's pygrub gets the same `--runas` and drops to that user itself, after opening the
guest's disk (Xen's pygrub since XSA-443).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import ipaddress
import json
import os
import pwd
import select
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from pypxeboot import dhcp, fetch, localboot, output, pxeconfig, tftp
from pypxeboot.arguments import Options
from pypxeboot.errors import BootError

Log = Callable[[str], None]


@dataclass(frozen=True)
class NetworkResult:
    """What the unprivileged part found: a kernel to boot (already in the files), or LOCALBOOT."""

    localboot: bool
    args: str = ""
    has_initrd: bool = False


def boot(opts: Options, log: Log) -> output.BootAnswer:
    deadline = time.monotonic() + opts.timeout
    lease = dhcp.request_lease(
        opts.interface,
        opts.mac,
        deadline=deadline,
        expect_server=opts.server,
        log=log if opts.verbose else lambda _: None,
    )
    log(f"lease {lease.address} from {lease.server}, boot server {lease.tftp_server}")
    if opts.server is not None and lease.tftp_server != opts.server:
        raise BootError("DHCP", f"the lease names boot server {lease.tftp_server}, not the pinned {opts.server}")
    os.makedirs(opts.output_directory, mode=0o700, exist_ok=True)
    kernel_fd, kernel_path = tempfile.mkstemp(dir=opts.output_directory, prefix="pypxeboot-kernel.")
    initrd_fd, initrd_path = tempfile.mkstemp(dir=opts.output_directory, prefix="pypxeboot-ramdisk.")
    keep = False
    try:

        def work() -> NetworkResult:
            return network_part(opts, lease, kernel_fd, initrd_fd, deadline, log)

        result = run_as(opts.runas, work, deadline=deadline) if opts.runas else work()
        if result.localboot:
            log("LOCALBOOT: handing over to pygrub on " + opts.disk)
            uid = resolve_user(opts.runas)[0] if opts.runas else None
            return localboot.via_pygrub(opts, deadline=deadline, runas=uid)
        keep = True
        return output.BootAnswer(kernel_path, initrd_path if result.has_initrd else None, result.args)
    finally:
        os.close(kernel_fd)
        os.close(initrd_fd)
        if not keep:
            os.unlink(kernel_path)
        if not (keep and result.has_initrd):
            os.unlink(initrd_path)


def network_part(
    opts: Options, lease: dhcp.Lease, kernel_fd: int, initrd_fd: int, deadline: float, log: Log
) -> NetworkResult:
    server = lease.tftp_server
    prefix = fetch.prefix_of(lease.bootfile)
    name, config_bytes = fetch_config(server, opts.mac, lease.address, prefix, deadline, log)
    config = pxeconfig.parse(config_bytes, name)
    choice = config.choose(opts.label, ip_info=ip_info(lease), bootif="BOOTIF=01-" + opts.mac.replace(":", "-"))
    log(f"{name}: label {choice.label!r}" + (" (LOCALBOOT)" if choice.localboot else f", kernel {choice.kernel}"))
    if choice.localboot:
        return NetworkResult(localboot=True)
    assert choice.kernel is not None
    if choice.kernel.rsplit("/", 1)[-1].lower().endswith(".c32"):
        raise BootError(name, f"label {choice.label!r} runs the COM32 module {choice.kernel}; a PV guest needs Linux")
    with os.fdopen(os.dup(kernel_fd), "wb") as out:
        size = download(choice.kernel, out, server, prefix, cap=opts.max_kernel, deadline=deadline, opts=opts)
    log(f"kernel {fetch.redact(choice.kernel)}: {size} bytes")
    total = 0
    with os.fdopen(os.dup(initrd_fd), "wb") as out:
        for initrd in choice.initrds:  # several initrds are concatenated, as the kernel expects
            total += download(initrd, out, server, prefix, cap=opts.max_initrd - total, deadline=deadline, opts=opts)
            log(f"initrd {fetch.redact(initrd)}: {total} bytes")
    return NetworkResult(localboot=False, args=" ".join(choice.args), has_initrd=bool(choice.initrds))


def download(
    path: str, out: BinaryIO, server: ipaddress.IPv4Address, prefix: str, *, cap: int, deadline: float, opts: Options
) -> int:
    """A file the config names; a missing one is an error naming it, as any other failed download."""
    location = fetch.resolve(path, prefix)
    try:
        return fetch.fetch(location, out, server=server, cap=cap, deadline=deadline, pinned=opts.server)
    except tftp.NotFound:
        raise BootError(f"TFTP {location}", f"not found on {server}") from None


def fetch_config(
    server: ipaddress.IPv4Address, mac: str, address: ipaddress.IPv4Address, prefix: str, deadline: float, log: Log
) -> tuple[str, bytes]:
    tried = []
    for name in pxeconfig.lookup_names(mac, address, prefix):
        buf = io.BytesIO()
        try:
            tftp.fetch(server, name, buf, cap=pxeconfig.MAX_CONFIG, deadline=deadline)
        except tftp.NotFound:
            tried.append(name.rsplit("/", 1)[-1])
            continue
        return name, buf.getvalue()
    raise BootError("TFTP pxelinux.cfg", f"no config on {server} (tried {', '.join(tried)})")


def ip_info(lease: dhcp.Lease) -> str:
    """PXELINUX's IPAPPEND 1 value: ip=<client>:<boot server>:<gateway>:<netmask>."""
    gateway = lease.router or ipaddress.IPv4Address(0)
    netmask = lease.netmask or ipaddress.IPv4Address("255.255.255.0")
    return f"ip={lease.address}:{lease.tftp_server}:{gateway}:{netmask}"


def resolve_user(user: str) -> tuple[int, int]:
    """(uid, gid) of `user`, a name or a numeric uid (libxl's qemu-user range has no passwd entries)."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    except (KeyError, ValueError):
        if not user.isdigit():
            raise BootError("--runas", f"no user {user!r}") from None
        return int(user), int(user)


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (set after setuid, which clears it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def run_as(user: str, work: Callable[[], NetworkResult], *, deadline: float) -> NetworkResult:
    """Run `work` in a child process that has dropped to `user`; the child is killed and reaped at `deadline`
    and whenever the parent stops waiting (its own time limit, a signal)."""
    uid, gid = resolve_user(user)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, do the network part, report as JSON
        os.close(read_end)
        code = 0
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            _die_with_parent(parent)
            result = work()
            message = {"ok": True, "localboot": result.localboot, "args": result.args, "has_initrd": result.has_initrd}
        except BootError as exc:
            message, code = {"ok": False, "step": exc.step, "error": str(exc).split(": ", 1)[-1]}, 1
        except BaseException as exc:  # report, never leave the parent guessing, never print a traceback
            message, code = {"ok": False, "step": "network", "error": repr(exc)}, 1
        with contextlib.suppress(OSError):  # the parent is gone
            os.write(write_end, json.dumps(message).encode())
        os._exit(code)
    os.close(write_end)
    try:
        data = _read_until(read_end, deadline)
    finally:
        os.close(read_end)
        _reap(pid)
    try:
        message = json.loads(data)
    except ValueError:
        raise BootError("network", "the unprivileged helper died without an answer") from None
    if not message.get("ok"):
        raise BootError(message.get("step", "network"), message.get("error", "failed"))
    return NetworkResult(bool(message["localboot"]), str(message["args"]), bool(message["has_initrd"]))


def _read_until(fd: int, deadline: float, limit: int = 1 << 16) -> bytes:
    data = b""
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BootError("time limit", "the unprivileged helper did not finish in time; it was killed")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _reap(pid: int) -> None:
    """Kill the helper if it still runs, and reap it: no orphan outlives the run."""
    with contextlib.suppress(ProcessLookupError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
