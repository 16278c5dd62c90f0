"""The installed systems' network unit (images/files/xenlab-network) run by the guest payload's own shell and
iproute2, in a network, UTS and mount namespace of the test's own: nothing of it outlives the test's process.
A guest's static address on its NIC; dom0's on xenbr0, which carries the NIC and its MAC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from images.recipes import guest_payload

# The kernel loads the bridge driver itself when a bridge link is made; the payload's modprobe knows only the
# payload's kernel, not this machine's, so it stands aside here.
STUB_MODPROBE = "#!/bin/sh\nexit 0\n"
RUN = """
set -e
mount -t proc proc /proc
mount -t sysfs sysfs /sys
ip link add eth0 address aa:00:86:e2:35:73 type veth peer name peer0
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


def network_unit(root: Path, env: str, *, bridge: str | None = None) -> tuple[str, str]:
    """The unit's console line and what `ip` shows after it, for a machine cagnode51.xenlab.test."""
    (root / "etc/xenlab").mkdir(exist_ok=True)
    (root / "etc/xenlab/network.env").write_text(env)
    conf = root / "etc/xenlab/network.conf"
    conf.unlink(missing_ok=True)
    if bridge:
        conf.write_text(f"BRIDGE={bridge}\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n10.77.0.51 cagnode51.xenlab.test cagnode51\n")
    console = root / "dev/hvc0"
    console.write_text("")  # a file standing in for the Xen console the unit writes its line to
    argv = ["unshare", "--net", "--uts", "--mount", "chroot", str(root), "/bin/sh", "-c", RUN.format(host="cagnode51")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return console.read_text(), proc.stdout


STATIC = "DEVICE=eth0\nBOOTPROTO=static\nIP=10.77.0.51\nNETMASK=255.255.255.0\nNAMESERVER=10.77.0.1\n"


@pytest.mark.integration
def test_a_guest_gets_its_static_address_on_its_nic_and_says_so_on_its_console(payload: Path) -> None:
    line, shown = network_unit(payload, STATIC)
    assert line == "XENLAB-NETWORK cagnode51 eth0 10.77.0.51/24\n"
    links, addresses = shown.split("MAC-SET-BY")[0].split("ADDRESSES")
    assert "eth0@peer0: <" in links and ",UP" in links.split("eth0@peer0: <")[1].split(">")[0]
    assert "eth0    inet 10.77.0.51/24" in addresses
    assert (payload / "etc/resolv.conf").read_text() == "search xenlab.test\nnameserver 10.77.0.1\n"


@pytest.mark.integration
def test_dom0s_address_goes_on_a_bridge_with_the_nics_mac(payload: Path) -> None:
    line, shown = network_unit(payload, STATIC.replace("NAMESERVER=10.77.0.1\n", "NAMESERVER=\n"), bridge="xenbr0")
    assert line == "XENLAB-NETWORK cagnode51 xenbr0 10.77.0.51/24\n"
    links, addresses = shown.split("MAC-SET-BY")[0].split("ADDRESSES")
    bridge = next(line for line in links.splitlines() if ": xenbr0: " in line)
    nic = next(line for line in links.splitlines() if ": eth0@peer0: " in line)
    assert "link/ether aa:00:86:e2:35:73 " in bridge, "the bridge carries the NIC's MAC (DHCP answers by it)"
    # set, not borrowed from its lowest port (a guest's vif may be lower) nor made up by udev's policy
    assert shown.split("MAC-SET-BY")[1].split() == ["3"], "NET_ADDR_SET"
    assert "master xenbr0" in nic and ",UP" in nic.split(">")[0] and ",UP" in bridge.split(">")[0]
    assert "xenbr0    inet 10.77.0.51/24" in addresses and "eth0    inet" not in addresses
