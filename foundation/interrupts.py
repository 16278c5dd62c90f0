"""Ctrl-C and SIGTERM: how a run stops early and still leaves nothing behind.

A terminal's Ctrl-C reaches the whole foreground process group at once (nox, pytest, every xdist worker); a
CI runner's timeout sends SIGTERM to whichever process it knows.  So:

- every process that may own a lab turns SIGTERM into the same `KeyboardInterrupt` as Ctrl-C
  (`raise_on_sigterm`), so both unwind the lab's ExitStack;
- while a lab is being taken down, a further Ctrl-C or SIGTERM is noted and raised after the teardown
  (`deferred`), never half-way through it: a second Ctrl-C must not leave a VM running;
- an xdist worker dies with its controller (`die_with_parent`), so a controller killed outright does not
  leave a worker running a lab nobody waits for;
- and if a process dies anyway, its lab's reaper removes what it started (foundation/reaper.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("xenlab.interrupts")

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], Any] | int | None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def as_foreground_job() -> None:
    """For a child process standing for a user's run at a terminal (a `preexec_fn`): Ctrl-C's SIGINT back to
    its default action.  A shell without job control starts a background job (`nohup .ci/run &`) with SIGINT
    ignored, as POSIX has it, and every child inherits that: Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def raise_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt in this process, as Ctrl-C does (unless someone chose otherwise)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def deferred(what: str) -> Generator[None, None, None]:
    """Run the block to its end whatever Ctrl-C or SIGTERM arrives meanwhile; raise KeyboardInterrupt after
    it if one did.  Only the main thread can set handlers: elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        log.warning("%s received while %s: finishing that first", signal.Signals(signum).name, what)

    previous: dict[int, Handler] = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"signal {signal.Signals(received[0]).name} (deferred until {what} was done)")


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getppid()
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
