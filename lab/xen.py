"""A Xen host's state, saved into a run's artifacts: what a person reads when a guest did not come up.

`xl info`, `xl list`, `xl dmesg` and all of `/var/log/xen` (each guest's console as xenconsoled logged it,
libxl's per-domain logs, the bootloader's logs), taken over SSH from dom0.  Saving never raises: it runs on
failure paths, where the host may be the thing that broke.
"""

from __future__ import annotations

import logging
from pathlib import Path

from foundation.errors import LabError
from foundation.process import run, run_bytes
from lab.ssh import SshAccess

log = logging.getLogger("xenlab.xen")

COMMANDS = {"xl-info.txt": "xl info", "xl-list.txt": "xl list", "xl-dmesg.txt": "xl dmesg"}


def save_state(ssh: SshAccess, address: str, dest: Path) -> bool:
    """Save the host's Xen state into `dest`; False (and a warning) when the host could not be read."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        run([*ssh.argv(address), "true"], timeout=30, hint="no SSH to dom0")
        for name, command in COMMANDS.items():
            proc = run_bytes([*ssh.argv(address), command], check=False, timeout=60)
            (dest / name).write_bytes(proc.stdout + proc.stderr)
        tar = run_bytes([*ssh.argv(address), "tar -C /var/log/xen -cf - ."], timeout=120)
        run(["tar", "-C", dest, "-xf", "-"], input=tar.stdout, timeout=60)
    except (OSError, LabError) as exc:
        log.warning("could not save the Xen state of %s into %s: %s", address, dest, exc)
        return False
    log.info("Xen state of %s saved in %s (guest consoles and HVM serial lines in console/)", address, dest)
    return True
