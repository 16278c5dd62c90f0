"""Where the lab keeps things: the image cache, artifacts of runs, and the repository itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Built images and fetched packages, shared by every run on the machine (content-addressed)."""
    return Path(os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"))


def work_root() -> Path:
    """Per-lab scratch (disk overlays, sockets, the served tree); removed with the lab."""
    return Path(os.environ.get("XENLAB_WORK", "/var/tmp/xenlab"))


def artifacts_root() -> Path:
    return Path(os.environ.get("XENLAB_ARTIFACTS", REPO / "artifacts"))


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
