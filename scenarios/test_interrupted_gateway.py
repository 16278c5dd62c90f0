"""Ctrl-C on a real `./xenlab gateway` half-way through the host's install leaves nothing behind, in seconds.

The command runs in its own process group, as a terminal's foreground job does, and gets SIGINT sent to the
whole group, as a terminal sends it: nox, pytest and the lab's owner all get it at once.  Then every lab the
run had started must be gone within seconds: no VM, container, namespace, scratch or loop device.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from foundation import interrupts, registry
from foundation.paths import REPO
from foundation.process import pid_alive

# Its `./xenlab gateway` takes the Xen-host slot itself: it runs in the Xen-host group, never beside another.
pytestmark = [pytest.mark.scenario, pytest.mark.starts_xen_host]

# The nested run waits for the machine's Xen-host slot, which another worker's scenario may hold for minutes.
INSTALL_STARTS_WITHIN_S = 40 * 60
GONE_WITHIN_S = 20
COMMAND_ENDS_WITHIN_S = 90  # nox gives its pytest 60 s to take its labs down


def labs_of(pgid: int) -> dict[str, tuple[int, ...]]:
    """The labs whose owner is in process group `pgid`, with the PIDs their records name."""
    found = {}
    for record in registry.labs_dir().glob(f"{registry.LAB_PREFIX}*.json"):
        state = registry.read_state(record.stem)
        if state is None:
            continue
        try:
            if os.getpgid(state.owner_pid) == pgid:
                found[state.lab_id] = tuple(state.pids)
        except ProcessLookupError:
            continue
    return found


def payload_fetched(artifacts: Path) -> bool:
    """Has a node of the nested run begun downloading its payload (the installer is installing)?"""
    for log in artifacts.rglob("install-server/events.jsonl"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("kind") == "http" and "/payload/" in (event.get("path") or ""):
                return True
    return False


def test_ctrl_c_mid_install_leaves_no_vm_container_namespace_or_loop_device(run_dir: Path) -> None:
    nested = run_dir / "interrupted-run"
    nested.mkdir()
    with open(run_dir / "xenlab-gateway.log", "wb") as out:
        command = subprocess.Popen(
            ["./xenlab", "gateway"],
            cwd=REPO,
            env={**os.environ, "XENLAB_ARTIFACTS": str(nested)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group, as a terminal's foreground job
            preexec_fn=interrupts.as_foreground_job,  # whose Ctrl-C acts however this suite was started
        )
    pgid = command.pid
    try:
        labs: dict[str, tuple[int, ...]] = {}
        deadline = time.monotonic() + INSTALL_STARTS_WITHIN_S
        while not payload_fetched(nested):
            assert command.poll() is None, f"./xenlab gateway ended before the install; see {run_dir}"
            assert time.monotonic() < deadline, "the host's install did not begin"
            labs.update(labs_of(pgid))
            time.sleep(1)
        labs.update(labs_of(pgid))
        assert labs, "the run's install began but no lab of it was found in the registry"
        assert any(pid_alive(p) for pids in labs.values() for p in pids), "no VM of the run was running"

        os.killpg(pgid, signal.SIGINT)
        interrupted = time.monotonic()
        deadline = interrupted + GONE_WITHIN_S
        left = {lab_id: registry.traces(lab_id, pids) for lab_id, pids in labs.items()}
        while any(left.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
            left = {lab_id: registry.traces(lab_id, pids) for lab_id, pids in labs.items()}
        gone_after = time.monotonic() - interrupted
        assert not any(left.values()), f"{GONE_WITHIN_S} s after Ctrl-C these are left: {left}"
        print(f"every trace of {sorted(labs)} gone {gone_after:.1f} s after Ctrl-C")

        status = command.wait(timeout=COMMAND_ENDS_WITHIN_S)
        assert status != 0, "an interrupted run must not exit 0"
        log = (run_dir / "xenlab-gateway.log").read_text(errors="replace")
        assert "interrupted" in log, "the run did not say it was interrupted"
    finally:
        if command.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            command.wait()
