"""Network namespaces: create, delete, list, and run Python code inside one.

`call_in_netns` runs a function in a short-lived thread that has joined the namespace with setns(2):
sockets it opens live in the lab's network, so the test process can query the lab's DNS or HTTP server
without any link between the lab and the machine's own network.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from foundation.errors import LabError
from foundation.process import run

ETC_NETNS = Path("/etc/netns")  # per-namespace files `ip netns exec` mounts over /etc
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add(name: str) -> None:
    run(["ip", "netns", "add", name], hint=f"is a namespace {name!r} left over? run `./xenlab down --all`")
    ip(name, "link", "set", "lo", "up")


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "del", name], check=False)
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def set_resolver(name: str, nameserver: str) -> None:
    """Programs run by `ip netns exec` in `name` ask this name server (`ip` bind-mounts the file over
    /etc/resolv.conf), never the machine's own resolvers, which are outside the lab."""
    (ETC_NETNS / name).mkdir(parents=True, exist_ok=True)
    (ETC_NETNS / name / "resolv.conf").write_text(f"nameserver {nameserver}\n")


def list_names() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir())


def pids(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is `name`."""
    if not exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


def ip(netns: str, *args: str) -> str:
    return run(["ip", "-n", netns, *args]).stdout


def exec_argv(netns: str, argv: list[str]) -> list[str]:
    """The argv that runs `argv` inside `netns` (ip netns exec replaces itself, so the PID is the program's)."""
    return ["ip", "netns", "exec", netns, *argv]


def call_in_netns(netns: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run `fn(*args, **kwargs)` with the calling thread's network namespace set to `netns`."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            error.append(LabError(f"network namespace {netns!r} does not exist"))
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                error.append(LabError(f"setns({netns}) failed: {os.strerror(err)}", hint="run as root"))
                return
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
