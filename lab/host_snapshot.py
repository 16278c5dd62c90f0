"""Snapshots of an installed Xen host, so that a run can start from one: `./xenlab gateway --from host-installed`.

What is kept: the host's disks as its installer left them (the install acked, the VM off, before its first
boot into Xen), taken by every gateway run that installs the host.  What a snapshot is keyed by: what made
those disks, namely the installer image, the dom0 payload's Debian tree and recipe, the host's kickstart as
AII wrote it (without the lab's per-run SSH key and comments), and the host VM's memory, vCPUs and disks.

Not by the system under test (pypxeboot, ncm-ncd and its components, AII): a restored host gets the current
one written over the snapshot's before it boots, as a site's package update would, so a developer changing
pypxeboot or ncm-xen reuses the installed host (the install's own `%post` ran the snapshot's version, and the
log says so).  Not by the guests' profiles or payload either: the host's first configuration run reads them
from the install server, after the restore.  A run whose inputs differ finds no snapshot, and the log says
which input changed since the newest one of that host.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import LabError
from foundation.paths import REPO, cache_dir
from foundation.process import run
from images import store
from images.recipes import dom0

log = logging.getLogger("xenlab.snapshot")

PHASE = "host-installed"
FORMAT = "1"  # the layout of a snapshot: a change makes every older one unusable
KEEP_PER_HOST = 2
META = "snapshot.json"
ROOT_LABEL = "root"  # AII's kickstart: part / --label=root
# What each input means, for the log line that says why no snapshot fits.
MEANING = {
    "installer": "the installer image",
    "payload": "the dom0 payload (its Debian tree or recipe)",
    "kickstart": "the host's kickstart",
    "vm": "the host VM's memory, vCPUs or disks",
    "format": "the snapshot format",
}


@dataclass(frozen=True)
class HostInputs:
    """What made an installed host's disks, as strings (compared one by one to say what changed)."""

    host: str
    inputs: Mapping[str, str]

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(dict(self.inputs), sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Snapshot:
    path: Path
    host: str
    inputs: Mapping[str, str]
    sut: str  # the system under test's digest in the snapshot (dom0.sut_digest())
    taken: str

    def disk(self, name: str) -> Path:
        return self.path / f"{name}.qcow2"


def host_inputs(
    host: str, *, installer: Path, payload: Path, kickstart: str, memory_mib: int, cpus: int, disks: str
) -> HostInputs:
    """`installer` and `payload`: the image directories; `kickstart`: the host's as served; `disks`: the VM's
    disks in words ("vda:24G")."""
    payload_inputs = {k: v for k, v in store.recorded_inputs(payload).items() if k != "sut"}
    # Not part of what the install does: the lab's per-run SSH key, and comments (AII's first line names the
    # profile's path, a per-run temporary directory)
    kept = "\n".join(line for line in kickstart.splitlines() if not line.startswith(("sshkey ", "#")))
    return HostInputs(
        host,
        {
            "installer": installer.name,
            "payload": json.dumps(payload_inputs, sort_keys=True),
            "kickstart": hashlib.sha256(kept.encode()).hexdigest()[:20],
            "vm": f"{memory_mib} MiB, {cpus} vCPUs, disks {disks}",
            "format": FORMAT,
        },
    )


def snapshots_dir() -> Path:
    path = cache_dir() / "snapshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked() -> Iterator[None]:
    with open(snapshots_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read(path: Path) -> Snapshot | None:
    try:
        meta = json.loads((path / META).read_text())
        return Snapshot(path, meta["host"], dict(meta["inputs"]), meta["sut"], meta["taken"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def of_host(host: str) -> list[Snapshot]:
    """The host's snapshots on this machine, newest first."""
    found = [s for p in snapshots_dir().glob(f"{PHASE}-{host}-*") if (s := _read(p)) is not None and s.host == host]
    return sorted(found, key=lambda s: s.taken, reverse=True)


def find(wanted: HostInputs) -> Snapshot | None:
    snapshot = _read(snapshots_dir() / f"{PHASE}-{wanted.host}-{wanted.key}")
    return snapshot if snapshot is not None and dict(snapshot.inputs) == dict(wanted.inputs) else None


def why_none(wanted: HostInputs) -> str:
    """Why no snapshot fits: none of this host at all, or what changed since its newest one."""
    newest = next(iter(of_host(wanted.host)), None)
    if newest is None:
        return f"no snapshot of {wanted.host} on this machine (a run without --from takes one)"
    changed = [k for k in sorted({*wanted.inputs, *newest.inputs}) if wanted.inputs.get(k) != newest.inputs.get(k)]
    return f"the snapshot of {wanted.host} taken {newest.taken} is of other inputs: " + ", ".join(
        f"{MEANING.get(k, k)} changed" for k in changed
    )


def save(wanted: HostInputs, disks: Mapping[str, Path]) -> Snapshot:
    """Keep the host's disks (qcow2 files with no backing file, the VM off) as the snapshot of `wanted`;
    the host's older snapshots beyond KEEP_PER_HOST are removed."""
    started = time.monotonic()
    final = snapshots_dir() / f"{PHASE}-{wanted.host}-{wanted.key}"
    with _locked():
        tmp = final.with_name(final.name + ".taking")
        if tmp.exists():
            shutil.rmtree(tmp)  # a save that crashed half-way
        tmp.mkdir()
        try:
            for name, path in disks.items():
                run(["cp", "--reflink=auto", "--sparse=always", path, tmp / f"{name}.qcow2"], timeout=600)
            meta = {
                "host": wanted.host,
                "inputs": dict(wanted.inputs),
                "sut": dom0.sut_digest(),
                "taken": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in of_host(wanted.host)[KEEP_PER_HOST:]:
            shutil.rmtree(old.path, ignore_errors=True)
    size = sum(f.stat().st_blocks * 512 for f in final.iterdir()) / 2**20
    log.info(
        "snapshot of %s (%s) kept: %s, %.0f MiB, %.1f s", wanted.host, PHASE, final, size, time.monotonic() - started
    )
    snapshot = _read(final)
    assert snapshot is not None
    return snapshot


def restore(snapshot: Snapshot, disk_names: list[str], work_dir: Path, *, public_key: str) -> dict[str, Path]:
    """Raw copies of the snapshot's disks in `work_dir` (the VM's overlays go on them), with the current
    system under test and `public_key` (root's only SSH key) written on the root file system; returns them."""
    work_dir.mkdir(parents=True, exist_ok=True)
    restored = {}
    for name in disk_names:
        raw = work_dir / f"{name}.restored.raw"
        run(["qemu-img", "convert", "-O", "raw", snapshot.disk(name), raw], timeout=900)
        restored[name] = raw
    key_file = work_dir / "authorized_keys"
    key_file.write_text(public_key.strip() + "\n")
    for raw in restored.values():
        if refresh_root(raw, key_file):
            current = dom0.sut_digest()  # hashes every file of the system under test: once
            if snapshot.sut != current:
                log.info(
                    "%s: the snapshot's system under test (%s) replaced by this tree's (%s) before its first boot; "
                    "its install's %%post ran the snapshot's",
                    snapshot.host,
                    snapshot.sut,
                    current,
                )
            return restored
    raise LabError(f"{snapshot.path}: no partition labelled {ROOT_LABEL!r} on its disks", hint="remove it and rerun")


def partitions(raw: Path) -> list[tuple[int, int]]:
    """(offset, size) in bytes of each partition of a raw disk image."""
    proc = run(["sfdisk", "-J", raw], check=False)
    if proc.returncode != 0:
        return []  # no partition table (a guest's volume, a blank disk)
    table = json.loads(proc.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [(int(p["start"]) * sector, int(p["size"]) * sector) for p in table.get("partitions", [])]


def refresh_root(raw: Path, key_file: Path) -> bool:
    """If one of the raw disk's partitions is the root file system, write the current system under test and
    the SSH key on it (in a mount namespace of its own: the mount ends with that process, whatever happens)."""
    for offset, size in partitions(raw):
        argv: list[str | Path] = ["losetup", "--find", "--show", "--offset", str(offset), "--sizelimit", str(size), raw]
        loop = run(argv).stdout.strip()
        try:
            label = run(["blkid", "-p", "-o", "value", "-s", "LABEL", loop], check=False).stdout.strip()
            if label != ROOT_LABEL:
                continue
            unshare = ["unshare", "--mount", "--propagation", "private"]
            run([*unshare, sys.executable, "-m", "lab.host_snapshot", loop, key_file], cwd=REPO, timeout=300)
            return True
        finally:
            run(["losetup", "--detach", loop], check=False)
    return False


def _write_root(device: str, key_file: Path) -> None:
    """In a private mount namespace: mount the root file system, update it, unmount."""
    with tempfile.TemporaryDirectory(prefix="xenlab-root-") as mountpoint:
        run(["mount", "-t", "ext4", device, mountpoint])
        try:
            root = Path(mountpoint)
            dom0.install_sut(root)
            ssh_dir = root / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(key_file.read_text())
            (ssh_dir / "authorized_keys").chmod(0o600)
        finally:
            run(["umount", mountpoint])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="(internal) update a restored host's root file system")
    parser.add_argument("device")
    parser.add_argument("key_file", type=Path)
    args = parser.parse_args(argv)
    _write_root(args.device, args.key_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
