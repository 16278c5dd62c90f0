"""Checks made before a lab starts anything: a clear error naming the fix, and nothing left behind."""

from __future__ import annotations

import os
import shutil

from foundation.errors import PreflightError

# Tools the lab runs on the machine, and the Debian package that provides each.
TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
    "ip": "iproute2",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
}


def check_tools(tools: dict[str, str] | None = None) -> None:
    missing = {t: p for t, p in (tools or TOOLS).items() if shutil.which(t, path=_path()) is None}
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise PreflightError(
            f"missing tools on this machine: {', '.join(sorted(missing))}",
            hint=f"run `./xenlab setup` (or `apt-get install {packages}`)",
        )


def check_privileges() -> None:
    if os.geteuid() != 0:
        raise PreflightError(
            "the lab needs root: it creates network namespaces, taps and containers",
            hint="run the command as root (sudo ./xenlab …)",
        )
    if not os.path.isdir("/proc/self/ns") or not os.path.exists("/proc/self/ns/net"):
        raise PreflightError("this kernel has no network namespaces", hint="the lab needs CONFIG_NET_NS")


def check_dnsmasq(rootfs: str) -> None:
    if not os.path.exists(os.path.join(rootfs, "usr/sbin/dnsmasq")):
        raise PreflightError(
            f"the install server image {rootfs} has no dnsmasq",
            hint="rebuild it: `python -m images build server-rootfs`",
        )


def _path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
