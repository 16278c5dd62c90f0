"""The guests' first half of the gateway reinstall: ncm-xen starts them, pypxeboot boots them over the network.

After the host's unattended install, dom0's first `ncm-ncd --configure --all` runs ncm-xen with
`create_domains`: it makes the guests' disks and configs and `xl create`s them.  libxl runs pypxeboot in
dom0 for each PV guest: DHCP for the guest's MAC on xenbr0, TFTP of AII's pxelinux entry and the guest
installer; the guest then boots, takes its own lease, fetches its own kickstart and acknowledges, and AII
switches it to local boot.  (Here the guest installer is the lab's dummy installer; the full guest install
and the HVM guest are the rest of issue 7.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from images.recipes import dom0_payload, dummy_installer
from lab.lab import Lab, spec_from_profiles
from lab.paths import REPO
from lab.vm import DiskConfig
from scenarios.host_install import HOST, install_host

pytestmark = pytest.mark.scenario

GUESTS = ("cagnode50", "cagnode51")


def profiles_for(tmp: Path, ssh_key: str) -> Path:
    out = tmp / "profiles"
    shutil.copytree(REPO / "profiles", out)
    host = json.loads((out / f"profile_{HOST}.json").read_text())
    xen = host["software"]["components"]["xen"]
    xen["domains"] = [d for d in xen["domains"] if d["name"] in GUESTS]  # the PV guests
    host["system"]["aii"]["osinstall"]["options"]["sshkey"] = ssh_key
    (out / f"profile_{HOST}.json").write_text(json.dumps(host, indent=1))
    for guest in GUESTS:
        path = out / f"profile_{guest}.json"
        tree = json.loads(path.read_text())
        tree["system"]["aii"]["nbp"]["options"].update(
            kernel="boot/guest-installer/vmlinuz", initrd="boot/guest-installer/initrd.gz"
        )
        path.write_text(json.dumps(tree, indent=1))
    return out


def test_dom0_starts_the_guests_and_they_netboot_through_pypxeboot(run_dir: Path, tmp_path: Path) -> None:
    spec = spec_from_profiles(
        "guests-netboot",
        REPO / "profiles",
        (HOST, *GUESTS),
        memory_mb=2048,
        cpus=2,
        installer="installer",
        disks=(DiskConfig("disk", size="24G"),),
    )
    with Lab(spec, run_dir=run_dir) as lab:
        profiles = profiles_for(tmp_path, lab.ssh.public_key)
        guest_installer = dummy_installer.build()
        lab.server.publish(guest_installer / "vmlinuz", "boot/guest-installer/vmlinuz")
        lab.server.publish(guest_installer / "initrd.gz", "boot/guest-installer/initrd.gz")
        lab.server.publish(dom0_payload.build() / "dom0.tar.zst", "payload/dom0.tar.zst")
        for node in (HOST, *GUESTS):
            lab.server.write(f"profiles/profile_{node}.json", (profiles / f"profile_{node}.json").read_text())
        lab.aii("configure", HOST, *GUESTS, profiles=profiles, image="installer", payload="dom0.tar.zst")
        lab.aii("install", HOST, *GUESTS, profiles=profiles)

        install_host(lab, first_boot_timeout=900)  # first boot starts the guests too
        host_console = lab.vms[HOST].console
        assert host_console is not None
        events = lab.server.events
        for guest in GUESTS:
            mac_cfg = f"pxelinux.cfg/{lab.node_boot(guest).mac_name}"
            # pypxeboot in dom0: a lease for the guest's MAC, then AII's entry, by TFTP from dom0's address.
            # The host's console is watched too: a failed `xl create` ends the wait at once with its reason.
            events.wait_for(phase="pypxeboot-dhcp", timeout=600, kind="lease", node=guest, watch=[host_console])
            dom0_reads = lab.server.events.wait_for(
                phase="pypxeboot-tftp", timeout=120, kind="tftp", node=HOST, path=mac_cfg
            )
            assert dom0_reads.client == str(lab.ip(HOST))
            # The guest itself: its kickstart, then its ack.
            lab.wait_event(guest, kind="http", path=f"ks/{lab.fqdn(guest)}.ks", phase="guest-kickstart", timeout=300)
            lab.wait_event(guest, kind="ack", phase="guest-ack", timeout=120)
            assert lab.server.nbp.status(lab.node_boot(guest)) == "boot"
        host = lab.ssh.host(str(lab.ip(HOST)))
        answered = host.run("grep -l 'answered the toolstack' /var/log/xen/bootloader.*.log | wc -l")
        assert int(answered.stdout.strip() or 0) >= len(GUESTS), answered.stdout  # pypxeboot's own log lines
