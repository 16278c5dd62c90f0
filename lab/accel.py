"""Choosing QEMU's accelerator by booting, not by looking at /dev/kvm.

On some machines /dev/kvm exists but KVM guests hang (a boot sector still runs there, slowly: it is no
proof).  The probe boots the lab's own kernel and installer initrd under KVM with `xenlab.probe`, which
prints a marker and powers off, and gives it a short timeout.  If the marker does not arrive the lab uses TCG
and says so once.  The verdict is cached per kernel and QEMU binary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from foundation import settings
from foundation.paths import cache_dir
from foundation.process import start

log = logging.getLogger("xenlab.accel")

MARKER = b"XENLAB-PROBE-OK"
PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Accelerator:
    name: str  # "kvm" or "tcg"
    cpu: str  # the CPU model: host under KVM, qemu64 with nested paging bits under TCG (Xen needs them)
    reason: str

    def qemu_args(self) -> list[str]:
        # tb-size=256: TCG's translation cache costs host memory; 256 MiB ran Xen and the netboot as fast as
        # the 1 GiB default (measured).
        accel = "kvm" if self.name == "kvm" else "tcg,tb-size=256"
        return ["-accel", accel, "-cpu", self.cpu]


KVM = Accelerator("kvm", "host", "a KVM guest booted")


def tcg(reason: str) -> Accelerator:
    # qemu64 is what Xen 4.17 boots on under TCG; +npt gives Xen hardware-assisted paging for HVM guests
    # (Debian's Xen has no shadow paging); `max` crashes dom0.
    return Accelerator("tcg", "qemu64,+npt", reason)


def _probe_key(qemu: str, kernel: Path) -> str:
    st = os.stat(qemu)
    ident = f"{platform.release()}|{qemu}|{st.st_size}|{st.st_mtime_ns}|{kernel.resolve()}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def boots_with(qemu: str, accel: str, kernel: Path, initrd: Path, timeout: float) -> bool:
    """Boot the lab's own kernel and initrd (which prints a marker and powers off) under `accel`."""
    argv = [
        qemu,
        "-accel",
        accel,
        "-cpu",
        "host" if accel == "kvm" else "qemu64",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 xenlab.probe panic=-1",
    ]
    seen = b""
    deadline = time.monotonic() + timeout
    with start(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, grace=0) as proc:
        while MARKER not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen = seen[-4096:] + chunk
    return MARKER in seen


def choose(kernel: Path, initrd: Path, qemu: str = "qemu-system-x86_64") -> Accelerator:
    """KVM if a KVM guest really boots here, else TCG (said once, then cached)."""
    if settings.current().accel == "tcg":
        return tcg("XENLAB_ACCEL=tcg")
    binary = shutil.which(qemu) or qemu
    cache = cache_dir() / "accel.json"
    key = _probe_key(binary, kernel)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return KVM if cached["accel"] == "kvm" else tcg(cached["reason"])
    except (OSError, ValueError, KeyError):
        pass
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = tcg("/dev/kvm is missing or not accessible")
    elif boots_with(binary, "kvm", kernel, initrd, PROBE_TIMEOUT):
        result = KVM
    else:
        result = tcg(f"/dev/kvm exists but a KVM guest failed or hung (probe limit {PROBE_TIMEOUT:.0f} s)")
    if result.name == "tcg":
        log.warning("KVM unusable (%s): the lab runs under TCG, expect slower boots", result.reason)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": result.name, "reason": result.reason}))
    return result
