"""A patched installer, the way Anaconda takes one: an updates image on the kernel command line.

The test patches the lab's own installer program (one more line: a file written into the installed system),
packs it as Anaconda's updates.img is packed (a gzipped newc cpio whose paths overlay the installer's
root), serves it from the install server, and gives it to cagnode50 through its profile's AII append
(`inst.updates=`).  The machine installs from its kickstart; its installed disk, read back after the
install, holds the file only the patched installer writes, and the console says the updates were applied.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from foundation.paths import REPO
from lab import disk_files
from lab.lab import Lab, spec_from_profiles
from lab.profiles import compile_for_lab
from lab.vm import DiskConfig
from netboot_stack.events import Kind

pytestmark = pytest.mark.scenario

NODE = "cagnode50"
PROGRAM = REPO / "kickstart_installer" / "xenlab_installer.py"
ANCHOR = '    progress("payload", f"{total // MiB} MiB unpacked ({clock.summary()})")\n'
MARK = "etc/xenlab-updates-applied"
PATCH = ANCHOR + f'    (TARGET / "{MARK}").write_text("patched by updates.img\\n")\n'


def updates_img(dest: Path) -> Path:
    """The lab's installer with one more line, as a gzipped newc cpio at its path in the initramfs."""
    source = PROGRAM.read_text()
    assert source.count(ANCHOR) == 1, "the patch's anchor line moved: update ANCHOR"
    tree = dest / "tree"
    (tree / "usr/local/bin").mkdir(parents=True)
    (tree / "usr/local/bin/xenlab-installer").write_text(source.replace(ANCHOR, PATCH))
    (tree / "usr/local/bin/xenlab-installer").chmod(0o755)
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        input=b"usr/local/bin/xenlab-installer\n",
        cwd=tree,
        capture_output=True,
        check=True,
    ).stdout
    image = dest / "updates.img"
    image.write_bytes(subprocess.run(["gzip", "-c"], input=cpio, capture_output=True, check=True).stdout)
    return image


def test_an_updates_image_patches_the_installer_and_the_patch_shows_in_the_installed_system(
    run_dir: Path, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    spec = spec_from_profiles(
        "installer-updates",
        REPO / "profiles",
        (NODE,),
        payloads=("guest-payload",),
        memory_mb=1024,
        installer="installer",
        disks=(DiskConfig("disk", size="8G"),),
    )
    with Lab(spec, run_dir=run_dir) as lab:
        compile_for_lab(REPO / "profiles", profiles, kernel_release=lab.images.payload_kernel_release())
        url = lab.server.url(lab.server.publish(updates_img(tmp_path), "updates/xenlab-patch.img"))
        profile = profiles / f"profile_{NODE}.json"
        tree = json.loads(profile.read_text())
        nbp = tree["system"]["aii"]["nbp"]["options"]
        # its serial line is this VM's console (the profile's hvc0 is a Xen guest's)
        nbp["append"] = f"{nbp['append'].replace('console=hvc0', 'console=ttyS0')} inst.updates={url}"
        profile.write_text(json.dumps(tree, indent=1))
        lab.aii("configure", NODE, profiles=profiles, image="installer", payload="guest.tar.zst")
        lab.aii("install", NODE, profiles=profiles)
        vm = lab.vm(NODE)
        vm.start()
        lab.wait_console(
            NODE, r"XENLAB-INSTALL updates: \S+: 1 files over the installer's own", phase="updates", timeout=300
        )
        lab.wait_event(NODE, kind=Kind.ACK, phase="install", timeout=900)
        lab.wait_console(NODE, r"XENLAB-INSTALL-DONE", phase="install-done", timeout=120)
        vm.stop()
        served = lab.server.events.select(kind=Kind.HTTP, node=NODE, path="updates/xenlab-patch.img")
        assert served and served[0].status == 200, served
        disk = vm.disk_path(vm.config.disks[0])
        assert disk_files.root_file(disk, MARK, tmp_path) == "patched by updates.img\n"
