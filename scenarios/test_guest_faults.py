"""Guests that cannot start, diagnosed at the host's first configuration run, not after the guests' timeout.

The seed's gateway with two faults in what the host is given: AII never configured its first PV guest
(removed after the fact, as `aii-shellfe --remove` does), so pypxeboot finds no pxelinux config for its
MAC; and the second one's profile asks Xen for more memory than the host has.  dom0's first `ncm-ncd --configure --all`
reports both domains failed; the run ends there with the product's failure, its reason the ncm-ncd line,
and the host's console (ncm-xen's line for each domain, with pypxeboot's own reason from the bootloader log
libxl names) and the install server's log say which guest failed why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from foundation.errors import FatalConsoleOutput
from lab.lab import Lab
from netboot_stack.events import Kind
from reporting.pytest_plugin import Diagnose
from reporting.verdicts import Verdict
from scenario_steps.gateway import lab_profiles, plan_with_guests, prepare, xen_state_saved
from scenario_steps.host_install import SEED, install_host
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, pytest.mark.slow, XEN_HOST]

TOO_MUCH_MIB = 64 * 1024


def ask_for_too_much_memory(profile: Path, guest: str) -> None:
    tree = json.loads(profile.read_text())
    for domain in tree["software"]["components"]["xen"]["domains"]:
        if domain["name"] == guest:
            domain["memory"] = TOO_MUCH_MIB
    profile.write_text(json.dumps(tree, indent=1))


def test_guests_xen_cannot_start_are_named_with_their_reasons_at_the_first_configuration(
    run_dir: Path, tmp_path: Path, diagnose: Diagnose
) -> None:
    chosen, (NO_CONFIG, NO_MEMORY) = plan_with_guests(SEED, "pv", 2)
    with Lab(chosen.spec("guest-faults"), run_dir=run_dir) as lab:
        gateway = lab_profiles(lab, chosen, tmp_path / "profiles")
        ask_for_too_much_memory(gateway.profiles / f"profile_{gateway.host.name}.json", NO_MEMORY)
        prepare(lab, gateway)
        lab.aii("remove", NO_CONFIG, profiles=gateway.profiles)
        with xen_state_saved(lab, gateway.host.name), pytest.raises(FatalConsoleOutput) as excinfo:
            install_host(lab, gateway.host.name, grub_title=gateway.host.grub_default_title)

        reason = str(excinfo.value).splitlines()[0]
        assert diagnose(excinfo) is Verdict.FAIL
        assert re.search(r"\[ERROR\] xen: failed: 2 of \d+ domains failed", reason), reason
        host = lab.vms[gateway.host.name]
        assert host.console is not None
        text = host.console.text
        lines = {g: re.findall(rf"domain {g}: [^\n]*", text) for g in (NO_CONFIG, NO_MEMORY)}
        print("\n".join(f"{g}: {found}" for g, found in lines.items()))
        assert lines[NO_CONFIG] and lines[NO_MEMORY], lines
        assert re.search("memory", " ".join(lines[NO_MEMORY]), re.I), lines[NO_MEMORY]
        # libxl only points at the bootloader's log; ncm-xen's line carries pypxeboot's own reason from it
        assert "the bootloader said: pypxeboot: TFTP pxelinux.cfg: no config on" in lines[NO_CONFIG][0], lines
        # pypxeboot asked for every name PXELINUX would, and the install server had none of them.
        mac_name = "01-" + lab.mac(NO_CONFIG).replace(":", "-")
        missing = [e.path for e in lab.server.events.select(kind=Kind.TFTP_MISSING)]
        assert f"pxelinux.cfg/{mac_name}" in missing and "pxelinux.cfg/default" in missing, missing
