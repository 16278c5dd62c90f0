"""The gateway reinstall, end to end, on the shipped profiles of the seed's gateway.

From empty disks: the Xen host `cagxen01` installs itself and boots into Xen; its first configuration run
creates and starts the PV guests `cagnode50` (as the seed declares it) and `cagnode51`; each is booted by
pypxeboot, installs itself from its own kickstart, acks, reboots through pypxeboot's LOCALBOOT into pygrub
and runs what it installed.  Verified by testinfra over SSH on the host and on each guest, dnspython for
every name and address, `xl list`, and each node's phases in the install server's log.

Variants: `seed` (the main job); `hvm`, the HVM guest `cagnode52` ("HVMs can do native PXE": its emulated
e1000's own PXE firmware, pxelinux, the same installer, GRUB in its MBR at the next boot) on its own host,
because two cores cannot run it beside the PV guests, and nightly, because it takes about 40 minutes there;
`replica`, the seed's gateway with other names, MACs and addresses (a testbed replica), nightly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lab.lab import Lab
from scenarios.gateway import GUEST_PAYLOAD, Gateway, journey, lab_profiles, reinstall
from scenarios.host_install import XEN_HOST
from scenarios.replica import replicate

pytestmark = [pytest.mark.scenario, XEN_HOST]


def profile(gateway: Gateway, node: str) -> dict[str, Any]:
    """The node's profile as the lab served it."""
    tree: dict[str, Any] = json.loads((gateway.profiles / f"profile_{node}.json").read_text())
    return tree


def largest_disk_mib(gateway: Gateway, guest: str) -> int:
    """The guest's largest disk as the host's profile declares it for ncm-xen: the one the installer chose."""
    domains = profile(gateway, gateway.host)["software"]["components"]["xen"]["domains"]
    (domain,) = [d for d in domains if d["name"] == guest]
    return max(int(d["size"]) for d in domain["disk"])


PV_GUESTS = ("cagnode50", "cagnode51")
HVM_GUESTS = ("cagnode52",)


# The HVM guest is `slow`: under nested TCG every device access of its install goes through QEMU in the
# emulated dom0 (40 minutes on a 2-core machine, too long beside everything else in CI's 90).
@pytest.mark.parametrize(
    "variant", ["seed", pytest.param("hvm", marks=pytest.mark.slow), pytest.param("replica", marks=pytest.mark.slow)]
)
def test_the_gateway_reinstalls_from_empty_disks(
    variant: str, run_dir: Path, tmp_path: Path, gateway_profiles: Path
) -> None:
    if variant == "hvm":
        source = Gateway(gateway_profiles, guests=HVM_GUESTS, guests_timeout=2700)
    else:
        source = Gateway(gateway_profiles, guests=PV_GUESTS)
    if variant == "replica":
        source = replicate(source, tmp_path / "replica")
    hvm = variant == "hvm"
    with Lab(source.spec(f"gateway-{variant}"), run_dir=run_dir) as lab:
        gateway = lab_profiles(source, tmp_path / "profiles", lab.ssh.public_key)
        reinstall(lab, gateway)

        host = lab.ssh.host(str(lab.ip(gateway.host)))
        with lab.timeline.phase("checks", "host-over-ssh"):
            assert host.check_output("hostname") == gateway.host
            listing = host.check_output("xl list")
            for guest in gateway.guests:
                assert re.search(rf"^{guest}\s+\d+\s+512\s", listing, re.M), listing
            grub = host.file("/boot/grub/grub.cfg")
            assert grub.contains("set default='ncm-grub-xen-0'")
            if not hvm:
                bootloader_logs = host.check_output("cat /var/log/xen/bootloader.*.log")
                assert "LOCALBOOT: handing over to pygrub" in bootloader_logs  # pypxeboot, at each guest's reboot

        for guest in gateway.guests:
            with lab.timeline.phase("checks", f"{guest}-over-ssh"):
                node = lab.ssh.host(str(lab.ip(guest)))
                assert node.check_output("hostname") == guest
                cmdline = node.file("/proc/cmdline").content_string
                assert "ks=" not in cmdline and "root=LABEL=root" in cmdline, cmdline  # the installed system
                disk = node.check_output("lsblk -no PKNAME $(findmnt -no SOURCE /)")  # root's disk
                assert (
                    int(node.check_output(f"blockdev --getsize64 /dev/{disk}"))
                    == largest_disk_mib(gateway, guest) * 2**20
                )
                assert node.file("/etc/ssh/ssh_host_ed25519_key").exists  # its own, made at first boot
                assert node.service("ssh").is_running
                assert node.check_output("uname -r") == profile(gateway, guest)["system"]["kernel"]["version"]

        with lab.timeline.phase("checks", "dns"):
            for name in (gateway.host, *gateway.guests):
                assert lab.resolve(lab.fqdn(name)) == [str(lab.ip(name))]
                reverse = ".".join(reversed(str(lab.ip(name)).split("."))) + ".in-addr.arpa"
                assert lab.resolve(reverse, "PTR") == [lab.fqdn(name) + "."]

        keys = {}
        for guest in gateway.guests:
            steps = journey(lab, gateway, guest)  # every milestone is in the install server's log…
            times = [e.seen for _, e in steps.phases()]
            assert times == sorted(times), f"{guest}: milestones out of order: {steps}"  # …in the right order
            # pypxeboot reads the entry from dom0; an HVM guest's own PXE firmware and pxelinux from the guest
            assert steps.config_read.client == str(lab.ip(guest if hvm else gateway.host)) and steps.hvm == hvm
            assert steps.installer_lease.mac == steps.pypxeboot_lease.mac == lab.mac(guest)
            assert steps.payload.path == f"payload/{GUEST_PAYLOAD}"
            keys[guest] = lab.ssh.host(str(lab.ip(guest))).check_output("cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert len(set(keys.values())) == len(keys), "guests share an SSH host key"
        if len(gateway.guests) > 1:  # guests install in parallel, not one after another: their installs overlap
            first, second = (journey(lab, gateway, g) for g in gateway.guests[:2])
            assert first.kickstart.seen < second.ack.seen and second.kickstart.seen < first.ack.seen
