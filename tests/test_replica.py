"""A replica gateway's profiles: other names, MACs and addresses everywhere, nothing of the original left."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lab.lab import spec_from_profiles
from lab.paths import REPO
from quattor.aii import node
from quattor.profile import load
from scenarios.gateway import Gateway
from scenarios.replica import replicate

SHIPPED = Gateway(REPO / "profiles")


def test_a_replica_shares_no_name_mac_or_address_with_its_original(tmp_path: Path) -> None:
    replica = replicate(SHIPPED, tmp_path)
    assert (replica.host, replica.guests) == ("cagxen01r", ("cagnode50r", "cagnode51r"))
    originals = {n: node.read(load(SHIPPED.profiles / f"profile_{n}.json")) for n in (SHIPPED.host, *SHIPPED.guests)}
    for name, original in originals.items():
        copy = node.read(load(tmp_path / f"profile_{name}r.json"))  # AII reads it as it reads the original
        assert copy.fqdn == f"{name}r.xenlab.test" and copy.kslocation.endswith(f"/ks/{name}r.xenlab.test.ks")
        assert copy.ip != original.ip and str(copy.ip).startswith("10.77.1.")
        assert copy.mac != original.mac and copy.mac[3:] != original.mac[3:]
        assert copy.nameservers == ("10.77.1.1",)
        text = (tmp_path / f"profile_{name}r.json").read_text()
        assert not re.search(r"cag(xen|node)\d\d(?!r)", text), "an original name is left"
        assert original.mac not in text.lower() and "10.77.0." not in text
    domains = json.loads((tmp_path / "profile_cagxen01r.json").read_text())["software"]["components"]["xen"]["domains"]
    assert [d["name"] for d in domains] == ["cagnode50r", "cagnode51r", "cagnode52r"]
    assert domains[0]["disk"][0]["path"] == "/var/xen-grid/cagnode50r/fs/disk"
    assert domains[0]["vif"] == "[ 'mac=AA:00:87:e2:35:72' ]"  # the guest's profile has the same MAC
    guest = node.read(load(tmp_path / "profile_cagnode50r.json"))
    assert guest.mac == originals["cagnode50"].mac.replace(":86:", ":87:")
    server = json.loads((tmp_path / "profile_gridinstall.json").read_text())  # the lab's own install server
    assert server["system"]["network"]["hostname"] == "gridinstall"
    assert "gridinstall.xenlab.test" in node.read(load(tmp_path / "profile_cagnode50r.json")).kslocation
    spec = spec_from_profiles("replica", tmp_path, (replica.host, *replica.guests))
    assert str(spec.subnet) == "10.77.1.0/24"
