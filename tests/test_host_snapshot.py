"""Snapshots of an installed host: keyed by what made its disks, found or refused with the reason, and
restored with this tree's system under test and the new lab's SSH key on its root file system."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from foundation import settings
from foundation.paths import REPO
from lab import host_snapshot
from lab.host_snapshot import HostInputs

KICKSTART = (
    "# Kickstart for cagxen01, written by AII from /tmp/pytest-1/profiles/profile_cagxen01.json\n"
    "text\nsshkey --username=root 'ssh-ed25519 AAAA lab-1'\npart / --fstype=ext4 --label=root --size=3072\n"
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XENLAB_CACHE", str(tmp_path / "cache"))
    settings.reread()


def image(tmp_path: Path, name: str, **inputs: str) -> Path:
    path = tmp_path / "images" / name
    path.mkdir(parents=True)
    (path / ".complete.json").write_text(json.dumps({"recipe": name.split("-")[0], "inputs": inputs}))
    return path


def inputs(
    tmp_path: Path, *, kickstart: str = KICKSTART, sut: str = "s1", tree: str = "dom0-aaa", ram: int = 1536
) -> HostInputs:
    installer = tmp_path / "images" / "installer-111"
    installer.mkdir(parents=True, exist_ok=True)
    payload = tmp_path / "images" / f"dom0-payload-{tree}-{sut}"
    if not payload.exists():
        payload = image(tmp_path, payload.name, tree=tree, sut=sut, recipe="r1")
    return host_snapshot.host_inputs(
        "cagxen01", installer=installer, payload=payload, kickstart=kickstart, memory_mib=ram, cpus=2, disks="vda:24G"
    )


def blank_disk(tmp_path: Path, name: str = "vda") -> Path:
    path = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def test_the_key_ignores_the_labs_ssh_key_and_the_system_under_test(tmp_path: Path) -> None:
    first = inputs(tmp_path)
    assert inputs(tmp_path, kickstart=KICKSTART.replace("lab-1", "lab-2")).key == first.key
    assert inputs(tmp_path, kickstart=KICKSTART.replace("pytest-1", "pytest-2")).key == first.key  # AII's comment
    assert inputs(tmp_path, sut="s2").key == first.key  # a new pypxeboot is written over a restored host
    assert inputs(tmp_path, tree="dom0-bbb").key != first.key
    assert inputs(tmp_path, kickstart=KICKSTART.replace("3072", "4096")).key != first.key
    assert inputs(tmp_path, ram=2048).key != first.key


def test_a_snapshot_is_found_for_the_same_inputs_and_refused_with_what_changed(tmp_path: Path) -> None:
    wanted = inputs(tmp_path)
    assert host_snapshot.find(wanted) is None
    assert host_snapshot.why_none(wanted) == "no snapshot of cagxen01 on this machine (a run without --from takes one)"
    saved = host_snapshot.save(wanted, {"vda": blank_disk(tmp_path)})
    found = host_snapshot.find(wanted)
    assert found == saved and found.disk("vda").stat().st_size > 0
    other = inputs(tmp_path, kickstart=KICKSTART.replace("3072", "4096"), ram=2048)
    assert host_snapshot.find(other) is None
    why = host_snapshot.why_none(other)
    assert why.startswith(f"the snapshot of cagxen01 taken {saved.taken} is of other inputs: ")
    assert why.endswith("the host's kickstart changed, the host VM's memory, vCPUs or disks changed"), why


def test_only_the_newest_snapshots_of_a_host_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(f"2026-12-03T10:0{n}:00+0000" for n in range(9))
    monkeypatch.setattr(time, "strftime", lambda fmt: next(clock))
    kept = [host_snapshot.save(inputs(tmp_path, ram=1024 + n), {"vda": blank_disk(tmp_path)}) for n in range(4)]
    assert [s.path for s in host_snapshot.of_host("cagxen01")] == [kept[3].path, kept[2].path]
    assert not kept[0].path.exists() and not kept[1].path.exists()
    assert not list(host_snapshot.snapshots_dir().glob("*.taking"))


def test_a_missing_image_record_is_an_image_error(tmp_path: Path) -> None:
    (tmp_path / "images" / "dom0-payload-x").mkdir(parents=True)
    with pytest.raises(Exception, match="not a complete image"):
        host_snapshot.host_inputs(
            "h",
            installer=tmp_path,
            payload=tmp_path / "images" / "dom0-payload-x",
            kickstart="",
            memory_mib=1,
            cpus=1,
            disks="",
        )


# --- a real restore: a partitioned disk, loop devices, ext4, a private mount namespace -------------------------
def installed_disk(tmp_path: Path) -> Path:
    """A 'snapshot' disk as the installer leaves one: an MBR, a swap-sized first partition, then ext4 labelled
    root holding an old pypxeboot, an old file of it that no longer exists, and the old lab's key."""
    tree = tmp_path / "tree"
    site = tree / "usr/lib/python3/dist-packages/pypxeboot"
    site.mkdir(parents=True)
    (site / "cli.py").write_text("# the snapshot's pypxeboot\n")
    (site / "gone.py").write_text("# removed since\n")
    (tree / "root/.ssh").mkdir(parents=True)
    (tree / "usr/bin").mkdir()
    (tree / "usr/sbin").mkdir()
    (tree / "root/.ssh/authorized_keys").write_text("ssh-ed25519 AAAA old-lab\n")
    raw = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "160M", str(raw)], check=True)
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: dos\n,16M,82\n,,83\n", check=True)
    offset, size = host_snapshot.partitions(raw)[1]
    fs = tmp_path / "root.ext4"
    subprocess.run(["truncate", "-s", str(size), str(fs)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "root", "-d", str(tree), str(fs)], check=True)
    subprocess.run(
        ["dd", f"if={fs}", f"of={raw}", "bs=1M", f"seek={offset // 2**20}", "conv=notrunc", "status=none"], check=True
    )
    qcow2 = tmp_path / "snap" / "vda.qcow2"
    qcow2.parent.mkdir()
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2


def read_back(raw: Path, *paths: str) -> dict[str, str | None]:
    """Files of the restored disk's root file system (read with debugfs: no mount needed)."""
    offset, size = host_snapshot.partitions(raw)[1]
    fs = raw.with_suffix(".check.ext4")
    subprocess.run(
        ["dd", f"if={raw}", f"of={fs}", "bs=1M", f"skip={offset // 2**20}", f"count={size // 2**20}", "status=none"],
        check=True,
    )
    out = {}
    for path in paths:
        proc = subprocess.run(["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, text=True, check=False)
        out[path] = proc.stdout if proc.stdout else None
    return out


@pytest.mark.integration
def test_a_restored_disk_gets_this_trees_system_under_test_and_the_new_key(tmp_path: Path) -> None:
    disk = installed_disk(tmp_path)
    snapshot = host_snapshot.Snapshot(disk.parent, "cagxen01", {}, sut="old", taken="2026-12-03T10:00:00+0000")
    work = tmp_path / "work"
    restored = host_snapshot.restore(snapshot, ["vda"], work, public_key="ssh-ed25519 AAAA new-lab")
    files = read_back(
        restored["vda"],
        "/usr/lib/python3/dist-packages/pypxeboot/cli.py",
        "/usr/lib/python3/dist-packages/pypxeboot/gone.py",
        "/usr/lib/python3/dist-packages/quattor/ncm/components/xen.py",
        "/usr/bin/pypxeboot",
        "/root/.ssh/authorized_keys",
    )
    assert files["/usr/lib/python3/dist-packages/pypxeboot/cli.py"] == (REPO / "pypxeboot/cli.py").read_text()
    assert files["/usr/lib/python3/dist-packages/pypxeboot/gone.py"] is None  # the old package removed whole
    xen = files["/usr/lib/python3/dist-packages/quattor/ncm/components/xen.py"] or ""
    assert (
        hashlib.sha256(xen.encode()).digest()
        == hashlib.sha256((REPO / "quattor/ncm/components/xen.py").read_bytes()).digest()
    )
    assert "from pypxeboot.cli import main" in (files["/usr/bin/pypxeboot"] or "")
    assert files["/root/.ssh/authorized_keys"] == "ssh-ed25519 AAAA new-lab\n"
    assert disk.stat().st_mtime < restored["vda"].stat().st_mtime  # the snapshot itself is never written
    attached = subprocess.run(["losetup", "--associated", str(restored["vda"])], capture_output=True, text=True)
    assert attached.stdout == "", f"loop devices left: {attached.stdout}"
    findmnt = subprocess.run(["findmnt", "-rn", "-o", "SOURCE"], capture_output=True, text=True).stdout
    assert "/dev/loop" not in findmnt, "a mount of the restore is visible outside its namespace"


@pytest.mark.integration
def test_a_disk_without_a_root_file_system_is_refused(tmp_path: Path) -> None:
    qcow2 = tmp_path / "snap" / "vda.qcow2"
    qcow2.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "32M"], check=True)
    snapshot = host_snapshot.Snapshot(qcow2.parent, "cagxen01", {}, sut="old", taken="t")
    with pytest.raises(Exception, match="no partition labelled 'root'"):
        host_snapshot.restore(snapshot, ["vda"], tmp_path / "work", public_key="k")
