"""A replica of a profile set: other names, MACs and addresses everywhere, nothing of the original left, and a
set the lab reads as it reads any site."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from foundation.errors import PreflightError
from foundation.paths import REPO
from lab import replica, topology
from quattor.aii import node
from quattor.profile import load

SEED = REPO / "profiles"
WESTGRID = REPO / "profiles" / "westgrid"


def test_a_replica_of_the_seed_shares_no_name_mac_or_address_with_it(tmp_path: Path) -> None:
    change = replica.replicate(SEED, tmp_path)
    assert change.names == {f"{n}": f"{n}r" for n in ("cagnode50", "cagnode51", "cagnode52", "cagxen01")}
    copy = topology.read(tmp_path)  # the lab reads it as it reads the original
    assert copy.host.name == "cagxen01r" and [g.name for g in copy.host.guests] == [
        "cagnode50r",
        "cagnode51r",
        "cagnode52r",
    ]
    assert str(copy.subnet) == "10.77.1.0/24" and copy.server.name == "gridinstall"  # each lab has its own server
    for name in ("cagxen01", "cagnode50", "cagnode51", "cagnode52"):
        original = node.read(load(SEED / f"profile_{name}.json"))
        twin = node.read(load(tmp_path / f"profile_{name}r.json"))
        assert twin.fqdn == f"{name}r.xenlab.test" and twin.kslocation.endswith(f"/ks/{name}r.xenlab.test.ks")
        assert twin.ip == original.ip + 256 and twin.mac != original.mac and twin.nameservers == ("10.77.1.1",)
        text = (tmp_path / f"profile_{name}r.json").read_text()
        assert not re.search(r"cag(xen|node)\d\d(?!r)", text), "an original name is left"
        assert original.mac not in text.lower() and "10.77.0." not in text
    domains = json.loads((tmp_path / "profile_cagxen01r.json").read_text())["software"]["components"]["xen"]["domains"]
    assert domains[0]["disk"][0]["path"] == "/var/xen-grid/cagnode50r/fs/disk"
    assert domains[0]["disk"][1]["hostvol"] == "cagnode50r-swap"
    assert domains[0]["vif"] == "[ 'mac=AA:00:87:e2:35:72' ]"  # the 2007 string form, rewritten inside
    assert copy.host.guests[0].mac == "aa:00:87:e2:35:72"  # …and the guest's own profile has the same MAC


def test_a_replica_of_the_second_site_by_pattern_and_subnet(tmp_path: Path) -> None:
    rule = replica.ReplicaRule(names="t{name}", subnet=ipaddress.IPv4Network("10.200.3.128/26"), rename_server=True)
    replica.replicate(WESTGRID, tmp_path, rule)
    copy = topology.read(tmp_path)
    assert (copy.server.name, str(copy.server.ip), str(copy.subnet)) == (
        "tquattorsrv",
        "10.200.3.130",
        "10.200.3.128/26",
    )
    assert copy.host.name == "tvmhost07"
    assert sorted(g.name for g in copy.host.guests) == ["tui-west-storage01", "twn-west-worker01", "twn-west-worker02"]
    host = json.loads((tmp_path / "profile_tvmhost07.json").read_text())
    assert set(host["software"]["components"]["xen"]["domains"]) == {g.name for g in copy.host.guests}  # nlist keys
    assert "192.168.12." not in (tmp_path / "profile_tvmhost07.json").read_text()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (replica.ReplicaRule(subnet=ipaddress.IPv4Network("10.77.0.128/25")), "the profiles' subnet is 10.77.0.0/24"),
        (replica.ReplicaRule(subnet=ipaddress.IPv4Network("10.77.0.0/24")), "overlaps the original"),
        (replica.ReplicaRule(names="{name}_copy"), "is not a host name"),
    ],
)
def test_a_replica_the_lab_could_not_run_is_refused(tmp_path: Path, rule: replica.ReplicaRule, message: str) -> None:
    with pytest.raises(PreflightError, match=message):
        replica.replicate(SEED, tmp_path, rule)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replica.main(["--profiles", str(SEED), "--out", str(tmp_path), "--names", "{name}-b"]) == 0
    assert "cagxen01 -> cagxen01-b" in capsys.readouterr().out
    assert (tmp_path / "profile_cagxen01-b.json").exists()
    assert replica.main(["--profiles", str(SEED), "--out", str(tmp_path / "x"), "--names", "nopattern"]) == 1
    assert "the pattern needs {name}" in capsys.readouterr().err
