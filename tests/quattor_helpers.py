"""Building small compiled profiles for the Quattor tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from quattor.profile import Profile

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "profiles"


def shipped(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES / f"profile_{name}.json").read_text())
    return data


def profile(tree: dict[str, Any]) -> Profile:
    return Profile(copy.deepcopy(tree), "test")


def write(tmp: Path, tree: dict[str, Any], name: str = "profile.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(tree))
    return path


def xen_tree(*domains: dict[str, Any], **flags: Any) -> dict[str, Any]:
    return {"software": {"components": {"xen": {"domains": list(domains), **flags}}}}
