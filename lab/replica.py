"""A replica of any profile set, the seed's "creation of replicas in testbeds": the same compiled profiles
with other names, MACs and addresses, so that a second gateway can be built beside the first.

The transform works on the profiles' trees, not on their text:

* every node name (and every ncm-xen domain name) becomes `rule.names.format(name=…)` wherever it is a
  whole word of a string (host names, URLs, disk paths, volume names) or a key (the nlist form of
  `domains`); the install server keeps its name unless `rename_server` (each lab has its own server);
* every IPv4 address inside the install server's subnet moves to the same host number of `rule.subnet`
  (by default the next subnet of the same size); addresses outside it are left as they are;
* every MAC has its third byte moved by `rule.mac_shift`.

The result is written as new JSON profiles, read back by the lab's own reader (`lab.topology`) before it
is returned: a replica that the lab would refuse is never left behind looking valid.  The source is
untouched.

    ./xenlab replica --profiles profiles --out /tmp/replica --names '{name}-r' --subnet 10.78.0.0/24
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.errors import PreflightError
from lab import topology
from quattor.ncm.components import xen_model
from quattor.profile import ProfileError

MAC = re.compile(r"\b([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})((?::[0-9A-Fa-f]{2}){3})\b")
IPV4 = re.compile(r"(?<![0-9.])(\d{1,3}(?:\.\d{1,3}){3})(?![0-9.])")
NAME_CHARS = "A-Za-z0-9"


@dataclass(frozen=True)
class ReplicaRule:
    names: str = "{name}r"  # the new name of each node, from its old one
    subnet: ipaddress.IPv4Network | None = None  # None: the next subnet of the same size
    mac_shift: int = 1  # added to each MAC's third byte, modulo 256
    rename_server: bool = False

    def __post_init__(self) -> None:
        if "{name}" not in self.names:
            raise PreflightError(f"replica names {self.names!r}: the pattern needs {{name}}", hint="e.g. {name}r")
        if self.mac_shift % 256 == 0:
            raise PreflightError("replica MAC shift 0 (mod 256) would keep every MAC", hint="use 1 to 255")


@dataclass(frozen=True)
class Renaming:
    names: dict[str, str]
    old_subnet: ipaddress.IPv4Network
    new_subnet: ipaddress.IPv4Network
    mac_shift: int

    def name(self, text: str) -> str:
        for old in sorted(self.names, key=len, reverse=True):
            text = re.sub(rf"(?<![{NAME_CHARS}]){re.escape(old)}(?![{NAME_CHARS}])", self.names[old], text)
        return text

    def address(self, match: re.Match[str]) -> str:
        try:
            ip = ipaddress.IPv4Address(match.group(1))
        except ValueError:
            return match.group(0)
        if ip not in self.old_subnet:
            return match.group(0)
        return str(self.new_subnet.network_address + (int(ip) - int(self.old_subnet.network_address)))

    def mac(self, match: re.Match[str]) -> str:
        third = f"{(int(match.group(3), 16) + self.mac_shift) % 256:02x}"
        third = third.upper() if match.group(3).isupper() else third
        return f"{match.group(1)}:{match.group(2)}:{third}{match.group(4)}"

    def string(self, text: str) -> str:
        return MAC.sub(self.mac, IPV4.sub(self.address, self.name(text)))

    def tree(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            return {self.names.get(k, k): self.tree(v) for k, v in value.items()}
        return value


def renaming(site: topology.Site, rule: ReplicaRule) -> Renaming:
    """Which names, subnet and MACs a replica of `site` gets under `rule`."""
    old = site.subnet
    new = rule.subnet or ipaddress.IPv4Network((int(old.network_address) + old.num_addresses, old.prefixlen))
    if new.prefixlen != old.prefixlen:
        raise PreflightError(
            f"replica subnet {new}: the profiles' subnet is {old}",
            hint=f"give a /{old.prefixlen}: host numbers are kept",
        )
    if new.overlaps(old):
        raise PreflightError(f"replica subnet {new} overlaps the original {old}", hint="give another subnet")
    domains: set[str] = set()
    for node in site.nodes:
        for domain in xen_domains(node):
            domains.update({domain.key, domain.options.name})
    names = {n.name for n in site.nodes if rule.rename_server or n.name != site.server.name} | domains
    mapping = {n: rule.names.format(name=n) for n in sorted(names)}
    for old_name, new_name in mapping.items():
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", new_name):
            raise PreflightError(f"replica name {new_name!r} (for {old_name}) is not a host name", hint="a-z, 0-9, -")
    return Renaming(mapping, old, new, rule.mac_shift % 256)


def xen_domains(node: topology.NodeFile) -> tuple[xen_model.Domain, ...]:
    """The node's ncm-xen domains, read by ncm-xen's own reader (either form of `domains`); none if it has none."""
    if node.profile.get("/software/components/xen/domains") is None:
        return ()
    try:
        return xen_model.read(node.profile.reader("/software/components/xen")).domains
    except ProfileError as exc:
        raise PreflightError(f"{node.path}: {exc}", hint="ncm-xen reads this on the host") from None


def replicate(source: Path, dest: Path, rule: ReplicaRule | None = None) -> Renaming:
    """Write the replica of every profile in `source` into `dest`; returns what was renamed."""
    site = topology.read_site(source)
    change = renaming(site, rule or ReplicaRule())
    dest.mkdir(parents=True, exist_ok=True)
    for node in site.nodes:
        new = change.names.get(node.name, node.name)
        (dest / f"profile_{new}.json").write_text(json.dumps(change.tree(node.profile.tree), indent=1) + "\n")
    topology.read_site(dest)  # the lab reads its replica as it reads any site
    return change


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./xenlab replica", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=Path, required=True, help="the compiled profiles to replicate")
    parser.add_argument("--out", type=Path, required=True, help="where to write the replica (created)")
    parser.add_argument("--names", default="{name}r", help="each node's new name, from {name} (default {name}r)")
    parser.add_argument("--subnet", type=ipaddress.IPv4Network, help="the replica's subnet (default: the next one)")
    parser.add_argument("--mac-shift", type=int, default=1, help="added to each MAC's third byte (default 1)")
    parser.add_argument("--rename-server", action="store_true", help="rename the install server too")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.profiles.resolve():
        parser.error("--out must not be the source directory: the source is never written")
    try:
        rule = ReplicaRule(args.names, args.subnet, args.mac_shift, args.rename_server)
        change = replicate(args.profiles, args.out, rule)
    except PreflightError as exc:
        print(f"xenlab replica: {exc}", file=sys.stderr)
        return 1
    for old, new in change.names.items():
        print(f"{old} -> {new}")
    print(f"{change.old_subnet} -> {change.new_subnet}; MACs: third byte +{change.mac_shift}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
