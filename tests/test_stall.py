"""A stalled guest, or a host that stopped answering, ends the wait early; a guest that shows signs of life
does not.  The boundary faked: dom0's shell is a local one (the consoles are files here), the clock is moved
by hand; the install server's event log is a real file read by the real `EventLog`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from foundation.errors import EmulationFault, XenlabError
from lab.remote_console import GuestConsoleLog
from lab.stall import GuestStalled, StallWatch
from netboot_stack.events import EventLog, Kind

LOCAL_SHELL = ["sh", "-c"]


class Clock:
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


class Rig:
    """Two guests' consoles and an install server's log, as the watch reads them."""

    def __init__(self, tmp_path: Path, *, shell: list[str] = LOCAL_SHELL) -> None:
        self.tmp_path = tmp_path
        self.events_file = tmp_path / "events.jsonl"
        self.events_file.touch()
        self.events = EventLog(tmp_path / "dnsmasq.log", self.events_file, {})
        self.clock = Clock()  # the consoles' too: their answers and growth are on the watch's clock
        self.silent_for: list[float] = []
        self.logs = {g: tmp_path / f"hvm-serial-{g}.log" for g in ("node52", "node53")}
        self.consoles = {
            g: [GuestConsoleLog(shell, g, tmp_path / "copies" / f"{g}.log", interval=0, path=str(p), clock=self.clock)]
            for g, p in self.logs.items()
        }
        self.watch = StallWatch(
            self.events,
            self.consoles,
            arrival=Kind.BOOTED,
            on_host_silent=self.host_silent,
            silence=600,
            host_silence=300,
            clock=self.clock,
        )

    def host_silent(self, quiet: float) -> XenlabError:
        self.silent_for.append(quiet)
        return EmulationFault(f"host silent for {quiet:.0f} s")

    def write(self, guest: str, text: str) -> None:
        with self.logs[guest].open("a") as f:
            f.write(text)

    def event(self, **record: object) -> None:
        with self.events_file.open("a") as f:
            f.write(json.dumps({"t": 0, **record}) + "\n")


def test_a_guest_quiet_for_longer_than_the_silence_is_stalled_and_named(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.write("node52", "SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\n")
    rig.write("node53", "Linux version 6.1\n")
    rig.event(kind="ack", node="node52")
    rig.watch.check()
    rig.clock.ahead = 400
    rig.write("node53", "systemd[1]: Reached target multi-user.target\n")  # node53 lives on
    rig.watch.check()
    rig.clock.ahead = 650  # node52: nothing since the start; node53 wrote 250 s ago
    with pytest.raises(GuestStalled) as excinfo:
        rig.watch.check()
    said = str(excinfo.value)
    assert said.startswith("node52: no sign of life for 6")  # 650 s and the time the checks took
    assert "Booting from Hard Disk..." in said  # where it is stuck
    assert "last install-server event: ack node52" in said
    assert "node53" not in said


def test_console_growth_and_install_server_events_are_each_a_sign_of_life(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.check()
    for step in range(1, 6):  # 2500 s in all, never 600 s quiet: node52 writes, node53 is heard by the server
        rig.clock.ahead = 500 * step
        rig.write("node52", f"payload: {step * 20} MiB\n")
        rig.event(kind="http", node="node53", path="payload/guest.tar.zst", status=200)
        rig.watch.check()
    rig.clock.ahead = 500 * 5 + 601
    with pytest.raises(GuestStalled):
        rig.watch.check()


def test_a_guest_that_arrived_is_not_watched_further(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.check()
    rig.event(kind="booted", node="node52")
    rig.event(kind="booted", node="node53")
    rig.watch.check()
    rig.clock.ahead = 1000
    rig.watch.check()  # both reached what the wait waits for: their quiet consoles say nothing


def test_dom0_answering_nothing_is_the_host_s_error_not_a_guest_s(tmp_path: Path) -> None:
    rig = Rig(tmp_path, shell=["sh", "-c", "exit 255", "--"])  # ssh's status when it cannot reach dom0
    rig.watch.check()
    rig.clock.ahead = 250
    rig.watch.check()
    assert rig.silent_for == []
    rig.clock.ahead = 301
    with pytest.raises(EmulationFault, match="host silent for 30"):
        rig.watch.check()
    assert len(rig.silent_for) == 1 and rig.silent_for[0] > 300


def test_the_host_s_silence_counts_from_dom0_s_last_answer(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.check()  # dom0 answers now
    for console in rig.consoles["node52"] + rig.consoles["node53"]:
        console.ssh_argv = ["sh", "-c", "exit 255", "--"]  # and then no more
    rig.clock.ahead = 299
    rig.watch.check()
    rig.clock.ahead = 302
    with pytest.raises(EmulationFault):
        rig.watch.check()


def test_a_stalled_guests_error_is_the_judges(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    judged: list[str] = []

    def judge(guest: str, said: str) -> XenlabError:
        judged.append(guest)
        return EmulationFault(f"judged: {said}")

    rig.watch.on_guest_stalled = judge
    rig.write("node53", "Linux version 6.1\n")
    rig.watch.check()
    rig.clock.ahead = 500
    rig.write("node53", "still here\n")
    rig.clock.ahead = 601
    with pytest.raises(EmulationFault, match=r"^judged: node52: no sign of life for 60\d s"):
        rig.watch.check()
    assert judged == ["node52"]
