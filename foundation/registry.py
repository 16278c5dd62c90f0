"""Which labs exist on this machine, and removing what crashed runs left behind.

Each lab holds an exclusive `flock` on `/run/xenlab/labs/<id>.lock` for its whole life.  The kernel drops
that lock when the process dies however it dies, so "can I take the lock?" tells exactly whether a lab's
owner is gone.  What a lab starts (QEMU PIDs, containers, namespaces) is recorded in
`<id>.json` as it goes, so that a dead lab's leftovers can be removed by PID and by name: at once by the
lab's reaper (`guard()`, foundation/reaper.py), which waits on the lock, or else by `sweep()` at the next
start or `./xenlab down`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from foundation import netns
from foundation.errors import LabError
from foundation.paths import REPO, state_dir, work_root
from foundation.process import Child, kill_pid, pid_alive, pid_cmdline, run, start

log = logging.getLogger("xenlab.registry")

LAB_PREFIX = "xenlab"
REAPER_EXIT_S = 10  # a reaper given a released lock has nothing to do but exit
OWNER_STOP_S = 30  # `down --all`: how long a live owner (then its reaper) has to take its lab down
MAX_SLOTS = 200
_LAB_ID = re.compile(rf"^{LAB_PREFIX}(\d+)$")


def labs_dir() -> Path:
    path = state_dir() / "labs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runc_root() -> Path:
    return state_dir() / "runc"


@dataclass
class LabRecord:
    """What a lab has started, written to disk as soon as it is started."""

    lab_id: str
    owner_pid: int
    namespaces: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)


class LabSlot:
    """An exclusive claim on a lab id, held until `release()` or process death."""

    def __init__(self, lab_id: str, lock_file: IO[str]) -> None:
        self.lab_id = lab_id
        self._lock_file = lock_file
        self.record = LabRecord(lab_id=lab_id, owner_pid=os.getpid())
        self._reaper: Child | None = None
        self.save()

    @property
    def index(self) -> int:
        m = _LAB_ID.match(self.lab_id)
        assert m
        return int(m.group(1))

    @property
    def state_path(self) -> Path:
        return labs_dir() / f"{self.lab_id}.json"

    def save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.record), indent=1))
        tmp.replace(self.state_path)

    def note(self, **items: str | int) -> None:
        """Record one started thing, for example `note(pids=1234)` or `note(containers="xenlab3-srv")`."""
        for key, value in items.items():
            getattr(self.record, key).append(value)
        self.save()

    def forget(self, **items: str | int) -> None:
        for key, value in items.items():
            values = getattr(self.record, key)
            if value in values:
                values.remove(value)
        self.save()

    def guard(self, log_path: Path) -> None:
        """Start this lab's reaper: if this process dies before `release()`, however it dies, the reaper
        removes what the lab started within seconds, and logs it to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            self._reaper = start(
                [sys.executable, "-m", "foundation.reaper", self.lab_id, str(self.record.owner_pid)],
                env={k: v for k, v in os.environ.items() if k.startswith("XENLAB_")},
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                new_session=True,  # a Ctrl-C at the terminal must not reach it
            )

    def release(self) -> None:
        """The lab was taken down in order: drop its record and its lock (its reaper sees that and exits)."""
        self.state_path.unlink(missing_ok=True)
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
        if self._reaper is not None:
            try:
                self._reaper.wait(REAPER_EXIT_S)
            except subprocess.TimeoutExpired:
                log.warning("lab %s: its reaper (pid %d) did not exit; killing it", self.lab_id, self._reaper.pid)
                self._reaper.popen.kill()
                self._reaper.wait()


def _try_lock(lab_id: str) -> IO[str] | None:
    lock = open(labs_dir() / f"{lab_id}.lock", "a+")  # noqa: SIM115 - held for the lab's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def claim_slot() -> LabSlot:
    """Take the lowest free lab id, first removing anything a crashed lab of that id left behind."""
    for n in range(1, MAX_SLOTS + 1):
        lab_id = f"{LAB_PREFIX}{n}"
        lock = _try_lock(lab_id)
        if lock is None:
            continue
        remove_leftovers(lab_id)
        return LabSlot(lab_id, lock)
    raise LabError(f"all {MAX_SLOTS} lab slots are in use", hint="run `./xenlab down --all`")


def known_lab_ids() -> set[str]:
    """Every lab id that has a trace on this machine: a state file, a namespace or a container."""
    ids = {p.stem for p in labs_dir().glob(f"{LAB_PREFIX}*.json")}
    for name in netns.list_names():
        ids.add(name.removesuffix("-srv"))
    ids.update(c.split("-")[0] for c in _runc_containers())
    return {i for i in ids if _LAB_ID.match(i)}


def sweep(*, include_live: bool = False) -> list[str]:
    """Remove the leftovers of every dead lab (and of live ones too when `include_live`).

    Returns the ids cleaned.  A live lab is one whose owner still holds its lock.
    """
    cleaned = []
    for lab_id in sorted(known_lab_ids()):
        lock = _try_lock(lab_id)
        if lock is None:
            if not include_live:
                continue
            state = read_state(lab_id)
            if state and state.owner_pid != os.getpid():
                # Ask the owner first (it unwinds its own lab on SIGTERM), so it cannot restart things.
                kill_pid(state.owner_pid, must_contain="", grace=OWNER_STOP_S)
            lock = _wait_for_lock(lab_id, OWNER_STOP_S)  # the owner's reaper may be finishing the job
        remove_leftovers(lab_id)
        cleaned.append(lab_id)
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    return cleaned


def _wait_for_lock(lab_id: str, timeout: float) -> IO[str] | None:
    deadline = time.monotonic() + timeout
    while (lock := _try_lock(lab_id)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return lock


def read_state(lab_id: str) -> LabRecord | None:
    try:
        data = json.loads((labs_dir() / f"{lab_id}.json").read_text())
        return LabRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def traces(lab_id: str, pids: tuple[int, ...] = ()) -> list[str]:
    """What of `lab_id` exists on this machine, in words: its namespaces, container, the processes among
    `pids` (and its record's) that still run, its scratch, and loop devices backed by files in it."""
    state = read_state(lab_id)
    found = [f"namespace {n}" for n in (lab_id, f"{lab_id}-srv") if netns.exists(n)]
    found += [f"container {c}" for c in _runc_containers() if c.split("-")[0] == lab_id]
    for pid in sorted({*pids, *(state.pids if state else ())}):
        if pid_alive(pid):
            found.append(f"process {pid} ({' '.join(pid_cmdline(pid))[:80]})")
    scratch = work_root() / lab_id
    if scratch.exists():
        found.append(f"scratch {scratch}")
    found += [f"loop device {loop}" for loop in _loops_backed_in(scratch)]
    return found


def _loops_backed_in(directory: Path) -> list[str]:
    """Loop devices whose backing file is (or was, before it was deleted) under `directory`."""
    loops = []
    for device in Path("/sys/block").glob("loop*"):
        try:
            backing = (device / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue  # not attached
        if backing.startswith(f"{directory}/"):
            loops.append(f"/dev/{device.name}")
    return loops


def _runc_containers() -> list[str]:
    if not runc_root().is_dir():
        return []
    proc = run(["runc", "--root", runc_root(), "list", "-q"], check=False)
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def remove_leftovers(lab_id: str) -> None:
    """Remove everything the record of `lab_id` names, and whatever else of that id is left (namespaces,
    containers, scratch).  The caller holds the lab's lock."""
    state = read_state(lab_id)
    found = False
    if state:
        for pid in state.pids:
            found |= kill_pid(pid, must_contain=lab_id)
    for container in _runc_containers():
        if container.split("-")[0] == lab_id:
            found = True
            run(["runc", "--root", runc_root(), "delete", "--force", container], check=False)
    for name in (f"{lab_id}-srv", lab_id):
        if netns.exists(name):
            found = True
            # Whatever still runs in our namespace was started by this lab (QEMU keeps its tap alive).
            for pid in netns.pids(name):
                kill_pid(pid, must_contain=lab_id)
            netns.delete(name)
    for loop in _loops_backed_in(work_root() / lab_id):
        found = True
        run(["losetup", "--detach", loop], check=False)
    (labs_dir() / f"{lab_id}.json").unlink(missing_ok=True)
    if (work_root() / lab_id).exists():
        found = True
        shutil.rmtree(work_root() / lab_id, ignore_errors=True)
    if found:
        log.warning("removed leftovers of crashed lab %s", lab_id)
