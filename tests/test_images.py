"""The image builder's own machinery: the store, module ordering, the cpio writer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from foundation import settings
from foundation.errors import ImageError
from images import cpio, debs, kmod, store
from reporting.pytest_plugin import Diagnose
from reporting.verdicts import Verdict


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XENLAB_CACHE", str(tmp_path / "cache"))
    settings.reread()


def test_a_build_is_reused_and_rebuilt_only_when_its_inputs_change() -> None:
    builds: list[str] = []

    def make(out: Path) -> None:
        builds.append(out.name)
        (out / "file").write_text("content")

    first = store.build_or_reuse("demo", {"v": 1}, make)
    again = store.build_or_reuse("demo", {"v": 1}, make)
    other = store.build_or_reuse("demo", {"v": 2}, make)
    assert first == again != other
    assert len(builds) == 2
    assert (first / "file").read_text() == "content"


def test_a_failed_build_leaves_nothing_behind() -> None:
    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("mirror unreachable")

    with pytest.raises(ImageError, match="image demo did not build: mirror unreachable") as excinfo:
        store.build_or_reuse("demo", {"v": 3}, broken)
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert [p.name for p in store.images_dir().iterdir() if not p.name.endswith(".lock")] == []


def test_an_image_whose_package_the_archive_lacks_blocks_what_needs_it(diagnose: Diagnose) -> None:
    """apt's real lists, a package name they do not have: the image is not built, and a test that needs it
    is `blocked` (a prerequisite failed), never `fail` or `broken`, with the package named."""

    def needs_missing_package(out: Path) -> None:
        debs.extract(debs.fetch(debs.resolve("xenlab-no-such-package")), out)

    with pytest.raises(ImageError) as excinfo:
        store.build_or_reuse("fault-missing-package", {"packages": ["xenlab-no-such-package"]}, needs_missing_package)
    assert diagnose(excinfo) is Verdict.BLOCKED
    assert "Debian package 'xenlab-no-such-package' is not known to apt" in str(excinfo.value)
    assert "apt-get update" in str(excinfo.value)  # the hint of the cause, kept
    assert not any(store.images_dir().glob("fault-missing-package-*"))


def test_module_load_order_puts_dependencies_first() -> None:
    deps: dict[str, kmod.Module] = {
        "virtio_net": {"path": "kernel/virtio_net.ko", "depends": ["net_failover", "virtio"]},
        "net_failover": {"path": "kernel/net_failover.ko", "depends": ["failover"]},
        "failover": {"path": "kernel/failover.ko", "depends": []},
        "virtio": {"path": "kernel/virtio.ko", "depends": ["virtio_ring"]},
        "virtio_ring": {"path": "kernel/virtio_ring.ko", "depends": []},
        "virtio_pci": {"path": "kernel/virtio_pci.ko", "depends": ["virtio", "virtio_ring"]},
    }
    order = kmod.load_order(deps, ("virtio_pci", "virtio_net"))
    names = [Path(p).stem for p in order]
    assert names == ["virtio_ring", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net"]
    with pytest.raises(ImageError, match="e1000"):
        kmod.load_order(deps, ("e1000",))


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries: dict[str, tuple[int, bytes]] = {}
    i = 0
    while True:
        head = data[i : i + 110]
        assert head[:6] == b"070701"
        fields = [int(head[6 + 8 * k : 14 + 8 * k], 16) for k in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = i + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body_start = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[body_start : body_start + size])
        i = body_start + size + (-size % 4)


def test_cpio_archive_is_a_valid_newc_and_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(b"\x7fELF...")
    (root / "bin" / "busybox").chmod(0o755)
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "init").write_text("#!/bin/sh\n")
    cpio.write_initrd(root, tmp_path / "a.img")
    cpio.write_initrd(root, tmp_path / "b.img")
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    unpacked = subprocess.run(["zstd", "-dc", tmp_path / "a.img"], capture_output=True, check=True).stdout
    entries = read_newc(unpacked)
    assert set(entries) == {"bin", "bin/busybox", "bin/sh", "init"}
    assert entries["bin/sh"] == (0o120777, b"busybox")
    assert entries["bin/busybox"][0] == 0o100755


def test_special_files_are_left_out_instead_of_read(tmp_path: Path) -> None:
    import os

    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    os.mkfifo(root / "dev" / "fifo")  # reading it would block forever, like /dev/console
    entries = read_newc(cpio.archive(root))
    assert set(entries) == {"dev"}


def test_garbage_collection_keeps_current_images_and_their_locks() -> None:
    def make(out: Path) -> None:
        (out / "f").write_text("x")

    old = store.build_or_reuse("demo", {"v": 1}, make)
    new = store.build_or_reuse("demo", {"v": 2}, make)
    (store.images_dir() / ".demo-crashed.building").mkdir()
    removed = {p.name for p in store.collect_garbage({new})}
    assert old.name in removed and ".demo-crashed.building" in removed
    assert new.exists() and not old.exists()
    assert (store.images_dir() / f".{new.name}.lock").exists()
    assert not (store.images_dir() / f".{old.name}.lock").exists()


def test_masked_units_are_what_systemd_itself_reads_as_masked(tmp_path: Path) -> None:
    """mask_units writes what `systemctl mask` writes: systemd's own tool, offline on the tree, says so, and a
    unit the tree enabled before (getty@tty1 in getty.target.wants) is masked over its old link."""
    from images import debian_tree
    from images.recipes import dom0

    units = tmp_path / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for name in ("getty-static.service", "getty@.service", "e2scrub_reap.service", "ssh.service"):
        (units / name).write_text("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=x\n")
    wants = tmp_path / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True)
    (wants / "getty@tty1.service").symlink_to("/usr/lib/systemd/system/getty@.service")
    (tmp_path / "etc/systemd/system/e2scrub_reap.service").symlink_to("/dev/null")  # masked already: no error

    debian_tree.mask_units(tmp_path, dom0.MASKED_UNITS)

    def state(unit: str) -> str:
        argv = ["systemctl", f"--root={tmp_path}", "is-enabled", unit]
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()

    assert [state(u) for u in dom0.MASKED_UNITS] == ["masked"] * len(dom0.MASKED_UNITS)
    assert state("ssh.service") == "disabled"


def test_masked_generators_are_links_to_null_and_a_name_systemd_lacks_is_refused(tmp_path: Path) -> None:
    """mask_generators disables a generator the way systemd.generator(7) says (a /dev/null link of its name in
    /etc/systemd/system-generators, over an earlier mask too), leaves the others, and stops on a name the tree's
    systemd does not ship, saying which."""
    from images import debian_tree

    shipped = tmp_path / "usr/lib/systemd/system-generators"
    shipped.mkdir(parents=True)
    for name in (*debian_tree.UNUSED_GENERATORS, debian_tree.SYSV_GENERATOR, "systemd-fstab-generator"):
        (shipped / name).write_text("#!/bin/sh\n")
    debian_tree.mask_generators(tmp_path, debian_tree.UNUSED_GENERATORS[:1])
    debian_tree.mask_generators(tmp_path, debian_tree.UNUSED_GENERATORS)

    masks = tmp_path / "etc/systemd/system-generators"
    assert sorted(p.name for p in masks.iterdir()) == sorted(debian_tree.UNUSED_GENERATORS)
    assert all(os.readlink(p) == "/dev/null" for p in masks.iterdir())
    assert "systemd-fstab-generator" not in debian_tree.UNUSED_GENERATORS

    with pytest.raises(FileNotFoundError, match="systemd-frobnicate-generator"):
        debian_tree.mask_generators(tmp_path, ("systemd-fstab-generator", "systemd-frobnicate-generator"))
    assert not (masks / "systemd-fstab-generator").exists()


def test_update_stamps_carry_the_time_of_usr_as_systemd_update_done_writes_them(tmp_path: Path) -> None:
    """mark_up_to_date leaves /etc/.updated and /var/.updated with /usr's modification time, to the nanosecond,
    and the same time in the file (systemd compares the two when a file system keeps no nanoseconds).  That
    systemd itself then skips ConditionNeedsUpdate units, after the installer's tar round trip, is checked on the
    real payload (tests/test_installer.py)."""
    from images import debian_tree

    for directory in ("usr", "etc", "var"):
        (tmp_path / directory).mkdir()
    os.utime(tmp_path / "usr", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    debian_tree.mark_up_to_date(tmp_path)
    for stamp in debian_tree.UPDATE_STAMPS:
        assert (tmp_path / stamp).stat().st_mtime_ns == 1_700_000_000_123_456_789
        assert (tmp_path / stamp).read_text().splitlines()[-1] == "TIMESTAMP_NSEC=1700000000123456789"
