"""The installed systems' network unit (images/files/xenlab-network) run by the guest payload's own shell and
iproute2, in a network, UTS and mount namespace of the test's own: nothing of it outlives the test's process.
A guest's static address on its NIC; dom0's on xenbr0, which carries the NIC and its MAC.  What the unit reads
is what the installer writes from AII's kickstart for the second site's profiles."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from images.recipes import guest_payload
from kickstart_installer import xenlab_installer as inst
from quattor.aii import ks, node
from tests.quattor_helpers import PROFILES, profile

WESTGRID = PROFILES / "westgrid"
NIC_MAC = "aa:00:86:e2:35:73"  # the test's veth: the unit takes whatever MAC the NIC has

# The kernel loads the bridge driver itself when a bridge link is made; the payload's modprobe knows only the
# payload's kernel, not this machine's, so it stands aside here.
STUB_MODPROBE = "#!/bin/sh\nexit 0\n"
RUN = """
set -e
mount -t proc proc /proc
mount -t sysfs sysfs /sys
ip link add eth0 address {mac} type veth peer name peer0
hostname {host}
PATH=/xenlab-test-stubs:$PATH /usr/local/sbin/xenlab-network
echo LINKS; ip -o link show
echo ADDRESSES; ip -o -4 addr show
echo MAC-SET-BY; cat /sys/class/net/xenbr0/addr_assign_type 2>/dev/null || true
"""


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("payload") / "root"
    root.mkdir()
    tarball = guest_payload.build() / "guest.tar.zst"
    subprocess.run(["tar", "-x", "--zstd", "-C", root, "-f", tarball], check=True, timeout=300)
    stubs = root / "xenlab-test-stubs"
    stubs.mkdir()
    (stubs / "modprobe").write_text(STUB_MODPROBE)
    (stubs / "modprobe").chmod(0o755)
    return root


@dataclass(frozen=True)
class Unit:
    console: str
    links: str
    addresses: str
    mac_set_by: list[str]
    host: str  # what the kickstart named the machine, and the address it gave (prefix from its netmask)
    address: str
    resolver: str


def network_unit(root: Path, monkeypatch: pytest.MonkeyPatch, name: str, *, bridge: str | None = None) -> Unit:
    """The unit after the installer configured the payload from AII's kickstart for `name` (a profile of the
    second site, profiles/westgrid: a /26, other names): its console line and what `ip` shows."""
    tree = json.loads((WESTGRID / f"profile_{name}.json").read_text())
    handler = inst.parse(ks.kickstart(node.read(profile(tree)), payload_image="guest", ack_base="http://x"))
    monkeypatch.setattr(inst, "TARGET", root)
    monkeypatch.setattr(inst, "cmdline_arg", lambda *names: None)  # no ks= here: the build machine's own cmdline
    inst.configure_network(handler)  # /etc/hostname, /etc/hosts, /etc/xenlab/network.env, as the install writes them
    conf = root / "etc/xenlab/network.conf"
    conf.unlink(missing_ok=True)
    if bridge:
        conf.write_text(f"BRIDGE={bridge}\n")
    console = root / "dev/hvc0"
    console.write_text("")  # a file standing in for the Xen console the unit writes its line to
    host = (root / "etc/hostname").read_text().strip()
    script = RUN.format(host=host, mac=NIC_MAC)
    argv = ["unshare", "--net", "--uts", "--mount", "chroot", str(root), "/bin/sh", "-c", script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    net = handler.network.network[0]
    links, addresses = proc.stdout.split("MAC-SET-BY")[0].split("ADDRESSES")
    return Unit(
        console=console.read_text(),
        links=links,
        addresses=addresses,
        mac_set_by=proc.stdout.split("MAC-SET-BY")[1].split(),
        host=host,
        address=str(ipaddress.ip_interface(f"{net.ip}/{net.netmask}")),
        resolver=f"search {net.hostname.partition('.')[2]}\nnameserver {net.nameserver}\n",
    )


@pytest.mark.integration
def test_a_guest_gets_its_static_address_on_its_nic_and_says_so_on_its_console(
    payload: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = network_unit(payload, monkeypatch, "wn-west-worker01")
    assert unit.console == f"XENLAB-NETWORK {unit.host} eth0 {unit.address}\n"
    assert unit.address.endswith("/26")
    assert "eth0@peer0: <" in unit.links and ",UP" in unit.links.split("eth0@peer0: <")[1].split(">")[0]
    assert f"eth0    inet {unit.address}" in unit.addresses
    assert (payload / "etc/resolv.conf").read_text() == unit.resolver


@pytest.mark.integration
def test_dom0s_address_goes_on_a_bridge_with_the_nics_mac(payload: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = network_unit(payload, monkeypatch, "vmhost07", bridge="xenbr0")
    assert unit.console == f"XENLAB-NETWORK {unit.host} xenbr0 {unit.address}\n"
    bridge = next(line for line in unit.links.splitlines() if ": xenbr0: " in line)
    nic = next(line for line in unit.links.splitlines() if ": eth0@peer0: " in line)
    assert f"link/ether {NIC_MAC} " in bridge, "the bridge carries the NIC's MAC (DHCP answers by it)"
    # set, not borrowed from its lowest port (a guest's vif may be lower) nor made up by udev's policy
    assert unit.mac_set_by == ["3"], "NET_ADDR_SET"
    assert "master xenbr0" in nic and ",UP" in nic.split(">")[0] and ",UP" in bridge.split(">")[0]
    assert f"xenbr0    inet {unit.address}" in unit.addresses and "eth0    inet" not in unit.addresses
