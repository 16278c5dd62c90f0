"""Stopping early: a teardown runs to its end through Ctrl-C, and a dead owner's reaper does the teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from foundation import interrupts, reaper, registry
from foundation.paths import REPO
from foundation.process import pid_alive


def test_a_ctrl_c_during_a_deferred_block_is_raised_after_it() -> None:
    steps = []
    before = signal.getsignal(signal.SIGINT)
    with (
        pytest.raises(KeyboardInterrupt, match="deferred until the test's teardown was done"),
        interrupts.deferred("the test's teardown"),
    ):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # both handlers have run by now
        steps.append("finished")
    assert steps == ["finished"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_deferred_block_without_a_signal_raises_nothing() -> None:
    with interrupts.deferred("nothing"):
        pass


def test_sigterm_becomes_keyboard_interrupt() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        interrupts.raise_on_sigterm()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_child_asked_to_die_with_its_parent_does() -> None:
    """A parent that starts a child (which asks for SIGTERM at its parent's death) and is then killed."""
    child_script = (
        "from foundation import interrupts; import time; interrupts.die_with_parent(); "
        "print('ready', flush=True); time.sleep(60)"
    )
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_script!r}], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\\n"
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert pid_alive(child_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid) or Path(f"/proc/{child_pid}/stat").read_text().split()[2] == "Z"


def holder(lab_id: str, victim: int) -> subprocess.Popen[str]:
    """A process that holds `lab_id`'s lock with a record naming `victim`, as a lab's owner does."""
    script = textwrap.dedent(
        f"""
        import fcntl, json, os, time
        from foundation import registry
        lock = open(registry.labs_dir() / "{lab_id}.lock", "a+")
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = dict(lab_id="{lab_id}", owner_pid=os.getpid(), namespaces=[], pids=[{victim}], containers=[])
        (registry.labs_dir() / "{lab_id}.json").write_text(json.dumps(record))
        print("held", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


@pytest.fixture
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XENLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XENLAB_WORK", str(tmp_path / "work"))
    from foundation import settings

    settings.reread()
    return tmp_path


def test_the_reaper_kills_what_a_dead_owner_recorded(private_state: Path) -> None:
    victim = subprocess.Popen(["sh", "-c", "sleep 60", "xenlab97"])  # its argv carries the lab's id
    owner = holder("xenlab97", victim.pid)
    owner.kill()  # it dies without taking anything down
    owner.wait()
    assert reaper.reap("xenlab97", owner.pid) is True
    assert victim.wait(timeout=5) != 0
    assert not (registry.labs_dir() / "xenlab97.json").exists()


def test_the_reaper_of_a_lab_taken_down_in_order_does_nothing(private_state: Path) -> None:
    victim = subprocess.Popen(["sh", "-c", "sleep 60", "xenlab98"])
    try:
        owner = holder("xenlab98", victim.pid)
        (registry.labs_dir() / "xenlab98.json").unlink()  # what release() does before it unlocks
        owner.kill()
        owner.wait()
        assert reaper.reap("xenlab98", owner.pid) is False
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_the_reaper_leaves_a_lab_its_owner_no_longer_holds(private_state: Path) -> None:
    """The id was released and taken by a newer lab: its record names another owner."""
    victim = subprocess.Popen(["sh", "-c", "sleep 60", "xenlab99"])
    try:
        registry.labs_dir().joinpath("xenlab99.json").write_text(
            json.dumps(dict(lab_id="xenlab99", owner_pid=1, pids=[victim.pid]))
        )
        assert reaper.reap("xenlab99", owner_pid=os.getpid() + 100000) is False
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_run_started_as_a_foreground_job_gets_ctrl_c_back_from_a_background_parent() -> None:
    """A shell's background job starts with SIGINT ignored and Python keeps it so: Ctrl-C would do nothing to
    a lab owner started from it, unless it is given SIGINT's default back (what the Ctrl-C tests do)."""
    probe = [
        sys.executable,
        "-c",
        "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)",
    ]

    def background() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def background_then_foreground() -> None:
        background()
        interrupts.as_foreground_job()

    said = {
        how.__name__: subprocess.run(probe, preexec_fn=how, capture_output=True, text=True, check=True).stdout.strip()
        for how in (background, background_then_foreground)
    }
    assert said == {"background": "False", "background_then_foreground": "True"}
