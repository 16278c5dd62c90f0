"""Parsing the install server's logs into events, and waiting on them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from foundation.errors import EmulationFault, LabError, PhaseTimeout, ProductFailure, ServerDown
from netboot_stack.events import (
    Event,
    EventLog,
    Kind,
    ResetLoop,
    mac_of_link_local,
    parse_dnsmasq_line,
    parse_event_line,
)

DNSMASQ = """\
Nov 25 10:27:33 dnsmasq-dhcp[6]: 3612712040 DHCPACK(eth0) 10.77.0.50 52:54:00:01:00:32 cagnode50
Nov 25 10:27:34 dnsmasq-tftp[6]: sent /srv/lab/pxelinux.0 to 10.77.0.50
Nov 25 10:27:34 dnsmasq-tftp[6]: file /srv/lab/pxelinux.cfg/0A4D0032 not found for 10.77.0.50
Nov 25 10:27:35 dnsmasq[6]: query[A] gridinstall.xenlab.test from 10.77.0.50
Nov 25 10:27:35 dnsmasq[6]: config gridinstall.xenlab.test is 10.77.0.1
"""


def test_dnsmasq_lines_become_events() -> None:
    events = [parse_dnsmasq_line(line) for line in DNSMASQ.splitlines()]
    assert [e.kind if e else None for e in events] == ["lease", "tftp", "tftp-missing", "dns", None]
    lease, tftp, missing, query = (e for e in events[:4] if e is not None)
    assert (lease.client, lease.mac, lease.node) == ("10.77.0.50", "52:54:00:01:00:32", "cagnode50")
    assert (tftp.path, tftp.client) == ("pxelinux.0", "10.77.0.50")
    assert missing.path == "pxelinux.cfg/0A4D0032"
    assert (query.path, query.detail) == ("gridinstall.xenlab.test", "A")


def test_link_local_addresses_carry_the_mac() -> None:
    assert mac_of_link_local("fe80::5054:ff:fe02:32") == "52:54:00:02:00:32"
    assert mac_of_link_local("fd77::1") is None
    assert mac_of_link_local("10.77.0.1") is None


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    (tmp_path / "dnsmasq.log").write_text(DNSMASQ)
    return EventLog(tmp_path / "dnsmasq.log", tmp_path / "events.jsonl", {"10.77.0.50": "cagnode50"})


def append_event(tmp_path: Path, **record: object) -> None:
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def test_events_are_attributed_to_nodes_by_address(log: EventLog, tmp_path: Path) -> None:
    append_event(tmp_path, kind=Kind.HTTP, client="10.77.0.50", path="/ks/cagnode50.ks", status=200)
    http = log.select(kind=Kind.HTTP)
    assert [(e.node, e.path) for e in http] == [("cagnode50", "ks/cagnode50.ks")]
    assert [e.node for e in log.select(kind=Kind.TFTP)] == ["cagnode50"]


def test_partial_lines_wait_for_their_end(log: EventLog, tmp_path: Path) -> None:
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"kind": "ack", "client": "10.77.0.50", ')
    assert log.select(kind=Kind.ACK) == []
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('"node": "cagnode50"}\n')
    assert [e.node for e in log.select(kind=Kind.ACK)] == ["cagnode50"]


def test_wait_for_fails_fast_on_a_reported_install_failure(log: EventLog, tmp_path: Path) -> None:
    append_event(tmp_path, kind=Kind.INSTALL_FAILED, client="10.77.0.50", node="cagnode50", reason="no disk")
    with pytest.raises(ProductFailure, match="no disk"):
        log.wait_for(phase="install", timeout=30, kind=Kind.ACK, node="cagnode50")


@pytest.mark.parametrize("nodes", [["cagnode50"], [None], ["cagnode50", "cagnode51"]], ids=["one", "any", "each"])
def test_a_server_error_ends_every_wait_at_once_as_the_labs_failure(
    log: EventLog, tmp_path: Path, nodes: list[str | None]
) -> None:
    append_event(tmp_path, kind=Kind.SERVER_ERROR, what="dnsmasq exited with status 2")
    started = time.monotonic()
    with pytest.raises(ServerDown, match="the install server failed: dnsmasq exited with status 2"):
        log.wait_for_each(nodes, phase="guests", timeout=30, kind=Kind.BOOTED)
    assert time.monotonic() - started < 2
    assert issubclass(ServerDown, LabError) and not issubclass(ServerDown, ProductFailure)


def test_a_dead_container_ends_every_wait(log: EventLog) -> None:
    log.liveness = lambda: "the install server's container (pid 4242) is gone"
    with pytest.raises(ServerDown, match="container \\(pid 4242\\) is gone"):
        log.wait_for_each(["cagnode50"], phase="guests", timeout=30, kind=Kind.BOOTED)


def test_waits_for_one_and_for_each_are_one_loop(log: EventLog, tmp_path: Path) -> None:
    append_event(tmp_path, kind=Kind.INSTALL_FAILED, client="10.77.0.51", node="cagnode51", reason="no disk")
    with pytest.raises(ProductFailure, match="cagnode51 reported: install-failed no disk"):
        log.wait_for_each(["cagnode50", "cagnode51"], phase="guests", timeout=30, kind=Kind.ACK)
    append_event(tmp_path, kind=Kind.ACK, client="10.77.0.50", node="cagnode50")
    arrived: list[str | None] = []
    got = log.wait_for_each(
        ["cagnode50"], phase="a", timeout=5, kind=Kind.ACK, arrived=lambda e: arrived.append(e.node)
    )
    assert got["cagnode50"].kind is Kind.ACK and arrived == ["cagnode50"]
    assert log.wait_for(phase="a", timeout=5, kind=Kind.ACK, node="cagnode50") == got["cagnode50"]


def test_wait_for_timeout_lists_recent_events(log: EventLog) -> None:
    with pytest.raises(PhaseTimeout, match=r"phase 'ack'.*\n.*lease cagnode50"):
        log.wait_for(phase="ack", timeout=0.2, kind=Kind.ACK, node="cagnode50")


def test_a_node_that_keeps_returning_to_its_boot_entry_after_its_ack_is_a_reset_loop(
    log: EventLog, tmp_path: Path
) -> None:
    entry = "pxelinux.cfg/01-52-54-00-01-00-32"
    watch = ResetLoop(log, {"cagnode50": frozenset({entry})}, limit=3)
    sent = f"Nov 25 10:30:00 dnsmasq-tftp[6]: sent /srv/lab/{entry} to 10.77.0.50\n"
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent * 3)  # before the ack: the install itself, not a loop
    watch.check()
    append_event(tmp_path, kind=Kind.ACK, client="10.77.0.50", node="cagnode50")
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent * 2)  # the reboot into the installed system, and one reset
    watch.check()
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent)
    with pytest.raises(ProductFailure, match="cagnode50: its installed system does not come up.* 3 times"):
        watch.check()
    append_event(tmp_path, kind=Kind.BOOTED, client="10.77.0.50", node="cagnode50")
    watch.check()  # it came up in the end: nothing to say


def test_resets_the_lab_accounts_for_do_not_make_a_reset_loop_until_they_are_all_there_is(
    log: EventLog, tmp_path: Path
) -> None:
    """As on Dec 6: an HVM guest's installed system triple-faulted twice under the emulation (xl restarted it
    each time, and each restart read its boot entry again) and came up at the third boot."""
    entry = "pxelinux.cfg/01-52-54-00-01-00-34"
    faults = ["(XEN) d2v0 Triple fault - invoking HVM shutdown action 1"]
    asked: list[str] = []

    def lab_resets(node: str) -> list[str]:
        asked.append(node)
        return list(faults)

    watch = ResetLoop(log, {"cagnode52": frozenset({entry})}, limit=3, lab_resets=lab_resets)
    sent = f"Nov 25 10:30:00 dnsmasq-tftp[6]: sent /srv/lab/{entry} to 10.77.0.52\n"
    append_event(tmp_path, kind=Kind.ACK, client="10.77.0.52", node="cagnode52")
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent * 2)  # the reboot, and one restart after a triple fault
    watch.check()
    assert asked == [], "the lab is asked only once a node reaches the limit"
    faults.append("(XEN) d3v0 Triple fault - invoking HVM shutdown action 1")
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent)  # a second restart
    watch.check()
    watch.check()
    assert asked == ["cagnode52"], "and once per read"
    with open(tmp_path / "dnsmasq.log", "a") as f:
        f.write(sent * 2)  # two more, unexplained: with the first boot, three
    with pytest.raises(ProductFailure, match=r"5 times \(a reset loop.*; 2 of them the lab's: \(XEN\) d2v0"):
        watch.check()
    lab_only = ResetLoop(log, {"cagnode52": frozenset({entry})}, limit=3, lab_resets=lambda node: faults * 3)
    with pytest.raises(EmulationFault, match=r"restarted 6 times for the emulation's faults, not its own: \(XEN"):
        lab_only.check()  # five reads, each explained (and more): the emulation's, no verdict on the product


def test_every_kind_the_install_servers_httpd_writes_is_a_kind() -> None:
    """httpd runs in the container on the bare standard library, so it writes the kinds as strings: each one
    must be a `Kind`, or the lab would drop its events."""
    import ast

    from foundation.paths import REPO

    tree = ast.parse((REPO / "netboot_stack" / "httpd.py").read_text())
    written = {
        call.args[0].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "write"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
        and isinstance(call.func.value, ast.Attribute)
        and call.func.value.attr == "events"
    }
    assert {"ack", "ack-refused", "booted", "server-error"} <= written  # the check sees httpd's calls
    assert written <= {k.value for k in Kind}, written - {k.value for k in Kind}


def test_a_record_of_an_unknown_kind_is_dropped_not_a_crash() -> None:
    assert parse_event_line('{"kind": "from-a-newer-server"}') is None
    assert parse_event_line('{"kind": "ack", "client": "10.0.0.5"}') == Event(Kind.ACK, client="10.0.0.5")


# The first as a lab run's dnsmasq.log has it (with its trailing space); the second as dnsmasq's
# log_packet() writes a refusal (an address, then the reason).
DISCOVERS = (
    "Dec  3 06:43:29 dnsmasq-dhcp[6]: 1645318203 DHCPDISCOVER(eth0) 52:54:00:01:00:33 \n"
    """Dec  3 06:43:30 dnsmasq-dhcp[6]: 1459811169 DHCPDISCOVER(eth0) 10.77.0.51 52:54:00:01:00:33 no address available
"""
)


def test_a_missing_lease_says_whether_the_server_heard_the_node_at_all(tmp_path: Path) -> None:
    (tmp_path / "dnsmasq.log").write_text(DISCOVERS)
    macs = {"52:54:00:01:00:33": "cagnode51", "52:54:00:01:00:34": "cagnode52"}
    log = EventLog(tmp_path / "dnsmasq.log", tmp_path / "events.jsonl", {}, macs)
    discovers = log.select(kind=Kind.DISCOVER, node="cagnode51")
    assert [e.detail for e in discovers] == [None, "no address available"]
    with pytest.raises(PhaseTimeout) as heard:
        log.wait_for(phase="dhcp", timeout=0.2, kind=Kind.LEASE, node="cagnode51")
    first_line = str(heard.value).splitlines()[0]
    assert "heard 2 DHCPDISCOVER(s) from cagnode51, no lease came (no address available)" in first_line
    with pytest.raises(PhaseTimeout) as silent:
        log.wait_for(phase="dhcp", timeout=0.2, kind=Kind.LEASE, node="cagnode52")
    assert "cagnode52's DHCPDISCOVER never reached the server" in str(silent.value).splitlines()[0]


def test_events_read_before_since_are_history(log: EventLog) -> None:
    log.select()  # the lease of DNSMASQ is read now
    later = time.monotonic()
    with pytest.raises(PhaseTimeout):
        log.wait_for(phase="dhcp", timeout=0.2, kind=Kind.LEASE, node="cagnode50", since=later)
    assert log.wait_for(phase="dhcp", timeout=0.2, kind=Kind.LEASE, node="cagnode50").mac == "52:54:00:01:00:32"
