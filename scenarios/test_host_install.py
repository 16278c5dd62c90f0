"""Unattended host install: PXE, the kickstart installer, and the reboot into Xen through ncm-grub's entry.

From an empty disk: the host PXE-boots the lab installer with AII's kickstart; it partitions (a root
partition and an LVM physical volume for `xenvg`), unpacks the dom0 payload, installs GRUB, runs %post
(ncm-grub from the host's profile, served by the install server, then the install ack), and reboots.  AII
has switched it to local boot; PXE says so, the disk boots GRUB, GRUB boots Xen and dom0, and at first
boot dom0 runs `ncm-ncd --configure --all`.  The console must show GRUB, Xen and dom0 in that order, and
the install server's log the kickstart, the payload, the ack and the local-boot switch.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from images.recipes import dom0_payload
from lab.lab import Lab, spec_from_profiles
from lab.paths import REPO
from lab.vm import DiskConfig

pytestmark = pytest.mark.scenario

HOST = "cagxen01"


def host_profiles(tmp: Path) -> Path:
    """The shipped profiles, with the guests left stopped: starting them is the gateway scenario's job."""
    out = tmp / "profiles"
    shutil.copytree(REPO / "profiles", out)
    path = out / f"profile_{HOST}.json"
    tree = json.loads(path.read_text())
    tree["software"]["components"]["xen"]["create_domains"] = False
    path.write_text(json.dumps(tree, indent=1))
    return out


def test_host_installs_from_its_kickstart_and_reboots_into_xen(run_dir: Path, tmp_path: Path) -> None:
    profiles = host_profiles(tmp_path)
    spec = spec_from_profiles(
        "host-install",
        profiles,
        (HOST,),
        memory_mb=1536,
        cpus=2,
        installer="installer",
        disks=(DiskConfig("disk", size="24G"),),
    )
    with Lab(spec, run_dir=run_dir) as lab:
        payload = dom0_payload.build()
        lab.server.publish(payload / "dom0.tar.zst", "payload/dom0.tar.zst")
        lab.server.write(f"profiles/profile_{HOST}.json", (profiles / f"profile_{HOST}.json").read_text())
        lab.aii("configure", HOST, profiles=profiles, image="installer", payload="dom0.tar.zst")
        lab.aii("install", HOST, profiles=profiles)

        vm = lab.vm(HOST)
        vm.start()
        lab.wait_event(HOST, kind="lease", phase="dhcp", timeout=60)
        lab.wait_console(HOST, r"XENLAB-INSTALL start", phase="installer-start", timeout=300)
        lab.wait_event(HOST, kind="http", path=f"ks/{HOST}.xenlab.test.ks", phase="kickstart", timeout=120)
        lab.wait_console(HOST, r"XENLAB-INSTALL partition: / ", phase="partitioning", timeout=300)
        lab.wait_console(HOST, r"XENLAB-INSTALL payload: \d+ MiB unpacked", phase="payload", timeout=900)
        lab.wait_console(HOST, r"XENLAB-INSTALL bootloader: GRUB", phase="bootloader", timeout=600)
        lab.wait_event(HOST, kind="ack", phase="post-and-ack", timeout=600)
        lab.wait_console(HOST, r"XENLAB-INSTALL-DONE reboot", phase="install-done", timeout=120)
        with lab.timeline.phase(HOST, "reboot"):
            vm.wait_exit(phase="reboot", timeout=120)
            vm.start()
        lab.wait_console(HOST, r"Xen 4\.17 / Debian GNU/Linux", phase="grub", timeout=300)
        lab.wait_console(HOST, r"\(XEN\) Xen version 4\.17", phase="xen", timeout=120)
        lab.wait_console(HOST, r"Linux version 6\.", phase="dom0-kernel", timeout=180)
        lab.wait_console(HOST, r"XENLAB-DOM0-NETWORK xenbr0 10\.77\.0\.20/24", phase="dom0-network", timeout=300)
        lab.wait_console(HOST, r"\[OK\] xen: ok", phase="first-boot-ncm-ncd", timeout=600)
        lab.wait_console(HOST, r"XENLAB-DOM0-READY cagxen01", phase="dom0-ready", timeout=600)
        assert vm.console is not None
        vm.console.send_line("")  # the autologin prompt may have come before the ready marker: ask again
        lab.wait_console(HOST, r"root@cagxen01:\S*# ", phase="shell", timeout=120)
        console = vm.console.text
        info, rc = vm.console.run("xl info | grep -E '^xen_(major|minor)'; xl list Domain-0", phase="xl", timeout=120)
        assert rc == 0 and re.search(r"xen_minor\s*:\s*17", info), info
        lvs, rc = vm.console.run("lvs --noheadings -o lv_name,vg_name xenvg", phase="lvs", timeout=60)
        assert rc == 0 and "cagnode50-swap" in lvs, lvs  # first boot: ncm-xen made the guests' volumes
        cfg, rc = vm.console.run(
            "grep -c ncm-grub-xen-0 /boot/grub/grub.cfg; hostname; cat /etc/xen/cagnode50.cfg",
            phase="files",
            timeout=60,
        )
        assert rc == 0 and 'bootloader_args = [ "mac=AA:00:86:e2:35:72" ]' in cfg and "cagxen01" in cfg

    # The second boot's console: GRUB, then Xen, then dom0.
    assert console.index("Xen 4.17 / Debian") < console.index("(XEN) Xen version") < console.index("Linux version 6.")
    events = lab.server.events
    paths = [e.path for e in events.select(kind="http", node=HOST)]
    assert (
        paths.index(f"ks/{HOST}.xenlab.test.ks")
        < paths.index("payload/dom0.tar.zst")
        < paths.index("cgi-bin/aii-installack.cgi")
    )
    assert [e.kind for e in events.select(node=HOST) if e.kind in ("ack", "localboot")] == ["ack", "localboot"]
    tftp_after_ack = [e.path for e in events.select(kind="tftp", node=HOST)][-1]
    assert tftp_after_ack == "pxelinux.cfg/01-52-54-00-77-00-20"  # the reboot asked PXE, which said localboot
