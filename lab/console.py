"""A VM's serial console: every byte logged, escape sequences stripped, waits that fail fast.

A reader thread pulls bytes through pexpect from QEMU's chardev socket, so the guest never blocks on a
full socket while nobody waits.  Every byte goes to the boot's log file untouched; a cleaned copy (ANSI
escapes, backspaces, CRs and NULs removed: SeaBIOS' serial console injects cursor moves in the middle of
words) is kept in a bounded window that waits match against.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import pexpect
import pexpect.fdpexpect

from foundation.errors import EmulationFault, FatalConsoleOutput, LabError, PhaseTimeout
from lab import xen_crash

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[c78()][0-9A-B]?|[\x08\r\x00]")
# An escape sequence cut by a read boundary: held back until its end arrives.
_PARTIAL_ESCAPE = re.compile(rb"\x1b(\[[0-9;?]*[ -/]*)?$")

DEFAULT_FATAL = (
    r"Kernel panic - not syncing[^\n]*",
    r"\(XEN\) Panic[^\n]*",
    r"\(XEN\) \*\*\*\*[^\n]*",
    r"Traceback \(most recent call last\)[^\n]*",
    r"XENLAB-INSTALL-FAILED[^\n]*",
    r"\[ERROR\] \S+: failed: [^\n]*",  # ncm-ncd's summary line for a failed component
)
WINDOW = 256 * 1024
INPUT_CHUNK = 16  # Xen drops console input sent faster than this (measured: 16 bytes per 40 ms is safe)
INPUT_PAUSE = 0.04


def clean(raw: bytes) -> str:
    return ANSI.sub(b"", raw).decode("utf-8", errors="replace")


class SerialConsole:
    """Reads one VM boot's console.  `expect()` waits for a pattern; `send_line()` types into it."""

    def __init__(self, sock: socket.socket, log_path: Path, name: str, fatal: Iterable[str] = DEFAULT_FATAL) -> None:
        self.name = name
        self.log_path = log_path
        self._sock = sock
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self._child = pexpect.fdpexpect.fdspawn(sock.fileno(), timeout=None)
        self._child.logfile_read = self._log
        self._fatal = re.compile("|".join(f"(?:{p})" for p in fatal)) if fatal else None
        self._text = ""  # cleaned window
        self._dropped = 0  # characters trimmed from the front of the window
        self._fatal_checked = 0  # absolute offset up to which fatal patterns were looked for
        self._fatal_hit: str | None = None
        self._emulation_crash: str | None = None  # the faulting frame, when the fatal hit is such a Xen crash
        self._pending = b""
        self._eof = False
        self._cond = threading.Condition()
        self._cursor = 0  # absolute offset where the next expect() starts searching
        self._commands = 0  # commands typed by run(), to make each end marker unique
        self._reader = threading.Thread(target=self._read_loop, name=f"console-{name}", daemon=True)
        self._reader.start()

    # --- reading -------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            try:
                chunk = self._child.read_nonblocking(65536, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            self._log.flush()
            self._feed(chunk)
        if self._pending:
            self._feed(b"", final=True)
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _feed(self, chunk: bytes, final: bool = False) -> None:
        raw = self._pending + chunk
        hold = None if final else _PARTIAL_ESCAPE.search(raw[-32:])
        if hold:
            cut = len(raw) - 32 + hold.start() if len(raw) > 32 else hold.start()
            raw, self._pending = raw[:cut], raw[cut:]
        else:
            self._pending = b""
        text = clean(raw)
        with self._cond:
            self._text += text
            self._check_fatal()
            if len(self._text) > WINDOW:
                cut = len(self._text) - WINDOW // 2
                self._text = self._text[cut:]
                self._dropped += cut
            self._cond.notify_all()

    def _check_fatal(self) -> None:
        if self._fatal is None or self._fatal_hit:
            return
        start = max(self._fatal_checked - self._dropped, 0)
        # Only complete lines, so that a pattern is matched once its whole line has arrived.
        end = self._text.rfind("\n") + 1
        if end <= start:
            return
        m = self._fatal.search(self._text, start, end)
        if m:
            self._fatal_hit = m.group(0).strip()
            if self._fatal_hit.startswith("(XEN)"):
                self._emulation_crash = xen_crash.emulated_virtualisation_crash(self._text[: m.end()])
        self._fatal_checked = self._dropped + end

    # --- waiting -------------------------------------------------------------------------------------------
    def tail(self, lines: int = 25) -> str:
        with self._cond:
            return "\n".join(self._text.splitlines()[-lines:])

    @property
    def text(self) -> str:
        """Everything still in the window (recent output)."""
        with self._cond:
            return self._text

    @property
    def position(self) -> int:
        """How many cleaned characters the console has read so far (a mark for `since`)."""
        with self._cond:
            return self._dropped + len(self._text)

    def since(self, position: int) -> str:
        """What came after `position`, as much of it as the window still holds."""
        with self._cond:
            return self._text[max(position - self._dropped, 0) :]

    def check(self) -> None:
        """Raise at once if a fatal pattern has appeared."""
        with self._cond:
            hit, crash = self._fatal_hit, self._emulation_crash
        if crash:
            raise EmulationFault(
                f"{self.name}: Xen crashed in its hardware virtualisation's exit path ({crash}): under QEMU's TCG "
                "that is the emulated SVM's doing, not the system under test's; the lab's retry runs it again\n"
                f"--- last console lines ({self.log_path}) ---\n{self.tail()}"
            )
        if hit:
            raise FatalConsoleOutput(
                f"{self.name}: fatal console output: {hit}\n--- last console lines ({self.log_path}) ---\n{self.tail()}"
            )

    def expect(self, pattern: str, *, phase: str, timeout: float) -> re.Match[str]:
        """Wait until `pattern` (a regex) appears after the previous match; return the match.

        Raises `FatalConsoleOutput` as soon as a fatal pattern appears, `PhaseTimeout` with the last lines
        of the console when `timeout` passes, and `ProductFailure`-flavoured EOF errors when QEMU closed.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = max(self._cursor - self._dropped, 0)
                m = regex.search(self._text, start)
                if m:
                    self._cursor = self._dropped + m.end()
                    return m
                if self._fatal_hit:
                    break
                if self._eof:
                    raise PhaseTimeout(self._message(phase, pattern, "the console closed (the VM stopped)"))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PhaseTimeout(self._message(phase, pattern, f"timed out after {timeout:.0f} s"))
                self._cond.wait(min(remaining, 1.0))
        self.check()
        raise AssertionError("unreachable")

    def _message(self, phase: str, pattern: str, why: str) -> str:
        return (
            f"{self.name}: phase {phase!r}: waiting for /{pattern}/: {why}\n"
            f"--- last console lines ({self.log_path}) ---\n{self.tail()}"
        )

    # --- writing -------------------------------------------------------------------------------------------
    def send_line(self, line: str) -> None:
        self.send_keys((line + "\r").encode())

    def send_keys(self, data: bytes) -> None:
        """Type bytes as they are (control keys included), paced so that Xen drops none."""
        for i in range(0, len(data), INPUT_CHUNK):
            self._sock.sendall(data[i : i + INPUT_CHUNK])
            time.sleep(INPUT_PAUSE)

    def run(self, command: str, *, phase: str, timeout: float) -> tuple[str, int]:
        """Type `command` into the shell on this console; return its output and exit status.

        The command is followed by an end marker carrying `$?`, so output and status come back even though
        the console echoes what is typed.
        """
        self._commands += 1
        tag = f"XENLAB-END-{self._commands}"
        # The marker is split in the typed text so that the echo of the command line never matches it.
        typed_tag = f'{tag[:6]}""{tag[6:]}'
        self.send_line(f'{command}; echo "{typed_tag} rc=$?"')
        m = self.expect(rf"(?s)(.*?)(?<!\"){tag} rc=(\d+)", phase=phase, timeout=timeout)
        lines = [line for line in m.group(1).split("\n") if typed_tag not in line]  # drop the echoed command
        return "\n".join(lines).lstrip("\n"), int(m.group(2))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(timeout=5)
        self._sock.close()
        self._log.close()


def connect(path: Path, *, timeout: float = 15.0) -> socket.socket:
    """Connect to QEMU's serial socket as soon as QEMU has created it."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise LabError(f"QEMU's serial socket {path} did not appear within {timeout:.0f} s") from None
            time.sleep(0.02)
