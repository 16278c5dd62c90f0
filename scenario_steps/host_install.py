"""The Xen host's unattended install, step by step: shared by the host-install and guest scenarios.

The host must already be configured and set to install by AII.  Each step is a phase of the host, so a run
leaves its timing rows: dhcp, installer-start, kickstart, partitioning, payload, bootloader, post-and-ack,
install-done, reboot (the installer's power-off), snapshot (when one is kept), power-on, grub, xen, dom0-kernel,
dom0-network, first-boot-ncm-ncd, dom0-ready.  A host started from a snapshot of its installed disks
(`resume_host`) has restore-snapshot instead of everything before power-on.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from foundation.paths import REPO
from lab import host_snapshot
from lab.host_snapshot import HostInputs, Snapshot
from lab.lab import Lab, LabSpec, spec_from_profiles
from lab.profiles import compile_for_lab
from lab.vm import DiskConfig
from netboot_stack.events import Kind

SEED = REPO / "profiles"
SEED_HOST = "cagxen01"  # the seed's Xen host


def host_only_spec(label: str) -> LabSpec:
    """A lab with the seed's Xen host alone, sized for dom0 and Xen without guests."""
    return spec_from_profiles(
        label,
        SEED,
        (SEED_HOST,),
        memory_mb=1536,  # no guest runs: dom0 and Xen only
        cpus=2,
        installer="installer",
        disks=(DiskConfig("vda", size="24G"),),
        payloads=("dom0-payload",),
    )


def serve_host_only(lab: Lab, dest: Path) -> Path:
    """Compile the seed's profiles for the lab with the host starting no guests (that is the gateway's job),
    serve the host's profile, and let AII configure it and set it to install; returns the profiles."""
    profiles = compile_for_lab(
        SEED, dest, kernel_release=lab.images.payload_kernel_release(), ssh_public_key=lab.ssh.public_key
    )
    path = profiles / f"profile_{SEED_HOST}.json"
    tree = json.loads(path.read_text())
    tree["software"]["components"]["xen"]["create_domains"] = False
    path.write_text(json.dumps(tree, indent=1))
    lab.server.write(f"profiles/profile_{SEED_HOST}.json", path.read_text())
    lab.aii("configure", SEED_HOST, profiles=profiles, image="installer", payload="dom0.tar.zst")
    lab.aii("install", SEED_HOST, profiles=profiles)
    return profiles


def install_host(
    lab: Lab, host: str, *, grub_title: str, first_boot_timeout: float = 600, snapshot: HostInputs | None = None
) -> str:
    """Install the host from an empty disk and follow it into a ready dom0; returns the second boot's console.

    `grub_title` is the title of the entry ncm-grub made the default (`lab.topology`): GRUB shows it.
    `snapshot`: keep the installed disks as the snapshot of these inputs (`lab.host_snapshot`), between the
    installer's end and the first boot."""
    fqdn = lab.fqdn(host)
    vm = lab.vm(host)
    booted = time.monotonic()  # what the host did at an earlier boot (a cut-off install) is not this one's
    vm.start()
    lab.wait_event(host, kind=Kind.LEASE, phase="dhcp", timeout=60, since=booted)
    lab.wait_console(host, r"XENLAB-INSTALL start", phase="installer-start", timeout=300)
    lab.wait_event(host, kind=Kind.HTTP, path=f"ks/{fqdn}.ks", phase="kickstart", timeout=120, since=booted)
    lab.wait_console(host, r"XENLAB-INSTALL partition: / ", phase="partitioning", timeout=300)
    lab.wait_console(host, r"XENLAB-INSTALL payload: \d+ MiB unpacked", phase="payload", timeout=900)
    lab.wait_console(host, r"XENLAB-INSTALL bootloader: GRUB", phase="bootloader", timeout=600)
    lab.wait_event(host, kind=Kind.ACK, phase="post-and-ack", timeout=600, since=booted)
    lab.wait_console(host, r"XENLAB-INSTALL-DONE reboot", phase="install-done", timeout=120)
    with lab.timeline.phase(host, "reboot"):
        vm.wait_exit(phase="reboot", timeout=120)
    if snapshot is not None:
        with lab.timeline.phase(host, "snapshot"):
            host_snapshot.save(snapshot, {d.name: vm.disk_path(d) for d in vm.config.disks})
    return boot_installed_host(lab, host, grub_title=grub_title, first_boot_timeout=first_boot_timeout)


def resume_host(
    lab: Lab, host: str, snapshot: Snapshot, *, profiles: Path, grub_title: str, first_boot_timeout: float = 600
) -> str:
    """Start the host from a snapshot of its installed disks (with the current system under test on it), set
    to boot from its disk as AII's ack would have, and follow it into a ready dom0 as after an install."""
    vm = lab.vm(host)
    with lab.timeline.phase(host, "restore-snapshot"):
        bases = host_snapshot.restore(
            snapshot, [d.name for d in vm.config.disks], vm.work_dir, public_key=lab.ssh.public_key
        )
        vm.start_disks_from(bases)
    lab.aii("boot", host, profiles=profiles)  # what the install's ack did when it was taken
    return boot_installed_host(lab, host, grub_title=grub_title, first_boot_timeout=first_boot_timeout)


def boot_installed_host(lab: Lab, host: str, *, grub_title: str, first_boot_timeout: float = 600) -> str:
    """From power-on of an installed host (its AII entry says boot from disk) to a ready dom0, through GRUB,
    Xen, dom0's network and its first `ncm-ncd --configure --all`; returns the console of this boot."""
    vm = lab.vm(host)
    with lab.timeline.phase(host, "power-on"):
        vm.start()
    lab.wait_console(host, re.escape(grub_title), phase="grub", timeout=300)
    lab.wait_console(host, r"\(XEN\) Xen version 4\.17", phase="xen", timeout=120)
    lab.wait_console(host, r"Linux version 6\.", phase="dom0-kernel", timeout=180)
    address = str(lab.ip(host)).replace(".", r"\.")
    prefix = lab.spec.subnet.prefixlen
    lab.wait_console(host, rf"XENLAB-NETWORK {host} xenbr0 {address}/{prefix}", phase="dom0-network", timeout=300)
    lab.wait_console(host, r"\[OK\] xen: ok", phase="first-boot-ncm-ncd", timeout=first_boot_timeout)
    lab.wait_console(host, rf"XENLAB-READY {host} ", phase="dom0-ready", timeout=600)
    assert vm.console is not None
    return vm.console.text
