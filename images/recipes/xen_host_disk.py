"""A Xen host's disk, ready to boot: the dom0 payload on one ext4 partition, GRUB in the MBR, and the
GRUB menu that ncm-grub writes from the host's profile (its Xen entry as the default).

No loop device and no mount: `mkfs.ext4 -d` fills the partition from a directory, the partition is copied
into the disk image at 1 MiB, and GRUB's boot.img and core.img (made by grub-mkimage from the payload's
own GRUB) are written in front of it.  Cached by its inputs: the payload and the profile's GRUB settings.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from foundation.process import run
from images import debian_tree, store
from images.recipes import dom0
from quattor.ncm.component import Context
from quattor.ncm.components.grub import GrubComponent
from quattor.profile import load

DISK_SIZE = "4G"
PARTITION_SIZE = "4095M"
GRUB_HEADER = """\
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=1
"""


def build(profile_path: Path) -> Path:
    payload = dom0.build()
    profile = load(profile_path)
    grub_inputs = {
        k: profile.get(k) for k in ("/software/components/grub", "/system/kernel/version", "/hardware/console")
    }

    def make(out: Path) -> None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            root = Path(tmp) / "root"
            run(["cp", "-a", payload / "rootfs", root], timeout=600)
            grub_dir = root / "boot/grub"
            (grub_dir / "i386-pc").mkdir(parents=True, exist_ok=True)
            for module in (root / "usr/lib/grub/i386-pc").glob("*"):
                if module.suffix in (".mod", ".lst"):
                    shutil.copy2(module, grub_dir / "i386-pc" / module.name)
            (grub_dir / "grub.cfg").write_text(GRUB_HEADER)
            (root / "etc/hostname").write_text(profile.hostname + "\n")
            dom0.install_sut(root)
            GrubComponent().configure(profile, Context(root=root))  # the system under test writes the menu
            run(
                [
                    "chroot",
                    root,
                    "grub-mkimage",
                    "-O",
                    "i386-pc",
                    "-d",
                    "/usr/lib/grub/i386-pc",
                    "-o",
                    "/tmp/core.img",
                    "-p",
                    "(hd0,msdos1)/boot/grub",
                    "biosdisk",
                    "part_msdos",
                    "ext2",
                ]
            )
            shutil.move(root / "tmp/core.img", out / "core.img")
            shutil.copy2(root / "usr/lib/grub/i386-pc/boot.img", out / "boot.img")
            shutil.copy2(grub_dir / "grub.cfg", out / "grub.cfg")
            part = Path(tmp) / "part.img"
            run(["truncate", "-s", PARTITION_SIZE, part])
            run(["mkfs.ext4", "-q", "-L", "root", "-d", root, part], timeout=900)
            disk = out / "disk.img"
            run(["truncate", "-s", DISK_SIZE, disk])
            run(["sfdisk", "-q", disk], input=b"label: dos\nstart=2048, type=83, bootable\n")
            run(
                ["dd", f"if={part}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"], timeout=900
            )
        run(["dd", f"if={out / 'boot.img'}", f"of={disk}", "bs=440", "count=1", "conv=notrunc", "status=none"])
        run(["dd", f"if={out / 'core.img'}", f"of={disk}", "bs=512", "seek=1", "conv=notrunc", "status=none"])

    inputs = {
        "payload": payload.name,
        "grub": json.dumps(grub_inputs, sort_keys=True),
        "hostname": profile.hostname,
        "sut": dom0.sut_digest(),
        "recipe": store.source_digest(Path(__file__), Path(dom0.__file__), Path(debian_tree.__file__)),  # install_sut
    }
    return store.build_or_reuse(f"xen-host-disk-{profile.hostname}", inputs, make)
