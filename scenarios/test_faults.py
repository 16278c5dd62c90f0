"""Faults of the install path, each diagnosed within one phase with the right verdict and a one-line reason.

The verdict is the one the report gives the exception (reporting.pytest_plugin): a fault of the lab is
`broken`, a fault the product must survive or report is `fail`.  The kickstart that 404s and the broken
kickstarts are in test_install_failures.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from foundation import netns
from foundation.errors import PhaseTimeout, ServerDown
from lab.lab import Lab, LabSpec, NodeSpec
from netboot_stack.events import Kind
from reporting.pytest_plugin import Diagnose, reason_of
from reporting.verdicts import Verdict
from scenario_steps.netboot import kickstart_for, netboot

pytestmark = pytest.mark.scenario

DHCP_PHASE_S = 45


def test_a_node_whose_dhcp_gets_no_answer_is_named_with_what_it_sent(run_dir: Path, diagnose: Diagnose) -> None:
    """cagnode50's NIC is taken off the lab bridge as it boots (a cable in the wrong VLAN): its DHCP never
    reaches the server, and the dhcp phase says so, not just "timed out"."""
    with Lab(LabSpec("fault-dhcp", nodes=(NodeSpec("cagnode50", host=50),)), run_dir=run_dir) as lab:
        lab.serve_install("cagnode50", kickstart=kickstart_for(lab, "cagnode50", "unused"))
        vm = lab.vm("cagnode50")
        netns.ip(lab.network.netns, "link", "set", vm.config.nics[0].tap, "nomaster")
        vm.start()
        started = time.monotonic()
        with pytest.raises(PhaseTimeout) as excinfo:
            lab.wait_event("cagnode50", kind=Kind.LEASE, phase="dhcp", timeout=DHCP_PHASE_S)
        assert time.monotonic() - started < DHCP_PHASE_S + 10
        assert "cagnode50's DHCPDISCOVER never reached the server" in reason_of(excinfo), reason_of(excinfo)
        assert diagnose(excinfo) is Verdict.FAIL
        assert lab.server.events.select(kind=Kind.LEASE) == []


def test_dnsmasq_killed_while_a_node_boots_is_the_labs_fault_found_at_once(run_dir: Path, diagnose: Diagnose) -> None:
    """The install server's dnsmasq dies just after the node's lease, before it has fetched its boot files:
    the wait for its ack ends within seconds as `broken`, never as the node's failure after a timeout."""
    with Lab(LabSpec("fault-dnsmasq", nodes=(NodeSpec("cagnode50", host=50),)), run_dir=run_dir) as lab:
        lab.serve_install("cagnode50", kickstart=kickstart_for(lab, "cagnode50", "unused"))
        lab.vm("cagnode50").start()
        lab.wait_event("cagnode50", kind=Kind.LEASE, phase="dhcp", timeout=60)
        os.kill(lab.server.dnsmasq_pid(), signal.SIGKILL)  # the lab's own server process, by its PID
        killed = time.monotonic()
        with pytest.raises(ServerDown) as excinfo:
            lab.wait_event("cagnode50", kind=Kind.ACK, phase="install", timeout=600)
        assert time.monotonic() - killed < 15, "found by a timeout, not by watching the server"
        assert diagnose(excinfo) is Verdict.BROKEN
        assert "dnsmasq" in reason_of(excinfo) or "container" in reason_of(excinfo), reason_of(excinfo)


def test_a_lab_that_breaks_at_the_first_attempt_is_retried_on_a_fresh_one(
    run_dir: Path, attempt: int, request: pytest.FixtureRequest
) -> None:
    """The retry, visibly, on the real lab: the first attempt's install server loses its dnsmasq after the
    node's lease (the lab's fault, so `--lab-retries` runs the test again); the second attempt's lab is a new
    one and the node installs.  The night's report gives this test `flaky: passed on retry`, with the first
    attempt's reason and both attempts' artifacts."""
    if request.config.getoption("lab_retries") < 1:
        pytest.skip("needs --lab-retries 1 (the scenario tiers give it): without a retry its first attempt is final")
    with Lab(LabSpec("fault-retried", nodes=(NodeSpec("cagnode50", host=50),)), run_dir=run_dir) as lab:
        if attempt > 1:
            result = netboot(lab, "cagnode50")
            assert f"XENLAB-NETBOOT-TOKEN {result.token}" in result.console
            return
        lab.serve_install("cagnode50", kickstart=kickstart_for(lab, "cagnode50", "unused"))
        lab.vm("cagnode50").start()
        lab.wait_event("cagnode50", kind=Kind.LEASE, phase="dhcp", timeout=60)
        os.kill(lab.server.dnsmasq_pid(), signal.SIGKILL)  # the lab's own server process, by its PID
        lab.wait_event("cagnode50", kind=Kind.ACK, phase="install", timeout=600)
        raise AssertionError("the install server lost its dnsmasq and the wait did not notice")
