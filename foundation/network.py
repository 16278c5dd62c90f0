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
from collections.abc import Iterable
from dataclasses import dataclass, field

from foundation import netns
from foundation.errors import PreflightError

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
    pool: tuple[int, int] = (200, 249)  # host numbers dnsmasq may give to clients it does not know
    ula_prefix: ipaddress.IPv6Network = field(default=ipaddress.IPv6Network("fd77::/64"))

    @classmethod
    def around(
        cls, lab_id: str, subnet: ipaddress.IPv4Network, server: ipaddress.IPv4Address, used: Iterable[int]
    ) -> NetworkConfig:
        """A site's subnet, any prefix length: the install server where its profile puts it, the observer on the
        highest free address, a small pool on the highest free run below it, clear of every node."""
        taken = {int(server) - int(subnet.network_address), *used}
        free = [h for h in range(subnet.num_addresses - 2, 0, -1) if h not in taken]
        if len(free) < 2:
            raise PreflightError(f"the subnet {subnet} has no free address for the lab's observer and DHCP pool")
        observer, rest = free[0], free[1:]
        run = [rest[0]]
        for h in rest[1:]:
            if h != run[-1] - 1 or len(run) == POOL_SIZE:
                break
            run.append(h)
        return cls(lab_id, subnet, taken_server(subnet, server), observer, (run[-1], run[0]))

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
        return self.subnet.network_address + self.pool[0], self.subnet.network_address + self.pool[1]

    @property
    def reverse_zones(self) -> tuple[str, ...]:
        """The in-addr.arpa zones that hold the subnet's addresses: its /24's, one per /24 it spans (a /23 has
        two), or one per /16 for a subnet wider than a /16."""
        octets = 3 if self.subnet.prefixlen >= 16 else 2
        nets = [self.subnet] if self.subnet.prefixlen >= 8 * octets else self.subnet.subnets(new_prefix=8 * octets)
        zones = {".".join(reversed(str(n.network_address).split(".")[:octets])) + ".in-addr.arpa" for n in nets}
        return tuple(sorted(zones))


POOL_SIZE = 16


def taken_server(subnet: ipaddress.IPv4Network, server: ipaddress.IPv4Address) -> int:
    if server not in subnet or server in (subnet.network_address, subnet.broadcast_address):
        raise PreflightError(f"the install server's address {server} is not a host address of {subnet}")
    return int(server) - int(subnet.network_address)


def tap_name(node_index: int, vm_name: str, nic: int = 0) -> str:
    """Interface names are 15 bytes at most: a tap is named by its node's index in the lab, which makes it
    unique whatever the node names, then the NIC and as much of the name as fits (for a person reading)."""
    prefix = f"t{node_index}n{nic}-"
    stem = "".join(c for c in vm_name if c.isalnum())[: 15 - len(prefix)]
    return prefix + stem


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
