"""The kickstart regression suite (`kickstart_tests/`, kickstart-tests' case format) on an installer plug-in.

Each case installs a bare QEMU machine from its network boot with the plug-in (`--installer DIR`, the lab's
own by default) and its kickstart, and gets its verdict from /root/RESULT of the installed disk, read back
after the install; a case that must fail passes when the installer stops with the reason it names.  A case
using a command the installer does not carry out is "unsupported by this installer" (skipped, with the
commands), never passed.  `./xenlab suite [--installer DIR]` runs them all, two at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.errors import ProductFailure
from lab import disk_files
from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from lab.lab import PAYLOAD_DIR, Lab, LabSpec, NodeSpec
from lab.vm import DiskConfig
from netboot_stack.events import Kind

pytestmark = pytest.mark.scenario

NODE = "kstest"
GUEST_PAYLOAD = "guest.tar.zst"
INSTALL_S = 900


@pytest.mark.parametrize("case", kstest.cases(), ids=lambda c: c.name)
def test_kickstart_case(case: kstest.Case, installer: InstallerPlugin, run_dir: Path, tmp_path: Path) -> None:
    node = NodeSpec(
        NODE, host=60, memory_mb=1024, installer=installer.image or "installer", disks=(DiskConfig("disk", "8G"),)
    )
    with Lab(LabSpec(f"kstest-{case.name}", nodes=(node,), payloads=("guest-payload",)), run_dir=run_dir) as lab:
        url = lab.server.url(f"{PAYLOAD_DIR}/{GUEST_PAYLOAD}")
        values = {
            "KSTEST_LIVEIMG": f"liveimg --url={url}",
            "KSTEST_URL": url,
            "KSTEST_NETDEV1": "eth0",
            "KSTEST_SERVER": lab.server.config.http_base,
        }
        kickstart = kstest.render(case, values, tmp_path)
        lab.serve_install(NODE, kickstart=kickstart, append=case.kernel_args(), installer=installer)
        vm = lab.vm(NODE)
        vm.start()
        must_fail = case.expected_failure()
        try:
            lab.wait_event(NODE, kind=Kind.ACK, phase="install", timeout=INSTALL_S)
        except ProductFailure as exc:
            reason = str(exc)
            commands = kstest.unsupported(reason, installer)
            if commands:
                pytest.skip(f"unsupported by this installer: {commands}")
            if must_fail is not None and must_fail.search(reason):
                return  # it failed, as it must, for the reason it must
            raise
        if must_fail is not None:
            pytest.fail(f"the install succeeded; it must fail with a reason matching {must_fail.pattern!r}")
        vm.wait_exit(phase="install-done", timeout=300)  # reboot or power-off: QEMU runs with -no-reboot
        result = disk_files.root_file(vm.disk_path(vm.config.disks[0]), "/root/RESULT", tmp_path)
        passed, why = kstest.validate(case, result)
        assert passed, f"{case.name}: {why}"
