"""Ends a long wait on a Xen host's guests early when one of them, or the host itself, shows no sign of life.

A guest that stopped (GRUB spinning on an emulated disk, a kernel stuck under nested emulation) prints
nothing and asks the install server for nothing: waiting out its phase's whole timeout (47 minutes for an
HVM guest once) tells nothing more.  `StallWatch`, a watched thing of a wait, follows each guest's consoles in
dom0 (`GuestConsoleLog`: the copies stay in the run's artifacts even when dom0 dies) and reads two signs of
life per guest: a console that grew, an install-server event from it.  Neither for `silence` seconds:
`GuestStalled`, with its last console lines and events.  dom0 answering none of the reads for
`host_silence` seconds: the host is hung, and `on_host_silent` (which may look into the VM, as
`lab.host_hang` does) makes the error.  A stalled guest's error is `on_guest_stalled`'s, given the guest and
what the watch saw (the gateway's looks at an HVM guest's vCPUs: one inside Xen's own code is the emulation's
fault).  A guest that reached what the wait waits for is not watched further.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foundation.errors import EmulationFault, PhaseTimeout, XenlabError
from lab import hvm_state
from lab.remote_console import GuestConsoleLog
from netboot_stack.events import Event, EventLog, Kind

log = logging.getLogger("xenlab.stall")

GUEST_SILENCE = 600.0  # a passing HVM guest: 140 s without a byte while GRUB read its kernel and initrd (Dec 6)
HOST_SILENCE = 300.0


class GuestStalled(PhaseTimeout):
    """A guest showed no sign of life (console, install-server event) for longer than a working one ever does."""


def stalled(guest: str, said: str) -> XenlabError:
    """The error of a stalled guest when nothing more is known of it than what the watch saw."""
    return GuestStalled(said)


@dataclass(frozen=True)
class HvmStallJudge:
    """The error of a stalled guest on a Xen host: an HVM guest's vCPUs are read at once in dom0 (saved as
    `<guest>/hvmctx-at-stall.txt` under `artifacts`) and named in the error, with Xen's triple faults; a vCPU
    inside Xen's own code is the emulation's (`EmulationFault`), anything else stays `GuestStalled`, the
    product's until known otherwise (a firmware spinning in real mode may be either)."""

    ssh: list[str]  # dom0's shell
    hvm: frozenset[str]  # the host's HVM guests
    artifacts: Path
    triple_faults: Callable[[str], list[str]]  # a guest's triple faults, as Xen printed them

    def __call__(self, guest: str, said: str) -> XenlabError:
        if guest not in self.hvm:
            return GuestStalled(said)
        cpus = hvm_state.read(self.ssh, guest)
        looked = "\n(its vCPUs could not be read in dom0)"
        if cpus is not None:
            saved = self.artifacts / guest / "hvmctx-at-stall.txt"
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(cpus.said)
            looked = f"\nits vCPUs as Xen has them ({saved.name}): {cpus.summary()}"
        faults = self.triple_faults(guest)
        if faults:
            looked += "\nits triple faults so far: " + "; ".join(faults)
        if cpus is not None and cpus.in_xen:
            return EmulationFault(
                f"{guest}: stalled with its vCPU inside Xen's own code ({cpus.in_xen[0]}): no guest can run there, "
                "the emulated SVM (QEMU's TCG under Xen) handed it Xen's state on a VM entry; no verdict on the "
                f"product, the lab's retry runs it again\n{said}{looked}"
            )
        return GuestStalled(said + looked)


@dataclass
class StallWatch:
    events: EventLog
    consoles: Mapping[str, Sequence[GuestConsoleLog]]  # guest -> the logs of its consoles in dom0
    arrival: Kind  # the guest's event the wait waits for: once it came, the guest is not watched further
    on_host_silent: Callable[[float], XenlabError]  # seconds since dom0 last answered -> the error to raise
    on_guest_stalled: Callable[[str, str], XenlabError] = stalled  # (guest, what the watch saw) -> the error
    silence: float = GUEST_SILENCE
    host_silence: float = HOST_SILENCE
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    _heard: dict[str, tuple[int, float]] = field(default_factory=dict)  # guest -> (its events, when that changed)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def check(self) -> None:
        for logs in self.consoles.values():
            for console in logs:
                console.check()
        now = self.clock()
        answers = [c.answered for logs in self.consoles.values() for c in logs if c.answered is not None]
        quiet = now - max(answers, default=self.started)
        if quiet > self.host_silence:
            raise self.on_host_silent(quiet)
        events = self.events.select()  # once per check: the wait's loop runs it ten times a second
        for guest, logs in self.consoles.items():
            own = [e for e in events if e.node == guest]
            if any(e.kind is self.arrival for e in own):
                continue
            last = self.last_sign(guest, logs, len(own))
            if now - last > self.silence:
                raise self.on_guest_stalled(guest, self._stalled(guest, logs, own, now - last))

    def last_sign(self, guest: str, logs: Sequence[GuestConsoleLog], events: int) -> float:
        """When the guest last showed life: its consoles' growth, or a new install-server event from it (noted
        on this watch's clock when it sees the count of the guest's `events` change)."""
        seen, _ = self._heard.setdefault(guest, (events, self.started))  # what it had said before the watch
        if seen != events:
            self._heard[guest] = (events, self.clock())
        grown = [c.grew for c in logs if c.grew is not None]
        return max([self.started, self._heard[guest][1], *grown])

    def _stalled(self, guest: str, logs: Sequence[GuestConsoleLog], events: list[Event], quiet: float) -> str:
        last_event = f"{events[-1]} ({self.clock() - events[-1].seen:.0f} s ago)" if events else "none"
        said = [f"--- last lines of {c.path} (copy: {c.copy}) ---\n{c.tail() or '(nothing)'}" for c in logs]
        return (
            f"{guest}: no sign of life for {quiet:.0f} s (its consoles did not grow, the install server heard "
            f"nothing from it; a working guest is never quiet for {self.silence:.0f} s): stuck where its console "
            f"ends; last install-server event: {last_event}\n" + "\n".join(said)
        )
