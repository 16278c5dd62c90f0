"""AII drives the install server from the seed gateway's profiles.

aii-shellfe writes the kickstarts, pxelinux entries and DHCP/DNS entries; dnsmasq picks them up on reload
without losing leases; the Xen host netboots into AII's entry and fetches AII's kickstart; its ack switches
it to local boot through AII's state; pypxeboot, on the lab bridge as in dom0, boots cagnode50 from AII's
entry for the seed's MAC.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from foundation import netns
from foundation.paths import REPO
from foundation.process import run
from lab.lab import Lab, spec_from_profiles
from netboot_stack.events import Kind

pytestmark = pytest.mark.scenario

PROFILES = REPO / "profiles"
GATEWAY = ("cagxen01", "cagnode50", "cagnode51", "cagnode52")


def test_aii_configures_the_install_server_and_the_host_installs_from_it(run_dir: Path) -> None:
    with Lab(spec_from_profiles("aii-gateway", PROFILES, GATEWAY), run_dir=run_dir) as lab:
        lab.aii("configure", *GATEWAY, profiles=PROFILES, image="dummy-installer")

        # DNS from AII's entries, forward and reverse, for every node of the gateway.
        for name in GATEWAY:
            fqdn = lab.fqdn(name)
            assert lab.resolve(fqdn) == [str(lab.ip(name))], name
            assert lab.resolve(f"{lab.ip(name).reverse_pointer}.", "PTR") == [f"{fqdn}."], name
        status = lab.aii("status", *GATEWAY, profiles=PROFILES)
        assert all(f"{lab.fqdn(n)}: boot" in status for n in GATEWAY)  # configured nodes boot locally

        lab.aii("install", "cagxen01", profiles=PROFILES)
        vm = lab.vm("cagxen01")
        vm.start()
        lease = lab.wait_event("cagxen01", kind=Kind.LEASE, phase="dhcp", timeout=60)
        assert (lease.mac, lease.client) == ("52:54:00:77:00:20", "10.77.0.20")
        lab.wait_event(
            "cagxen01", kind=Kind.TFTP, path="pxelinux.cfg/01-52-54-00-77-00-20", phase="boot-file", timeout=30
        )
        lab.wait_event("cagxen01", kind=Kind.HTTP, path="ks/cagxen01.xenlab.test.ks", phase="kickstart", timeout=120)
        lab.wait_event("cagxen01", kind=Kind.ACK, phase="ack", timeout=30)
        vm.wait_exit(phase="poweroff", timeout=30)
        console = vm.console.text if vm.console else ""
        # The installer printed AII's kickstart for this node.
        assert "network --device=eth0 --bootproto=static --ip=10.77.0.20" in console
        assert "volgroup xenvg pv.01" in console
        # The ack went through AII's own state: the host is switched to local boot.
        assert f"{lab.fqdn('cagxen01')}: boot" in lab.aii("status", "cagxen01", profiles=PROFILES)

        # Re-applying AII's entries reloads dnsmasq and keeps every lease.
        leases = lab.server.leases()
        assert any("52:54:00:77:00:20 10.77.0.20 cagxen01" in line for line in leases)
        lab.aii("configure", *GATEWAY, profiles=PROFILES)
        assert lab.server.leases() == leases

        # pypxeboot, for the seed's guest, from AII's entry (what dom0 will do on xenbr0).
        lab.aii("install", "cagnode50", profiles=PROFILES)
        outdir = run_dir / "pypxeboot-out"
        outdir.mkdir()
        proc = run(
            netns.exec_argv(
                lab.network.netns,
                [
                    sys.executable,
                    "-m",
                    "pypxeboot",
                    "--output-format=simple",
                    f"--output-directory={outdir}",
                    "--interface=br0",
                    "mac=AA:00:86:e2:35:72",
                    "/var/xen-grid/cagnode50/fs/disk",
                ],
            ),
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        answer = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line)
        # As PXELINUX boots AII's `default Install cagnode50`: the label is `Install`, the rest of the DEFAULT
        # line joins the arguments (the host's installer, booted by the real pxelinux.0 above, ends the same way).
        assert answer["args"] == (
            "ks=http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks ksdevice=eth0 console=hvc0 net.ifnames=0"
            " cagnode50"
        )
        assert console.split("Command line: ", 1)[1].split("\n", 1)[0].rstrip().endswith("console=ttyS0 cagxen01")
        served = (lab.server.srv / "boot/installer/vmlinuz").read_bytes()
        assert Path(answer["kernel"]).read_bytes() == served
