"""The command line, as xl (libxl) and xend build it.

libxl:  pypxeboot [--kernel=K] [--ramdisk=R] [--args=A] [--runas=UID --quiet] --output=FILE
                  --output-format=simple0 --output-directory=DIR <bootloader_args…> <disk>
xend:   pypxeboot [-q] --output=FIFO <bootargs, shlex-split…> <disk>

The guest's MAC comes from a `mac=` argument, bare (`mac=AA:00:86:e2:35:72`) or inside a vif
specification (`mac=AA:00:86:e2:35:72,bridge=xenbr0`, what xm's `bootargs = vif[0]` expands to), or
from `--mac=`.  A `bridge=` in that vif names the interface to ask DHCP on, unless `--interface` does.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from pypxeboot.errors import UsageError
from pypxeboot.output import FORMATS

# Matched whole (fullmatch): `$` would accept a trailing newline.
MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
IFACE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
LABEL = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?")  # PXELINUX labels may hold spaces
MiB = 1024 * 1024
# The whole run's default limit: below libxl's 120 s kill of a restricted bootloader, so that pypxeboot ends
# itself, its helper and its downloads first, and says why.
DEFAULT_TIMEOUT = 100.0
LIMITS = {"timeout": (1.0, 3600.0), "max-kernel": (1.0, 1024.0), "max-initrd": (1.0, 4096.0)}

USAGE = """\
usage: pypxeboot [options] [mac=MAC[,bridge=BR...]] DISK
  --output=FILE             where to write the answer (default: stdout)
  --output-format=FORMAT    simple0 (libxl), simple, sxp (xend, the default)
  --output-directory=DIR    where to put the kernel and initrd (default /var/lib/xen)
  --mac=MAC                 the guest's MAC (or a mac= argument, or a vif string)
  --interface=IF            dom0 interface to ask DHCP on (default: the vif's bridge=, else xenbr0)
  --label=LABEL             boot this label instead of the config's DEFAULT
  --server=IP               accept DHCP and TFTP only from this install server
  --timeout=SECONDS         limit for the whole run (default 100: below libxl's 120 s kill)
  --max-kernel=MiB --max-initrd=MiB   size caps (default 64 and 512)
  --pygrub=PATH             pygrub for LOCALBOOT entries (default: Xen's own)
  --kernel= --ramdisk= --args= --runas= --quiet   passed by the toolstack (see README)
  -v, --verbose             say every step on stderr
"""


@dataclass(frozen=True)
class Options:
    mac: str  # lower case, colon-separated
    disk: str
    interface: str = "xenbr0"
    output: str = "-"
    output_format: str = "sxp"
    output_directory: str = "/var/lib/xen"
    label: str | None = None
    server: ipaddress.IPv4Address | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_kernel: int = 64 * MiB
    max_initrd: int = 512 * MiB
    pygrub: str | None = None
    runas: str | None = None
    toolstack_kernel: str | None = None
    toolstack_ramdisk: str | None = None
    toolstack_args: str | None = None
    verbose: bool = False


def parse(argv: list[str]) -> Options:
    opts: dict[str, str] = {}
    flags: set[str] = set()
    positional: list[str] = []
    for arg in argv:
        if arg in ("-v", "--verbose"):
            flags.add("verbose")
        elif arg in ("-q", "--quiet"):
            flags.add("quiet")
        elif arg in ("-h", "--help"):
            raise UsageError(USAGE)
        elif arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            if not sep:
                raise UsageError(f"option --{key} needs a value (--{key}=…)\n{USAGE}")
            if key not in KNOWN:
                raise UsageError(f"unknown option --{key}\n{USAGE}")
            opts[key] = value
        else:
            positional.append(arg)
    if not positional:
        raise UsageError(f"no disk argument (the toolstack passes the guest's first disk last)\n{USAGE}")
    disk, extra = positional[-1], positional[:-1]
    vif = vif_fields(extra)
    mac = opts.get("mac") or vif.get("mac")
    if not mac:
        raise UsageError("no MAC: pass mac=AA:BB:CC:DD:EE:FF (xl: bootloader_args, xm: bootargs = vif[0])")
    if not MAC.fullmatch(mac):
        raise UsageError(f"{mac!r} is not a MAC address (six hex pairs separated by colons)")
    interface = opts.get("interface") or vif.get("bridge") or "xenbr0"
    if not IFACE.fullmatch(interface):
        raise UsageError(f"{interface!r} is not an interface name")
    fmt = opts.get("output-format", "sxp")  # libxl always names its format; xend never does
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
    label = opts.get("label")
    if label is not None and not LABEL.fullmatch(label):
        raise UsageError(f"{label!r} is not a label")
    try:
        server = ipaddress.IPv4Address(opts["server"]) if "server" in opts else None
    except ValueError as exc:
        raise UsageError(f"bad option value: {exc}") from None
    timeout = bounded(opts, "timeout", DEFAULT_TIMEOUT, "seconds")
    max_kernel = int(bounded(opts, "max-kernel", 64, "MiB") * MiB)
    max_initrd = int(bounded(opts, "max-initrd", 512, "MiB") * MiB)
    return Options(
        mac=mac.lower(),
        disk=disk,
        interface=interface,
        output=opts.get("output", "-"),
        output_format=fmt,
        output_directory=opts.get("output-directory", "/var/lib/xen"),
        label=label,
        server=server,
        timeout=timeout,
        max_kernel=max_kernel,
        max_initrd=max_initrd,
        pygrub=opts.get("pygrub"),
        runas=opts.get("runas"),
        toolstack_kernel=opts.get("kernel"),
        toolstack_ramdisk=opts.get("ramdisk"),
        toolstack_args=opts.get("args"),
        verbose="verbose" in flags,
    )


def bounded(opts: dict[str, str], key: str, default: float, unit: str) -> float:
    """A number option within its limits: nan, inf, 1e400 and friends are usage errors, never tracebacks."""
    low, high = LIMITS[key]
    text = opts.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"bad option value: --{key}={text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise UsageError(f"bad option value: --{key}={text} must be between {low:g} and {high:g} {unit}")
    return value


KNOWN = {
    "output",
    "output-format",
    "output-directory",
    "mac",
    "interface",
    "label",
    "server",
    "timeout",
    "max-kernel",
    "max-initrd",
    "pygrub",
    "runas",
    "kernel",
    "ramdisk",
    "args",
    "entry",
    "isconfig",
}


def vif_fields(args: list[str]) -> dict[str, str]:
    """key=value pairs from vif-like arguments, however xm split them (`a=1,b=2`, `a=1 , b=2`)."""
    fields: dict[str, str] = {}
    for token in ",".join(args).replace(" ", ",").split(","):
        key, sep, value = token.strip().partition("=")
        if sep and key and key not in fields:
            fields[key] = value.strip()
    return fields
