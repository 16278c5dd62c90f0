"""A QEMU virtual machine in the lab: configuration, disks, console and QMP.

QEMU runs inside the lab's network namespace (`ip netns exec`, which replaces itself, so the PID we hold
is QEMU's) with its NICs on taps of the lab bridge.  Disks are qcow2 overlays: a base image is never
written.  The serial port is a socket QEMU waits on (`wait=on`), so not one byte of firmware output is
lost; each start of QEMU is one boot with its own console log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp.legacy import QEMUMonitorProtocol

from foundation import netns
from foundation.errors import LabError, PhaseTimeout
from foundation.process import Child, peak_rss_mib, run, spawn
from foundation.registry import LabSlot
from lab.accel import Accelerator
from lab.console import SerialConsole, connect

log = logging.getLogger("xenlab.vm")

QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class NicConfig:
    mac: str
    tap: str
    model: str = "virtio-net-pci"


@dataclass(frozen=True)
class DiskConfig:
    """A disk: an overlay on `base` (never written), or a blank qcow2 of `size`."""

    name: str
    size: str = "8G"
    base: Path | None = None
    interface: str = "virtio"


@dataclass(frozen=True)
class VmConfig:
    name: str
    memory_mb: int = 512
    cpus: int = 1
    nics: tuple[NicConfig, ...] = ()
    disks: tuple[DiskConfig, ...] = ()
    boot_order: str = "nc"  # network first, then the first disk (what a PXE-managed node does)
    kernel: Path | None = None  # direct kernel boot instead of firmware
    initrd: Path | None = None
    append: str = ""


class Vm:
    """One VM of a lab.  `start()` boots it; `stop()` (or leaving the `with` block) ends it for good."""

    def __init__(
        self, config: VmConfig, *, slot: LabSlot, netns_name: str, work_dir: Path, log_dir: Path, accel: Accelerator
    ) -> None:
        self.config = config
        self.slot = slot
        self.netns = netns_name
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.accel = accel
        self.boots = 0
        self.proc: Child | None = None
        self.console: SerialConsole | None = None
        self.qmp: QEMUMonitorProtocol | None = None
        self._disks_ready = False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def qemu_name(self) -> str:
        return f"{self.slot.lab_id}-{self.name}"

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- disks ---------------------------------------------------------------------------------------------
    def disk_path(self, disk: DiskConfig) -> Path:
        return self.work_dir / f"{disk.name}.qcow2"

    def start_disks_from(self, bases: Mapping[str, Path]) -> None:
        """Before the first start: the named disks become overlays on these images (a restored snapshot's)
        instead of blank ones."""
        if self._disks_ready:
            raise LabError(f"{self.config.name}: its disks are made already; restore a snapshot before the first start")
        disks = tuple(dataclasses.replace(d, base=bases[d.name]) if d.name in bases else d for d in self.config.disks)
        self.config = dataclasses.replace(self.config, disks=disks)

    def _prepare_disks(self) -> None:
        if self._disks_ready:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for disk in self.config.disks:
            path = self.disk_path(disk)
            if disk.base is not None:
                fmt = "qcow2" if disk.base.suffix == ".qcow2" else "raw"
                run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", disk.base.resolve(), path])
            else:
                run(["qemu-img", "create", "-q", "-f", "qcow2", path, disk.size])
        self._disks_ready = True

    # --- QEMU ----------------------------------------------------------------------------------------------
    def argv(self) -> list[str]:
        c = self.config
        serial = self.work_dir / "serial.sock"
        qmp = self.work_dir / "qmp.sock"
        args = [
            QEMU,
            "-name",
            f"{self.qemu_name},process={self.qemu_name}",
            "-machine",
            "pc,graphics=off",  # graphics=off: SeaBIOS and iPXE print on the serial port
            *self.accel.qemu_args(),
            "-m",
            str(c.memory_mb),
            "-smp",
            str(c.cpus),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-vga",
            "none",
            "-no-reboot",
            "-chardev",
            f"socket,id=serial0,path={serial},server=on,wait=on",
            "-serial",
            "chardev:serial0",
            "-qmp",
            f"unix:{qmp},server=on,wait=off",
            "-pidfile",
            str(self.work_dir / "qemu.pid"),
        ]
        for i, nic in enumerate(c.nics):
            args += [
                "-netdev",
                f"tap,id=net{i},ifname={nic.tap},script=no,downscript=no",
                "-device",
                f"{nic.model},netdev=net{i},mac={nic.mac}",
            ]
        for disk in c.disks:
            args += ["-drive", f"file={self.disk_path(disk)},format=qcow2,if={disk.interface},cache=unsafe"]
        if c.kernel:
            args += ["-kernel", str(c.kernel), "-append", c.append]
            if c.initrd:
                args += ["-initrd", str(c.initrd)]
        else:
            args += ["-boot", f"order={c.boot_order}"]
        return args

    def start(self) -> SerialConsole:
        """Boot the VM (again): a new QEMU process and a new console log."""
        if self.running:
            raise LabError(f"{self.name} is already running")
        self._prepare_disks()
        self.boots += 1
        for socket_name in ("serial.sock", "qmp.sock"):
            (self.work_dir / socket_name).unlink(missing_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = netns.exec_argv(self.netns, self.argv())
        self.proc = spawn(argv, log_path=self.log_dir / "qemu.log")
        self.slot.note(pids=self.proc.pid)
        log.info("%s: boot %d started (QEMU pid %d, %s)", self.name, self.boots, self.proc.pid, self.accel.name)
        try:
            sock = connect(self.work_dir / "serial.sock")
        except LabError:
            self._raise_if_dead("QEMU did not open its serial socket")
            raise
        self.console = SerialConsole(sock, self.log_dir / f"console-boot{self.boots}.log", self.name)
        self.qmp = QEMUMonitorProtocol(str(self.work_dir / "qmp.sock"))
        self._connect_qmp()
        return self.console

    def _connect_qmp(self) -> None:
        assert self.qmp is not None
        deadline = time.monotonic() + 10
        while True:
            try:
                self.qmp.connect()
                return
            except (OSError, Exception) as exc:  # qemu.qmp raises its own ConnectError types
                self._raise_if_dead("QEMU stopped before its QMP socket answered")
                if time.monotonic() > deadline:
                    raise LabError(f"{self.name}: QMP did not answer: {exc}") from None
                time.sleep(0.05)

    def _raise_if_dead(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.log_dir / "qemu.log").read_text(errors="replace")[-2000:]
            raise LabError(
                f"{self.name}: {what}; QEMU exited with {self.proc.returncode}:\n{tail}",
                hint="check the QEMU arguments and that the tap exists in the lab namespace",
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_mib(self) -> float:
        """QEMU's peak resident memory so far (guest RAM it touched plus TCG's translation cache)."""
        return peak_rss_mib(self.proc.pid) if self.running and self.proc else 0.0

    def wait_exit(self, *, phase: str, timeout: float) -> int:
        """Wait for QEMU to exit (the guest powered off); fatal console output ends the wait at once."""
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while self.proc.poll() is None:
            if self.console:
                self.console.check()
            if time.monotonic() > deadline:
                tail = self.console.tail() if self.console else ""
                raise PhaseTimeout(
                    f"{self.name}: phase {phase!r}: the VM did not power off within {timeout:.0f} s"
                    f"\n--- last console lines ---\n{tail}"
                )
            time.sleep(0.1)
        self._after_exit()
        return self.proc.wait()

    def _after_exit(self) -> None:
        if self.qmp is not None:
            with contextlib.suppress(Exception):  # the peer is gone; nothing to close cleanly
                self.qmp.close()
            self.qmp = None
        if self.console is not None:
            self.console.close()
        if self.proc is not None:
            self.slot.forget(pids=self.proc.pid)

    def _save_translation_stats(self) -> None:
        """TCG's account of its translation cache (`info jit`: blocks translated, cache use, flushes) in
        `<node>/qemu-jit.txt`: whether the emulated machines outgrew it (each flush retranslates all their code)."""
        assert self.qmp is not None
        with contextlib.suppress(Exception):  # a diagnostic: never in the way of stopping the VM
            text = self.qmp.cmd("human-monitor-command", **{"command-line": "info jit"})
            (self.log_dir / "qemu-jit.txt").write_text(str(text))

    def stop(self) -> None:
        """Power the VM off now (QMP quit, then kill) and release its console."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.qmp is not None:
            self._save_translation_stats()
            try:
                self.qmp.cmd("quit")
                self.proc.wait(5)
            except Exception:  # QMP may already be gone; fall through to the signal
                pass
        self.proc.stop()
        self._after_exit()
