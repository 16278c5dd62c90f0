"""Debian packages: resolve to exact versions, download once into a checksum-named cache, extract.

Packages come from the machine's apt sources (Debian 12) with `apt-get download`; nothing is installed on
the machine.  A package's SHA256 from the archive index is part of every image key that uses it.  Answers
of apt-cache (about a second each) are remembered until the package lists change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import LabError
from foundation.paths import cache_dir
from foundation.process import run

APT_LISTS = Path("/var/lib/apt/lists")


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    sha256: str

    def as_input(self) -> str:
        return f"{self.name}={self.version}@{self.sha256[:16]}"


def _lists_stamp() -> str:
    """Changes whenever `apt-get update` brings new package indexes."""
    parts = sorted(f"{p.name}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in APT_LISTS.glob("*_Packages*"))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _memo() -> tuple[Path, dict[str, object]]:
    path = cache_dir() / "apt-answers.json"
    stamp = _lists_stamp()
    try:
        data = json.loads(path.read_text())
        if data.get("stamp") == stamp:
            return path, data
    except (OSError, ValueError):
        pass
    return path, {"stamp": stamp, "answers": {}}


def _recall(question: str) -> object | None:
    answers = _memo()[1]["answers"]
    assert isinstance(answers, dict)
    return answers.get(question)


def _remember(question: str, answer: object) -> None:
    path, data = _memo()
    answers = data["answers"]
    assert isinstance(answers, dict)
    answers[question] = answer
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=0))
    tmp.replace(path)


def resolve(name: str) -> Deb:
    """The candidate version of a package, as the archive index describes it."""
    known = _recall(f"show:{name}")
    if isinstance(known, list):
        return Deb(*known)
    proc = run(["apt-cache", "show", "--no-all-versions", name], check=False)
    fields = dict(re.findall(r"^(Package|Version|SHA256): (.+)$", proc.stdout, re.M))
    if proc.returncode != 0 or "SHA256" not in fields:
        raise LabError(
            f"Debian package {name!r} is not known to apt",
            hint="run `apt-get update` (./xenlab setup does), and check the package name",
        )
    deb = Deb(fields["Package"], fields["Version"], fields["SHA256"])
    _remember(f"show:{name}", [deb.name, deb.version, deb.sha256])
    return deb


def depends_on(name: str, pattern: str) -> str:
    """The name of the dependency of `name` matching `pattern`, e.g. the kernel behind linux-image-amd64."""
    question = f"depends:{name}:{pattern}"
    known = _recall(question)
    if isinstance(known, str):
        return known
    out = run(["apt-cache", "depends", name]).stdout
    for m in re.finditer(r"Depends: (\S+)", out):
        if re.fullmatch(pattern, m.group(1)):
            _remember(question, m.group(1))
            return m.group(1)
    raise LabError(f"{name} has no dependency matching {pattern!r}")


def fetch(deb: Deb) -> Path:
    store = cache_dir() / "debs"
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{deb.name}_{deb.sha256[:16]}.deb"
    if path.exists():
        return path
    with tempfile.TemporaryDirectory(dir=store) as tmp:
        run(
            ["apt-get", "download", f"{deb.name}={deb.version}"],
            cwd=Path(tmp),
            timeout=900,
            hint="the machine needs access to the Debian archive its apt sources name",
        )
        (got,) = Path(tmp).glob("*.deb")
        digest = hashlib.sha256(got.read_bytes()).hexdigest()
        if digest != deb.sha256:
            raise LabError(f"{got.name}: checksum {digest} does not match the archive's {deb.sha256}")
        shutil.move(got, path)
    return path


def extract(deb: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", deb, dest])
