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
import re
from dataclasses import dataclass

from pypxeboot.errors import UsageError
from pypxeboot.output import FORMATS

MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
LABEL = re.compile(r"^[\x21-\x7e]{1,128}$")
MiB = 1024 * 1024

USAGE = """\
usage: pypxeboot [options] [mac=MAC[,bridge=BR...]] DISK
  --output=FILE             where to write the answer (default: stdout)
  --output-format=FORMAT    simple0 (libxl), simple, sxp (xend, the default)
  --output-directory=DIR    where to put the kernel and initrd (default /var/lib/xen)
  --mac=MAC                 the guest's MAC (or a mac= argument, or a vif string)
  --interface=IF            dom0 interface to ask DHCP on (default: the vif's bridge=, else xenbr0)
  --label=LABEL             boot this label instead of the config's DEFAULT
  --server=IP               accept DHCP and TFTP only from this install server
  --timeout=SECONDS         limit for the whole run (default 180: a starved dom0 is slow)
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
    timeout: float = 180.0
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
    if not MAC.match(mac):
        raise UsageError(f"{mac!r} is not a MAC address (six hex pairs separated by colons)")
    interface = opts.get("interface") or vif.get("bridge") or "xenbr0"
    if not IFACE.match(interface):
        raise UsageError(f"{interface!r} is not an interface name")
    fmt = opts.get("output-format", "sxp")  # libxl always names its format; xend never does
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
    label = opts.get("label")
    if label is not None and not LABEL.match(label):
        raise UsageError(f"{label!r} is not a label")
    try:
        server = ipaddress.IPv4Address(opts["server"]) if "server" in opts else None
        timeout = float(opts.get("timeout", 180))
        max_kernel = int(float(opts.get("max-kernel", 64)) * MiB)
        max_initrd = int(float(opts.get("max-initrd", 512)) * MiB)
    except ValueError as exc:
        raise UsageError(f"bad option value: {exc}") from None
    if timeout <= 0 or max_kernel <= 0 or max_initrd <= 0:
        raise UsageError("--timeout and the size caps must be positive")
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
