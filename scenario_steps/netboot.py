"""The netboot journey of one node, step by step: shared by the scenario test and the benchmark.

Each step is a phase of the node, so a run leaves a timing row per phase: `qemu-start`, `dhcp`,
`boot-file`, `kernel-start`, `kickstart`, `ack`, `poweroff`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from lab.lab import Lab
from netboot_stack.config import Route
from netboot_stack.events import Kind

PXELINUX_FILES = ("pxelinux.0", "ldlinux.c32")


@dataclass(frozen=True)
class NetbootResult:
    node: str
    token: str  # a value only this node's kickstart holds
    console: str  # the cleaned console text of the boot
    kickstart_url: str
    qemu_peak_rss_mib: float  # sampled at kernel start (kernel and initrd loaded)
    server_rss_mib: float


def kickstart_for(lab: Lab, node: str, token: str) -> str:
    return f"# kickstart of {lab.fqdn(node)}, served by the xenlab install server\ntext\nXENLAB-NETBOOT-TOKEN {token}\n"


def netboot(lab: Lab, node: str, *, timeout_scale: float = 1.0) -> NetbootResult:
    """Serve the node its install, boot it, and follow it to its ack and power-off."""
    t = timeout_scale
    token = secrets.token_hex(8)
    entry = lab.serve_install(node, kickstart=kickstart_for(lab, node, token))
    ks_path = f"ks/{lab.fqdn(node)}.ks"
    route = lab.spec.node(node).route
    vm = lab.vm(node)
    with lab.timeline.phase(node, "qemu-start"):
        vm.start()
    lab.wait_event(node, kind=Kind.LEASE, phase="dhcp", timeout=60 * t)
    if route is Route.IPXE:
        lab.wait_event(
            node, kind=Kind.HTTP, path=f"ipxe/{lab.node_boot(node).ipxe_name}", phase="boot-file", timeout=30 * t
        )
    else:
        lab.wait_event(
            node, kind=Kind.TFTP, path=f"pxelinux.cfg/{lab.node_boot(node).mac_name}", phase="boot-file", timeout=30 * t
        )
    lab.wait_console(node, r"Linux version \S+", phase="kernel-start", timeout=120 * t)
    qemu_rss, server_rss = vm.peak_rss_mib(), lab.server.rss_mib()  # the guest is gone soon after its ack
    lab.wait_event(node, kind=Kind.HTTP, path=ks_path, phase="kickstart", timeout=60 * t)
    lab.wait_event(node, kind=Kind.ACK, phase="ack", timeout=30 * t)
    with lab.timeline.phase(node, "poweroff"):
        vm.wait_exit(phase="poweroff", timeout=30 * t)
    assert vm.console is not None
    ks_arg = next(a for a in entry.append if a.startswith("ks="))
    return NetbootResult(node, token, vm.console.text, ks_arg.removeprefix("ks="), qemu_rss, server_rss)
