"""Unattended host install: PXE, the kickstart installer, and the reboot into Xen through ncm-grub's entry.

From an empty disk: the host PXE-boots the lab installer with AII's kickstart; it partitions (a root
partition and an LVM physical volume for `xenvg`), unpacks the dom0 payload, installs GRUB, runs %post
(ncm-grub from the host's profile, served by the install server, then the install ack), and reboots.  AII
has switched it to local boot; PXE says so, the disk boots GRUB, GRUB boots Xen and dom0, and at first
boot dom0 runs `ncm-ncd --configure --all`.  The console must show GRUB, Xen and dom0 in that order, and
the install server's log the kickstart, the payload, the ack and the local-boot switch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import topology
from lab.lab import Lab
from netboot_stack.events import Kind
from scenario_steps.host_install import SEED_HOST, host_only_spec, install_host, serve_host_only
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, XEN_HOST]

HOST = SEED_HOST


def test_host_installs_from_its_kickstart_and_reboots_into_xen(run_dir: Path, tmp_path: Path) -> None:
    with Lab(host_only_spec("host-install"), run_dir=run_dir) as lab:
        profiles = serve_host_only(lab, tmp_path / "profiles")
        console = install_host(lab, HOST, grub_title=topology.read(profiles).host.grub_default_title)

        # testinfra over SSH, from the lab network.
        host = lab.ssh.host(str(lab.ip(HOST)))
        with lab.timeline.phase(HOST, "checks-over-ssh"):
            assert host.check_output("hostname") == HOST
            info = host.check_output("xl info")
            assert re.search(r"xen_major\s*:\s*4", info) and re.search(r"xen_minor\s*:\s*17", info)
            dom0 = re.search(r"Domain-0\s+0\s+(\d+)", host.check_output("xl list"))
            assert dom0 and 500 <= int(dom0.group(1)) <= 512  # the profile's dom0_mem=512M
            assert host.run("vgs xenvg").rc == 0
            volumes = host.check_output("lvs --noheadings -o lv_name xenvg").split()
            assert {"cagnode50-swap", "cagnode51-root", "cagnode52-root"} <= set(volumes)  # first-boot ncm-xen
            grub = host.file("/boot/grub/grub.cfg")
            assert grub.contains("set default='ncm-grub-xen-0'") and grub.contains("multiboot2 /boot/xen-4.17")
            assert host.file("/etc/xen/cagnode50.cfg").contains('bootloader_args = \\[ "mac=AA:00:86:e2:35:72" \\]')
            assert host.file("/var/xen-grid/cagnode50/fs/disk").size == 10 * 1024**3
            assert host.service("ssh").is_running

    # The second boot's console: GRUB, then Xen, then dom0.
    assert console.index("Xen 4.17 / Debian") < console.index("(XEN) Xen version") < console.index("Linux version 6.")
    events = lab.server.events
    paths = [e.path for e in events.select(kind=Kind.HTTP, node=HOST)]
    assert (
        paths.index(f"ks/{HOST}.xenlab.test.ks")
        < paths.index("payload/dom0.tar.zst")
        < paths.index("cgi-bin/aii-installack.cgi")
    )
    assert [e.kind for e in events.select(node=HOST) if e.kind in ("ack", "localboot")] == ["ack", "localboot"]
    tftp_after_ack = [e.path for e in events.select(kind=Kind.TFTP, node=HOST)][-1]
    assert tftp_after_ack == "pxelinux.cfg/01-52-54-00-77-00-20"  # the reboot asked PXE, which said localboot
