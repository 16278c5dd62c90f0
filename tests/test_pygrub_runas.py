"""LOCALBOOT with libxl's --runas, through Xen's own pygrub (Debian's Xen 4.17, from the lab's dom0 image,
run in a chroot of it): the guest's disk is read by pygrub as that uid, never as root.

The proof is what the uid may read: a disk only root can read fails under --runas (pygrub's deprivileged
child gets EACCES on it), boots without it, and a disk the uid can read boots under --runas.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from images.recipes import dom0
from pypxeboot import localboot
from pypxeboot.arguments import parse
from pypxeboot.errors import BootError
from pypxeboot.output import BootAnswer

pytestmark = pytest.mark.integration

NOBODY = 65534
GRUB_CFG = """set default=0
menuentry 'Installed guest' {
    linux /boot/vmlinuz root=LABEL=root ro console=hvc0
    initrd /boot/initrd.img
}
"""


@pytest.fixture(scope="module")
def pygrub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a pygrub command that runs Xen's pygrub in a chroot of the dom0 image, the directory it sees as on the
    host).  The chroot's /tmp and /proc are mounted in a private mount namespace: the image is not written."""
    rootfs = dom0.build() / "rootfs"
    pygrub_bin = rootfs / "usr/lib/xen-4.17/bin/pygrub"
    if not pygrub_bin.exists():
        pytest.fail(f"the dom0 image has no Xen pygrub at {pygrub_bin}")
    work = tmp_path_factory.mktemp("pygrub")
    inner = (
        f"mount -t tmpfs none {rootfs}/tmp && mkdir -p {rootfs}{work} && mount --bind {work} {rootfs}{work}"
        f' && mount -t proc proc {rootfs}/proc && exec chroot {rootfs} /usr/lib/xen-4.17/bin/pygrub "$@"'
    )
    wrapper = work / "pygrub"
    wrapper.write_text(f'#!/bin/sh\nexec unshare -m --propagation private sh -c {shlex.quote(inner)} pygrub "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, work


def guest_disk(work: Path, mode: int) -> Path:
    src = work / "src"
    (src / "boot/grub").mkdir(parents=True, exist_ok=True)
    (src / "boot/grub/grub.cfg").write_text(GRUB_CFG)
    (src / "boot/vmlinuz").write_text("the guest's kernel\n")
    (src / "boot/initrd.img").write_text("the guest's initrd\n")
    disk = work / f"disk-{mode:o}.img"
    disk.unlink(missing_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(disk), "32M"], check=True, capture_output=True)
    disk.chmod(mode)  # owned by root
    return disk


def boot(wrapper: Path, work: Path, disk: Path, runas: int | None) -> BootAnswer:
    out = work / "out"
    out.mkdir(mode=0o700, exist_ok=True)
    opts = parse(
        [
            f"--output-directory={out}",
            "--output-format=simple0",
            f"--pygrub={wrapper}",
            "mac=AA:00:86:e2:35:72",
            str(disk),
        ]
    )
    return localboot.via_pygrub(opts, deadline=time.monotonic() + 60, runas=runas)


def test_pygrub_reads_the_guest_disk_as_the_runas_uid(pygrub: tuple[Path, Path]) -> None:
    wrapper, work = pygrub
    readable = guest_disk(work, 0o644)
    answer = boot(wrapper, work, readable, NOBODY)
    assert answer.args == "root=LABEL=root ro console=hvc0"
    assert Path(answer.kernel).read_text() == "the guest's kernel\n"
    assert answer.ramdisk is not None and Path(answer.ramdisk).read_text() == "the guest's initrd\n"

    root_only = guest_disk(work, 0o600)
    assert boot(wrapper, work, root_only, None).args == answer.args  # as root, pygrub reads it
    with pytest.raises(BootError, match="pygrub gave no answer: .*Permission denied: '/device'"):
        boot(wrapper, work, root_only, NOBODY)  # as uid 65534 it cannot: the read is done as that uid
    assert os.stat(root_only).st_uid == 0
