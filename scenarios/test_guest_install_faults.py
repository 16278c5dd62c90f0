"""Faults during the guests' installs, on a Xen host that installed and started them as it should.

Two faults in one run (a host install is the expensive part): the first PV guest's profile gives its root
file system too little room for the payload (a site's typo in `root_size_mib`), so its install fails with
the disk full: the run ends at once with the product's failure, naming the guest and the installer's
reason, not after the guests' timeout.  Then, while the second guest is still installing, the install
server's dnsmasq dies: that is the lab's fault (`broken`), found within seconds whatever the guest does.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from foundation.errors import ProductFailure, ServerDown
from lab.lab import PAYLOAD_DIR, Lab
from netboot_stack.events import Kind
from reporting.pytest_plugin import Diagnose, reason_of
from reporting.verdicts import Verdict
from scenario_steps.gateway import (
    GUEST_PAYLOAD,
    install_guests,
    lab_profiles,
    plan_with_guests,
    prepare,
    xen_state_saved,
)
from scenario_steps.host_install import SEED, install_host
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, pytest.mark.slow, XEN_HOST]

ROOT_MIB = 64  # far less than the guest payload unpacks to
FOUND_WITHIN_S = 15


def give_root(profile: Path, mib: int) -> None:
    tree = json.loads(profile.read_text())
    tree["system"]["aii"]["osinstall"]["options"]["root_size_mib"] = mib
    profile.write_text(json.dumps(tree, indent=1))


def test_a_full_guest_disk_fails_its_install_and_a_dead_dnsmasq_is_the_labs_fault(
    run_dir: Path, tmp_path: Path, diagnose: Diagnose
) -> None:
    chosen, (FULL, OTHER) = plan_with_guests(SEED, "pv", 2)
    with Lab(chosen.spec("guest-install-faults"), run_dir=run_dir) as lab:
        gateway = lab_profiles(lab, chosen, tmp_path / "profiles")
        give_root(gateway.profiles / f"profile_{FULL}.json", ROOT_MIB)
        prepare(lab, gateway)
        kickstart = (lab.server.srv / f"ks/{lab.fqdn(FULL)}.ks").read_text()
        assert f"part / --fstype=ext4 --label=root --size={ROOT_MIB}" in kickstart
        with xen_state_saved(lab, gateway.host.name):
            install_host(
                lab,
                gateway.host.name,
                grub_title=gateway.host.grub_default_title,
                first_boot_timeout=gateway.first_boot_timeout,
            )
            with pytest.raises(ProductFailure) as full:
                install_guests(lab, gateway)
            reason = reason_of(full)
            assert diagnose(full) is Verdict.FAIL
            assert f"{FULL} reported: install-failed payload" in reason, reason
            assert "did not unpack" in reason and "No space left on device (cannot write" in str(full.value), reason
            assert not lab.server.events.select(kind=Kind.ACK, node=FULL)
            assert lab.server.nbp.status(lab.node_boot(FULL)) == "install"  # never acked: reinstalls next boot

            payload = f"{PAYLOAD_DIR}/{GUEST_PAYLOAD}"
            assert lab.server.events.select(kind=Kind.HTTP, node=OTHER, path=payload), f"{OTHER} is not installing"
            assert not lab.server.events.select(kind=Kind.ACK, node=OTHER), f"{OTHER} finished before the fault"
            os.kill(lab.server.dnsmasq_pid(), signal.SIGKILL)  # the lab's own server process, by its PID
            killed = time.monotonic()
            with pytest.raises(ServerDown) as down:
                lab.wait_event(OTHER, kind=Kind.BOOTED, phase="guests-installed-and-up", timeout=1800)
            assert time.monotonic() - killed < FOUND_WITHIN_S, "found by a timeout, not by watching the server"
            assert diagnose(down) is Verdict.BROKEN
            assert "dnsmasq" in reason_of(down) or "container" in reason_of(down), reason_of(down)
