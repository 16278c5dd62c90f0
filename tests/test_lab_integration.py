"""The lab's own machinery with its real parts: runc, dnsmasq, namespaces, QEMU, crashes and cleanup."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from foundation import interrupts, netns, registry, settings
from foundation.errors import LabError, PreflightError
from foundation.paths import REPO
from foundation.process import pid_cmdline
from lab import preflight
from lab.lab import Lab, LabSpec, NodeSpec
from netboot_stack.events import Kind

pytestmark = pytest.mark.integration


def lab_traces() -> set[str]:
    """Namespaces and containers of labs on this machine."""
    return set(n for n in netns.list_names() if n.startswith(registry.LAB_PREFIX)) | set(registry._runc_containers())


def ack_from(lab: Lab, source: str, query: str = "", path: str = "/cgi-bin/aii-installack.cgi") -> tuple[int, str]:
    """Call the install-ack endpoint (or `path`) from `source`, an address the observer takes on the lab bridge."""
    if source != str(lab.network.observer_ip):
        netns.ip(lab.network.netns, "addr", "replace", f"{source}/32", "dev", "br0")

    def call() -> tuple[int, str]:
        conn = http.client.HTTPConnection(str(lab.network.server_ip), 80, timeout=5, source_address=(source, 0))
        conn.request("GET", f"{path}{query}")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()

    return netns.call_in_netns(lab.network.netns, call)


def test_the_ack_identifies_the_node_by_its_address_only(run_dir: Path) -> None:
    spec = LabSpec("ack", nodes=(NodeSpec("cagnode50", host=50), NodeSpec("cagnode51", host=51)))
    with Lab(spec, run_dir=run_dir) as lab:
        lab.serve_install("cagnode50", kickstart="text\n")
        lab.serve_install("cagnode51", kickstart="text\n")
        # Nobody can flip a node to local boot by naming it: the observer is no node.
        status, body = ack_from(lab, str(lab.network.observer_ip), "?node=cagnode50.xenlab.test")
        assert status == 403 and "no node has address" in body
        assert lab.server.nbp.status(lab.node_boot("cagnode50")) == "install"
        # cagnode51's own address acks cagnode51, whatever its parameters say.
        status, body = ack_from(lab, str(lab.ip("cagnode51")), "?node=cagnode50.xenlab.test")
        assert status == 200 and "host 'cagnode51.xenlab.test' configured to boot from local disk" in body
        assert lab.server.nbp.status(lab.node_boot("cagnode51")) == "boot"
        assert lab.server.nbp.status(lab.node_boot("cagnode50")) == "install"
        lab.server.events.wait_for(phase="ack", timeout=5, kind=Kind.ACK, node="cagnode51")
        assert [e.kind for e in lab.server.events.select(node="cagnode50") if e.kind.startswith("ack")] == []
        refused = lab.server.events.select(kind=Kind.ACK_REFUSED)
        assert [e.client for e in refused] == [str(lab.network.observer_ip)]
        # An installed system's "I am up" is attributed the same way, by address.
        assert ack_from(lab, str(lab.ip("cagnode51")), "?node=cagnode50", path="/xenlab/booted")[0] == 200
        booted = lab.server.events.wait_for(phase="booted", timeout=5, kind=Kind.BOOTED)
        assert booted.node == "cagnode51"


def test_install_failure_reports_reach_the_event_log(run_dir: Path) -> None:
    with Lab(LabSpec("failed", nodes=(NodeSpec("cagnode50", host=50),)), run_dir=run_dir) as lab:
        netns.ip(lab.network.netns, "addr", "add", f"{lab.ip('cagnode50')}/32", "dev", "br0")

        def report() -> int:
            conn = http.client.HTTPConnection(
                str(lab.network.server_ip), 80, timeout=5, source_address=(str(lab.ip("cagnode50")), 0)
            )
            conn.request("GET", "/xenlab/install-failed?reason=partition+too+big")
            return conn.getresponse().status

        assert netns.call_in_netns(lab.network.netns, report) == 200
        with pytest.raises(Exception, match="partition too big"):
            lab.wait_event("cagnode50", kind=Kind.ACK, phase="install", timeout=30)


CRASHING_OWNER = """
import logging, sys, time
from lab.lab import Lab, LabSpec, NodeSpec
logging.basicConfig(level=logging.INFO)
with Lab(LabSpec("crash", nodes=(NodeSpec("victim", host=60),))) as lab:
    vm = lab.vm("victim")
    vm.start()
    print(lab.slot.lab_id, vm.proc.pid, lab.run_dir, flush=True)
    time.sleep(600)
"""


@dataclass
class Owner:
    """A separate process that owns a lab with one VM running, for the tests to kill."""

    proc: subprocess.Popen[str]
    lab_id: str
    qemu_pid: int
    run_dir: Path

    def reaper_pid(self) -> int:
        found = [
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if pid_cmdline(pid)[1:] == ["-m", "foundation.reaper", self.lab_id, str(self.proc.pid)]
        ]
        assert len(found) == 1, f"expected one reaper for {self.lab_id}, found {found}"
        return found[0]

    def is_gone(self) -> bool:
        return not registry.traces(self.lab_id, (self.qemu_pid,))


def start_owner() -> Owner:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_OWNER],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupts.as_foreground_job,  # the owner is a user's run: Ctrl-C reaches it
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line, "the lab owner did not start its lab"
    return Owner(proc, line[0], int(line[1]), Path(line[2]))


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_killed_owners_lab_is_removed_by_its_reaper_within_seconds() -> None:
    owner = start_owner()
    owner.proc.send_signal(signal.SIGKILL)
    owner.proc.wait()
    assert wait_until(owner.is_gone, timeout=20), f"lab {owner.lab_id} still has traces 20 s after its owner died"
    log = (owner.run_dir / "reaper.log").read_text()
    assert f"its owner (pid {owner.proc.pid}) ended without taking it down" in log


def test_a_crashed_labs_leftovers_are_removed_by_the_next_sweep() -> None:
    owner = start_owner()
    os.kill(owner.reaper_pid(), signal.SIGKILL)  # the worst case: its reaper died too
    owner.proc.send_signal(signal.SIGKILL)
    owner.proc.wait()
    time.sleep(0.5)
    assert not owner.is_gone(), "nothing was left to sweep: the test proves nothing"
    assert owner.lab_id in registry.sweep()
    assert wait_until(owner.is_gone, timeout=5)


def test_sigterm_makes_the_owner_tear_its_lab_down_itself() -> None:
    owner = start_owner()
    owner.proc.send_signal(signal.SIGTERM)
    owner.proc.communicate(timeout=30)
    assert owner.is_gone()
    assert "ended without taking it down" not in (owner.run_dir / "reaper.log").read_text()


def test_an_impatient_double_ctrl_c_leaves_nothing_either() -> None:
    owner = start_owner()
    owner.proc.send_signal(signal.SIGINT)
    owner.proc.send_signal(signal.SIGINT)
    owner.proc.communicate(timeout=30)
    assert wait_until(owner.is_gone, timeout=20), f"lab {owner.lab_id} still has traces 20 s after two Ctrl-Cs"


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            LabSpec("bad", nodes=(NodeSpec("a", host=10, installer="anaconda-rhel9"),)),
            "no image named 'anaconda-rhel9'",
        ),
        (
            LabSpec(
                "bad",
                nodes=(
                    NodeSpec("a", host=10, mac="52:54:00:00:00:01"),
                    NodeSpec("b", host=11, mac="52:54:00:00:00:01"),
                ),
            ),
            "share the MAC",
        ),
        (LabSpec("bad", nodes=(NodeSpec("a", host=10), NodeSpec("b", host=10))), "share the IP address 10"),
    ],
    ids=["missing-image", "duplicate-mac", "duplicate-ip"],
)
def test_bad_input_fails_before_anything_starts(spec: LabSpec, message: str) -> None:
    before = lab_traces()
    with pytest.raises(PreflightError, match=message):
        Lab(spec).__enter__()
    assert lab_traces() == before


def test_a_missing_tool_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    before = lab_traces()
    monkeypatch.setitem(preflight.TOOLS, "mmdebstrap-from-the-future", "mmdebstrap")
    with pytest.raises(
        PreflightError, match="(?s)missing tools.*mmdebstrap-from-the-future.*apt-get install mmdebstrap"
    ):
        Lab(LabSpec("bad", nodes=(NodeSpec("a", host=10),))).__enter__()
    assert lab_traces() == before


def test_without_root_the_lab_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PreflightError, match="needs root"):
        Lab(LabSpec("bad")).__enter__()


def test_xen_host_slots_are_held_machine_wide_and_freed_by_a_dead_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the only slot makes a taker wait; its death frees the slot at once."""
    from lab import capacity

    monkeypatch.setenv("XENLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("XENLAB_XEN_HOSTS", "1")
    settings.reread()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from lab import capacity; import time\n"
            "with capacity.xen_host_slot():\n    print('held', flush=True); time.sleep(60)",
        ],
        env={**os.environ, "XENLAB_STATE_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LabError, match="no Xen-host slot came free"), capacity.xen_host_slot(timeout=1.5):
            pass
        holder.kill()
        holder.wait()
        with capacity.xen_host_slot(timeout=5) as slot:
            assert slot == 0
    finally:
        holder.kill()


def test_a_dead_dnsmasq_ends_a_long_wait_within_seconds_as_a_lab_failure(run_dir: Path) -> None:
    from foundation.errors import ServerDown

    spec = LabSpec("dead-dnsmasq", nodes=(NodeSpec("cagnode50", host=50), NodeSpec("cagnode51", host=51)))
    with Lab(spec, run_dir=run_dir) as lab:
        dnsmasq = [
            p for p in netns.pids(lab.network.server_netns) if b"dnsmasq" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(dnsmasq) == 1, dnsmasq
        os.kill(dnsmasq[0], signal.SIGKILL)  # the lab's own server process, by its PID
        started = time.monotonic()
        with pytest.raises(ServerDown, match="install server failed: dnsmasq exited|container .* (is gone|has exited)"):
            lab.server.events.wait_for_each(["cagnode50", "cagnode51"], phase="guests", timeout=600, kind=Kind.BOOTED)
        assert time.monotonic() - started < 10
