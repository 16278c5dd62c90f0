"""Reading where a hung host's vCPUs stand, from QEMU's real `info registers -a` of a 2-vCPU Xen host
(both CPUs idle in Xen, taken by the scenario test of `lab.host_hang` with the VM stopped); the moving and
spinning cases are edits of it."""

from __future__ import annotations

from pathlib import Path

from lab.host_hang import Look, halted_cpus, rips, where

IDLE = (Path(__file__).parent / "data" / "qemu-2cpu-info-registers-xen-idle.txt").read_text()
XEN_IDLE_RIP = 0xFFFF82D0402F9C06


def test_each_vcpu_s_instruction_pointer_and_halt_are_read_from_its_own_part() -> None:
    assert rips(IDLE) == {0: XEN_IDLE_RIP, 1: XEN_IDLE_RIP}
    assert halted_cpus(IDLE) == {0, 1}
    spinning = IDLE.replace("HLT=1", "HLT=0", 1)  # CPU#0's line comes first
    assert halted_cpus(spinning) == {1}


def test_where_an_address_is() -> None:
    assert where(XEN_IDLE_RIP) == "in Xen"
    assert where(0xFFFFFFFF81A3C2D0) == "in a Linux kernel"
    assert where(0x7C00) == "in a guest or user space"


def test_the_summary_says_which_vcpu_moved_between_the_two_looks() -> None:
    cpu0, cpu1 = IDLE.split("CPU#1\n")
    moved = cpu0 + "CPU#1\n" + cpu1.replace("RIP=ffff82d0402f9c06", "RIP=ffffffff81a3c2d0")  # now in dom0's kernel
    said = Look([IDLE, moved.replace("HLT=1", "HLT=0")], xen_answered=False, xen_said="").summary()
    assert said == (
        "vCPU 0 at 0xffff82d0402f9c06 (in Xen, not moving); vCPU 1 at 0xffffffff81a3c2d0 (in a Linux kernel, moving)"
    )
    still = Look([IDLE, IDLE], xen_answered=False, xen_said="").summary()
    assert still.count("(in Xen, not moving, halted)") == 2


def test_no_registers_from_qemu_is_said_so() -> None:
    assert Look(["", ""], xen_answered=False, xen_said="").summary() == "QEMU did not say where its vCPUs are"
