"""A Xen guest's console as dom0's xenconsoled logs it, followed over SSH while the guest runs.

A guest on the lab's Xen host has no console of the lab's own: xenconsoled writes it to
`/var/log/xen/console/guest-<name>.log` in dom0 (the dom0 payload turns that on).  `GuestConsoleLog` reads
what was added since its last read (`tail -c +N`, at most every `interval` seconds), keeps a copy in the
run's artifacts, and matches each complete line, without xenconsoled's time stamp, against the installer
plug-in's patterns: a progress line is logged as it comes; as a watched thing of a wait (`check()`), the
first failure line raises `FatalConsoleOutput` with that line and the last ones before it.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Iterable
from pathlib import Path

from foundation.errors import FatalConsoleOutput, LabError
from foundation.process import run_bytes

log = logging.getLogger("xenlab.guest-console")

CONSOLE_LOG = "/var/log/xen/console/guest-{name}.log"
# xenconsoled's --timestamp=guest: "[2026-12-03 15:04:29] " before each line (kept in the copy, not matched)
STAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\] ?")
TAIL_LINES = 25


def _any_of(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


class GuestConsoleLog:
    def __init__(
        self,
        ssh_argv: list[str],
        name: str,
        copy: Path,
        *,
        failure: Iterable[str] = (),
        progress: Iterable[str] = (),
        interval: float = 3.0,
        path: str | None = None,
    ) -> None:
        self.ssh_argv = ssh_argv  # a command line that runs its last argument as a shell command in dom0
        self.name = name
        self.path = path or CONSOLE_LOG.format(name=name)
        self.copy = copy
        self.interval = interval
        self._failure = _any_of(failure)
        self._progress = _any_of(progress)
        self._read = 0  # bytes of the remote log read so far
        self._checked = 0  # characters of `text` looked at for patterns (complete lines only)
        self._last_fetch = 0.0
        self.text = ""
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("")

    def fetch(self) -> None:
        """Read what the guest wrote since the last fetch (nothing yet is not an error: xenconsoled makes the
        file when the guest first writes)."""
        self._last_fetch = time.monotonic()
        remote = f"tail -c +{self._read + 1} {shlex.quote(self.path)} 2>/dev/null || true"
        try:
            new = run_bytes([*self.ssh_argv, remote], timeout=30).stdout
        except LabError as exc:
            log.debug("%s: console not read this time: %s", self.name, exc)
            return
        if not new:
            return
        self._read += len(new)
        chunk = new.decode(errors="replace").replace("\r\n", "\n")
        self.text += chunk
        with self.copy.open("a") as out:
            out.write(chunk)

    def check(self, *, now: bool = False) -> None:
        """Fetch if `interval` has passed (or `now`); raise at a failure line, log each progress line once."""
        if not now and time.monotonic() - self._last_fetch < self.interval:
            return
        self.fetch()
        end = self.text.rfind("\n") + 1
        lines = self.text[self._checked : end]
        self._checked = max(self._checked, end)
        for stamped in lines.splitlines():
            line = STAMP.sub("", stamped)
            if self._progress is not None and self._progress.search(line):
                log.info("%s: %s", self.name, line.strip())
            if self._failure is not None and self._failure.search(line):
                raise FatalConsoleOutput(
                    f"{self.name}: fatal console output: {line.strip()}\n"
                    f"--- last console lines ({self.copy}) ---\n{self.tail()}"
                )

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(STAMP.sub("", line) for line in self.text.rstrip("\n").splitlines()[-lines:])
