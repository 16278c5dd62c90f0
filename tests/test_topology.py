"""Preflight: a gateway's topology comes from its profiles and nothing else, for the seed's set and for a
second site written as another site would; bad sets are refused naming the profile and the fix."""

from __future__ import annotations

import copy
import ipaddress
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from foundation.errors import PreflightError
from foundation.network import NetworkConfig, tap_name
from foundation.paths import REPO
from lab import topology
from lab.lab import spec_from_profiles
from netboot_stack.config import InstallServerConfig, ServedNode, render_dnsmasq

SEED = REPO / "profiles"
WESTGRID = REPO / "profiles" / "westgrid"


def test_the_seed_gateway() -> None:
    t = topology.read(SEED)
    assert (t.server.name, str(t.server.ip), str(t.subnet), t.domain) == (
        "gridinstall",
        "10.77.0.1",
        "10.77.0.0/24",
        "xenlab.test",
    )
    h = t.host
    assert (h.name, h.memory_mib, h.cpus, h.disks, h.dom0_mib) == ("cagxen01", 2560, 2, (("vda", 24576),), 512)
    assert h.grub_default_id == "ncm-grub-xen-0" and h.grub_default_title.startswith("Xen 4.17 / Debian GNU/Linux")
    assert [(g.name, g.hvm, g.memory_mib, g.install_disk_mib) for g in h.guests] == [
        ("cagnode50", False, 512, 10240),  # the talk's slide: a 10 GiB file and a 6 GiB swap LV; the largest
        ("cagnode51", False, 512, 4096),
        ("cagnode52", True, 512, 4096),
    ]


def test_the_second_site() -> None:
    t = topology.read(WESTGRID)
    assert (t.server.name, str(t.server.ip), str(t.subnet), t.domain) == (
        "quattorsrv",
        "192.168.12.66",
        "192.168.12.64/26",
        "west.gridlab.test",
    )
    h = t.host
    assert (h.name, h.memory_mib, h.cpus, h.disks) == ("vmhost07", 2560, 2, (("vda", 24576),))
    assert h.grub_default_id == "ncm-grub-xen-1"  # the Xen entry is second in the list; ncm-grub still picks it
    assert h.grub_default_title == "Xen 4.17 / XenLinux 6.1.0-56-amd64 (West Grid dom0)"
    guests = {g.name: g for g in h.guests}
    assert sorted(guests) == ["ui-west-storage01", "wn-west-worker01", "wn-west-worker02"]
    assert not h.hvm_guests  # so no hvm run
    assert {n: g.memory_mib for n, g in guests.items()} == {
        "ui-west-storage01": 576,
        "wn-west-worker01": 448,
        "wn-west-worker02": 512,
    }
    assert guests["ui-west-storage01"].disk_mib == (4096, 1024)  # a file and an LV; AII names xvda
    spec = spec_from_profiles("w", t, ("vmhost07", *guests))
    assert (spec.server_name, spec.server_host, str(spec.subnet), spec.domain) == (
        "quattorsrv",
        2,
        "192.168.12.64/26",
        "west.gridlab.test",
    )
    assert [n.host for n in spec.nodes] == [6, 9, 7, 8]


def test_a_sites_network_any_prefix_length() -> None:
    net = NetworkConfig.around(
        "xenlab3", ipaddress.IPv4Network("192.168.12.64/26"), ipaddress.IPv4Address("192.168.12.66"), used=[6, 7, 8, 9]
    )
    assert (str(net.server_ip), str(net.observer_ip)) == ("192.168.12.66", "192.168.12.126")
    low, high = net.dynamic_range
    assert (str(low), str(high)) == ("192.168.12.110", "192.168.12.125")
    assert net.reverse_zones == ("12.168.192.in-addr.arpa",)
    wide = NetworkConfig.around("x", ipaddress.IPv4Network("172.20.8.0/23"), ipaddress.IPv4Address("172.20.9.250"), [])
    assert wide.reverse_zones == ("8.20.172.in-addr.arpa", "9.20.172.in-addr.arpa")
    assert str(wide.observer_ip) == "172.20.9.254"
    nodes = (ServedNode("vmhost07", "52:54:00:c0:0c:46", ipaddress.IPv4Address("192.168.12.70")),)
    conf = render_dnsmasq(
        InstallServerConfig(net, domain="west.gridlab.test", server_name="quattorsrv", nodes=nodes),
        tftp_root="/srv",
        log_file="/l",
        lease_file="/f",
    )
    assert "host-record=quattorsrv.west.gridlab.test,quattorsrv,192.168.12.66" in conf
    assert "dhcp-range=192.168.12.110,192.168.12.125,255.255.255.192,1h" in conf
    assert "local=/12.168.192.in-addr.arpa/" in conf


def test_tap_names_are_unique_whatever_the_node_names() -> None:
    names = ["wn-west-worker01", "wn-west-worker02", "wnwestworker01x", "a" * 40]
    taps = [tap_name(i, n) for i, n in enumerate(names)]
    assert len(set(taps)) == len(taps) and all(len(t) <= 15 for t in taps)


# --- bad sets ---------------------------------------------------------------------------------------------------
def edited(tmp_path: Path, source: Path, node: str, edit: Any) -> Path:
    """A copy of `source` in which `edit(tree)` changed the profile of `node`."""
    dest = tmp_path / "set"
    shutil.copytree(source, dest)
    path = dest / f"profile_{node}.json"
    tree = json.loads(path.read_text())
    edit(tree)
    path.write_text(json.dumps(tree))
    return dest


def seed_domains(tree: dict[str, Any]) -> list[dict[str, Any]]:
    domains: list[dict[str, Any]] = tree["software"]["components"]["xen"]["domains"]
    return domains


def no_disk(tree: dict[str, Any]) -> None:
    seed_domains(tree)[1]["disk"] = []


def guest_mac(mac: str) -> Any:
    def edit(tree: dict[str, Any]) -> None:
        tree["hardware"]["cards"]["nic"]["eth0"]["hwaddr"] = mac

    return edit


def outside(tree: dict[str, Any]) -> None:
    tree["system"]["network"]["interfaces"]["eth0"]["ip"] = "10.77.5.51"


def huge(tree: dict[str, Any]) -> None:
    tree["hardware"]["ram"] = [{"size": 4 * 1024 * 1024}]


def tiny(tree: dict[str, Any]) -> None:
    tree["hardware"]["ram"] = [{"size": 1024}]


def elsewhere(tree: dict[str, Any]) -> None:
    tree["system"]["aii"]["osinstall"]["options"]["kslocation"] = "http://ks.example.org/ks/cagnode51.xenlab.test.ks"


@pytest.mark.parametrize(
    ("node", "edit", "message"),
    [
        (
            "cagxen01",
            no_disk,
            r"profile_cagxen01.json: /software/components/xen/domains/1/disk: guest cagnode51 has no disk",
        ),
        ("cagnode51", guest_mac("AA:00:86:e2:35:72"), r"profile_cagnode51.json: the MAC aa:00:86:e2:35:72 is also"),
        (
            "cagnode51",
            outside,
            r"profile_cagnode51.json: .*10.77.5.51 is outside the install server's subnet 10.77.0.0/24",
        ),
        ("cagxen01", huge, r"profile_cagxen01.json: /hardware/ram: the host's 4194304 MiB do not fit this machine"),
        ("cagxen01", tiny, r"/hardware/ram: 1024 MiB cannot hold Xen .* dom0 \(512\) and the guests"),
        ("cagnode51", elsewhere, r"kslocation: .* is served by ks.example.org, not by the install server gridinstall"),
    ],
)
def test_bad_sets_are_refused_at_preflight(tmp_path: Path, node: str, edit: Any, message: str) -> None:
    with pytest.raises(PreflightError, match=message) as refused:
        topology.read(edited(tmp_path, SEED, node, edit))
    assert refused.value.hint  # and what to do about it


def test_no_install_server_and_two_xen_hosts_are_refused(tmp_path: Path) -> None:
    def not_a_server(tree: dict[str, Any]) -> None:
        del tree["software"]["components"]["aiiserver"]

    def tftp_elsewhere(tree: dict[str, Any]) -> None:
        tree["system"]["aii"]["dhcp"]["options"]["tftpserver"] = "nowhere"

    found = topology.read(edited(tmp_path, SEED, "gridinstall", not_a_server))  # named as tftpserver: still found
    assert found.server.name == "gridinstall"
    with pytest.raises(PreflightError, match="expected one install server, found none"):
        broken = edited(tmp_path / "2", SEED, "gridinstall", not_a_server)
        for name in ("cagxen01", "cagnode50", "cagnode51", "cagnode52"):
            path = broken / f"profile_{name}.json"
            tree = json.loads(path.read_text())
            tftp_elsewhere(tree)
            path.write_text(json.dumps(tree))
        topology.read(broken)
    second = edited(
        tmp_path / "3",
        SEED,
        "cagnode51",
        lambda t: t["software"]["components"].update(
            xen=copy.deepcopy(json.loads((SEED / "profile_cagxen01.json").read_text())["software"]["components"]["xen"])
        ),
    )
    with pytest.raises(PreflightError, match="expected one Xen host .* found cagnode51, cagxen01"):
        topology.read(second)


def test_check_fits_this_machine() -> None:
    host = topology.read(SEED).host
    topology.check_fits(host, machine_mib=host.memory_mib + topology.MACHINE_RESERVE_MIB, cores=2)
    with pytest.raises(PreflightError, match="do not fit this machine"):
        topology.check_fits(host, machine_mib=host.memory_mib, cores=2)
    with pytest.raises(PreflightError, match="2 CPUs, this machine has 1 cores"):
        topology.check_fits(host, machine_mib=10**6, cores=1)
