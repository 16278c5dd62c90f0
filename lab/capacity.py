"""How many nested Xen hosts this machine runs at once: a machine-wide semaphore of flock'd slot files.

A Xen host under TCG keeps two host cores busy.  Two of them on a 2-core machine starve each other's dom0
until libxl's fixed 40 s device-hotplug timeout fails `xl create` (seen in CI), so scenarios that boot a Xen
host take a slot first, whichever pytest-xdist worker or other run they come from; the others wait.  The
kernel drops a slot when its holder dies, so a crashed run never leaves one taken.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from foundation import settings
from foundation.errors import LabError
from foundation.paths import state_dir

log = logging.getLogger("xenlab.capacity")

CORES_PER_XEN_HOST = 4  # two vCPUs of TCG plus the install server, the test process and the machine


def xen_host_slots() -> int:
    """`XENLAB_XEN_HOSTS` if set, else one Xen host per four cores (at least one)."""
    configured = settings.current().xen_hosts
    if configured is not None:
        return configured
    return max(1, (os.cpu_count() or 1) // CORES_PER_XEN_HOST)


@contextmanager
def xen_host_slot(timeout: float = 7200) -> Iterator[int]:
    """Hold one of the machine's Xen-host slots for the block; waits (saying so) while all are taken."""
    directory = state_dir() / "xen-hosts"
    directory.mkdir(parents=True, exist_ok=True)
    count = xen_host_slots()
    deadline = time.monotonic() + timeout
    said = False
    while True:
        for index in range(count):
            handle = open(directory / f"slot{index}.lock", "w")  # noqa: SIM115 - held for the block
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                if said:
                    log.info("Xen-host slot %d is free: going on", index)
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if not said:
            log.info("all %d Xen-host slot(s) are taken by other runs: waiting (XENLAB_XEN_HOSTS sets how many)", count)
            said = True
        if time.monotonic() > deadline:
            raise LabError(
                f"no Xen-host slot came free within {timeout:.0f} s", hint="`./xenlab status` shows the labs"
            )
        time.sleep(1)
