"""A power cut in the middle of the host's install, and the same lab run again to a pass on the same disk.

The host is cut off (QEMU quits: no shutdown, the disk as it was) while the installer unpacks the payload.
AII has not seen an ack, so the host still PXE-boots its installer; the second install must cope with the
half-written disk (partitions and an LVM physical volume already there) and end in a ready dom0 like any.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import topology
from lab.lab import Lab
from netboot_stack.events import Kind
from scenario_steps.host_install import SEED_HOST, host_only_spec, install_host, serve_host_only
from scenarios.marks import XEN_HOST

pytestmark = [pytest.mark.scenario, pytest.mark.slow, XEN_HOST]


def test_a_power_cut_mid_install_is_followed_by_a_clean_reinstall_on_the_same_disk(
    run_dir: Path, tmp_path: Path
) -> None:
    with Lab(host_only_spec("host-power-cut"), run_dir=run_dir) as lab:
        profiles = serve_host_only(lab, tmp_path / "profiles")
        vm = lab.vm(SEED_HOST)
        vm.start()
        lab.wait_console(SEED_HOST, r"XENLAB-INSTALL partition: / ", phase="first-install-partitioning", timeout=600)
        lab.wait_event(
            SEED_HOST, kind=Kind.HTTP, path="payload/dom0.tar.zst", phase="first-install-payload", timeout=300
        )
        with lab.timeline.phase(SEED_HOST, "power-cut"):
            vm.stop()
        assert lab.server.events.select(kind=Kind.ACK, node=SEED_HOST) == [], "cut too late: it had acked"
        assert lab.server.nbp.status(lab.node_boot(SEED_HOST)) == "install"

        install_host(lab, SEED_HOST, grub_title=topology.read(profiles).host.grub_default_title)

        events = lab.server.events
        kickstarts = events.select(kind=Kind.HTTP, node=SEED_HOST, path=f"ks/{lab.fqdn(SEED_HOST)}.ks")
        assert len(kickstarts) == 2, "the host did not install twice"
        assert len(events.select(kind=Kind.ACK, node=SEED_HOST)) == 1
        host = lab.ssh.host(str(lab.ip(SEED_HOST)))
        assert host.check_output("hostname") == SEED_HOST
        assert host.run("vgs xenvg").rc == 0
