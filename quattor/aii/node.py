"""What AII needs of a node's profile, validated once: names, the boot NIC, addresses, AII options."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from quattor.aii.dialect import DIALECTS, install_arguments
from quattor.aii.nbp import LOCALBOOT_STEMS, BootEntry, NodeBoot
from quattor.profile import Profile, ProfileError

ROUTES = ("pxelinux", "ipxe")
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


@dataclass(frozen=True)
class AiiNode:
    hostname: str
    domain: str
    mac: str  # lower case
    nic: str
    ip: ipaddress.IPv4Address
    netmask: ipaddress.IPv4Address
    nameservers: tuple[str, ...]
    kernel: str
    initrd: str
    label: str
    ksdevice: str
    append: tuple[str, ...]
    kslocation: str
    ramdisk_token: bool
    route: str  # "pxelinux" (pxelinux.0 and TFTP) or "ipxe" (its firmware is iPXE: a script and HTTP)
    localboot: str  # how an iPXE client leaves the network boot once installed: "exit" or "sanboot"
    dialect: str  # the installer's boot arguments (quattor.aii.dialect): "el5" or "anaconda"
    updates: str | None  # an updates image for the installer
    stage2: str | None  # the installer's runtime image or install tree
    # the installer's own kernel arguments: its boot's only, never the installed system's (the kickstart's)
    installer_append: tuple[str, ...]
    osinstall: dict[str, object]
    profile: Profile

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}"

    @property
    def boot(self) -> NodeBoot:
        return NodeBoot(self.fqdn, self.mac, self.ip, self.localboot)

    def boot_entry(self) -> BootEntry:
        """The AII kernel arguments: [ramdisk=32768], the install's in the node's dialect (el5: ks=… ksdevice=…),
        the installer's own (`installer_append`), then the profile's own append."""
        install = install_arguments(
            self.dialect, ks=self.kslocation, nic=self.ksdevice, updates=self.updates, stage2=self.stage2
        )
        args = (("ramdisk=32768",) if self.ramdisk_token else ()) + install + self.installer_append + self.append
        return BootEntry(self.label, self.kernel, self.initrd, args)  # as the profile names it, spaces too


def _addresses(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(path, f"expected a list of IPv4 addresses, got {value!r}"[:200])
    try:
        return tuple(str(ipaddress.IPv4Address(v)) for v in value)
    except ValueError as exc:
        raise ProfileError(path, str(exc)) from None


def read(profile: Profile) -> AiiNode:
    hostname = profile.get("/system/network/hostname")
    domain = profile.get("/system/network/domainname")
    for path, value in (("/system/network/hostname", hostname), ("/system/network/domainname", domain)):
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", value):
            raise ProfileError(path, f"expected a DNS name, got {value!r}")
    nics = profile.get("/hardware/cards/nic", {}) or {}
    if not isinstance(nics, dict):
        raise ProfileError(
            "/hardware/cards/nic", f"expected an nlist of NICs by name (eth0: …), got {type(nics).__name__}"
        )
    boot = [(name, nic) for name, nic in nics.items() if isinstance(nic, dict) and nic.get("boot")]
    if len(boot) != 1:
        raise ProfileError("/hardware/cards/nic", f"expected exactly one NIC with boot true, found {len(boot)}")
    nic, card = boot[0]
    mac = card.get("hwaddr")
    if not isinstance(mac, str) or not MAC.fullmatch(mac):
        raise ProfileError(f"/hardware/cards/nic/{nic}/hwaddr", f"expected a MAC address, got {mac!r}")
    iface = profile.reader(f"/system/network/interfaces/{nic}")
    try:
        ip = ipaddress.IPv4Address(iface.req_string("ip"))
        netmask = ipaddress.IPv4Address(iface.string("netmask", default="255.255.255.0"))
    except ValueError as exc:
        raise ProfileError(iface.path, str(exc)) from None
    nbp = profile.reader("/system/aii/nbp/options")
    osinstall = profile.get("/system/aii/osinstall/options")
    if not isinstance(osinstall, dict):
        raise ProfileError("/system/aii/osinstall/options", "missing: AII needs it to write the kickstart")
    kslocation = osinstall.get("kslocation")
    if not isinstance(kslocation, str) or not kslocation.startswith("http://"):
        raise ProfileError("/system/aii/osinstall/options/kslocation", f"expected an http:// URL, got {kslocation!r}")
    append = tuple((nbp.string("append") or "").split())
    nameservers = _addresses(profile.get("/system/network/nameserver"), "/system/network/nameserver")
    route = profile.reader("/system/aii/dhcp/options").string("route", choices=ROUTES) or "pxelinux"
    return AiiNode(
        hostname=hostname,
        domain=domain,
        mac=mac.lower(),
        nic=nic,
        ip=ip,
        netmask=netmask,
        nameservers=nameservers,
        kernel=nbp.req_string("kernel"),
        initrd=nbp.req_string("initrd"),
        label=nbp.string("label") or f"Install {hostname}",
        ksdevice=nbp.string("ksdevice") or nic,
        append=append,
        kslocation=kslocation,
        ramdisk_token=bool(nbp.boolean("ramdisk", False)),
        route=route,
        localboot=nbp.string("localboot", choices=tuple(LOCALBOOT_STEMS)) or "exit",
        dialect=nbp.string("dialect", choices=DIALECTS) or "el5",
        updates=nbp.string("updates") or None,
        stage2=nbp.string("stage2") or None,
        installer_append=tuple((nbp.string("installer_append") or "").split()),
        osinstall=dict(osinstall),
        profile=profile,
    )
