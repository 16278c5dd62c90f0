"""ncm-xen's logical volumes, for real, inside a VM (the build machines' kernels have no device-mapper).

The VM boots the installer's Debian initramfs with lvm2, plus an overlay holding the system under test
(the `quattor` package, as a site installs it), two profiles and a script.  ncm-ncd makes the volume group
on a blank disk (the profile asks for it), the logical volume and the file disk; a second run changes
nothing; a third run with a bigger volume in the profile must neither resize nor wipe it.  A volume group
asked for on a disk that holds a filesystem is refused by LVM itself (ncm-xen never answers its "wipe
signature?" question with yes), and the filesystem is still there.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from foundation.paths import REPO
from images import cpio
from images.recipes import installer_base
from lab.lab import DirectBoot, Lab, LabSpec, NodeSpec
from lab.vm import DiskConfig

pytestmark = pytest.mark.scenario

SEED = json.loads((REPO / "profiles/profile_cagxen01.json").read_text())["software"]["components"]["xen"]["domains"][0]


def profile(lv_mib: int, memory: int) -> bytes:
    domain = copy.deepcopy(SEED)
    domain["memory"] = memory
    file_disk, lv = domain["disk"]
    file_disk["size"] = 32
    lv.update(size=lv_mib, create=True, path="/dev/vda")  # the volume group is made only because it asks
    tree = {"software": {"components": {"xen": {"create_filesystems": True, "domains": [domain]}}}}
    return json.dumps(tree).encode()


def profile_on_used_disk() -> bytes:
    """A second guest whose volume group would be made on /dev/vdb, a disk that holds someone's filesystem."""
    domain = copy.deepcopy(SEED)
    domain["name"] = "gridmon"
    domain["disk"] = [
        {
            "type": "lvm",
            "hostdevice": "othervg",
            "hostvol": "gridmon",
            "guestdevice": "xvda",
            "size": 16,
            "create": True,
            "path": "/dev/vdb",
        }
    ]
    tree = {"software": {"components": {"xen": {"create_filesystems": True, "domains": [domain]}}}}
    return json.dumps(tree).encode()


SCRIPT = b"""#!/bin/sh
export PYTHONPATH=/opt/xenlab
ncd() { python3 -m quattor.ncm.ncd --configure xen --profile "$1" 2>&1; }
echo XENLAB-STEP first; ncd /p1.json
printf 'precious guest data' | dd of=/dev/xenvg/cagnode50-swap conv=notrunc 2>/dev/null
echo XENLAB-STEP same; ncd /p1.json
echo XENLAB-STEP changed; ncd /p2.json
echo "XENLAB-LV-DATA $(dd if=/dev/xenvg/cagnode50-swap bs=19 count=1 2>/dev/null)"
echo "XENLAB-LV-SIZE $(lvs --noheadings --nosuffix --units m -o lv_size xenvg/cagnode50-swap | tr -d ' ')"
echo "XENLAB-FILE-DISK $(stat -c '%s %b' /var/xen-grid/cagnode50/fs/disk)"
grep -h memory /etc/xen/cagnode50.cfg /etc/xen/cagnode50.cfg.old | sed 's/^/XENLAB-CFG /'
mkfs.ext4 -q -F -L precious /dev/vdb
echo XENLAB-STEP used; ncd /p3.json > /tmp/p3.out; echo "XENLAB-P3-RC $?"
sed "s/^.ERROR./XENLAB-P3-ERROR/" /tmp/p3.out  # an expected failure: not one the console watch stops at
echo "XENLAB-VDB $(blkid -o value -s TYPE /dev/vdb) $(blkid -o value -s LABEL /dev/vdb)"
echo XENLAB-STEP done
"""


def test_volume_group_and_logical_volume_are_made_once_and_never_resized(run_dir: Path) -> None:
    spec = LabSpec(
        "ncm-xen-lvm",
        nodes=(
            NodeSpec(
                "dom0", host=20, memory_mb=768, disks=(DiskConfig("pv", size="256M"), DiskConfig("used", size="64M"))
            ),
        ),
    )
    with Lab(spec, run_dir=run_dir) as lab:
        base = installer_base.build()
        overlay = lab.work_dir / "overlay.cpio.zst"
        cpio.write_overlay(
            overlay,
            {
                "/p1.json": profile(64, 512),
                "/p2.json": profile(128, 1024),
                "/p3.json": profile_on_used_disk(),
                "/xenlab-test.sh": SCRIPT,
            },
            {"/opt/xenlab/quattor": REPO / "quattor"},
        )
        initrd = cpio.concatenate(lab.work_dir / "initrd.img", base / "base.cpio.zst", overlay)
        vm = lab.vm(
            "dom0",
            direct_boot=DirectBoot(base / "vmlinuz", initrd, "console=ttyS0 panic=-1 xenlab.run=/xenlab-test.sh"),
        )
        vm.start()
        lab.wait_console("dom0", r"XENLAB-RUN-BEGIN", phase="boot", timeout=240)
        lab.wait_console("dom0", r"XENLAB-STEP done", phase="ncm-xen", timeout=240)
        lab.wait_console("dom0", r"XENLAB-RUN-EXIT rc=0", phase="script", timeout=30)
        vm.wait_exit(phase="poweroff", timeout=60)
        text = vm.console.text if vm.console else ""

    first = section(text, "first", "same")
    assert "run vgcreate xenvg /dev/vda" in first  # a blank disk: LVM asks nothing
    assert "run lvcreate --yes --wipesignatures y -L 64M -n cagnode50-swap xenvg" in first
    assert "create sparse file disk /var/xen-grid/cagnode50/fs/disk (32 MiB)" in first
    assert "[OK] xen: ok (made 4 changes)" in first
    assert "[OK] xen: ok (nothing to change)" in section(text, "same", "changed")
    changed = section(text, "changed", "used")
    used = section(text, "used", "done")
    assert "XENLAB-P3-RC 1" in used and "XENLAB-P3-ERROR xen: failed:" in used, used
    assert "vgcreate othervg /dev/vdb failed" in used and "Wipe it? [y/n]: [n]" in used, used  # LVM asked; no
    assert "XENLAB-VDB ext4 precious" in text  # LVM would have wiped it had it been told yes
    assert "xenvg/cagnode50-swap has 64 MiB, the profile says 128: existing disks are never resized" in changed
    assert "[OK] xen: ok (made 1 change)" in changed  # only the config: memory 512 -> 1024
    assert "XENLAB-LV-DATA precious guest data" in text
    assert "XENLAB-LV-SIZE 64.00" in text
    assert "XENLAB-FILE-DISK 33554432 0" in text  # 32 MiB, no block allocated: sparse
    assert "XENLAB-CFG memory = 1024" in text and "XENLAB-CFG memory = 512" in text


def section(text: str, start: str, end: str) -> str:
    m = re.search(rf"XENLAB-STEP {start}\n(.*?)XENLAB-STEP {end}\n", text, re.S)
    assert m, f"no output between steps {start} and {end}"
    return m.group(1)
