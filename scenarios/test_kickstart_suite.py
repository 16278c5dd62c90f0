"""The kickstart regression suite (`kickstart_tests/`, kickstart-tests' case format) on an installer plug-in.

Each case installs a machine from its network boot with the plug-in (`--installer DIR`, the lab's own by
default) and the case's kickstart; its verdict comes from /root/RESULT of the installed disk, read back after
the install; a case that must fail passes when the installer stops with the reason it names.  A case using a
command the installer does not carry out is "unsupported by this installer" (skipped, with the commands),
never passed.  `./xenlab suite [--installer DIR]` runs them all.

* `test_case_on_pv_guest` (the default tier): a PV guest of the lab's Xen host, made by ncm-xen and booted by
  pypxeboot (`scenario_steps.kickstart_on_xen`), two at a time on one host restored from its snapshot.
* `test_case_on_hvm_guest` (slow, `test_kickstart_suite_hvm.py`): an HVM guest of the same kind of host,
  netbooting from its NIC's PXE ROM.
* `test_case_on_bare_qemu` (slow): a bare QEMU machine netbooting from its NIC's PXE ROM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.errors import ProductFailure
from lab import disk_files
from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from lab.kstest_guests import PV
from lab.lab import Lab, LabSpec, NodeSpec
from lab.vm import DiskConfig
from netboot_stack.events import Kind
from scenario_steps.kickstart_on_xen import XenSuite
from scenarios.kstest_common import CASES, judge, run_on, suite_on

pytestmark = pytest.mark.scenario

NODE = "kstest"
INSTALL_S = 900


@pytest.fixture(scope="module")
def pv_suite(request: pytest.FixtureRequest, installer: InstallerPlugin) -> Iterator[XenSuite]:
    with suite_on(PV, request, installer) as suite:
        yield suite


@pytest.mark.starts_xen_host
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_on_pv_guest(
    case: kstest.Case, installer: InstallerPlugin, pv_suite: XenSuite, request: pytest.FixtureRequest
) -> None:
    run_on(pv_suite, case, installer, request)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_on_bare_qemu(case: kstest.Case, installer: InstallerPlugin, run_dir: Path, tmp_path: Path) -> None:
    node = NodeSpec(
        NODE, host=60, memory_mb=1024, installer=installer.image or "installer", disks=(DiskConfig("disk", "8G"),)
    )
    with Lab(LabSpec(f"kstest-{case.name}", nodes=(node,), payloads=("guest-payload",)), run_dir=run_dir) as lab:
        kickstart = kstest.render(case, kstest.lab_values(lab, NODE), tmp_path)
        lab.serve_install(NODE, kickstart=kickstart, append=case.kernel_args(), installer=installer, nic=kstest.NETDEV)
        vm = lab.vm(NODE)
        vm.start()
        try:
            lab.wait_event(NODE, kind=Kind.ACK, phase="install", timeout=INSTALL_S)
        except ProductFailure as exc:
            result = None
            if kstest.reads_result_after_a_stop(case):
                vm.wait_exit(phase="install-stopped", timeout=300)
                result = disk_files.root_file(vm.disk_path(vm.config.disks[0]), "/root/RESULT", tmp_path)
            judge(case, kstest.Outcome(stopped=str(exc), result=result), installer)
            return
        vm.wait_exit(phase="install-done", timeout=300)  # reboot or power-off: QEMU runs with -no-reboot
        result = disk_files.root_file(vm.disk_path(vm.config.disks[0]), "/root/RESULT", tmp_path)
        judge(case, kstest.Outcome(stopped=None, result=result), installer)
