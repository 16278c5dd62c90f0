"""What a Xen host VM that stopped answering was doing, read from outside it, and whose fault that is.

Looks that need nothing of dom0's network: QEMU's view of each vCPU (`info registers -a` over QMP, twice, a
few seconds apart: an instruction pointer that does not move is a CPU spinning in place, or halted), Xen's
own serial console (CTRL-a three times hands its input to Xen; `d` dumps every physical CPU's registers and
stack; CTRL-a three times gives the input back to dom0), then dom0's root shell on that console.  dom0's shell
answering: only the lab's way in over the network broke (`LabError`).  Xen answering and dom0's shell not:
dom0 hangs (its configuration is the system under test's: `HostUnresponsive`, a `ProductFailure`).  Xen
silent on its own console: the hypervisor itself stopped under QEMU's emulation (`EmulationFault`, the lab's).
What the looks saw goes to `host-hang.txt` beside the host's console logs.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import EmulationFault, LabError, PhaseTimeout, XenlabError
from lab.console import SerialConsole
from lab.hvm_state import XEN_TEXT
from lab.vm import Vm

log = logging.getLogger("xenlab.host-hang")

SWITCH_INPUT = b"\x01\x01\x01"  # Xen's conswitch: CTRL-a, three times
TO_XEN = r"\(XEN\) \*\*\* Serial input to Xen"
TO_DOM0 = r"\(XEN\) \*\*\* Serial input to DOM0"
DUMP_REGISTERS = b"d"
XEN_ANSWER_S = 20.0
DUMP_S = 10.0
DOM0_ALIVE = "xenlab-dom0-shell-answers"
DOM0_ANSWER_S = 30.0
REGISTERS_APART_S = 5.0

_CPU = re.compile(r"^CPU#(\d+)", re.M)
_RIP = re.compile(r"\bRIP=([0-9a-f]{16})")
_HALTED = re.compile(r"\bHLT=1\b")
KERNEL_TEXT = 0xFFFFFFFF80000000  # a Linux kernel's text mapping (dom0's or a guest's)


class HostUnresponsive(PhaseTimeout):
    """dom0 stopped answering while Xen beneath it still answers on its console."""


@dataclass(frozen=True)
class Look:
    registers: list[str]  # `info registers -a`, each look's text ("" when QMP did not answer)
    xen_answered: bool
    xen_said: str  # Xen's console after the switch of input (its dump)
    dom0_shell_answered: bool = False  # dom0's shell on the console ran a command (after Xen gave the input back)

    def instruction_pointers(self) -> list[dict[int, int]]:
        return [rips(text) for text in self.registers]

    def summary(self) -> str:
        looks = self.instruction_pointers()
        if not any(looks):
            return "QEMU did not say where its vCPUs are"
        halted = halted_cpus(self.registers[-1])
        parts = []
        for cpu in sorted(looks[-1]):
            seen = [look[cpu] for look in looks if cpu in look]
            moving = "moving" if len(set(seen)) > 1 else "not moving"
            idle = ", halted" if cpu in halted else ""
            parts.append(f"vCPU {cpu} at {seen[-1]:#x} ({where(seen[-1])}, {moving}{idle})")
        return "; ".join(parts)


def _per_cpu(registers: str) -> dict[int, str]:
    """QEMU's `info registers -a` cut into each vCPU's part."""
    marks = list(_CPU.finditer(registers))
    ends = [m.start() for m in marks[1:]] + [len(registers)] * bool(marks)
    return {int(m.group(1)): registers[m.end() : end] for m, end in zip(marks, ends, strict=True)}


def rips(registers: str) -> dict[int, int]:
    """Each vCPU's instruction pointer in QEMU's `info registers -a`."""
    return {cpu: int(m.group(1), 16) for cpu, part in _per_cpu(registers).items() if (m := _RIP.search(part))}


def halted_cpus(registers: str) -> set[int]:
    """The vCPUs waiting in HLT for an interrupt (idle, not spinning)."""
    return {cpu for cpu, part in _per_cpu(registers).items() if _HALTED.search(part)}


def where(rip: int) -> str:
    if XEN_TEXT[0] <= rip < XEN_TEXT[1]:
        return "in Xen"
    if rip >= KERNEL_TEXT:
        return "in a Linux kernel"
    return "in a guest or user space"


def look(vm: Vm) -> Look:
    """Both looks at the hung host; never raises (the host is already the thing that broke)."""
    registers = [_registers(vm)]
    time.sleep(REGISTERS_APART_S)
    registers.append(_registers(vm))
    if vm.console is None:
        return Look(registers, False, "")
    answered, said = _ask_xen(vm.console)
    return Look(registers, answered, said, answered and _ask_dom0_shell(vm.console))


def _ask_dom0_shell(console: SerialConsole) -> bool:
    """Whether the root shell on dom0's console still runs a command (its input is dom0's again)."""
    try:
        out, rc = console.run(f"echo {DOM0_ALIVE}", phase="host-hang: dom0's shell", timeout=DOM0_ANSWER_S)
    except (OSError, XenlabError):
        return False
    return rc == 0 and DOM0_ALIVE in out


def _registers(vm: Vm) -> str:
    if vm.qmp is None:
        return ""
    try:
        out = vm.qmp.cmd("human-monitor-command", **{"command-line": "info registers -a"})
    except Exception as exc:  # qemu.qmp raises its own types; any of them means no answer
        log.warning("%s: QMP did not give the registers: %s", vm.name, exc)
        return ""
    return out if isinstance(out, str) else ""


def _ask_xen(console: SerialConsole) -> tuple[bool, str]:
    start = console.position
    try:
        console.send_keys(SWITCH_INPUT)
        console.expect(TO_XEN, phase="host-hang: Xen's console", timeout=XEN_ANSWER_S)
    except (OSError, XenlabError):
        return False, console.since(start)
    try:
        console.send_keys(DUMP_REGISTERS)
        time.sleep(DUMP_S)
        console.send_keys(SWITCH_INPUT)
        console.expect(TO_DOM0, phase="host-hang: Xen's console", timeout=XEN_ANSWER_S)
    except (OSError, XenlabError) as exc:
        log.warning("%s: Xen answered, then not: %s", console.name, exc)
    return True, console.since(start)


def hang_error(vm: Vm, quiet: float, dest: Path) -> XenlabError:
    """The error for a host that has not answered for `quiet` seconds, after looking at it (see the module)."""
    seen = look(vm)
    report = dest / "host-hang.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        f"{vm.name}: dom0 answered nothing for {quiet:.0f} s\n{seen.summary()}\n\n"
        + "\n".join(f"--- info registers -a, look {i + 1} ---\n{text}" for i, text in enumerate(seen.registers))
        + f"\n--- Xen's console after CTRL-a x3 (answered: {seen.xen_answered}; dom0's shell then answered: "
        f"{seen.dom0_shell_answered}) ---\n{seen.xen_said}\n"
    )
    if seen.dom0_shell_answered:
        return LabError(
            f"{vm.name}: dom0 answered nothing over SSH for {quiet:.0f} s, yet its shell on the serial console runs "
            "commands: the lab's way in (its namespace relay, the bridge, dom0's sshd) is what broke; see the "
            f"lab's log and {report}",
            hint="ssh -F <lab>/ssh/ssh_config root@<host> -v shows where the connection stops",
        )
    if seen.xen_answered:
        return HostUnresponsive(
            f"{vm.name}: dom0 has answered nothing for {quiet:.0f} s while Xen still answers on its console: dom0 "
            f"hangs ({seen.summary()}); Xen's dump of its CPUs and QEMU's registers are in {report}"
        )
    return EmulationFault(
        f"{vm.name}: the host has answered nothing for {quiet:.0f} s, and Xen does not answer on its own serial "
        f"console either: the hypervisor stopped under QEMU's emulation ({seen.summary()}); no verdict on the "
        f"system under test, the lab's retry runs it again; QEMU's registers are in {report}"
    )
