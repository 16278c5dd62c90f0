"""Where the lab keeps things: the image cache, artifacts of runs, and the repository itself."""

from __future__ import annotations

import time
from pathlib import Path

from foundation import settings
from foundation.settings import REPO

__all__ = ["REPO", "artifacts_root", "cache_dir", "new_run_dir", "state_dir", "work_root"]


def cache_dir() -> Path:
    """Built images and fetched packages, shared by every run on the machine (content-addressed)."""
    return settings.current().cache


def work_root() -> Path:
    """Per-lab scratch (disk overlays, sockets, the served tree); removed with the lab."""
    return settings.current().work


def artifacts_root() -> Path:
    return settings.current().artifacts


def state_dir() -> Path:
    """Labs' locks and records, Xen-host slots, runc's state."""
    return settings.current().state_dir


def new_run_dir(label: str) -> Path:
    """A fresh directory for one run's logs: artifacts/<time>-<label>, never reused."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = artifacts_root() / f"{stamp}-{label}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}.{n}")
