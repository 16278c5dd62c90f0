"""The kickstart suite's guests on the lab's Xen host: their lab nodes, their domains as a site's profile
declares them (`GuestKind`: a PV guest booted by pypxeboot, an HVM guest by its NIC's iPXE ROM), and
whether dom0 still runs one (a question over SSH that may get no answer).  `scenario_steps.kickstart_on_xen`
drives the cases with them.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import LabError, PreflightError
from foundation.process import run
from lab.hvm_state import triple_faults
from lab.kickstart_cases import Case
from lab.lab import NodeSpec
from lab.profiles import HVM_HDTYPE, HVM_SERIAL_LOG
from lab.remote_console import CONSOLE_LOG
from netboot_stack.config import Route
from quattor.ncm.components import xen_model
from quattor.profile import load

log = logging.getLogger("xenlab.kstest-guests")

FIRST_HOST_NUMBER = 100  # the cases' guests: addresses .100 and up of the host's subnet
GUEST_DISK_MIB = 8192  # sparse: the cases' partitions and the payload, not the size, are what is written
DISK_DIR = "/var/lib/xenlab/kstest"
MAX_UNANSWERED = 12  # SSH questions to dom0 in a row without an answer before the lab is called broken


def node_name(case: Case) -> str:
    return f"ks-{case.name}"


def case_nodes(cases: Iterable[Case], installer: str, route: Route = Route.PXELINUX) -> tuple[NodeSpec, ...]:
    """The lab nodes of the cases' guests: every case of the suite, selected or not, so that a case keeps its
    address whichever others run."""
    return tuple(
        NodeSpec(node_name(c), host=FIRST_HOST_NUMBER + i, installer=installer, route=route)
        for i, c in enumerate(cases)
    )


def _file_disk(name: str, device: str) -> list[dict[str, object]]:
    return [
        {"type": "file", "guestdevice": device, "path": f"{DISK_DIR}/{name}.img", "size": GUEST_DISK_MIB, "rw": "w"}
    ]


@dataclass(frozen=True)
class GuestKind:
    """How a case's guest boots: a PV guest through pypxeboot, or an HVM guest through its NIC's PXE ROM."""

    name: str  # pv or hvm
    console: str  # the installer's console device
    over_http: bool  # the pxelinux entry names kernel and initrd by URL (for pypxeboot), else by TFTP path
    xen_pv: bool  # boots the plug-in's PV kernel (`kernel_xen`), if it has one
    route: Route  # how the install server answers the guest's own DHCP at its first boot
    console_log: str  # where dom0 keeps the guest's console
    install_s: float  # from the guest's start to its ack, two at a time on the host's two emulated vCPUs

    def domain(self, name: str, mac: str, shape: GuestShape) -> dict[str, object]:
        """The guest as a site's profile declares one (the 2007 list form of ncm-xen's `domains`, as the
        seed's), shaped as the host's profile shapes its own guests of the kind; it ends at its installer's
        reboot or power-off."""
        common: dict[str, object] = {"name": name, "memory": shape.memory_mib, "vcpus": 1, "on_reboot": "destroy"}
        if self.name == "pv":
            return common | {
                "bootloader": shape.bootloader,
                "bootargs": "vif[0]",
                "vif": [f"mac={mac},bridge=xenbr0"],
                "on_crash": "destroy",
                "disk": _file_disk(name, "xvda"),
            }
        return common | {
            "type": "hvm",
            "boot": "nc",  # its NIC's PXE first
            "vif": [f"mac={mac},bridge=xenbr0,model=e1000"],
            "serial": f"file:{self.console_log.format(name=name)}",
            "hdtype": HVM_HDTYPE,
            "vga": "none",
            "vnc": False,
            "sdl": False,
            "disk": _file_disk(name, "hda"),
        }


@dataclass(frozen=True)
class GuestShape:
    """What the host's profile gives its own guests of a kind, read by ncm-xen's reader: their memory, and
    a PV guest's bootloader (pypxeboot, by whatever path the site installs it)."""

    memory_mib: int
    bootloader: str | None


def shape_of(host_profile: Path, guest: str) -> GuestShape:
    """The shape of the host's domain `guest` (one of the kind the suite runs), as its profile declares it."""
    profile = load(host_profile)
    domains = xen_model.read(profile.reader("/software/components/xen")).domains
    options = next(d.options for d in domains if d.options.name == guest)
    bootloader = dict(options.strings).get("bootloader")
    if options.type == "pv" and not bootloader:
        raise PreflightError(
            f"{host_profile}: domain {guest} has no bootloader",
            hint="the suite's PV guests boot as the profile's own do: through pypxeboot as their bootloader",
        )
    return GuestShape(options.memory, bootloader)


PV = GuestKind("pv", "hvc0", True, True, Route.PXELINUX, CONSOLE_LOG, 1200)  # pypxeboot reads the pxelinux entry
# The HVM NIC's ROM is iPXE: its entry over HTTP (PXELINUX's TFTP of the initrd took 4 minutes per guest).
# Under nested emulation an HVM guest's CPU triple-faults now and then (Dec 5: 3 guests of 6 two at a time, 1
# of 5 one at a time, in the kernel's boot or mid-install): a LabError, retried (kickstart_on_xen._Watch).
HVM = GuestKind("hvm", "ttyS0", False, False, Route.IPXE, HVM_SERIAL_LOG, 2400)
KINDS = {k.name: k for k in (PV, HVM)}


def domain_state(ssh: list[str], name: str) -> tuple[bool | None, int | None]:
    """Whether dom0's xl has the domain, and its id; (None, None) when dom0 did not answer (SSH under load is
    not an answer)."""
    q = shlex.quote(name)
    ask = f"if id=$(xl domid {q} 2>/dev/null); then echo RUNNING $id; else echo GONE; fi"
    try:
        said = run([*ssh, ask], check=False, timeout=60).stdout.split()
    except LabError:
        return None, None
    if "GONE" in said[-1:]:
        return False, None
    if "RUNNING" in said:
        rest = said[said.index("RUNNING") + 1 :]
        return True, int(rest[0]) if rest and rest[0].isdigit() else None
    return None, None


def domain_running(ssh: list[str], name: str) -> bool | None:
    """Whether dom0's xl has the domain; None when dom0 did not answer."""
    return domain_state(ssh, name)[0]


@dataclass
class DomainWatch:
    """Whether a domain still runs, where an unanswered question counts as running until dom0 has not
    answered `MAX_UNANSWERED` times in a row (then the lab is broken: LabError); its id, once seen."""

    ssh: list[str]
    name: str
    unanswered: int = 0
    domid: int | None = None

    def running(self) -> bool:
        state, domid = domain_state(self.ssh, self.name)
        if state is not None:
            self.unanswered = 0
            self.domid = domid if domid is not None else self.domid
            return state
        self.unanswered += 1
        if self.unanswered >= MAX_UNANSWERED:
            raise LabError(f"{self.name}: dom0 did not answer over SSH {MAX_UNANSWERED} times in a row")
        log.warning("%s: dom0 did not answer whether the domain runs (%d); asking again", self.name, self.unanswered)
        return True

    def triple_fault(self) -> str | None:
        """Xen's line if the domain (as last seen running) ended by a triple fault of its CPU."""
        faults = triple_faults(self.ssh, self.domid) if self.domid is not None else []
        return faults[-1] if faults else None
