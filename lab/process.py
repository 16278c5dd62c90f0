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

from lab.errors import CommandError

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
    """Run a command to completion and return its output; raise `CommandError` if it fails and `check`."""
    args = [os.fspath(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            args,
            input=input.decode() if input is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=child_env(env),
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(args, 127, "", str(exc), hint or f"install {args[0]!r}") from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(args, -signal.SIGKILL, out, err + f"\n(timed out after {timeout} s)", hint) from None
    log.debug("done in %.2fs: %s -> %d", time.monotonic() - started, args[0], proc.returncode)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stdout, proc.stderr, hint)
    return proc


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-lived helper with stdout and stderr appended to `log_path`.

    It runs in its own session so that a Ctrl-C aimed at the test run does not reach it half-way: the
    lab stops it on purpose, in order, from its cleanup.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("spawn: %s (log %s)", shlex.join(args), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(env),
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandError(args, 127, "", str(exc), f"install {args[0]!r}") from None


def stop(proc: subprocess.Popen[bytes], *, grace: float = 5.0) -> int:
    """Terminate a process we started, then kill it if it lingers; always reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


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
    args = [os.fspath(a) for a in argv]
    log.debug("run (log %s): %s", log_path, shlex.join(args))
    with open(log_path, "ab") as out:
        try:
            proc = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env(), timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise CommandError(args, 127, "", str(exc), hint or f"install {args[0]!r}") from None
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise CommandError(args, proc.returncode, "", tail, hint)


def peak_rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A live process's peak (VmHWM) or current (VmRSS) resident memory in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
