"""Phases: named, timed steps of a lab run, logged as they pass and saved as the run's timing table.

Every wait in a scenario happens inside a phase, so the same names appear in the log, in a timeout's error
and in the per-phase table a benchmark prints (`dhcp`, `kernel-fetch`, `kickstart`, `ack`…).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("xenlab.phase")


@dataclass
class PhaseRecord:
    subject: str  # a node, or "lab"
    phase: str
    start: float  # seconds since the timeline began
    end: float | None = None
    outcome: str = "running"  # ok, failed, running

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.records: list[PhaseRecord] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    @contextmanager
    def phase(self, subject: str, name: str) -> Iterator[PhaseRecord]:
        record = PhaseRecord(subject, name, self.now())
        self.records.append(record)
        log.info("%s: %s…", subject, name)
        try:
            yield record
        except BaseException:
            record.end, record.outcome = self.now(), "failed"
            log.error("%s: %s failed after %.1f s", subject, name, record.seconds or 0)
            raise
        record.end, record.outcome = self.now(), "ok"
        log.info("%s: %s done in %.2f s (at %.1f s)", subject, name, record.seconds or 0, record.end)

    def mark(self, subject: str, name: str, at: float | None = None, *, since: float | None = None) -> PhaseRecord:
        """A milestone seen after the fact (an install-server event, `at` its time.monotonic()): a phase that
        ends then and starts at `since` (seconds into the timeline), else where the subject's last one ended."""
        t = self.now() if at is None else at - self.t0
        previous = [r.end for r in self.records if r.subject == subject and r.end is not None]
        record = PhaseRecord(subject, name, max(previous, default=0.0) if since is None else since, t, "ok")
        self.records.append(record)
        log.info("%s: %s at %.2f s", subject, name, t)
        return record

    def table(self) -> str:
        rows = [f"{'subject':<14} {'phase':<22} {'start':>8} {'seconds':>8}  outcome"]
        for r in self.records:
            secs = f"{r.seconds:8.2f}" if r.seconds is not None else "       -"
            rows.append(f"{r.subject:<14} {r.phase:<22} {r.start:8.2f} {secs}  {r.outcome}")
        return "\n".join(rows)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(r) | {"seconds": r.seconds} for r in self.records], indent=1))
