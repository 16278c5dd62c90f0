"""Choosing QEMU's accelerator by booting, not by looking at /dev/kvm.

On some machines /dev/kvm exists but KVM guests hang.  The probe boots a 23-byte boot sector that prints a
marker on the serial port, under KVM, with a short timeout.  If the marker does not arrive the lab uses TCG
and says so once.  The verdict is cached per kernel and QEMU binary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.paths import cache_dir

log = logging.getLogger("xenlab.accel")

MARKER = b"XENLAB-ACCEL-OK"
PROBE_TIMEOUT = 8.0


@dataclass(frozen=True)
class Accelerator:
    name: str  # "kvm" or "tcg"
    cpu: str  # the CPU model: host under KVM, qemu64 with nested paging bits under TCG (Xen needs them)
    reason: str

    def qemu_args(self) -> list[str]:
        accel = "kvm" if self.name == "kvm" else "tcg,tb-size=256"
        return ["-accel", accel, "-cpu", self.cpu]


KVM = Accelerator("kvm", "host", "a KVM guest booted")


def tcg(reason: str) -> Accelerator:
    # qemu64 is what Xen 4.17 boots on under TCG; +npt gives Xen hardware-assisted paging for HVM guests
    # (Debian's Xen has no shadow paging); `max` crashes dom0.
    return Accelerator("tcg", "qemu64,+npt", reason)


def boot_sector() -> bytes:
    """cli; ds=0; cld; dx=0x3f8; si=msg; print until NUL; hlt."""
    msg_addr = 0x7C00 + 23
    code = bytes([0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xFC, 0xBA, 0xF8, 0x03, 0xBE, msg_addr & 0xFF, msg_addr >> 8,
                  0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8, 0xF4, 0xEB, 0xFD])
    sector = code + MARKER + b"\n\0"
    return sector.ljust(510, b"\0") + b"\x55\xaa"


def _probe_key(qemu: str) -> str:
    st = os.stat(qemu)
    return hashlib.sha256(f"{platform.release()}|{qemu}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _boot_once(qemu: str, accel: str, timeout: float) -> bool:
    with tempfile.TemporaryDirectory(prefix="xenlab-accel-") as tmp:
        img = Path(tmp) / "probe.img"
        img.write_bytes(boot_sector())
        argv = [qemu, "-accel", accel, "-nodefaults", "-display", "none", "-no-user-config",
                "-m", "16", "-serial", "stdio", "-drive", f"file={img},format=raw,if=ide", "-no-reboot"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return MARKER in (out or b"")


def choose(qemu: str = "qemu-system-x86_64") -> Accelerator:
    forced = os.environ.get("XENLAB_ACCEL")
    if forced == "tcg":
        return tcg("XENLAB_ACCEL=tcg")
    binary = shutil.which(qemu) or qemu
    cache = cache_dir() / "accel.json"
    key = _probe_key(binary)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return KVM if cached["accel"] == "kvm" else tcg(cached["reason"])
    except (OSError, ValueError, KeyError):
        pass
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = tcg("/dev/kvm is missing or not accessible")
    elif _boot_once(binary, "kvm", PROBE_TIMEOUT):
        result = KVM
    else:
        result = tcg(f"/dev/kvm exists but a KVM guest did not boot within {PROBE_TIMEOUT:.0f} s")
    if result.name == "tcg":
        log.warning("KVM unusable (%s): the lab runs under TCG, expect slower boots", result.reason)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": result.name, "reason": result.reason}))
    return result
