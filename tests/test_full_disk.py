"""A write that fails half-way (no room left: here RLIMIT_FSIZE, the per-process form of a full disk) leaves
the previous grub.cfg and xl configs in place, whole, and no temporary file behind."""

from __future__ import annotations

import copy
import json
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.quattor_helpers import REPO, shipped

VERSION = shipped("cagxen01")["system"]["kernel"]["version"]


def host_tree(memory: int, extra_args: str = "") -> dict[str, Any]:
    t = copy.deepcopy(shipped("cagxen01"))
    grub = t["software"]["components"]["grub"]
    grub["fullcontrol"] = True
    grub["kernels"][0]["kernelargs"] += extra_args
    xen = t["software"]["components"]["xen"]
    xen["create_domains"] = False
    for domain in xen["domains"]:
        domain["memory"] = memory
        domain["disk"] = [d for d in domain["disk"] if d["type"] == "file"]
    xen["domains"] = [d for d in xen["domains"] if d["disk"]]
    return t


def ncm_ncd(root: Path, tree: dict[str, Any], *, fsize: int | None) -> subprocess.CompletedProcess[str]:
    profile = root.parent / "profile.json"
    profile.write_text(json.dumps(tree))

    def limit() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    argv = [
        sys.executable,
        "-m",
        "quattor.ncm.ncd",
        "--configure",
        "--all",
        "--profile",
        str(profile),
        "--root",
        str(root),
    ]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, preexec_fn=limit, check=False, timeout=60)


def test_a_full_disk_loses_no_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot/grub").mkdir(parents=True)
    for name in (f"vmlinuz-{VERSION}", f"initrd.img-{VERSION}", "xen-4.17-amd64.gz"):
        (root / "boot" / name).write_bytes(b"x")
    first = ncm_ncd(root, host_tree(512), fsize=None)
    assert first.returncode == 0, first.stdout + first.stderr
    files = [root / "boot/grub/grub.cfg", root / "etc/xen/cagnode50.cfg"]
    before = {f: f.read_text() for f in files}
    assert "memory = 512" in before[files[1]]

    # The next run would write bigger files; the "disk" has room for 64 bytes of them.
    failed = ncm_ncd(root, host_tree(1024, " " + "x=" + "y" * 200), fsize=64)
    assert failed.returncode == 1
    assert "[ERROR] grub: failed: cannot write /boot/grub/grub.cfg" in failed.stdout
    assert "the previous file is untouched" in failed.stdout
    assert "[ERROR] xen: failed:" in failed.stdout
    for f in files:
        assert f.read_text() == before[f], f"{f} changed or was lost"
    leftovers = [p.name for p in root.rglob("*") if p.name.endswith(".ncm-new")]
    assert leftovers == [], leftovers

    # With room again, the change goes through, and the previous version is kept as .old.
    done = ncm_ncd(root, host_tree(1024), fsize=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "memory = 1024" in files[1].read_text()
    assert (root / "etc/xen/cagnode50.cfg.old").read_text() == before[files[1]]
