"""What every ncm component gets: the target root, --noaction, logging, and one way to run commands.

Commands are argv lists, never shell strings: nothing from a profile is ever interpreted by a shell.  With
--noaction, a command that changes the system is reported and not run; queries still run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from quattor.profile import Profile


class ComponentError(Exception):
    """The component could not do its job; the message says what to fix."""


def failure_detail(proc: subprocess.CompletedProcess[str], tail: int = 3) -> str:
    """What a failed command said: its first error line (the cause, where tools like xl print a cascade of
    follow-on errors after it) and its last lines."""
    lines = [line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
    first_error = next((line for line in lines if "error" in line.lower()), None)
    last = lines[-tail:]
    if first_error is not None and first_error not in last:
        return " / ".join([first_error, "...", *last])  # ASCII: it goes to serial consoles
    return " / ".join(last)


@dataclass
class Context:
    root: Path = Path("/")
    noaction: bool = False
    changes: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})

    def path(self, absolute: str) -> Path:
        """A path of the managed system, under --root when one is given."""
        return self.root / absolute.lstrip("/")

    def info(self, message: str) -> None:
        print(f"[INFO] {message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"[WARN] {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"[ERROR] {message}", file=sys.stderr, flush=True)

    def change(self, message: str) -> bool:
        """Record a change; returns whether to really make it (False under --noaction)."""
        self.changes.append(message)
        self.info(("would " if self.noaction else "") + message)
        return not self.noaction

    def show(self, absolute: str, content: str) -> None:
        """Under --noaction: the whole file that would be written, so it can be reviewed before it is."""
        body = "".join(f"    | {line}\n" for line in content.splitlines())
        print(f"[INFO] would write {absolute}:\n{body}", end="", file=sys.stderr, flush=True)

    def run(
        self, argv: list[str], *, changes: bool, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        if changes and not self.change(f"run {shlex.join(argv)}"):
            return subprocess.CompletedProcess(argv, 0, "", "")
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
        if check and proc.returncode != 0:
            raise ComponentError(f"{shlex.join(argv)} failed with status {proc.returncode}: {failure_detail(proc)}")
        return proc

    def write_file(self, absolute: str, content: str, *, mode: int = 0o644) -> bool:
        """Write a file if its content differs, keeping the previous one as `<file>.old`.

        Nothing is lost at any point of a failure (a full disk, a crash): the new content goes to a temporary
        file beside the target, is fsync'ed, and only then renamed over it; the previous version is kept by a
        hard link made before the rename, so the target always exists, old or new, and never half-written."""
        target = self.path(absolute)
        if target.is_file() and not target.is_symlink() and target.read_text() == content:
            return False
        if not self.change(f"{'update' if target.exists() else 'create'} {absolute}"):
            self.show(absolute, content)
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".ncm-new")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            tmp.chmod(mode)
            if target.is_file() and not target.is_symlink():
                old = target.with_name(target.name + ".old")
                old.unlink(missing_ok=True)
                os.link(target, old)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ComponentError(
                f"cannot write {absolute}: {exc.strerror or exc}; the previous file is untouched"
            ) from None
        _fsync_dir(target.parent)
        return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Component(Protocol):
    name: str

    def configure(self, profile: Profile, ctx: Context) -> None: ...
