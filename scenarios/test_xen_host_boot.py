"""The Xen host boots Xen 4.17 and dom0 from the GRUB entry ncm-grub wrote from its profile.

The disk is the dom0 payload with GRUB whose menu the system under test (ncm-grub, from cagxen01's
profile) wrote; QEMU runs it under TCG with `-cpu qemu64,+npt`.  Witnesses: the console shows GRUB, Xen and
dom0 in that order; in dom0, `xl info` and `xl list` show Xen running and dom0 with the memory the profile's
`dom0_mem` gives it.  (The installer puts this system on an empty disk in `test_host_install.py`.)  The same
host, booted again, is where `lab.host_hang`'s looks at a host that stopped answering are tried for real.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from foundation.errors import EmulationFault, LabError
from foundation.paths import REPO
from lab import host_hang, image_set
from lab.lab import Lab, LabSpec, NodeSpec
from lab.profiles import compile_for_lab
from lab.vm import DiskConfig, Vm
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, XEN_HOST]


def ncm_grub_host(tmp_path: Path) -> LabSpec:
    profiles = compile_for_lab(REPO / "profiles", tmp_path, kernel_release=image_set.dom0_kernel_release())
    disk = image_set.xen_host_disk_image(profiles / "profile_cagxen01.json")
    node = NodeSpec(
        "cagxen01",
        host=20,
        mac="52:54:00:77:00:20",
        memory_mb=1024,
        cpus=2,
        boot_order="c",
        disks=(DiskConfig("root", base=disk),),
    )
    return LabSpec("xen-host", nodes=(node,))


def boot_to_dom0_shell(lab: Lab) -> Vm:
    vm = lab.vm("cagxen01")
    vm.start()
    lab.wait_console("cagxen01", r"Xen 4\.17 / Debian GNU/Linux", phase="grub", timeout=120)
    lab.wait_console("cagxen01", r"\(XEN\) Xen version 4\.17", phase="xen", timeout=120)
    lab.wait_console("cagxen01", r"Linux version 6\.", phase="dom0-kernel", timeout=180)
    lab.wait_console("cagxen01", r"XENLAB-READY cagxen01 ", phase="dom0-ready", timeout=400)
    assert vm.console is not None
    vm.console.send_line("")  # the autologin prompt may have come before the ready marker: ask again
    lab.wait_console("cagxen01", r"root@cagxen01:\S*# ", phase="shell", timeout=120)
    return vm


def test_xen_and_dom0_boot_from_ncm_grubs_entry(run_dir: Path, tmp_path: Path) -> None:
    with Lab(ncm_grub_host(tmp_path), run_dir=run_dir) as lab:
        vm = boot_to_dom0_shell(lab)
        assert vm.console is not None
        with lab.timeline.phase("cagxen01", "xl"):
            info, rc = vm.console.run("xl info | grep -E '^(xen_major|xen_minor|xen_caps)'", phase="xl", timeout=120)
            assert rc == 0, info
            listing, rc = vm.console.run("xl list Domain-0", phase="xl", timeout=60)
            assert rc == 0, listing
        assert re.search(r"xen_major\s*:\s*4", info) and re.search(r"xen_minor\s*:\s*17", info)
        assert "hvm-3.0-x86_64" in info  # +npt: Xen found hardware-assisted paging, HVM guests can run
        dom0 = re.search(r"Domain-0\s+0\s+(\d+)\s+(\d+)", listing)
        assert dom0, listing
        assert 500 <= int(dom0.group(1)) <= 512, f"dom0 has {dom0.group(1)} MiB; the profile gives dom0_mem=512M"
        console = vm.console.text
        assert (
            console.index("Xen 4.17 / Debian") < console.index("(XEN) Xen version") < console.index("Linux version 6.")
        )
        vm.stop()
        if vm.accel.name == "tcg":
            jit = (vm.log_dir / "qemu-jit.txt").read_text()  # TCG's translation cache, saved as the VM stopped
            assert re.search(r"TB count\s+[1-9]", jit) and "TB flush count" in jit, jit


def test_a_host_that_stops_answering_is_told_apart_by_what_still_answers(run_dir: Path, tmp_path: Path) -> None:
    """The looks `lab.host_hang` takes at a host that answers nothing over SSH, on a real one: dom0's shell
    still answering (the lab's way in broke); dom0's shell busy while Xen answers on its console (CTRL-a x3,
    its dump of its CPUs, the input handed back): dom0 hangs; the VM's CPUs stopped by QMP: Xen cannot answer,
    the lab's fault, and QEMU still says where each vCPU stands."""
    with Lab(ncm_grub_host(tmp_path), run_dir=run_dir) as lab:
        vm = boot_to_dom0_shell(lab)
        assert vm.console is not None and vm.qmp is not None
        network = host_hang.hang_error(vm, 300, run_dir / "network")
        assert type(network) is LabError and "its shell on the serial console runs commands" in str(network)
        report = (run_dir / "network" / "host-hang.txt").read_text()
        assert "'d' pressed -> dumping registers" in report and "Serial input to DOM0" in report, report[-3000:]
        vm.console.send_line("sleep 120")  # dom0's shell stops answering; Xen beneath it does not
        busy = host_hang.hang_error(vm, 300, run_dir / "busy")
        assert isinstance(busy, host_hang.HostUnresponsive), busy
        vm.qmp.cmd("stop")
        stopped = host_hang.hang_error(vm, 300, run_dir / "stopped")
        assert isinstance(stopped, EmulationFault), stopped
        assert "vCPU 0 at " in str(stopped) and "vCPU 1 at " in str(stopped) and "not moving" in str(stopped)
        vm.qmp.cmd("cont")
        vm.stop()
