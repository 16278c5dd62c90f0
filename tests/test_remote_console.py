"""A guest's console followed the way the suite follows one in dom0, with the SSH hop replaced by a local
shell (the boundary): its failure lines raise with the reason, progress is logged once, the copy is whole."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from foundation.errors import FatalConsoleOutput
from lab import installer_plugin
from lab.remote_console import GuestConsoleLog

LOCAL_SHELL = ["sh", "-c"]


def follow(tmp_path: Path, log: Path) -> GuestConsoleLog:
    plugin = installer_plugin.load(installer_plugin.DEFAULT)  # the lab's own installer's patterns
    return GuestConsoleLog(
        LOCAL_SHELL,
        "ks-case",
        tmp_path / "copy" / "console.log",
        failure=plugin.failure,
        progress=plugin.progress,
        interval=0,
        path=str(log),
    )


def test_a_failure_line_raises_with_its_reason_only_once_the_line_is_complete(tmp_path: Path) -> None:
    log = tmp_path / "guest-ks-case.log"
    console = follow(tmp_path, log)
    console.check()  # no file yet: xenconsoled makes it at the guest's first byte
    log.write_bytes(
        b"[2026-12-03 15:04:29] [    1.0] Linux version 6.1\r\n"
        b"[2026-12-03 15:04:31] XENLAB-INSTALL-FAILED unsupported kick"
    )
    console.check()  # half a line: not yet
    with log.open("ab") as f:
        f.write(b"start command(s): lang\r\nreboot: Restarting system\r\n")
    with pytest.raises(FatalConsoleOutput) as excinfo:
        console.check()
    first = str(excinfo.value).splitlines()[0]
    assert first == "ks-case: fatal console output: XENLAB-INSTALL-FAILED unsupported kickstart command(s): lang"
    assert "reboot: Restarting system" in str(excinfo.value)  # the last lines come with it
    assert "\nXENLAB-INSTALL-FAILED unsupported kickstart command(s): lang\n" in str(excinfo.value)  # unstamped
    assert (tmp_path / "copy" / "console.log").read_text() == log.read_text().replace("\r\n", "\n")  # as logged


def test_progress_lines_are_logged_once_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "guest-ks-case.log"
    console = follow(tmp_path, log)
    log.write_text("XENLAB-INSTALL partition: / 3072 MiB\n")
    with caplog.at_level(logging.INFO, logger="xenlab.guest-console"):
        console.check()
        with log.open("a") as f:
            f.write("XENLAB-INSTALL payload: 80 MiB unpacked\n")
        console.check()
        console.check()
    said = [r.getMessage() for r in caplog.records]
    assert said == ["ks-case: XENLAB-INSTALL partition: / 3072 MiB", "ks-case: XENLAB-INSTALL payload: 80 MiB unpacked"]


def test_a_log_started_afresh_is_read_from_its_start(tmp_path: Path) -> None:
    """QEMU truncates an HVM guest's serial file at its reboot: what the new boot writes is read, not skipped
    as if it were the old file's first bytes."""
    log = tmp_path / "hvm-serial-ks-case.log"
    console = follow(tmp_path, log)
    log.write_text("SeaBIOS (version 1.16.2)\niPXE booting the installer\n" + "x" * 500 + "\n")
    console.check()
    log.write_text("GRUB loading.\nXENLAB-INSTALL-FAILED after the reboot\n")  # shorter than what was read
    with pytest.raises(FatalConsoleOutput) as excinfo:
        console.check()
    assert "XENLAB-INSTALL-FAILED after the reboot" in str(excinfo.value).splitlines()[0]
    copy = (tmp_path / "copy" / "console.log").read_text()
    assert copy.index("iPXE booting") < copy.index("started afresh") < copy.index("GRUB loading.")


def test_signs_of_life_say_when_dom0_answered_and_when_the_log_grew(tmp_path: Path) -> None:
    log = tmp_path / "guest-ks-case.log"
    console = follow(tmp_path, log)
    assert console.answered is None and console.grew is None
    console.check()
    assert console.answered is not None and console.grew is None  # dom0 answered; the guest wrote nothing yet
    log.write_text("Linux version 6.1\n")
    console.check()
    grew = console.grew
    assert grew is not None
    console.check()
    assert console.grew == grew and console.answered is not None and console.answered > grew


def test_dom0_not_answering_is_no_sign_of_life(tmp_path: Path) -> None:
    console = GuestConsoleLog(["sh", "-c", "exit 255", "--"], "ks-case", tmp_path / "copy.log", interval=0)
    console.check()
    assert console.answered is None and console.text == ""
