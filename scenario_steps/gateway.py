"""The gateway reinstall, step by step: shared by its scenario, its benchmark and `./xenlab gateway`.

The seed's cycle: AII configures the install server from the gateway's profiles; the Xen host installs
itself from its kickstart and reboots into Xen; its first `ncm-ncd --configure --all` makes the guests'
disks and configs and starts them; each PV guest is booted by pypxeboot, installs itself from its own
kickstart (the same installer, on its Xen disk), acks, reboots, is handed to pygrub by pypxeboot (LOCALBOOT)
and boots what it installed, which tells the install server it is up.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from images.catalog import PAYLOAD_FILES
from lab import host_hang, host_snapshot, hvm_state, installer_plugin, topology, xen
from lab.host_snapshot import HostInputs
from lab.installer_plugin import InstallerPlugin
from lab.lab import PAYLOAD_DIR, Lab, LabSpec, spec_from_profiles
from lab.profiles import HVM_SERIAL_LOG, compile_for_lab, keep_domains
from lab.remote_console import CONSOLE_LOG, GuestConsoleLog
from lab.stall import HvmStallJudge, StallWatch
from lab.topology import HostPlan, Topology
from lab.vm import DiskConfig
from netboot_stack.events import Event, Kind, ResetLoop
from quattor.aii.nbp import IPXE_DIR, PXELINUX_DIR
from scenario_steps.host_install import install_host, resume_host

log = logging.getLogger("xenlab.gateway")

HOST_PAYLOAD = PAYLOAD_FILES["dom0-payload"]
GUEST_PAYLOAD = PAYLOAD_FILES["guest-payload"]
GUEST_FATAL = (r"Kernel panic - not syncing.*",)  # on a guest's console: it will not come up
CONSOLE_READ_S = 20.0  # each guest console read over SSH: dom0 shares the two emulated CPUs with the guests


class NotInProfiles(Exception):
    """The variant asked for has nothing to run in these profiles (a set without an HVM guest has no `hvm`)."""


@dataclass(frozen=True)
class Gateway:
    """A Xen host and the guests one run starts, as a directory of compiled profiles describes them."""

    topology: Topology
    host: HostPlan  # the topology's host, with only this run's guests

    @property
    def profiles(self) -> Path:
        return self.topology.source

    @property
    def guests(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.host.guests)

    def guests_timeout(self, payload: Path) -> float:
        """From the host's first boot to every guest running its installed system, growing with the work: the
        guests install in parallel on the host's two vCPUs, each unpacking the payload; an HVM guest under nested
        TCG takes far longer than PV ones (every device access goes through QEMU in the emulated dom0)."""
        payload_mib = payload.stat().st_size / 2**20
        pv, hvm = len(self.host.pv_guests), len(self.host.hvm_guests)
        return 600 + 450 * pv + 2100 * hvm + 2 * payload_mib * (pv + hvm)

    @property
    def first_boot_timeout(self) -> float:
        """dom0's first `ncm-ncd --configure --all`: it makes every guest's disks and starts each one."""
        return 600 + 150 * len(self.host.guests)

    def spec(self, label: str) -> LabSpec:
        """The lab for this run: the install server, the host's VM sized from its `/hardware`, the guests."""
        return spec_from_profiles(
            label,
            self.topology,
            (self.host.name, *self.guests),
            memory_mb=self.host.memory_mib,
            cpus=self.host.cpus,
            installer="installer",
            disks=tuple(DiskConfig(name, size=f"{mib}M") for name, mib in self.host.disks),
            payloads=("dom0-payload", "guest-payload"),
        )


def plan(source: Path, variant: str) -> Gateway:
    """The run `variant` of the gateway in `source`: its host and the guests of that kind."""
    found = topology.read(source)
    guests = found.host.pv_guests if variant == "pv" else found.host.hvm_guests
    if not guests:
        raise NotInProfiles(f"the profiles in {source} declare no {variant.upper()} guest: no {variant} run")
    host = found.host.with_guests(guests)
    topology.check_fits(host)
    return Gateway(found, host)


def plan_with_guests(source: Path, variant: str, count: int) -> tuple[Gateway, tuple[str, ...]]:
    """`plan`, for a scenario that needs `count` guests of the variant: the plan and their names."""
    chosen = plan(source, variant)
    if len(chosen.guests) < count:
        raise NotInProfiles(f"{source}: {count} {variant.upper()} guests needed, the profiles have {chosen.guests}")
    return chosen, chosen.guests[:count]


def lab_profiles(lab: Lab, gateway: Gateway, dest: Path, installer: InstallerPlugin | None = None) -> Gateway:
    """The gateway's profiles as the lab serves them: compiled for the lab's payloads (their kernel, the
    lab's SSH key in every kickstart), every node's AII entry pointed at the installer plug-in (the lab's
    own unless another is given), and the host running only this run's guests; read back, so that every
    check compares against what the lab served."""
    plugin = installer or installer_plugin.load(installer_plugin.DEFAULT)
    compile_for_lab(
        gateway.profiles,
        dest,
        kernel_release=lab.images.payload_kernel_release(),
        ssh_public_key=lab.ssh.public_key,
        installer=plugin,
    )
    lab.publish_installer(plugin)
    keep_domains(dest / f"profile_{gateway.host.name}.json", gateway.guests)
    served = topology.read(dest)
    return Gateway(served, served.host)


def prepare(lab: Lab, gateway: Gateway) -> None:
    """Publish the profiles, let AII configure every node, and set them all to install (the lab serves the
    payloads its spec names)."""
    nodes = (gateway.host.name, *gateway.guests)
    for node in nodes:
        # Where the node's own profile_url says (preflight checked the install server serves it); JSON whatever
        # name the URL gives: ncm-ncd reads either form by content.
        url = str(gateway.topology.installed(node).osinstall.get("profile_url", ""))
        path = urllib.parse.urlsplit(url).path.lstrip("/") or f"profiles/profile_{node}.json"
        lab.server.write(path, (gateway.profiles / f"profile_{node}.json").read_text())
    lab.aii("configure", gateway.host.name, profiles=gateway.profiles, payload=HOST_PAYLOAD)
    if gateway.guests:
        lab.aii("configure", *gateway.guests, profiles=gateway.profiles, payload=GUEST_PAYLOAD)
    lab.aii("install", *nodes, profiles=gateway.profiles)


@contextmanager
def xen_state_saved(lab: Lab, host: str) -> Iterator[None]:
    """On the way out, success or failure, save the host's Xen state and guest consoles into the artifacts."""
    try:
        yield
    finally:
        assert lab.run_dir is not None
        xen.save_state(lab.ssh, str(lab.ip(host)), lab.run_dir / host / "xen")


def install_guests(lab: Lab, gateway: Gateway) -> dict[str, Event]:
    """Wait until every guest has installed and booted its installed system (in parallel; each arrival is
    logged), then record each guest's phases from the install server's log."""
    host_console = lab.vms[gateway.host.name].console
    assert host_console is not None

    def arrived(e: Event) -> None:
        log.info("%s: installed system is up (%.0f s into the run)", e.node, e.seen - lab.timeline.t0)

    hvm = {g.name for g in gateway.host.hvm_guests}
    triple_faults = hvm_state.HostTripleFaults(lab.ssh.argv(str(lab.ip(gateway.host.name))), host_console.log_path)
    resets = ResetLoop(
        lab.server.events,
        {g: entry_paths(lab, g) for g in gateway.guests},
        lab_resets=lambda guest: triple_faults(guest) if guest in hvm else [],
    )
    booted = lab.server.events.wait_for_each(
        gateway.guests,
        phase="guests-installed-and-up",
        timeout=gateway.guests_timeout(lab.images.payloads[GUEST_PAYLOAD]),
        kind=Kind.BOOTED,
        watch=[host_console, resets, guests_watch(lab, gateway, triple_faults)],
        arrived=arrived,
    )
    if hvm:
        faults = triple_faults()
        assert lab.run_dir is not None
        (lab.run_dir / gateway.host.name / "triple-faults.txt").write_text("".join(f"{f}\n" for f in faults))
        for line in faults:
            log.warning("an HVM guest was restarted after its emulated CPU triple-faulted (the emulation's): %s", line)
    for guest in gateway.guests:
        record_guest_phases(lab, gateway, guest)
    return {guest: booted[guest] for guest in gateway.guests}


def guests_watch(lab: Lab, gateway: Gateway, triple_faults: Callable[[str], list[str]]) -> StallWatch:
    """Each guest's consoles in dom0 followed live (copies in the artifacts, beside the host's: kept even if
    dom0 dies), a guest with no sign of life or a host that answers nothing ending the wait early (a stalled
    HVM guest judged with its vCPUs and `triple_faults`)."""
    host = gateway.host.name
    vm = lab.vms[host]
    assert lab.run_dir is not None
    ssh = lab.ssh.argv(str(lab.ip(host)))
    consoles = {}
    for guest in gateway.host.guests:
        paths = [CONSOLE_LOG.format(name=guest.name)] + ([HVM_SERIAL_LOG.format(name=guest.name)] if guest.hvm else [])
        consoles[guest.name] = [
            GuestConsoleLog(
                ssh,
                guest.name,
                lab.run_dir / guest.name / f"live-{PurePosixPath(path).name}",
                failure=GUEST_FATAL,
                interval=CONSOLE_READ_S,
                path=path,
            )
            for path in paths
        ]
    host_dir = lab.run_dir / host
    hvm = frozenset(g.name for g in gateway.host.hvm_guests)
    return StallWatch(
        lab.server.events,
        consoles,
        arrival=Kind.BOOTED,
        on_host_silent=lambda quiet: host_hang.hang_error(vm, quiet, host_dir),
        on_guest_stalled=HvmStallJudge(ssh, hvm, lab.run_dir, triple_faults),
    )


def entry_paths(lab: Lab, guest: str) -> frozenset[str]:
    """Where the install server serves the guest's AII entry: its pxelinux config and its iPXE script."""
    boot = lab.node_boot(guest)
    return frozenset({f"{PXELINUX_DIR}/{boot.mac_name}", f"{IPXE_DIR}/{boot.ipxe_name}"})


@dataclass(frozen=True)
class GuestJourney:
    """A guest's milestones in the install server's log, in order."""

    pypxeboot_lease: Event  # pypxeboot in dom0 for the guest's MAC (an HVM guest: its own PXE firmware)
    config_read: Event  # AII's entry, read by pypxeboot in dom0, or by an HVM guest's own PXE firmware's pxelinux
    installer_lease: Event  # the installer, inside the guest
    kickstart: Event
    payload: Event
    ack: Event
    localboot_lease: Event  # pypxeboot again, after the reboot: the entry now says LOCALBOOT
    booted: Event  # the installed system
    hvm: bool  # booted by its own PXE firmware and, installed, by GRUB in its MBR

    def phases(self) -> list[tuple[str, Event]]:
        netboot, localboot = ("pxe", "grub") if self.hvm else ("pypxeboot", "pygrub")
        return [
            (f"{netboot}-dhcp", self.pypxeboot_lease),
            (f"{netboot}-config", self.config_read),
            ("installer-dhcp", self.installer_lease),
            ("kickstart", self.kickstart),
            ("payload-start", self.payload),
            ("install-and-ack", self.ack),
            (f"reboot-{netboot}", self.localboot_lease),
            (f"{localboot}-and-boot", self.booted),
        ]


def journey(lab: Lab, gateway: Gateway, guest: str) -> GuestJourney:
    """Read the guest's milestones from the install server's log; an AssertionError names what is missing."""
    events = lab.server.events
    fqdn = lab.fqdn(guest)

    def one(what: str, found: list[Event]) -> Event:
        assert found, f"{guest}: the install server's log has no {what}"
        return found[0]

    ack = one("install ack", events.select(kind=Kind.ACK, node=guest))
    kickstart = one("kickstart fetch", events.select(kind=Kind.HTTP, node=guest, path=f"ks/{fqdn}.ks"))
    leases = events.select(kind=Kind.LEASE, node=guest)
    before = [e for e in leases if e.seen <= kickstart.seen]
    after = [e for e in leases if e.seen >= ack.seen]
    assert len(before) >= 2, f"{guest}: expected pypxeboot's lease, then the installer's, before the kickstart"
    entry = entry_paths(lab, guest)  # AII's entry, either route
    readers = (str(lab.ip(gateway.host.name)), str(lab.ip(guest)))
    reads = [e for e in events.select(path=entry.__contains__) if e.client in readers and e.kind in ("tftp", "http")]
    config_read = one(f"read of its boot entry ({', '.join(sorted(entry))})", reads)
    config_read_by_guest = config_read.client == str(lab.ip(guest))
    return GuestJourney(
        pypxeboot_lease=before[0],
        config_read=config_read,
        installer_lease=before[-1],
        kickstart=kickstart,
        payload=one("payload fetch", events.select(kind=Kind.HTTP, node=guest, path=f"{PAYLOAD_DIR}/{GUEST_PAYLOAD}")),
        ack=ack,
        localboot_lease=one("lease after the ack (pypxeboot at the reboot)", after),
        booted=one("booted call from the installed system", events.select(kind=Kind.BOOTED, node=guest)),
        hvm=config_read_by_guest,
    )


def record_guest_phases(lab: Lab, gateway: Gateway, guest: str) -> None:
    """The guest's phases in the run's timing table: each one ends at its milestone; the first one starts
    when the host's first-boot configuration (which starts the guests) began."""
    first_boot = [r for r in lab.timeline.records if r.subject == gateway.host.name and r.phase == "first-boot-ncm-ncd"]
    start = first_boot[0].start if first_boot else None
    for name, event in journey(lab, gateway, guest).phases():
        lab.timeline.mark(guest, name, at=event.seen, since=start)
        start = None


START_POINTS = ("empty-disks", host_snapshot.PHASE)


def host_inputs(lab: Lab, gateway: Gateway) -> HostInputs:
    """What makes the host's installed disks in this lab (the key of its snapshot)."""
    node = lab.spec.node(gateway.host.name)
    return host_snapshot.host_inputs(
        gateway.host.name,
        installer=lab.images.installer(node.installer),
        payload=lab.images.payloads[HOST_PAYLOAD].parent,
        kickstart=(lab.server.srv / f"ks/{lab.fqdn(gateway.host.name)}.ks").read_text(),
        memory_mib=node.memory_mb,
        cpus=node.cpus,
        disks=",".join(f"{d.name}:{d.size}" for d in node.disks),
    )


def reinstall(lab: Lab, gateway: Gateway, *, start_from: str = "empty-disks") -> str:
    """The whole journey, from empty disks to every guest running its installed system; returns where it
    started.  `start_from="host-installed"`: from the snapshot of the installed host a run of the same inputs
    kept (`lab.host_snapshot`), if there is one (the log says why not; the host is then installed).  A run
    that installs the host keeps its snapshot."""
    if start_from not in START_POINTS:
        raise ValueError(f"start_from={start_from!r}: one of {', '.join(START_POINTS)}")
    prepare(lab, gateway)
    host = gateway.host
    inputs = host_inputs(lab, gateway)
    snapshot = host_snapshot.find(inputs) if start_from == host_snapshot.PHASE else None
    if start_from == host_snapshot.PHASE and snapshot is None:
        log.warning("--from %s: %s; installing the host", start_from, host_snapshot.why_none(inputs))
    with xen_state_saved(lab, host.name):
        if snapshot is not None:
            log.info("%s: starting from its snapshot %s (taken %s)", host.name, snapshot.path.name, snapshot.taken)
            resume_host(
                lab,
                host.name,
                snapshot,
                profiles=gateway.profiles,
                grub_title=host.grub_default_title,
                first_boot_timeout=gateway.first_boot_timeout,
            )
        else:
            install_host(
                lab,
                host.name,
                grub_title=host.grub_default_title,
                first_boot_timeout=gateway.first_boot_timeout,
                snapshot=inputs,
            )
        install_guests(lab, gateway)
    return host_snapshot.PHASE if snapshot is not None else "empty-disks"
