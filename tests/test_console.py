"""The serial console against a socket pair standing in for QEMU's chardev."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.errors import EmulationFault, FatalConsoleOutput, LabError, PhaseTimeout
from lab.console import SerialConsole, clean

Console = tuple[SerialConsole, socket.socket]  # the lab's end and QEMU's end of a serial line


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    qemu_end, lab_end = socket.socketpair()
    con = SerialConsole(lab_end, tmp_path / "console.log", "node1")
    yield con, qemu_end
    qemu_end.close()
    con.close()


def test_clean_strips_sercon_cursor_moves_inside_words() -> None:
    assert clean(b"PXELINUX\x1b[25;08H\x1b[25;09H 6.04\r\n") == "PXELINUX 6.04\n"


def test_expect_matches_across_an_escape_cut_by_a_read_boundary(console: Console) -> None:
    con, qemu = console
    qemu.sendall(b"iPXE init\x1b[2")
    time.sleep(0.05)
    qemu.sendall(b"5;08Hializing devices\n")
    assert con.expect(r"iPXE initializing devices", phase="firmware", timeout=5)


def test_every_byte_is_logged_raw(console: Console, tmp_path: Path) -> None:
    con, qemu = console
    qemu.sendall(b"A\x1b[1mB\r\n")
    con.expect("AB", phase="x", timeout=5)
    con.close()
    assert (tmp_path / "console.log").read_bytes() == b"A\x1b[1mB\r\n"


def test_expect_continues_after_the_previous_match(console: Console) -> None:
    con, qemu = console
    qemu.sendall(b"step 1\nstep 2\n")
    assert con.expect(r"step \d", phase="a", timeout=5).group(0) == "step 1"
    assert con.expect(r"step \d", phase="b", timeout=5).group(0) == "step 2"


def test_timeout_names_phase_pattern_and_last_lines(console: Console) -> None:
    con, qemu = console
    qemu.sendall(b"booting\nstill booting\n")
    with pytest.raises(PhaseTimeout) as err:
        con.expect("DONE", phase="kernel-start", timeout=0.3)
    text = str(err.value)
    assert "kernel-start" in text and "/DONE/" in text and "still booting" in text


def test_fatal_pattern_ends_the_wait_at_once_with_the_line(console: Console) -> None:
    con, qemu = console

    def panic_later() -> None:
        time.sleep(0.2)
        qemu.sendall(b"[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n")

    threading.Thread(target=panic_later).start()
    started = time.monotonic()
    with pytest.raises(FatalConsoleOutput, match="Unable to mount root fs"):
        con.expect("never printed", phase="install", timeout=30)
    assert time.monotonic() - started < 5


def test_xens_crash_in_its_svm_exit_path_is_the_labs_failure(console: Console) -> None:
    con, qemu = console
    qemu.sendall((Path(__file__).parent / "data/xen-4.17-svm-exit-crash.log").read_bytes())
    with pytest.raises(EmulationFault, match=r"svm_vmexit_handler\+0x25/0x14e0") as err:
        con.expect("never printed", phase="guests", timeout=30)
    assert isinstance(err.value, LabError) and "exit path" in str(err.value)


def test_xen_refusing_to_build_dom0_stays_the_products_failure(console: Console) -> None:
    con, qemu = console
    qemu.sendall(
        b"(XEN) ****************************************\n(XEN) Panic on CPU 0:\n(XEN) Could not construct domain 0\n"
    )
    with pytest.raises(FatalConsoleOutput) as err:
        con.expect("never printed", phase="xen", timeout=30)
    assert not isinstance(err.value, LabError)


def test_eof_is_reported_as_the_vm_stopping(console: Console) -> None:
    con, qemu = console
    qemu.sendall(b"bye\n")
    qemu.close()
    with pytest.raises(PhaseTimeout, match="console closed"):
        con.expect("never", phase="poweroff", timeout=5)


def test_run_returns_output_and_status_without_the_echo(console: Console) -> None:
    con, qemu = console

    def shell() -> None:
        typed = b""
        while b"\r" not in typed:
            typed += qemu.recv(100)
        line = typed.decode().strip()
        qemu.sendall(line.encode() + b"\r\n")  # the terminal echoes the command line
        tag = line.split('echo "')[1].split(" rc")[0].replace('""', "")
        qemu.sendall(b"xen_major : 4\r\n" + tag.encode() + b" rc=3\r\n")

    threading.Thread(target=shell).start()
    out, rc = con.run("xl info | grep xen_major", phase="xl", timeout=10)
    assert (out, rc) == ("xen_major : 4\n", 3)


def test_what_came_since_a_mark_survives_the_window_s_trim(console: Console) -> None:
    """A mark taken before a long output still cuts at the right place after the window dropped its front."""
    con, qemu = console
    qemu.sendall(b"before\n")
    con.expect("before", phase="x", timeout=5)
    mark = con.position
    qemu.sendall(b"after the mark\n" + b"x" * 300_000 + b"\nend\n")  # more than the window holds
    con.expect("end", phase="x", timeout=5)
    assert con.since(mark).endswith("x\nend\n") and "before" not in con.since(mark)
    qemu.sendall(b"tail\n")
    con.expect("tail", phase="x", timeout=5)
    assert con.since(con.position - 5) == "tail\n"
