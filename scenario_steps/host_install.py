"""The Xen host's unattended install, step by step: shared by the host-install and guest scenarios.

The host must already be configured and set to install by AII.  Each step is a phase of the host, so a run
leaves its timing rows: dhcp, installer-start, kickstart, partitioning, payload, bootloader, post-and-ack,
install-done, reboot, grub, xen, dom0-kernel, dom0-network, first-boot-ncm-ncd, dom0-ready.
"""

from __future__ import annotations

import re

from lab.lab import Lab
from netboot_stack.events import Kind


def install_host(lab: Lab, host: str, *, grub_title: str, first_boot_timeout: float = 600) -> str:
    """Install the host from an empty disk and follow it into a ready dom0; returns the second boot's console.

    `grub_title` is the title of the entry ncm-grub made the default (`lab.topology`): GRUB shows it."""
    fqdn = lab.fqdn(host)
    vm = lab.vm(host)
    vm.start()
    lab.wait_event(host, kind=Kind.LEASE, phase="dhcp", timeout=60)
    lab.wait_console(host, r"XENLAB-INSTALL start", phase="installer-start", timeout=300)
    lab.wait_event(host, kind=Kind.HTTP, path=f"ks/{fqdn}.ks", phase="kickstart", timeout=120)
    lab.wait_console(host, r"XENLAB-INSTALL partition: / ", phase="partitioning", timeout=300)
    lab.wait_console(host, r"XENLAB-INSTALL payload: \d+ MiB unpacked", phase="payload", timeout=900)
    lab.wait_console(host, r"XENLAB-INSTALL bootloader: GRUB", phase="bootloader", timeout=600)
    lab.wait_event(host, kind=Kind.ACK, phase="post-and-ack", timeout=600)
    lab.wait_console(host, r"XENLAB-INSTALL-DONE reboot", phase="install-done", timeout=120)
    with lab.timeline.phase(host, "reboot"):
        vm.wait_exit(phase="reboot", timeout=120)
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
