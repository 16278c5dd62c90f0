"""A lab's reaper: a small process that outlives the lab's owner and removes what the owner left behind.

`python -m foundation.reaper LAB_ID OWNER_PID` is started by `LabSlot.guard()` in its own session, so a
Ctrl-C at the terminal never reaches it.  It blocks on the lab's lock, which the kernel hands over the
moment the owner releases it or dies, however it dies (a second Ctrl-C, nox's SIGKILL of pytest half-way
through its teardown, an xdist worker killed with its controller, the OOM killer).  If the lab's record is
still there and still the owner's, the owner did not take its lab down: the reaper removes the lab's VMs,
container, namespaces and scratch by the record, exactly as `./xenlab down` would, and says so in its log.
A lab that was taken down in order leaves no record, and the reaper just exits.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import sys
import time

from foundation import registry


def reap(lab_id: str, owner_pid: int) -> bool:
    """Wait until `owner_pid` no longer holds `lab_id`, then remove what it left.  True if it left anything."""
    log = logging.getLogger("xenlab.reaper")
    with open(registry.labs_dir() / f"{lab_id}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the owner releases it or dies
        state = registry.read_state(lab_id)
        if state is None or state.owner_pid != owner_pid:
            return False  # taken down in order (or already cleaned by `down`)
        started = time.monotonic()
        log.warning("lab %s: its owner (pid %d) ended without taking it down; removing what it left", lab_id, owner_pid)
        registry.remove_leftovers(lab_id)
        log.warning("lab %s: removed in %.1f s", lab_id, time.monotonic() - started)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return True


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # it exists to finish the job; `down --all` does the same work
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m foundation.reaper LAB_ID OWNER_PID", file=sys.stderr)
        return 2
    reap(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
