"""Files of a VM's installed disk, read after the VM is off, without mounting anything (debugfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab import host_snapshot


def root_file(disk: Path, path: str, work: Path) -> str | None:
    """A file of the root file system (label `root`) of a VM's qcow2 disk, read without mounting it."""
    raw = work / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True, timeout=600)
    try:
        for offset, size in host_snapshot.partitions(raw):
            part = work / "part.img"
            dd = ["dd", f"if={raw}", f"of={part}", "bs=1M", f"skip={offset // 2**20}", f"count={size // 2**20}"]
            subprocess.run([*dd, "status=none"], check=True, timeout=600)
            label = subprocess.run(
                ["blkid", "-p", "-o", "value", "-s", "LABEL", str(part)], capture_output=True, text=True
            )
            if label.stdout.strip() == host_snapshot.ROOT_LABEL:
                shown = subprocess.run(
                    ["debugfs", "-R", f"cat /{path.lstrip('/')}", str(part)], capture_output=True, text=True
                )
                part.unlink()
                return shown.stdout or None
            part.unlink()
    finally:
        raw.unlink(missing_ok=True)
    return None
