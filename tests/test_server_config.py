"""The install server's configuration: validation of nodes, and the dnsmasq file rendered from them."""

from __future__ import annotations

import ipaddress
from typing import cast

import pytest

from foundation.errors import PreflightError
from foundation.network import NetworkConfig
from netboot_stack.config import InstallServerConfig, Route, ServedNode, render_dnsmasq

NET = NetworkConfig("xenlab9")
IP = ipaddress.IPv4Address


def node(name: str, mac: str, host: int, route: str = "pxelinux") -> ServedNode:
    """A node as a caller gives it; `route` may be any string, which the config must refuse or take."""
    return ServedNode(name, mac, IP(f"10.77.0.{host}"), cast(Route, route))


def test_two_nodes_with_one_mac_are_refused() -> None:
    with pytest.raises(PreflightError, match="same MAC 52:54:00:00:00:01"):
        InstallServerConfig(NET, nodes=(node("a", "52:54:00:00:00:01", 10), node("b", "52:54:00:00:00:01", 11)))


def test_two_nodes_with_one_ip_are_refused() -> None:
    with pytest.raises(PreflightError, match="same IP 10.77.0.10"):
        InstallServerConfig(NET, nodes=(node("a", "52:54:00:00:00:01", 10), node("b", "52:54:00:00:00:02", 10)))


@pytest.mark.parametrize("host", [1, 220])
def test_addresses_of_the_server_or_the_pool_are_refused(host: int) -> None:
    with pytest.raises(PreflightError, match="10.77.0"):
        InstallServerConfig(NET, nodes=(node("a", "52:54:00:00:00:01", host),))


@pytest.mark.parametrize(
    ("name", "mac", "route"),
    [
        ("Bad_Name", "52:54:00:00:00:01", "pxelinux"),
        ("a", "52-54-00-00-00-01", "pxelinux"),
        ("a", "52:54:00:00:00:01", "floppy"),
    ],
)
def test_malformed_nodes_are_refused(name: str, mac: str, route: str) -> None:
    with pytest.raises(PreflightError):
        node(name, mac, 10, route)


def test_dnsmasq_config_has_static_leases_names_and_routes() -> None:
    config = InstallServerConfig(
        NET,
        domain="lab.test",
        nodes=(node("cagnode50", "aa:00:86:e2:35:72", 50), node("cagnode51", "aa:00:86:e2:35:73", 51, "ipxe")),
    )
    text = render_dnsmasq(config, tftp_root="/srv/lab", log_file="/var/log/xenlab/dnsmasq.log", lease_file="/l")
    lines = text.splitlines()
    assert "dhcp-host=aa:00:86:e2:35:72,10.77.0.50,cagnode50" in lines
    assert "dhcp-host=aa:00:86:e2:35:73,10.77.0.51,cagnode51,set:httpboot" in lines
    # FQDN first: dnsmasq answers PTR queries with a host-record's first name.
    assert "host-record=cagnode50.lab.test,cagnode50,10.77.0.50" in lines
    assert "host-record=gridinstall.lab.test,gridinstall,10.77.0.1" in lines
    assert lines.index("dhcp-boot=pxelinux.0,gridinstall,10.77.0.1") < lines.index(
        "dhcp-boot=tag:ipxe,tag:httpboot,http://10.77.0.1/boot.ipxe"
    )
    # The closed world and the iPXE speed-ups.
    for line in ("no-resolv", "address=/#/", "domain-needed", "enable-ra", "dhcp-option=tag:ipxe,encap:175,176,1b"):
        assert line in lines
    assert not any(line.startswith("server=") for line in lines)
