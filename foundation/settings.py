"""Every `XENLAB_*` environment variable, in one typed table, read once per process (`current()`).

| variable | meaning | default |
|---|---|---|
| `XENLAB_CACHE` | built images and fetched packages, shared by every run | `/var/cache/xenlab` |
| `XENLAB_WORK` | per-lab scratch (disk overlays, sockets, the served tree) | `/var/tmp/xenlab` |
| `XENLAB_ARTIFACTS` | where each run's logs go | `<repository>/artifacts` |
| `XENLAB_STATE_DIR` | labs' locks and records, Xen-host slots, runc's state | `/run/xenlab` |
| `XENLAB_ACCEL` | `tcg` skips the KVM probe | (probe) |
| `XENLAB_XEN_HOSTS` | nested Xen hosts at once on this machine | one per four cores |
| `XENLAB_KEEP` | `1`: labs stay up after their scenario until Ctrl-C (`--keep` sets it) | off |

A value that makes no sense is a PreflightError naming the variable, never a traceback deep in a run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import PreflightError

REPO = Path(__file__).resolve().parent.parent
KEEP = "XENLAB_KEEP"


@dataclass(frozen=True)
class Settings:
    cache: Path = Path("/var/cache/xenlab")
    work: Path = Path("/var/tmp/xenlab")
    artifacts: Path = REPO / "artifacts"
    state_dir: Path = Path("/run/xenlab")
    accel: str | None = None  # "tcg": no KVM probe
    xen_hosts: int | None = None  # None: one per four cores
    keep: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def path(name: str, default: Path) -> Path:
            value = env.get(name)
            if value is None or value == "":
                return default
            if not value.startswith("/"):
                raise PreflightError(f"{name}={value!r}: expected an absolute path", hint=f"unset {name} or fix it")
            return Path(value)

        accel = env.get("XENLAB_ACCEL") or None
        if accel not in (None, "tcg"):
            raise PreflightError(f"XENLAB_ACCEL={accel!r}: only 'tcg' is known", hint="unset it to probe KVM")
        hosts_text = env.get("XENLAB_XEN_HOSTS") or None
        try:
            hosts = int(hosts_text) if hosts_text is not None else None
        except ValueError:
            raise PreflightError(f"XENLAB_XEN_HOSTS={hosts_text!r}: expected a number", hint="e.g. 1") from None
        if hosts is not None and hosts < 1:
            raise PreflightError(f"XENLAB_XEN_HOSTS={hosts}: at least 1", hint="e.g. 1")
        keep = env.get(KEEP, "")
        if keep not in ("", "0", "1"):
            raise PreflightError(f"{KEEP}={keep!r}: expected 1 or 0", hint="--keep sets it for you")
        return cls(
            cache=path("XENLAB_CACHE", cls.cache),
            work=path("XENLAB_WORK", cls.work),
            artifacts=path("XENLAB_ARTIFACTS", cls.artifacts),
            state_dir=path("XENLAB_STATE_DIR", cls.state_dir),
            accel=accel,
            xen_hosts=hosts,
            keep=keep == "1",
        )


@functools.cache
def current() -> Settings:
    """This process's settings, read from its environment the first time they are asked for."""
    return Settings.from_env(os.environ)


def reread() -> Settings:
    """Forget what was read (a test that changed the environment), and read again."""
    current.cache_clear()
    return current()
