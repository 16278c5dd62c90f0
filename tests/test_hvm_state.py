"""An HVM guest's vCPUs as dom0's `xen-hvmctx` prints them, and a stalled guest's verdict by them.

The fixtures are that tool's real output in the lab's dom0 (Debian's Xen 4.17), for the seed's HVM guest: in
its installer's user space (`xen-4.17-hvmctx-installer.txt`) and as its domain starts at its reboot, at
hvmloader's entry (`…-hvmloader.txt`, zero selectors printed without `0x`).  A vCPU inside Xen's own
code is made from the first by putting there the address Xen's dump of a triple-faulted guest showed on
Dec 6 (`e008:ffff82d0402044a5`).  dom0 is faked by scripts named `xl` and `xen-hvmctx` on a local shell's PATH.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.errors import EmulationFault
from foundation.paths import REPO
from lab import hvm_state
from lab.stall import GuestStalled, HvmStallJudge

DATA = REPO / "tests" / "data"
INSTALLER = (DATA / "xen-4.17-hvmctx-installer.txt").read_text()
HVMLOADER = (DATA / "xen-4.17-hvmctx-hvmloader.txt").read_text()
IN_XEN = INSTALLER.replace("rip 0x0000000000522ad6", "rip 0xffff82d0402044a5").replace("cs 0x0033 (", "cs 0xe008 (")
FAULT = "(XEN) d6v0 Triple fault - invoking HVM shutdown action 1"
# The host's console and xl's log of the guest in a seed-hvm run of Dec 6 whose guest triple-faulted twice at its
# installed system's boot (domains 2 and 3; the first with its vCPU idle in its kernel, the second at Xen's RIP).
HOST_CONSOLE = (DATA / "xen-4.17-hvm-triple-faults-console.log").read_text()
XL_GUEST_LOG = DATA / "xl-4.17-guest-restarted.log"


def test_the_installers_vcpu_is_read_in_long_mode_in_user_space() -> None:
    (cpu,) = hvm_state.parse(INSTALLER)
    assert (cpu.vcpu, cpu.mode, cpu.cs, cpu.rip, cpu.in_xen) == (0, "long mode", 0x33, 0x522AD6, False)
    assert str(cpu) == "vCPU0: long mode, cs 0033 rip 0000000000522ad6"


def test_a_new_domains_vcpu_is_read_at_hvmloaders_entry_in_protected_mode() -> None:
    (cpu,) = hvm_state.parse(HVMLOADER)
    assert (cpu.mode, cpu.cs, cpu.rip, cpu.efer, cpu.in_xen) == ("protected mode", 0, 0x100000, 0, False)
    assert str(cpu) == "vCPU0: protected mode, cs 0000 rip 0000000000100000"


def test_a_real_mode_vcpu_is_named_by_segment_and_offset() -> None:
    cpu = hvm_state.VcpuState(vcpu=0, rip=0x1A2, cs=0x7D53, cr0=0x10, efer=0)
    assert str(cpu) == "vCPU0: real mode, 7d53:01a2" and not cpu.in_xen


def test_a_vcpu_at_xens_own_code_is_the_emulations() -> None:
    (cpu,) = hvm_state.parse(IN_XEN)
    assert cpu.in_xen and str(cpu).endswith("(inside Xen's own code)")
    only_rip = hvm_state.VcpuState(vcpu=1, rip=0xFFFF82D0402044A5, cs=0x10, cr0=0x80050033, efer=0xD01)
    option_rom = hvm_state.VcpuState(vcpu=1, rip=0x44A5, cs=0xE008, cr0=0x10, efer=0)  # real mode: a segment
    kernel = hvm_state.VcpuState(vcpu=1, rip=0xFFFFFFFFA46018F0, cs=0x10, cr0=0x80050033, efer=0xD01)
    assert only_rip.in_xen and not option_rom.in_xen and not kernel.in_xen


def test_every_vcpu_is_read_and_an_entry_missing_a_field_is_skipped() -> None:
    cpu_entry = INSTALLER[INSTALLER.index("Entry 1:") : INSTALLER.index("Entry 2:")]
    second = cpu_entry.replace("Entry 1: type 2 instance 0", "Entry 2: type 2 instance 1")
    broken = cpu_entry.replace("Entry 1: type 2 instance 0", "Entry 3: type 2 instance 2").replace("cr0", "crX")
    cpus = hvm_state.parse(INSTALLER.replace("Entry 2:", second + broken + "Entry 2:", 1))
    assert [c.vcpu for c in cpus] == [0, 1]
    assert hvm_state.parse("HVM save record for domain 1\n") == []


def fake_dom0(tmp_path: Path, hvmctx: str, *, dmesg: str = "", domid: str = "6") -> list[str]:
    (tmp_path / "hvmctx.txt").write_text(hvmctx)
    scripts = {
        "xl": f'case $1 in domid) [ -n "{domid}" ] && echo {domid} ;; dmesg) printf "{dmesg}" ;; esac\n'
        f'[ "$1" != domid ] || [ -n "{domid}" ]\n',
        "xen-hvmctx": f'echo "$1" >> {tmp_path}/asked\ncat {tmp_path}/hvmctx.txt\n',
    }
    for name, body in scripts.items():
        (tmp_path / name).write_text("#!/bin/sh\n" + body)
        (tmp_path / name).chmod(0o755)
    return ["env", f"PATH={tmp_path}:/usr/bin:/bin", "sh", "-c"]


def judge(tmp_path: Path, hvmctx: str, *, faults: tuple[str, ...] = (), **dom0: str) -> HvmStallJudge:
    return HvmStallJudge(
        fake_dom0(tmp_path, hvmctx, **dom0), frozenset({"cagnode52"}), tmp_path / "run", lambda guest: list(faults)
    )


def test_a_stalled_hvm_guest_inside_xens_code_is_an_emulation_fault_with_its_state_saved(tmp_path: Path) -> None:
    error = judge(tmp_path, IN_XEN, faults=(FAULT,))("cagnode52", "cagnode52: no sign of life for 601 s")
    assert isinstance(error, EmulationFault) and not isinstance(error, GuestStalled)
    said = str(error)
    assert said.startswith("cagnode52: stalled with its vCPU inside Xen's own code (vCPU0: long mode, cs e008")
    assert "no sign of life for 601 s" in said and f"its triple faults so far: {FAULT}" in said
    assert (tmp_path / "run" / "cagnode52" / "hvmctx-at-stall.txt").read_text() == IN_XEN
    assert (tmp_path / "asked").read_text() == "6\n"  # of the domain's id, as xl gave it


@pytest.mark.parametrize("hvmctx", [INSTALLER, HVMLOADER], ids=["installer", "hvmloader"])
def test_a_stalled_hvm_guest_anywhere_else_stays_stalled_with_where_it_is(tmp_path: Path, hvmctx: str) -> None:
    error = judge(tmp_path, hvmctx)("cagnode52", "cagnode52: no sign of life for 601 s")
    assert type(error) is GuestStalled
    assert f"its vCPUs as Xen has them (hvmctx-at-stall.txt): {hvm_state.parse(hvmctx)[0]}" in str(error)
    assert "triple faults" not in str(error)


def test_a_pv_guest_is_not_read_and_an_unreadable_one_says_so(tmp_path: Path) -> None:
    pv = judge(tmp_path, IN_XEN)("cagnode50", "cagnode50: no sign of life for 601 s")
    assert type(pv) is GuestStalled and str(pv) == "cagnode50: no sign of life for 601 s"
    assert not (tmp_path / "asked").exists()
    gone = judge(tmp_path, IN_XEN, domid="")("cagnode52", "cagnode52: quiet")
    assert type(gone) is GuestStalled and "(its vCPUs could not be read in dom0)" in str(gone)


def test_triple_faults_are_read_per_domain_or_all(tmp_path: Path) -> None:
    dom0 = fake_dom0(tmp_path, "", dmesg=f"(XEN) d16v0 Triple fault - x\\n{FAULT}\\n(XEN) d6v0: upcall vector f3\\n")
    assert hvm_state.triple_faults(dom0, 6) == [FAULT]
    assert hvm_state.triple_faults(dom0, 1) == []
    assert hvm_state.triple_faults(dom0) == ["(XEN) d16v0 Triple fault - x", FAULT]


def test_a_guests_domains_are_read_from_xls_log_of_it(tmp_path: Path) -> None:
    dom0 = fake_dom0(tmp_path, "")
    assert hvm_state.guest_domains(dom0, "cagnode52", xl_log=str(XL_GUEST_LOG)) == {1, 2, 3, 4}
    assert hvm_state.guest_domains(dom0, "cagnode52", xl_log=str(tmp_path / "xl-{name}.log")) == set()


def test_a_guests_triple_faults_are_read_from_the_hosts_console_by_its_domains() -> None:
    both = [
        "(XEN) d2v0 Triple fault - invoking HVM shutdown action 1",
        "(XEN) d3v0 Triple fault - invoking HVM shutdown action 1",
    ]
    assert hvm_state.triple_fault_lines(HOST_CONSOLE) == both
    assert hvm_state.triple_fault_lines(HOST_CONSOLE, {1, 2, 3, 4}) == both
    assert hvm_state.triple_fault_lines(HOST_CONSOLE, {3}) == both[1:]
    assert hvm_state.triple_fault_lines(HOST_CONSOLE, {13, 23}) == []  # another guest's: d13, d23 are not d3


def test_a_hosts_console_and_xls_log_give_one_guests_triple_faults(tmp_path: Path) -> None:
    console = tmp_path / "console-boot2.log"
    console.write_text(HOST_CONSOLE)
    (tmp_path / "xl-cagnode52.log").write_text("Waiting for domain cagnode52 (domid 3) to die [pid 487]\n")
    faults = hvm_state.HostTripleFaults(fake_dom0(tmp_path, ""), console, xl_log=str(tmp_path / "xl-{name}.log"))
    assert len(faults()) == 2, "every domain's"
    assert faults("cagnode52") == ["(XEN) d3v0 Triple fault - invoking HVM shutdown action 1"], "domain 3's only"
    assert faults("cagnode53") == [], "a guest xl never started"
