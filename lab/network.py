"""The lab network: two namespaces, a bridge, a veth for the install server and a tap per VM.

```
netns <lab>:       br0 (STP off, no delay, observer address) ── srv0 ═ veth ═ eth0 in netns <lab>-srv
                     └── tap-<vm> (one per QEMU NIC; QEMU runs in this namespace)
```

Nothing here touches the machine's own namespace: no NAT, no route, no link to a real interface.  The
server also gets a ULA IPv6 address that exists only in the lab so that dnsmasq can send router
advertisements: iPXE otherwise waits 16 s for IPv6 autoconfiguration on every boot.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from lab import netns

log = logging.getLogger("xenlab.network")

BRIDGE = "br0"
SERVER_VETH_LAB_END = "srv0"
SERVER_IFACE = "eth0"


@dataclass(frozen=True)
class NetworkConfig:
    """Identity and addressing of one lab's network."""

    lab_id: str
    subnet: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("10.77.0.0/24"))
    server_host: int = 1  # the install server's host number inside the subnet
    observer_host: int = 254  # the harness's own address on the bridge (DNS checks, SSH to nodes)
    ula_prefix: ipaddress.IPv6Network = field(default=ipaddress.IPv6Network("fd77::/64"))

    @property
    def netns(self) -> str:
        return self.lab_id

    @property
    def server_netns(self) -> str:
        return f"{self.lab_id}-srv"

    @property
    def server_ip(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + self.server_host

    @property
    def observer_ip(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + self.observer_host

    @property
    def server_ula(self) -> ipaddress.IPv6Address:
        return self.ula_prefix.network_address + 1

    @property
    def dynamic_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """A small pool for unknown clients; nodes always get their static address."""
        return self.subnet.network_address + 200, self.subnet.network_address + 249


def tap_name(vm_name: str, index: int = 0) -> str:
    """Interface names are 15 bytes at most; a tap is named after its VM and NIC index."""
    stem = "".join(c for c in vm_name if c.isalnum())[:9]
    return f"t{index}-{stem}"


class LabNetwork:
    """Creates and removes one lab's namespaces and links.  Use as a context manager."""

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config

    def __enter__(self) -> LabNetwork:
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self) -> None:
        c = self.config
        netns.add(c.netns)
        netns.add(c.server_netns)
        netns.ip(c.netns, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        netns.ip(c.netns, "addr", "add", f"{c.observer_ip}/{c.subnet.prefixlen}", "dev", BRIDGE)
        netns.ip(c.netns, "link", "set", BRIDGE, "up")
        # The server's end is created directly inside its namespace: it never exists anywhere else.
        netns.ip(
            c.netns,
            "link",
            "add",
            SERVER_VETH_LAB_END,
            "type",
            "veth",
            "peer",
            "name",
            SERVER_IFACE,
            "netns",
            c.server_netns,
        )
        netns.ip(c.netns, "link", "set", SERVER_VETH_LAB_END, "master", BRIDGE, "up")
        netns.ip(c.server_netns, "addr", "add", f"{c.server_ip}/{c.subnet.prefixlen}", "dev", SERVER_IFACE)
        netns.ip(
            c.server_netns, "addr", "add", f"{c.server_ula}/{c.ula_prefix.prefixlen}", "dev", SERVER_IFACE, "nodad"
        )
        netns.ip(c.server_netns, "link", "set", SERVER_IFACE, "up")
        netns.set_resolver(c.netns, str(c.server_ip))
        log.info("lab network %s up: %s, server %s", c.lab_id, c.subnet, c.server_ip)

    def add_tap(self, name: str) -> str:
        netns.ip(self.config.netns, "tuntap", "add", "dev", name, "mode", "tap")
        netns.ip(self.config.netns, "link", "set", name, "master", BRIDGE, "up")
        return name

    def destroy(self) -> None:
        # Deleting a namespace removes every link in it; taps go with the lab namespace.
        netns.delete(self.config.server_netns)
        netns.delete(self.config.netns)
