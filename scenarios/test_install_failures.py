"""A broken kickstart fails the install with the installer's reason, fast, not after a timeout.

Four machines in one lab, each with one fault in the kickstart AII wrote for it: a command the installer
does not support, a payload URL that does not exist, a partition larger than the disk, and no kickstart at
all (its URL answers 404).  The installer says
why on its console and reports it to the install server; the lab's waits end at once with that reason.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from foundation.errors import ProductFailure
from foundation.paths import REPO
from lab.lab import Lab, spec_from_profiles
from lab.vm import DiskConfig
from netboot_stack.events import Kind
from reporting.pytest_plugin import Diagnose
from reporting.verdicts import Verdict

pytestmark = pytest.mark.scenario

PROFILES = REPO / "profiles"
FAULTS: dict[
    str, tuple[Callable[[str], str | None], str, str]
] = {  # node: (what to do to its kickstart (None: remove it), the disk, the reason the installer must give)
    "cagnode50": (lambda ks: ks + "selinux --enforcing\n", "8G", "unsupported kickstart command(s): selinux"),
    "cagnode51": (lambda ks: ks, "8G", "payload http://gridinstall.xenlab.test/payload/missing.tar.zst could not"),
    "cagnode52": (lambda ks: ks, "2G", "the partitions need 3073 MiB but the disk has 2048 MiB"),
    "cagxen01": (lambda ks: None, "8G", "ks/cagxen01.xenlab.test.ks could not be fetched: HTTP 404"),
}
TIMEOUT = 600


def test_broken_kickstarts_fail_fast_with_the_installers_reason(run_dir: Path, diagnose: Diagnose) -> None:
    spec = spec_from_profiles("install-failures", PROFILES, FAULTS, memory_mb=768, installer="installer")
    spec = dataclasses.replace(
        spec,
        nodes=tuple(dataclasses.replace(n, disks=(DiskConfig("disk", size=FAULTS[n.name][1]),)) for n in spec.nodes),
    )
    with Lab(spec, run_dir=run_dir) as lab:
        lab.aii("configure", *FAULTS, profiles=PROFILES, image="installer", payload="missing.tar.zst")
        lab.aii("install", *FAULTS, profiles=PROFILES)
        for name, (change, _, _) in FAULTS.items():
            ks = lab.server.srv / f"ks/{lab.fqdn(name)}.ks"
            changed = change(ks.read_text())
            if changed is None:
                ks.unlink()
            else:
                ks.write_text(changed)
        for name in FAULTS:
            lab.vm(name).start()
        for name, (_, _, reason) in FAULTS.items():
            started = time.monotonic()
            with pytest.raises(ProductFailure) as failure:
                lab.wait_event(name, kind=Kind.ACK, phase="install", timeout=TIMEOUT)
            assert reason in str(failure.value), str(failure.value)
            assert diagnose(failure) is Verdict.FAIL
            assert time.monotonic() - started < TIMEOUT / 2, "the failure was found by a timeout, not reported"
            assert lab.server.nbp.status(lab.node_boot(name)) == "install"  # never acked: it reinstalls next boot
            # The second witness: the installer's report reached the install server (it may trail the console).
            report = lab.server.events.wait_for(
                phase="report", timeout=60, kind=Kind.INSTALL_FAILED, node=name, fail_on_install_failure=False
            )
            assert report.detail and reason.split(" could not")[0] in report.detail
