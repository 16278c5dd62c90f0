"""A host network-boots from the lab's install server, fetches its kickstart and acknowledges.

Both boot routes: pxelinux.0 over TFTP, and an iPXE script over HTTP.  Each is asserted from three
witnesses: the console, the install server's event log, and the ack's effect on the node's boot state.
Under `pytest -n 2` the two routes run as two labs at once; each checks its server saw nobody else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.lab import Lab, LabSpec, NodeSpec
from netboot_stack.config import Route
from netboot_stack.events import Kind
from scenario_steps.netboot import PXELINUX_FILES, netboot

pytestmark = pytest.mark.scenario


def spec(route: Route) -> LabSpec:
    # cagnode51 never boots: it is there to show that every node resolves before it ever took a lease.
    return LabSpec(
        f"netboot-{route}", nodes=(NodeSpec("cagnode50", host=50, route=route), NodeSpec("cagnode51", host=51))
    )


@pytest.mark.parametrize("route", list(Route))
def test_host_netboots_fetches_its_kickstart_and_acks(route: Route, run_dir: Path) -> None:
    with Lab(spec(route), run_dir=run_dir) as lab:
        check_dns(lab)
        result = netboot(lab, "cagnode50")
        events = lab.server.events

        # Witness 1, the console: the installer printed the kickstart this node was served, then the ack.
        ks = re.search(r"XENLAB-KS-BEGIN (\S+)\n(.*?)XENLAB-KS-END", result.console, re.S)
        assert ks, "the installer never printed its kickstart"
        assert ks.group(1) == result.kickstart_url
        assert f"XENLAB-NETBOOT-TOKEN {result.token}" in ks.group(2)
        assert "XENLAB-ACK-OK [INFO] aii-installack: host 'cagnode50.xenlab.test'" in result.console
        assert f"XENLAB-DHCP-OK {lab.ip('cagnode50')}/24 host=cagnode50" in result.console

        # Witness 2, the install server: the lease for this MAC, then exactly the files of this route.
        leases = events.select(kind=Kind.LEASE, node="cagnode50")
        assert leases and {e.mac for e in leases} == {lab.mac("cagnode50")}
        assert {e.client for e in leases} == {str(lab.ip("cagnode50"))}
        tftp = [e.path for e in events.select(kind=Kind.TFTP, node="cagnode50")]
        http = [e.path for e in events.select(kind=Kind.HTTP, node="cagnode50")]
        installer = ["boot/dummy-installer/vmlinuz", "boot/dummy-installer/initrd.img"]
        if route is Route.PXELINUX:
            assert tftp == [*PXELINUX_FILES, f"pxelinux.cfg/{lab.node_boot('cagnode50').mac_name}", *installer]
        else:
            assert tftp == []
            assert http[:4] == ["boot.ipxe", f"ipxe/{lab.node_boot('cagnode50').ipxe_name}", *installer]
        assert http[-2:] == [f"ks/{lab.fqdn('cagnode50')}.ks", "cgi-bin/aii-installack.cgi"]

        # Witness 3, the ack: the node is switched to boot from its disk, and only it.
        assert [e.node for e in events.select(kind=Kind.ACK)] == ["cagnode50"]
        assert lab.server.nbp.status(lab.node_boot("cagnode50")) == "boot"

        # Isolation: everything this server saw came from this lab's own node (by IPv4 address, or by the
        # MAC inside the IPv6 link-local address iPXE asks DNS from) or from the lab's observer.
        mine = {str(lab.ip("cagnode50")), str(lab.network.observer_ip)}
        foreign = [
            e
            for e in events.all
            if e.client and e.client not in mine and not (e.mac == lab.mac("cagnode50") and e.node)
        ]
        assert not foreign, f"the install server saw clients from outside its lab: {foreign}"
        assert all(e.mac == lab.mac("cagnode50") for e in events.select(kind=Kind.LEASE))


def check_dns(lab: Lab) -> None:
    server = str(lab.network.server_ip)
    assert lab.resolve(f"gridinstall.{lab.spec.domain}") == [server]
    assert lab.resolve(f"{lab.network.server_ip.reverse_pointer}.", "PTR") == [f"gridinstall.{lab.spec.domain}."]
    for node in lab.spec.nodes:
        ip = lab.ip(node.name)
        assert lab.resolve(lab.fqdn(node.name)) == [str(ip)], node.name
        assert lab.resolve(f"{ip.reverse_pointer}.", "PTR") == [f"{lab.fqdn(node.name)}."], node.name
    # A closed world: nothing is forwarded outside the lab.
    assert lab.resolve("deb.debian.org") == []
