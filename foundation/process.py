"""The one way this project runs a command.

Every command is logged with its exact argv, gets stdin from /dev/null and an explicit environment, and is
always reaped.  A failure raises `CommandError` with the command, its status and its output.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from foundation.errors import CommandError

log = logging.getLogger("xenlab.process")

# What every child gets unless the caller adds to it: no locale surprises, a PATH with the sbin dirs.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "HOME": os.environ.get("HOME", "/root"),
}


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(BASE_ENV)
    if extra:
        env.update(extra)
    return env


class Child:
    """A process this project started: its argv logged, its environment set, reaped on every path.

    Use it as a context manager (`with start(...) as child:`): leaving the block stops it (SIGTERM, then
    SIGKILL after the grace period) and reaps it, whatever happened inside.
    """

    def __init__(self, popen: subprocess.Popen[bytes], argv: list[str], grace: float) -> None:
        self.popen = popen
        self.argv = argv
        self.grace = grace

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def stdout(self) -> IO[bytes]:
        assert self.popen.stdout is not None, f"{self.argv[0]} was started without stdout=PIPE"
        return self.popen.stdout

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self, grace: float | None = None) -> int:
        """Terminate it, then kill it if it lingers; always reap it.  Returns its exit status."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(self.grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        return self.popen.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    new_session: bool = False,
    grace: float = 5.0,
    hint: str | None = None,
) -> Child:
    """The one place a process is started: argv logged, the base environment plus `env`, stdin from
    /dev/null unless given; a missing program is a `CommandError` whose hint says what to install."""
    args = [os.fspath(a) for a in argv]
    log.debug("start: %s", shlex.join(args))
    try:
        popen = subprocess.Popen(
            args, stdin=stdin, stdout=stdout, stderr=stderr, env=child_env(env), cwd=cwd, start_new_session=new_session
        )
    except FileNotFoundError as exc:
        raise CommandError(args, 127, "", str(exc), hint or f"install {args[0]!r}") from None
    return Child(popen, args, grace)


def _complete(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    timeout: float | None,
    input: bytes | None,
    hint: str | None,
) -> tuple[list[str], int, bytes, bytes]:
    """Run a command to its end, its output captured; (argv, status, stdout, stderr).  A timeout kills it
    and is a `CommandError`."""
    started = time.monotonic()
    with start(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        hint=hint,
    ) as child:
        try:
            out, err = child.popen.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            child.popen.kill()
            out, err = child.popen.communicate()
            raise CommandError(
                child.argv,
                -signal.SIGKILL,
                out.decode(errors="replace"),
                err.decode(errors="replace") + f"\n(timed out after {timeout} s)",
                hint,
            ) from None
        status = child.popen.returncode
    log.debug("done in %.2fs: %s -> %d", time.monotonic() - started, child.argv[0], status)
    return child.argv, status, out, err


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = 600,
    input: bytes | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion and return its output as text; raise `CommandError` if it fails and
    `check`."""
    args, status, out, err = _complete(argv, env=env, cwd=cwd, timeout=timeout, input=input, hint=hint)
    proc = subprocess.CompletedProcess(args, status, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and status != 0:
        raise CommandError(args, status, proc.stdout, proc.stderr, hint)
    return proc


def run_bytes(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float | None = 600,
    input: bytes | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`run` for a command whose output is binary (a tar stream)."""
    args, status, out, err = _complete(argv, env=None, cwd=None, timeout=timeout, input=input, hint=hint)
    if check and status != 0:
        raise CommandError(args, status, "", err.decode(errors="replace"), hint)
    return subprocess.CompletedProcess(args, status, out, err)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start a long-lived helper with stdout and stderr appended to `log_path`.

    It runs in its own session so that a Ctrl-C aimed at the test run does not reach it half-way: the
    lab stops it on purpose, in order, from its cleanup.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return start(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, new_session=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def kill_pid(pid: int, *, must_contain: str, grace: float = 3.0) -> bool:
    """Kill a process the lab started, by PID, but only if its command line still carries our mark.

    PIDs are reused: a PID read from a crashed run's state file may belong to someone else by now, so the
    caller names a string (the lab's id) that our process has in its argv.
    """
    cmdline = pid_cmdline(pid)
    if not cmdline or not any(must_contain in part for part in cmdline):
        return False
    log.info("killing leftover process %d (%s)", pid, shlex.join(cmdline)[:120])
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def run_logged(
    argv: Sequence[str | os.PathLike[str]], *, log_path: Path, timeout: float = 60, hint: str | None = None
) -> None:
    """Run a command whose output, and that of anything it leaves running, goes to `log_path`.

    For launchers such as `runc run -d`: their detached child inherits stdout, so capturing it in a pipe
    would never see EOF.
    """
    with open(log_path, "ab") as out, start(argv, stdout=out, stderr=out, hint=hint) as proc:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.stop(grace=0)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise CommandError(proc.argv, proc.returncode or 0, "", tail, hint)


def peak_rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A live process's peak (VmHWM) or current (VmRSS) resident memory in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
