"""A Xen guest's console as dom0's xenconsoled logs it, followed over SSH while the guest runs.

A guest on the lab's Xen host has no console of the lab's own: xenconsoled writes it to
`/var/log/xen/console/guest-<name>.log` in dom0 (the dom0 payload turns that on).  `GuestConsoleLog` reads
what was added since its last read (`tail -c +N`, at most every `interval` seconds; a file that shrank is
read again from its start), keeps a copy in the run's artifacts, notes when dom0 last answered and when the
log last grew (signs of life for `lab.stall`), and matches each complete line, without xenconsoled's time
stamp, against the installer plug-in's patterns: a progress line is logged as it comes; as a watched thing of
a wait (`check()`), the first failure line raises `FatalConsoleOutput` with that line and the last ones
before it.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from foundation.errors import FatalConsoleOutput, LabError
from foundation.process import run_bytes

log = logging.getLogger("xenlab.guest-console")

CONSOLE_LOG = "/var/log/xen/console/guest-{name}.log"
# xenconsoled's --timestamp=guest: "[2026-12-03 15:04:29] " before each line (kept in the copy, not matched)
STAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\] ?")
TAIL_LINES = 25
RESTARTED = "--- xenlab: the log started afresh here (the file was truncated in dom0) ---\n"


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ssh_argv = ssh_argv  # a command line that runs its last argument as a shell command in dom0
        self.name = name
        self.path = path or CONSOLE_LOG.format(name=name)
        self.copy = copy
        self.interval = interval
        self.clock = clock
        self._failure = _any_of(failure)
        self._progress = _any_of(progress)
        self._read = 0  # bytes of the remote log read so far
        self._checked = 0  # characters of `text` looked at for patterns (complete lines only)
        self._last_fetch = 0.0
        self.answered: float | None = None  # `clock()` at dom0's last answer to a read
        self.grew: float | None = None  # ... of the last read that brought new bytes
        self.text = ""
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("")

    def fetch(self) -> None:
        """Read what the guest wrote since the last fetch (nothing yet is not an error: xenconsoled makes the
        file when the guest first writes).  A log that shrank was started afresh (QEMU truncates an HVM
        guest's serial file when the rebooted guest gets a new device model): it is read from its start."""
        self._last_fetch = self.clock()
        path = shlex.quote(self.path)
        # its size first, then what is new: all of it when the file is shorter than what was read
        remote = (
            f"s=$(stat -c %s {path} 2>/dev/null) || exit 0; echo $s; "
            f"if [ $s -lt {self._read} ]; then cat {path}; else tail -c +{self._read + 1} {path}; fi"
        )
        try:
            out = run_bytes([*self.ssh_argv, remote], timeout=30).stdout
        except LabError as exc:
            log.debug("%s: console not read this time: %s", self.name, exc)
            return
        self.answered = self._last_fetch
        size, _, new = out.partition(b"\n")
        if size.strip().isdigit() and int(size) < self._read:
            log.info("%s: %s started afresh (%d bytes, %d read before)", self.name, self.path, int(size), self._read)
            self._read = 0
            self._restart_text()
        if not new:
            return
        self._read += len(new)
        self.grew = self._last_fetch
        chunk = new.decode(errors="replace").replace("\r\n", "\n")
        self.text += chunk
        with self.copy.open("a") as out_file:
            out_file.write(chunk)

    def _restart_text(self) -> None:
        """Mark the restart in the copy; the old text (complete lines, checked) is not looked at again."""
        if self.text and not self.text.endswith("\n"):
            self.text += "\n"
        self.text += RESTARTED
        self._checked = len(self.text)
        with self.copy.open("a") as out_file:
            out_file.write(RESTARTED)

    def check(self, *, now: bool = False) -> None:
        """Fetch if `interval` has passed (or `now`); raise at a failure line, log each progress line once."""
        if not now and self.clock() - self._last_fetch < self.interval:
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
