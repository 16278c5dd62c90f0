"""ncm-xen's view of `/software/components/xen`: validated once into typed objects.

Both forms of `domains` are read: the 0.1.7+ nlist (`domains/<name>/options`, `install_options`, `auto`)
and the 2007 list of option sets (`domains/0/name`, `domains/0/memory`, …).  The 2007 disk key `device` is
read as `guestdevice`, and a vif list written as one Python-style string (`"[ 'mac=AA:…' ]"`) is read as
its items, without evaluating anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quattor.profile import STRUCTURE_KEYS, ProfileError, Reader

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LVM_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
VDEV = re.compile(r"(xvd|hd|sd)[a-z]{1,3}[0-9]{0,2}")
ACCESS = {None: None, "phy": "phy", "file": None, "tap:aio": "tap", "tap:qcow2": "tap", "qdisk": "qdisk"}
DISK_TYPES = ("file", "lvm", "phy")
MAX_MEMORY_MIB = 16 * 1024 * 1024  # 16 TiB: more than any Xen host holds; 10**30 is a typo, not a guest
MAX_DISK_MIB = 64 * 1024 * 1024  # 64 TiB
HDTYPES = ("ide", "ahci")  # how an HVM guest's hd* disks are emulated (xl.cfg(5) `hdtype`)
ACTIONS = ("destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart", "soft-reset")
# Options copied as they are, with their xl type; what xl.cfg(5) knows for PV and HVM guests.
PASSTHROUGH_STR = (
    "kernel",
    "ramdisk",
    "extra",
    "root",
    "cpus",
    "boot",
    "serial",
    "vga",
    "device_model_version",
    "hdtype",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "bootloader",
)
PASSTHROUGH_INT = ("vcpus", "maxmem", "videoram", "shadow_memory")
PASSTHROUGH_BOOL = ("vnc", "sdl", "acpi", "apic", "pae", "hap", "nographic")
# Lists of strings: extra arguments for the device model (QEMU), as xl.cfg(5) takes them.
PASSTHROUGH_LIST = ("device_model_args", "device_model_args_hvm", "device_model_args_pv")


def safe(value: str, path: str) -> str:
    """A value written inside xl's double quotes: refused, never escaped, if it could end the string."""
    if any(c in value for c in '"\\') or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ProfileError(path, f"contains a quote, a backslash or a control character: {value!r}")
    return value


@dataclass(frozen=True)
class Disk:
    type: str
    guestdevice: str
    writable: bool
    path: str | None  # file: the image; lvm: the PV for vgcreate
    hostdevice: str | None  # lvm: the VG; phy: the device
    hostvol: str | None  # lvm: the LV
    size_mib: int | None
    create: bool
    backendtype: str | None
    profile_path: str

    @property
    def target(self) -> str:
        if self.type == "file":
            assert self.path
            return self.path
        if self.type == "lvm":
            return f"/dev/{self.hostdevice}/{self.hostvol}"
        assert self.hostdevice
        return self.hostdevice if self.hostdevice.startswith("/") else f"/dev/{self.hostdevice}"

    def xl(self) -> str:
        parts = ["format=raw", f"vdev={self.guestdevice}", f"access={'rw' if self.writable else 'ro'}"]
        if self.backendtype:
            parts.append(f"backendtype={self.backendtype}")
        return ", ".join([*parts, f"target={self.target}"])  # target last: it may hold commas


@dataclass(frozen=True)
class DomainOptions:
    name: str
    memory: int
    type: str  # pv or hvm (from `type`, or the 2007 `builder`)
    vifs: tuple[str, ...]
    disks: tuple[Disk, ...]
    bootloader_args: tuple[str, ...] | None
    strings: tuple[tuple[str, str], ...]
    integers: tuple[tuple[str, int], ...]
    booleans: tuple[tuple[str, bool], ...]
    lists: tuple[tuple[str, tuple[str, ...]], ...]
    profile_path: str


@dataclass(frozen=True)
class Domain:
    key: str  # the config file's name
    options: DomainOptions
    install_options: DomainOptions | None
    auto: bool | None


@dataclass(frozen=True)
class XenConfig:
    create_filesystems: bool
    create_domains: bool
    domains: tuple[Domain, ...]


def read(r: Reader) -> XenConfig:
    create_filesystems = r.boolean("create_filesystems", True)
    create_domains = r.boolean("create_domains", False)
    domains = tuple(_domain(key, value, r) for key, value in r.items("domains"))
    r.raw("network")
    if r.has("network"):
        r.warnings.append(f"{r.at('network')}: bridges are set up by the host's own network config under xl; ignored")
    r.finish(ignore=STRUCTURE_KEYS)
    for what, values in (("config files", [d.key for d in domains]), ("names", [d.options.name for d in domains])):
        for value in values:
            if values.count(value) > 1:
                raise ProfileError(r.at("domains"), f"two domains with the same {what[:-1]} {value!r}")
    assert create_filesystems is not None and create_domains is not None
    return XenConfig(create_filesystems, create_domains, domains)


def _domain(key: str, value: object, parent: Reader) -> Domain:
    path = f"{parent.at('domains')}/{key}"
    entry = Reader(value, path, parent.warnings)
    if entry.has("options"):  # the nlist form
        options = _options(entry.child("options", required=True))  # type: ignore[arg-type]
        install = entry.child("install_options")
        auto = entry.boolean("auto")
        entry.finish()
        name = key
        if not NAME.fullmatch(name):
            raise ProfileError(path, f"{name!r} is not a usable domain name")
        return Domain(name, options, _options(install) if install else None, auto)
    options = _options(entry)  # the 2007 list form: the entry is the option set
    return Domain(options.name, options, None, None)


def _options(r: Reader) -> DomainOptions:
    name = r.req_string("name")
    if not NAME.fullmatch(name):
        raise ProfileError(r.at("name"), f"expected a domain name (letters, digits, _ . -), got {name!r}")
    memory = r.integer("memory", required=True, minimum=1, unit="MiB")
    assert memory is not None
    if memory > MAX_MEMORY_MIB:
        raise ProfileError(r.at("memory"), f"{memory} MiB is more than any host has (at most {MAX_MEMORY_MIB})")
    builder = r.string("builder", choices=("linux", "hvm"))
    kind = r.string("type", choices=("pv", "hvm", "pvh")) or ("hvm" if builder == "hvm" else "pv")
    vifs = tuple(safe(v, r.at("vif")) for v in _vifs(r))
    disks = tuple(r.each("disk", _disk))
    bootargs = r.raw("bootargs")
    args = _bootloader_args(bootargs, vifs, r.at("bootargs"))
    if r.has("download"):
        r.raw("download")
        raise ProfileError(
            r.at("download"),
            "ncm-xen does not run commands from a profile; remove 'download' and install what it fetched by a package",
        )
    strings = []
    for key in PASSTHROUGH_STR:
        value = r.string(key)
        if value is not None:
            if key.startswith("on_") and value not in ACTIONS:
                raise ProfileError(r.at(key), f"expected one of {', '.join(ACTIONS)}, got {value!r}")
            if key == "hdtype" and value not in HDTYPES:
                raise ProfileError(r.at(key), f"expected one of {', '.join(HDTYPES)}, got {value!r}")
            strings.append((key, safe(value, r.at(key))))
    integers = [(k, v) for k in PASSTHROUGH_INT if (v := r.integer(k, minimum=1)) is not None]
    booleans = [(k, v) for k in PASSTHROUGH_BOOL if (v := r.boolean(k)) is not None]
    lists = [
        (k, tuple(safe(i, r.at(k)) for i in items)) for k in PASSTHROUGH_LIST if (items := r.strings(k)) is not None
    ]
    r.finish()
    return DomainOptions(
        name, memory, kind, vifs, disks, args, tuple(strings), tuple(integers), tuple(booleans), tuple(lists), r.path
    )


def _vifs(r: Reader) -> list[str]:
    value = r.raw("vif")
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, str):  # the 2007 form: a Python list literal kept as a string
        quoted = re.findall(r"'([^']*)'|\"([^\"]*)\"", value)
        return [a or b for a, b in quoted] if quoted else [value]
    raise ProfileError(r.at("vif"), "expected a list of vif strings")


def _bootloader_args(value: object, vifs: tuple[str, ...], path: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(safe(v, path) for v in value)
    if not isinstance(value, str):
        raise ProfileError(path, "expected a string or a list of strings")
    if re.fullmatch(r"\s*vif\[(\d+)\]\s*", value):  # xm evaluated this Python; xl gets the vif itself
        index = int(re.findall(r"\d+", value)[0])
        if index >= len(vifs):
            raise ProfileError(path, f"{value} names a vif the domain does not have ({len(vifs)} vifs)")
        return (vifs[index],)
    return tuple(safe(v, path) for v in value.split())


def _disk(r: Reader) -> Disk:
    kind = r.req_string("type", choices=DISK_TYPES)
    guest = r.string("guestdevice") or r.string("device")
    if guest is None:
        raise ProfileError(r.at("guestdevice"), "required, missing (the 2007 key 'device' is read too)")
    if not VDEV.fullmatch(guest):
        raise ProfileError(r.at("guestdevice"), f"expected a guest device such as xvda or hda3, got {guest!r}")
    rw = r.string("rw", default="w", choices=("w", "r"))
    path = r.string("path")
    hostdevice, hostvol = r.string("hostdevice"), r.string("hostvol")
    size = r.integer("size", minimum=1, unit="MiB")
    if size is not None and size > MAX_DISK_MIB:
        raise ProfileError(r.at("size"), f"{size} MiB is larger than any disk ncm-xen makes (at most {MAX_DISK_MIB})")
    create = r.boolean("create", False)
    access = r.string("access_method")
    if access not in ACCESS:
        raise ProfileError(r.at("access_method"), f"expected one of {', '.join(str(a) for a in ACCESS if a)}")
    if kind == "file" and (not path or not path.startswith("/") or ".." in path.split("/")):
        raise ProfileError(r.at("path"), f"a file disk needs an absolute path, got {path!r}")
    if kind == "lvm":
        for key, value in (("hostdevice", hostdevice), ("hostvol", hostvol)):
            if not value or not LVM_NAME.fullmatch(value):
                raise ProfileError(r.at(key), f"expected a volume group / volume name, got {value!r}")
    if kind == "phy" and not hostdevice:
        raise ProfileError(r.at("hostdevice"), "a phy disk needs its host device")
    if kind == "phy" and hostdevice and (".." in hostdevice.split("/") or hostdevice.startswith("-")):
        raise ProfileError(r.at("hostdevice"), f"a device path without '..' or a leading '-', got {hostdevice!r}")
    if kind == "lvm" and path is not None and (not path.startswith("/dev/") or ".." in path.split("/")):
        raise ProfileError(r.at("path"), f"the physical volume for vgcreate: a /dev/ path without '..', got {path!r}")
    r.finish()
    disk = Disk(kind, guest, rw == "w", path, hostdevice, hostvol, size, bool(create), ACCESS[access], r.path)
    safe(disk.target, r.path)
    return disk
