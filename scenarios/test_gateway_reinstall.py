"""The gateway reinstall, end to end, on a set of compiled profiles and nothing else.

From empty disks: the Xen host installs itself and boots into Xen through the GRUB entry ncm-grub chose;
its first configuration run creates and starts its guests; each is booted by pypxeboot (a PV guest) or by
its emulated NIC's own PXE firmware (an HVM guest), installs itself from its own kickstart, acks, reboots
into what it installed (pypxeboot's LOCALBOOT and pygrub, or GRUB in its MBR).  Every check compares
against the profiles the lab served: the host's name, each guest's memory in `xl list`, its install disk's
size, its kernel, ncm-grub's default entry, every name and address in DNS, each node's milestones in the
install server's log.

Profile sets: the seed's gateway (`profiles/`), and a second site written as another site would
(`profiles/westgrid/`: other names, a /26, three PV guests on LVs only, a file only and both, a GRUB list
whose Xen entry is second); with `--profiles DIR`, that directory instead, as the set `site`.  Variants:
`pv` (the host and its PV guests), `hvm` (its HVM guests, on their own host run: two cores cannot run them
beside the PV ones), `replica` (the set renamed, readdressed and re-MACed by `lab.replica`).  A variant the
profiles have nothing for is skipped, saying so.  What runs in CI: the seed's `pv`; the rest is nightly.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from foundation.paths import REPO
from images.recipes import dom0
from lab import host_snapshot, replica
from lab.installer_plugin import InstallerPlugin
from lab.lab import Lab
from quattor.ncm.components.grub import GRUB_CFG
from scenario_steps.gateway import GUEST_PAYLOAD, Gateway, NotInProfiles, journey, lab_profiles, plan, reinstall
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, XEN_HOST]

SHIPPED = {"seed": REPO / "profiles", "westgrid": REPO / "profiles" / "westgrid"}
# (profile set, variant) -> in the default CI run?  Everything else is `slow` (nightly).
IN_CI = {("seed", "pv")}
RUNS = {"seed": ("pv", "hvm", "replica"), "westgrid": ("pv",), "site": ("pv", "hvm", "replica")}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "profile_set" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("profiles")
    sets = ["site"] if chosen is not None else list(SHIPPED)
    params = []
    for name in sets:
        for variant in RUNS[name]:
            fast = (name, variant) in IN_CI or (name == "site" and variant == "pv")
            marks = () if fast else (pytest.mark.slow,)
            params.append(pytest.param(name, variant, marks=marks, id=f"{name}-{variant}"))
    metafunc.parametrize(("profile_set", "variant"), params)


def source_of(profile_set: str, gateway_profiles: Path) -> Path:
    return gateway_profiles if profile_set == "site" else SHIPPED[profile_set]


def served_profile(gateway: Gateway, node: str) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads((gateway.profiles / f"profile_{node}.json").read_text())
    return tree


def test_the_gateway_reinstalls_from_empty_disks(
    profile_set: str,
    variant: str,
    run_dir: Path,
    tmp_path: Path,
    gateway_profiles: Path,
    installer: InstallerPlugin,
    request: pytest.FixtureRequest,
) -> None:
    """(With `--from host-installed`, the host starts from its snapshot when there is one: then its system
    under test must be this tree's, written over the snapshot's.)"""
    source = source_of(profile_set, gateway_profiles)
    if variant == "replica":
        replica.replicate(source, tmp_path / "replica")
        source = tmp_path / "replica"
    try:
        chosen = plan(source, "hvm" if variant == "hvm" else "pv")
    except NotInProfiles as exc:
        pytest.skip(str(exc))
    hvm = variant == "hvm"
    with Lab(chosen.spec(f"gateway-{profile_set}-{variant}"), run_dir=run_dir) as lab:
        gateway = lab_profiles(lab, chosen, tmp_path / "profiles", installer)
        started = reinstall(lab, gateway, start_from=request.config.getoption("start_from"))
        name = gateway.host.name

        host = lab.ssh.host(str(lab.ip(name)))
        if started == host_snapshot.PHASE:
            with lab.timeline.phase("checks", "restored-host-sut"):
                assert_sut_is_this_trees(host)
        with lab.timeline.phase("checks", "host-over-ssh"):
            assert host.check_output("hostname") == name
            listing = host.check_output("xl list")
            for planned in gateway.host.guests:  # each with the memory its domain declares
                line = rf"^{re.escape(planned.name)}\s+\d+\s+{planned.memory_mib}\s"
                assert re.search(line, listing, re.M), listing
            grub = host.file(GRUB_CFG)  # ncm-grub's own choice of default, as the lab read it from the profile
            assert grub.contains(f"set default='{gateway.host.grub_default_id}'")
            if not hvm:
                bootloader_logs = host.check_output("cat /var/log/xen/bootloader.*.log")
                assert "LOCALBOOT: handing over to pygrub" in bootloader_logs  # pypxeboot, at each guest's reboot

        for planned in gateway.host.guests:
            guest = planned.name
            with lab.timeline.phase("checks", f"{guest}-over-ssh"):
                node = lab.ssh.host(str(lab.ip(guest)))
                assert node.check_output("hostname") == guest
                cmdline = node.file("/proc/cmdline").content_string
                assert "ks=" not in cmdline and "root=LABEL=root" in cmdline, cmdline  # the installed system
                disk = node.check_output("lsblk -no PKNAME $(findmnt -no SOURCE /)")  # root's disk
                size = int(node.check_output(f"blockdev --getsize64 /dev/{disk}"))
                assert size == planned.install_disk_mib * 2**20, f"{guest}: installed on a {size}-byte disk"
                assert node.file("/etc/ssh/ssh_host_ed25519_key").exists  # its own, made at first boot
                assert node.service("ssh").is_running
                assert node.check_output("uname -r") == served_profile(gateway, guest)["system"]["kernel"]["version"]

        with lab.timeline.phase("checks", "dns"):
            for node_name in (name, *gateway.guests):
                assert lab.resolve(lab.fqdn(node_name)) == [str(lab.ip(node_name))]
                reverse = lab.ip(node_name).reverse_pointer
                assert lab.resolve(reverse, "PTR") == [lab.fqdn(node_name) + "."]

        keys = {}
        for guest in gateway.guests:
            steps = journey(lab, gateway, guest)  # every milestone is in the install server's log…
            times = [e.seen for _, e in steps.phases()]
            assert times == sorted(times), f"{guest}: milestones out of order: {steps}"  # …in the right order
            # pypxeboot reads the entry from dom0; an HVM guest's own PXE firmware and pxelinux from the guest
            assert steps.config_read.client == str(lab.ip(guest if hvm else name)) and steps.hvm == hvm
            assert steps.installer_lease.mac == steps.pypxeboot_lease.mac == lab.mac(guest)
            assert steps.payload.path == f"payload/{GUEST_PAYLOAD}"
            keys[guest] = lab.ssh.host(str(lab.ip(guest))).check_output("cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert len(set(keys.values())) == len(keys), "guests share an SSH host key"
        if len(gateway.guests) > 1:  # guests install in parallel, not one after another: their installs overlap
            first, second = (journey(lab, gateway, g) for g in gateway.guests[:2])
            assert first.kickstart.seen < second.ack.seen and second.kickstart.seen < first.ack.seen


def assert_sut_is_this_trees(host: Any) -> None:
    """Every file of the system under test in dom0 is this tree's (a restored host's was updated)."""
    files = sorted(str(f.relative_to(REPO)) for pkg in dom0.SUT for f in (REPO / pkg).rglob("*.py"))
    listing = host.check_output(f"cd /usr/lib/python3/dist-packages && sha256sum {' '.join(files)}")
    installed = {line.split()[1]: line.split()[0] for line in listing.splitlines()}
    stale = [f for f in files if installed.get(f) != hashlib.sha256((REPO / f).read_bytes()).hexdigest()]
    assert not stale, f"dom0 runs other versions of: {stale}"
