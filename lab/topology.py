"""A gateway's topology, derived from a directory of compiled profiles and from nothing else.

* The install server is the node whose profile configures `ncm-aiiserver` (`/software/components/aiiserver`),
  or, in a set without one, the node every installable node names as its `tftpserver`.  Its name,
  address, netmask and domain are the lab's install server's: the lab's subnet is its subnet.
* A Xen host is a node whose profile gives ncm-xen domains (`/software/components/xen/domains`, the list or
  the nlist form).  Its VM is sized from its `/hardware`: RAM, CPUs, disks.
* Its guests are those domains, each PV or HVM by its own config, each described by its own node profile.
* The GRUB entry the host boots is the one ncm-grub itself chooses from the host's profile.

Everything a run would trip over later is refused here, each error naming the profile and what to fix:
a guest with no disk, two nodes with one MAC or address, an address outside the install server's subnet,
a host whose RAM cannot hold dom0 and its guests, or that does not fit this machine.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from foundation.errors import PreflightError
from quattor.aii import node as aii_node
from quattor.aii.node import AiiNode
from quattor.ncm.components import grub, xen_model
from quattor.profile import PROFILE_FORMS, Profile, ProfileError, load

DOM0_MEM = re.compile(r"(?:^|\s)dom0_mem=(?:[^\s,]*,)*?(?:max:)?(\d+)([MG])\b")
XEN_OWN_MIB = 160  # the hypervisor, its heap and page tables, for a host of a few GiB (measured: 120-150)
GUEST_OVERHEAD_MIB = 16  # per guest: page tables, grant tables, shadow (xl's own estimate is 1-8 MiB per GiB)
MACHINE_RESERVE_MIB = 2048  # left to the machine: the install server, pytest, QEMU's own memory
HOST_DISK_NAMES = re.compile(r"vd[a-z]")


@dataclass(frozen=True)
class NodeFile:
    """One node's compiled profile: where it is, and what AII reads of it."""

    name: str
    path: Path
    profile: Profile
    aii: AiiNode | None  # None: the node is not installed by AII (the install server itself)


@dataclass(frozen=True)
class InstallServerPlan:
    name: str
    ip: ipaddress.IPv4Address
    subnet: ipaddress.IPv4Network
    domain: str
    path: Path


@dataclass(frozen=True)
class GuestPlan:
    name: str  # the domain's name: its node's host name
    hvm: bool
    memory_mib: int
    disk_mib: tuple[int, ...]  # each disk ncm-xen makes for it, in order
    install_disk_mib: int  # the one the installer installs on: AII's named disk, else the largest
    mac: str
    path: Path  # its own profile


@dataclass(frozen=True)
class HostPlan:
    name: str
    memory_mib: int
    cpus: int
    disks: tuple[tuple[str, int], ...]  # /hardware/harddisks: (device, MiB), the install disk first
    dom0_mib: int
    grub_default_id: str  # what ncm-grub chose, so what the host boots
    grub_default_title: str
    guests: tuple[GuestPlan, ...]
    path: Path

    def with_guests(self, guests: Iterable[GuestPlan]) -> HostPlan:
        return replace(self, guests=tuple(guests))

    @property
    def pv_guests(self) -> tuple[GuestPlan, ...]:
        return tuple(g for g in self.guests if not g.hvm)

    @property
    def hvm_guests(self) -> tuple[GuestPlan, ...]:
        return tuple(g for g in self.guests if g.hvm)


@dataclass(frozen=True)
class Site:
    """A directory of profiles: its nodes and the install server that serves them."""

    source: Path
    server: InstallServerPlan
    nodes: tuple[NodeFile, ...]

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.server.subnet

    @property
    def domain(self) -> str:
        return self.server.domain

    def node(self, name: str) -> NodeFile:
        for n in self.nodes:
            if n.name == name:
                return n
        raise PreflightError(
            f"{self.source}: no profile for node {name!r}", hint=f"nodes: {', '.join(n.name for n in self.nodes)}"
        )

    def installed(self, name: str) -> AiiNode:
        """The node's AII view; PreflightError if AII does not install it."""
        node = self.node(name)
        if node.aii is None:
            raise _fail(node.path, "/system/aii/osinstall/options: missing", "AII needs it to install the node")
        return node.aii


@dataclass(frozen=True)
class Topology(Site):
    """A gateway: a site with one Xen host and its guests."""

    host: HostPlan


def profile_paths(source: Path) -> dict[str, Path]:
    """`profile_<node>.json` or `.xml` in `source`, by node name (JSON wins when both exist)."""
    found: dict[str, Path] = {}
    for form in reversed(PROFILE_FORMS):
        for path in sorted(source.glob(f"profile_*.{form}")):
            found[path.name.removeprefix("profile_").removesuffix(f".{form}")] = path
    return dict(sorted(found.items()))


def read_site(source: Path) -> Site:
    """The nodes of the profiles in `source` and their install server; PreflightError naming the fix."""
    paths = profile_paths(source)
    if not paths:
        raise PreflightError(
            f"{source}: no compiled profiles (profile_<node>.json or .xml)", hint="point --profiles at panc's output"
        )
    nodes = tuple(_node_file(name, path) for name, path in paths.items())
    site = Site(source, _install_server(source, nodes), nodes)
    check_addresses(site)
    return site


def read(source: Path) -> Topology:
    """The topology of the gateway whose compiled profiles are in `source`; PreflightError if it cannot run."""
    site = read_site(source)
    host = _host(_xen_host(source, site.nodes), site.nodes)
    return Topology(site.source, site.server, site.nodes, host)


def _fail(path: Path, message: str, hint: str) -> PreflightError:
    return PreflightError(f"{path}: {message}", hint=hint)


def _node_file(name: str, path: Path) -> NodeFile:
    try:
        profile = load(path)
    except ProfileError as exc:
        raise _fail(path, str(exc), "the profile must be panc's JSON or XML output") from None
    if profile.hostname != name:
        raise _fail(
            path,
            f"/system/network/hostname is {profile.hostname!r}, the file is named for {name!r}",
            f"name the file profile_{profile.hostname}.{path.suffix[1:]} (AII finds profiles by host name)",
        )
    aii = None
    if profile.get("/system/aii/osinstall/options") is not None:
        try:
            aii = aii_node.read(profile)
        except ProfileError as exc:
            raise _fail(path, str(exc), "AII reads this to install the node") from None
    return NodeFile(name, path, profile, aii)


def _install_server(source: Path, nodes: tuple[NodeFile, ...]) -> InstallServerPlan:
    servers = [n for n in nodes if n.profile.get("/software/components/aiiserver") is not None]
    if not servers:
        named = {str(n.profile.get("/system/aii/dhcp/options/tftpserver", "")) for n in nodes if n.aii}
        servers = [n for n in nodes if n.name in named or n.profile.fqdn in named]
    if len(servers) != 1:
        found = ", ".join(n.name for n in servers) or "none"
        raise PreflightError(
            f"{source}: expected one install server, found {found}",
            hint="the install server is the node whose profile has /software/components/aiiserver "
            "(or the one node the others name at /system/aii/dhcp/options/tftpserver)",
        )
    s = servers[0]
    interfaces = s.profile.get("/system/network/interfaces") or {}
    iface = next((v for v in interfaces.values() if isinstance(v, dict) and v.get("ip")), None) if interfaces else None
    if iface is None:
        raise _fail(s.path, "/system/network/interfaces: the install server has no address", "give it ip and netmask")
    try:
        ip = ipaddress.IPv4Address(iface["ip"])
        subnet = ipaddress.IPv4Network(f"{ip}/{iface.get('netmask', '255.255.255.0')}", strict=False)
    except ValueError as exc:
        raise _fail(s.path, f"/system/network/interfaces: {exc}", "ip and netmask must be IPv4") from None
    if subnet.prefixlen > 29:
        raise _fail(s.path, f"the subnet {subnet} is too small for a lab", "a lab needs a /29 or larger")
    domain = s.profile.get("/system/network/domainname")
    if not isinstance(domain, str) or not domain:
        raise _fail(s.path, "/system/network/domainname: missing", "the lab serves DNS for the install server's domain")
    return InstallServerPlan(s.name, ip, subnet, domain, s.path)


def _xen_host(source: Path, nodes: tuple[NodeFile, ...]) -> NodeFile:
    hosts = [n for n in nodes if n.profile.get("/software/components/xen/domains") is not None]  # empty: no guests now
    if len(hosts) != 1:
        raise PreflightError(
            f"{source}: expected one Xen host (a node with /software/components/xen/domains), "
            f"found {', '.join(n.name for n in hosts) or 'none'}",
            hint="a gateway is one Xen host and its guests; run each host's profiles from their own directory",
        )
    if hosts[0].aii is None:
        raise _fail(hosts[0].path, "/system/aii/osinstall/options: missing", "the Xen host is installed by AII")
    return hosts[0]


def _host(host: NodeFile, nodes: tuple[NodeFile, ...]) -> HostPlan:
    p = host.profile
    try:
        xen = xen_model.read(p.reader("/software/components/xen"))
        grub_config = grub.read(p)
    except ProfileError as exc:
        raise _fail(host.path, str(exc), "ncm-xen and ncm-grub read this on the host") from None
    p.warnings.clear()
    ram = p.get("/hardware/ram") or []
    memory = sum(int(r.get("size", 0)) for r in ram if isinstance(r, dict))
    if memory <= 0:
        raise _fail(host.path, "/hardware/ram: no size", "the host's VM is given the RAM its profile declares")
    cpus = len(p.get("/hardware/cpu") or []) or 1
    disks = _host_disks(host)
    mbargs = " ".join(" ".join(k.mbargs) for k in grub_config.kernels if k.multiboot)
    found = DOM0_MEM.search(mbargs)
    dom0 = int(found.group(1)) * (1024 if found.group(2) == "G" else 1) if found else memory // 2
    entries = grub.entries(grub_config, lambda path: True)
    default = grub.choose_default(entries, f"{grub_config.prefix}/vmlinuz-{grub_config.version}")
    if not default.id.startswith("ncm-grub-xen"):
        raise _fail(
            host.path,
            "/software/components/grub: ncm-grub's default entry is not a Xen entry",
            "give a kernels entry with multiboot whose kernelpath is the default kernel (/system/kernel/version)",
        )
    by_name = {n.name: n for n in nodes}
    guests = tuple(_guest(d, host, by_name) for d in xen.domains)
    plan = HostPlan(host.name, memory, cpus, disks, dom0, default.id, default.title, guests, host.path)
    check_fits(plan)
    return plan


def _host_disks(host: NodeFile) -> tuple[tuple[str, int], ...]:
    harddisks = host.profile.get("/hardware/harddisks") or {}
    disks = []
    for name, disk in sorted(harddisks.items()):
        if not HOST_DISK_NAMES.fullmatch(name):
            raise _fail(
                host.path,
                f"/hardware/harddisks/{name}: the lab gives a host virtio disks (vda, vdb, …)",
                "name the host's disks vda, vdb, … (and the AII install disk to match)",
            )
        capacity = disk.get("capacity") if isinstance(disk, dict) else None
        if not isinstance(capacity, int) or capacity < 4096:
            raise _fail(host.path, f"/hardware/harddisks/{name}/capacity: expected MiB, at least 4096", "fix it")
        disks.append((name, capacity))
    if not disks:
        raise _fail(host.path, "/hardware/harddisks: none", "the host installs on a disk its profile declares")
    assert host.aii is not None
    wanted = host.aii.osinstall.get("disk") or disks[0][0]
    if wanted not in dict(disks):
        raise _fail(
            host.path,
            f"/system/aii/osinstall/options/disk is {wanted!r}, not one of /hardware/harddisks",
            f"name one of {', '.join(d for d, _ in disks)}",
        )
    return tuple(sorted(disks, key=lambda d: d[0] != wanted))  # the install disk first: QEMU's vda


def _guest(domain: xen_model.Domain, host: NodeFile, by_name: dict[str, NodeFile]) -> GuestPlan:
    o = domain.options
    where = f"{host.path}: {o.profile_path}"
    guest = by_name.get(o.name)
    if guest is None or guest.aii is None:
        raise PreflightError(
            f"{where}: guest {o.name} has no profile (profile_{o.name}.json) with AII options beside the host's",
            hint="every guest is a node: its own profile says how AII installs it",
        )
    if not o.disks:
        raise PreflightError(
            f"{where}/disk: guest {o.name} has no disk", hint="give it one: its installer and pypxeboot need a disk"
        )
    sizes = tuple(d.size_mib or 0 for d in o.disks)
    if not all(sizes):
        raise PreflightError(f"{where}/disk: every disk of {o.name} needs a size (MiB) for ncm-xen to make it")
    vif_macs = [m.lower() for v in o.vifs for m in re.findall(r"mac=([0-9A-Fa-f:]{17})", v)]
    if guest.aii.mac not in vif_macs:
        raise PreflightError(
            f"{where}/vif: no vif has the MAC {guest.aii.mac} of {guest.path}'s boot NIC",
            hint="the guest netboots with the MAC AII gives the install server",
        )
    named = guest.aii.osinstall.get("disk")
    if named:
        matches = [d.size_mib for d in o.disks if d.guestdevice == named]
        if not matches:
            raise PreflightError(
                f"{guest.path}: /system/aii/osinstall/options/disk {named!r} is none of {o.name}'s disks at {where}"
            )
        install = matches[0] or 0
    else:
        install = max(sizes)  # the installer's own rule when the kickstart names no disk
    return GuestPlan(o.name, o.type == "hvm", o.memory, sizes, install, guest.aii.mac, guest.path)


def check_fits(host: HostPlan, *, machine_mib: int | None = None, cores: int | None = None) -> None:
    """The host's RAM holds Xen, dom0 and its guests; its VM fits this machine."""
    need = XEN_OWN_MIB + host.dom0_mib + sum(g.memory_mib + GUEST_OVERHEAD_MIB for g in host.guests)
    if need > host.memory_mib:
        raise _fail(
            host.path,
            f"/hardware/ram: {host.memory_mib} MiB cannot hold Xen ({XEN_OWN_MIB}), dom0 ({host.dom0_mib}) and the "
            f"guests ({', '.join(f'{g.name} {g.memory_mib}' for g in host.guests)}): {need} MiB needed",
            "give the host more RAM or its guests less memory",
        )
    machine = machine_mib if machine_mib is not None else _available_mib()
    if host.memory_mib > machine - MACHINE_RESERVE_MIB:
        raise _fail(
            host.path,
            f"/hardware/ram: the host's {host.memory_mib} MiB do not fit this machine "
            f"({machine} MiB available, {MACHINE_RESERVE_MIB} kept for the rest of the lab)",
            "run on a bigger machine, or give the host less RAM in its profile",
        )
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if host.cpus > cores:
        raise _fail(
            host.path,
            f"/hardware/cpu: {host.cpus} CPUs, this machine has {cores} cores "
            "(emulated vCPUs beyond them only slow it)",
            "declare fewer CPUs in the host's profile",
        )


def check_disk_room(host: HostPlan, work: Path) -> None:
    """The host's disks, if filled, fit where the lab keeps them (qcow2 grows as the install writes)."""
    need = sum(size for _, size in host.disks)
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free // 2**20
    if need > free:
        raise _fail(
            host.path,
            f"/hardware/harddisks: {need} MiB of disks, {free} MiB free in {work}",
            "free disk space, or declare smaller disks",
        )


def check_addresses(t: Site) -> None:
    """Every node in the install server's subnet and domain, each MAC and address once, DNS at the server."""
    seen: dict[str, NodeFile] = {}
    for n in t.nodes:
        if n.aii is None:
            continue
        if n.aii.ip not in t.subnet or n.aii.ip in (t.subnet.network_address, t.subnet.broadcast_address):
            raise _fail(
                n.path,
                f"/system/network/interfaces/{n.aii.nic}/ip: {n.aii.ip} is outside the install server's subnet "
                f"{t.subnet} ({t.server.path})",
                "every node the lab installs sits on the install server's subnet",
            )
        if n.aii.domain != t.domain:
            raise _fail(
                n.path,
                f"/system/network/domainname: {n.aii.domain!r}, the install server serves {t.domain!r}",
                "the lab's DNS is the install server's: one domain",
            )
        if str(t.server.ip) not in n.aii.nameservers:
            raise _fail(
                n.path,
                f"/system/network/nameserver: {list(n.aii.nameservers)} does not name the install server {t.server.ip}",
                "the install server is the only DNS server in the lab",
            )
        for kind, value in (("MAC", n.aii.mac), ("address", str(n.aii.ip))):
            other = seen.get(f"{kind} {value}")
            if other is not None:
                raise _fail(n.path, f"the {kind} {value} is also {other.path.name}'s", "give every node its own")
            seen[f"{kind} {value}"] = n
        if n.aii.ip == t.server.ip:
            raise _fail(n.path, f"{n.aii.ip} is the install server's address", "give every node its own")
        check_urls(t, n)


URL_OPTIONS = (
    ("/system/aii/osinstall/options", ("kslocation", "payload", "profile_url")),
    ("/system/aii/nbp/options", ("kernel", "initrd")),
)


def check_urls(t: Site, n: NodeFile) -> None:
    """Every URL AII writes for the node points at the install server: the lab has no other server."""
    server = {t.server.name, f"{t.server.name}.{t.domain}", str(t.server.ip)}
    for base, keys in URL_OPTIONS:
        for key in keys:
            value = n.profile.get(f"{base}/{key}")
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                continue
            where = urllib.parse.urlsplit(value).hostname
            if where not in server:
                raise _fail(
                    n.path,
                    f"{base}/{key}: {value} is served by {where}, not by the install server {t.server.name}",
                    f"point it at http://{t.server.name}.{t.domain}/…",
                )


def _available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0
