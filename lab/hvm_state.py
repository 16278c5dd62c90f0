"""What Xen says of an HVM guest's virtual CPUs, read from dom0, and whether that state is the emulation's.

An HVM guest under the lab's nested emulation (Xen's SVM is QEMU's TCG) sometimes ends up somewhere no real
CPU would put it: Xen's dumps of such guests showed a guest RIP inside Xen's own code (`e008:ffff82d0…`,
`svm_asm_do_resume`), handed to the guest on a VM entry (README, "what its triple faults are").  A guest
stuck like that is the lab's failure, whatever it was running.  `xen-hvmctx <domid>` (Xen's tools, in dom0)
prints the domain's HVM save record: one CPU entry per vCPU with its `rip`, `cr0`, `efer` and segment
selectors; `VcpuState` is one of them, `read` asks dom0 for a domain's.  Xen's lines of triple faults are read
here too (from the host's serial console, by the guest's domain ids in xl's log of it: `HostTripleFaults`):
xl restarts an HVM guest that triple-faulted, silently but for that line.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import LabError
from foundation.process import run

log = logging.getLogger("xenlab.hvm-state")

XEN_TEXT = (0xFFFF82D040000000, 0xFFFF82D080000000)  # where Xen 4.x's code runs (its directmap is elsewhere)
CPU_RECORD = 2  # HVM_SAVE_CODE(CPU) in Xen's public hvm/save.h
XL_LOG = "/var/log/xen/xl-{name}.log"  # xl's own log of a domain it created and watches

_ENTRY = re.compile(r"^Entry \d+: type (\d+) instance (\d+)", re.M)
_FIELD = {  # Debian's 4.17 prints some with "%#x" ("efer         0x00000d01"; a zero selector "cs   0000")
    "rip": re.compile(r"\brip\s+(?:0x)?([0-9a-f]+)\b"),
    "cr0": re.compile(r"\bcr0\s+(?:0x)?([0-9a-f]+)\b"),
    "cs": re.compile(r"^\s+cs\s+(?:0x)?([0-9a-f]+)\b", re.M),  # not "sysenter cs"
    "efer": re.compile(r"\befer\s+(?:0x)?([0-9a-f]+)\b"),
}
_DOMID = re.compile(r"\(domid (\d+)\)")
_FAULT_OF = re.compile(r"(?:^|[^0-9])d(\d+)v\d+ Triple fault")
_PE = 1  # cr0's protection-enable bit
_LMA = 1 << 10  # efer's long-mode-active bit


@dataclass(frozen=True)
class VcpuState:
    vcpu: int
    rip: int
    cs: int  # the code segment's selector
    cr0: int
    efer: int

    @property
    def mode(self) -> str:
        if not self.cr0 & _PE:
            return "real mode"
        return "long mode" if self.efer & _LMA else "protected mode"

    @property
    def in_xen(self) -> bool:
        """The guest's RIP is in Xen's own code: no guest runs there (it is in the hole x86-64 keeps below a
        Linux kernel's addresses for the hypervisor); the emulated SVM put it there.  Xen's code segment alone
        says nothing: in real mode `e008` is an ordinary segment (linear 0xe0080, where option ROMs live)."""
        return XEN_TEXT[0] <= self.rip < XEN_TEXT[1]

    def __str__(self) -> str:
        where = f"{self.cs:04x}:{self.rip:04x}" if self.mode == "real mode" else f"cs {self.cs:04x} rip {self.rip:016x}"
        return f"vCPU{self.vcpu}: {self.mode}, {where}" + (" (inside Xen's own code)" if self.in_xen else "")


def parse(hvmctx: str) -> list[VcpuState]:
    """The vCPUs of `xen-hvmctx`'s output, in its order; a CPU entry missing a field is skipped (logged)."""
    starts = list(_ENTRY.finditer(hvmctx))
    ends = [entry.start() for entry in starts[1:]] + [len(hvmctx)]
    found = []
    for entry, end in zip(starts, ends, strict=False):  # no entry at all: nothing
        if int(entry.group(1)) != CPU_RECORD:
            continue
        block = hvmctx[entry.end() : end]
        fields = {name: pattern.search(block) for name, pattern in _FIELD.items()}
        missing = [name for name, match in fields.items() if match is None]
        if missing:
            log.warning("xen-hvmctx's CPU entry %s lacks %s: skipped", entry.group(2), ", ".join(missing))
            continue
        values = {name: int(match.group(1), 16) for name, match in fields.items() if match is not None}
        found.append(VcpuState(vcpu=int(entry.group(2)), **values))
    return found


@dataclass(frozen=True)
class GuestCpus:
    """One reading of an HVM guest's vCPUs in dom0: what `xen-hvmctx` printed (`said`, also when it failed)."""

    vcpus: tuple[VcpuState, ...]
    said: str

    @property
    def in_xen(self) -> list[VcpuState]:
        return [v for v in self.vcpus if v.in_xen]

    def summary(self) -> str:
        return "; ".join(map(str, self.vcpus)) or "not read (xen-hvmctx printed no CPU entry)"


def read(ssh: list[str], name: str) -> GuestCpus | None:
    """The domain's vCPUs as Xen has them now; None when dom0 did not answer or has no such domain."""
    q = shlex.quote(name)
    try:
        proc = run([*ssh, f'id=$(xl domid {q}) && xen-hvmctx "$id"'], check=False, timeout=60)
    except LabError as exc:
        log.warning("%s: could not read its vCPUs in dom0: %s", name, exc)
        return None
    if proc.returncode != 0:
        log.warning("%s: xen-hvmctx failed (status %d): %s", name, proc.returncode, proc.stderr.strip()[-300:])
        return None
    return GuestCpus(tuple(parse(proc.stdout)), proc.stdout)


def guest_domains(ssh: list[str], name: str, xl_log: str = XL_LOG) -> set[int]:
    """Every domain id the guest has had: xl restarts a guest as a new domain, and names each in its log of
    the guest (`Waiting for domain cagnode52 (domid 3) to die`).  Empty when dom0 did not answer."""
    try:
        said = run([*ssh, f"cat {shlex.quote(xl_log.format(name=name))}"], check=False, timeout=60).stdout
    except LabError:
        return set()
    return {int(found) for found in _DOMID.findall(said)}


def triple_fault_lines(xen_said: str, domains: set[int] | None = None) -> list[str]:
    """Xen's triple-fault lines in what it printed (the host's serial console: complete, where `xl dmesg` keeps
    only the last 16 KB), of the `domains` given or of all."""
    return [
        line.strip()
        for line in xen_said.splitlines()
        if (m := _FAULT_OF.search(line)) and (domains is None or int(m.group(1)) in domains)
    ]


@dataclass(frozen=True)
class HostTripleFaults:
    """Xen's triple-fault lines on a Xen host's serial console (its log, `console`): of one guest's domains
    (`guest_domains`, asked of dom0 over `ssh`), or of every domain when no guest is named."""

    ssh: list[str]
    console: Path
    xl_log: str = XL_LOG

    def __call__(self, guest: str | None = None) -> list[str]:
        domains = None if guest is None else guest_domains(self.ssh, guest, self.xl_log)
        return triple_fault_lines(self.console.read_text(errors="replace"), domains)


def triple_faults(ssh: list[str], domid: int | None = None) -> list[str]:
    """Xen's lines for HVM vCPUs that triple-faulted (Xen then shuts the guest down as if it rebooted, and its
    console shows nothing): `(XEN) d3v0 Triple fault - invoking HVM shutdown action 1`; of one domain, or of
    all.  Empty when dom0 did not answer."""
    domain = f"d{domid}" if domid is not None else "d[0-9]+"
    try:
        proc = run([*ssh, f"xl dmesg | grep -E '(^|[^0-9]){domain}v[0-9]+ Triple fault'"], check=False, timeout=60)
    except LabError:
        return []
    return proc.stdout.strip().splitlines()
