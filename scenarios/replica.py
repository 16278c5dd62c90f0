"""A replica of a gateway, the seed's "creation of replicas in testbeds": the same compiled profiles with
other names, MACs and addresses, so that a second gateway can be built beside the first.

Every name of the gateway (its host and every domain the host's profile declares) becomes `<name><suffix>`
wherever it appears (host names, kickstart and profile URLs, guest disk paths and volume names, xl domain
names), every address of the old /24 moves to the new one, and every MAC gets its third byte changed.  The
install server keeps its name (`gridinstall`: each lab has its own).  The result is written as new
profiles; the source is untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from scenarios.gateway import Gateway

MAC = re.compile(r"\b([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})((?::[0-9A-Fa-f]{2}){3})\b")


@dataclass(frozen=True)
class ReplicaRule:
    suffix: str = "r"
    old_prefix: str = "10.77.0."  # the source gateway's /24
    new_prefix: str = "10.77.1."

    def name(self, original: str) -> str:
        return original + self.suffix

    def mac(self, match: re.Match[str]) -> str:
        third = f"{int(match.group(3), 16) ^ 0x01:02x}"
        third = third.upper() if match.group(3).isupper() else third
        return f"{match.group(1)}:{match.group(2)}:{third}{match.group(4)}"


def rewrite(text: str, names: list[str], rule: ReplicaRule) -> str:
    for original in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(original)}(?![A-Za-z0-9])", rule.name(original), text)
    text = re.sub(rf"(?<![0-9.]){re.escape(rule.old_prefix)}(?=[0-9])", rule.new_prefix, text)
    return MAC.sub(rule.mac, text)


def replicate(gateway: Gateway, dest: Path, rule: ReplicaRule = ReplicaRule()) -> Gateway:
    """Write the replica's profiles (of every profile in the gateway's directory) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    host = json.loads((gateway.profiles / f"profile_{gateway.host}.json").read_text())
    domains = host.get("software", {}).get("components", {}).get("xen", {}).get("domains", [])
    names = sorted({gateway.host, *gateway.guests, *(d["name"] for d in domains)})
    for path in sorted(gateway.profiles.glob("profile_*.json")):
        name = path.stem.removeprefix("profile_")
        new = rule.name(name) if name in names else name
        (dest / f"profile_{new}.json").write_text(rewrite(path.read_text(), names, rule))
    return replace(gateway, profiles=dest, host=rule.name(gateway.host), guests=tuple(map(rule.name, gateway.guests)))
