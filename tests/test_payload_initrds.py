"""The initrds the dom0 and guest payloads boot with, as built: no udev in them, and initramfs-tools' own way
of finding the root (`resolve_device LABEL=…`, run by the initrd's shell from its own scripts) finds a file
system by its label on a real block device.  Without udev's hook that needs util-linux's blkid: busybox's
does not know `-l -t`, and a dom0 built that way waited 30 s for its root and dropped to a shell."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from images.recipes import dom0, guest_payload


def unpack_initrd(image: Path, into: Path) -> Path:
    """The initrd's tree (gzip or zstd, as update-initramfs made it)."""
    data = image.read_bytes()
    tool = ["zstd", "-dc"] if data[:4] == b"\x28\xb5\x2f\xfd" else ["gzip", "-dc"]
    raw = subprocess.run(tool, input=data, capture_output=True, check=True).stdout
    into.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=raw, cwd=into, check=True, capture_output=True)
    return into


def dom0_initrd(tmp: Path) -> Path:
    return next((dom0.build() / "rootfs/boot").glob("initrd.img-*"))


def guest_initrd(tmp: Path) -> Path:
    tarball = guest_payload.build() / "guest.tar.zst"
    subprocess.run(["tar", "--zstd", "-xf", tarball, "-C", tmp, "--wildcards", "./boot/initrd.img-*"], check=True)
    return next((tmp / "boot").glob("initrd.img-*"))


@pytest.fixture
def labelled_device(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A loop device with an ext4 file system of a label no disk of this machine has."""
    label = f"xl{uuid.uuid4().hex[:10]}"
    backing = tmp_path / "fs.img"
    with open(backing, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, backing], check=True)
    device = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True, check=True).stdout
    try:
        yield device.strip(), label
    finally:
        subprocess.run(["losetup", "-d", device.strip()], check=False)


@pytest.mark.integration
@pytest.mark.parametrize("initrd", [dom0_initrd, guest_initrd], ids=["dom0", "guest"])
def test_the_initrd_has_no_udev_and_finds_its_root_by_label(
    initrd: Callable[[Path], Path], tmp_path: Path, labelled_device: tuple[str, str]
) -> None:
    image = initrd(tmp_path)
    root = unpack_initrd(image, tmp_path / "initrd")
    assert not list(root.rglob("systemd-udevd")) and not (root / "scripts/init-top/udev").exists()
    device, label = labelled_device
    # The initrd's init mounts proc, sysfs and devtmpfs before it looks for the root; here in a mount namespace
    # of the test's own, gone with it.
    script = ". /scripts/functions; resolve_device LABEL=$1"
    found = subprocess.run(
        [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'for d in proc sys dev; do mkdir -p "$1/$d"; done; mount -t proc proc "$1/proc"; '
            'mount -t sysfs sys "$1/sys"; mount --bind /dev "$1/dev"; exec chroot "$1" /bin/sh -c "$2" sh "$3"',
            "resolve", str(root), script, label,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert found.stdout.strip() == device, f"{image.name} did not find LABEL={label}: {found.stdout}{found.stderr}"
