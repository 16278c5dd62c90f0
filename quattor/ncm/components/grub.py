"""ncm-grub: the GRUB 2 menu of a Debian system, from `/software/components/grub` and `/system/kernel/version`.

The profile's kernels become menu entries: a kernel with `multiboot` becomes a Xen entry (`multiboot2` for
the hypervisor with its `mbargs`, `module2` for the dom0 kernel with its args, `module2 --nounzip` for the
initrd).  The default entry is the profile's default kernel (`<prefix>/vmlinuz-<version>`), and the Xen
entry whose dom0 kernel that is, when there is one (the fallback the 2007 component had).

Without `fullcontrol` the entries live in a managed block at the end of `/boot/grub/grub.cfg`, so whatever
Debian's update-grub wrote stays (running ncm-grub after update-grub puts the block back); with it,
ncm-grub writes the whole file.  Each entry finds its partition with `search --file`, so the same paths
work whether /boot is separate or not.  A kernel, hypervisor or initrd missing on disk is an error naming
the path.  Idempotent: an unchanged menu is not rewritten.

Arguments use ncm-grub's syntax everywhere (`kernelargs`, `mbargs`, `args`): `tok` adds (replacing a
token with the same key), `-tok` removes it; a removal never reaches a command line.  `args`, the default
kernel's arguments, is applied on top of the `kernelargs` of each plain (non-Xen) entry that boots the
default kernel, as 2007's `grubby --update-kernel=<default> --args=… --remove-args=…` did (grubby's
"kernel" of a Xen entry is the hypervisor, so that command never touched dom0's arguments either).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from quattor.ncm.component import ComponentError, Context
from quattor.profile import STRUCTURE_KEYS, Profile, ProfileError, Reader

GRUB_CFG = "/boot/grub/grub.cfg"
BEGIN, END = "### BEGIN ncm-grub (managed by Quattor; edits are overwritten) ###", "### END ncm-grub ###"
SAFE_ARG = re.compile(r"[A-Za-z0-9_.,:=/+@%-]+")
SAFE_TITLE = re.compile(r"[^'\\\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Kernel:
    kernelpath: str
    kernelargs: tuple[str, ...]
    multiboot: str | None
    mbargs: tuple[str, ...]
    initrd: str | None
    title: str | None
    profile_path: str


@dataclass(frozen=True)
class GrubConfig:
    prefix: str
    args: tuple[str, ...]
    fullcontrol: bool
    kernels: tuple[Kernel, ...]
    version: str
    serial: str | None  # the `serial --unit… --speed…` line when the profile has a serial console


def _tokens(value: str | None, path: str) -> tuple[str, ...]:
    tokens = tuple((value or "").split())
    for t in tokens:
        if not SAFE_ARG.fullmatch(t):
            raise ProfileError(path, f"kernel argument {t!r} has characters GRUB would interpret")
    return tokens


def read(profile: Profile) -> GrubConfig:
    r = profile.reader("/software/components/grub")
    prefix = (r.string("prefix") or "/boot").rstrip("/")
    if not re.fullmatch(r"(/[A-Za-z0-9._+-]+)+", prefix) or ".." in prefix.split("/"):
        raise ProfileError(r.at("prefix"), f"expected an absolute directory without '..', got {prefix!r}")
    args = _tokens(r.string("args"), r.at("args"))
    fullcontrol = bool(r.boolean("fullcontrol", False))
    kernels = tuple(r.each("kernels", _kernel))
    r.finish(ignore=STRUCTURE_KEYS)
    version = profile.get("/system/kernel/version")
    if not isinstance(version, str) or not re.fullmatch(r"[A-Za-z0-9._+-]+", version):
        raise ProfileError("/system/kernel/version", f"expected the default kernel's version, got {version!r}")
    serial = None
    if profile.get("/hardware/console/serial") is not None:
        console = profile.reader("/hardware/console/serial")
        unit = console.integer("unit", minimum=0)
        speed = console.integer("speed", minimum=1)
        serial = f"serial --unit={0 if unit is None else unit} --speed={speed or 115200}"
    return GrubConfig(prefix, args, fullcontrol, kernels, version, serial)


def _kernel(r: Reader) -> Kernel:
    kernelpath = r.req_string("kernelpath")
    title = r.string("title")
    if title is not None and not SAFE_TITLE.fullmatch(title):
        raise ProfileError(r.at("title"), "a title cannot hold quotes, backslashes or control characters")
    kernel = Kernel(
        kernelpath,
        _tokens(r.string("kernelargs"), r.at("kernelargs")),
        r.string("multiboot"),
        _tokens(r.string("mbargs"), r.at("mbargs")),
        r.string("initrd"),
        title,
        r.path,
    )
    for key in ("kernelpath", "multiboot", "initrd"):
        value = getattr(kernel, key)
        if value is not None and (not re.fullmatch(r"/?[A-Za-z0-9._+/-]+", value) or ".." in value.split("/")):
            raise ProfileError(r.at(key), f"expected a path below the prefix (no '..'), got {value!r}")
    r.finish()
    return kernel


def apply_args(base: tuple[str, ...], changes: tuple[str, ...]) -> tuple[str, ...]:
    """ncm-grub's argument syntax: `tok` adds (replacing the same key), `-tok` removes."""
    result = list(base)
    for change in changes:
        if change.startswith("-"):
            key = change[1:].split("=", 1)[0]
            result = [t for t in result if t.split("=", 1)[0] != key]
        else:
            key = change.split("=", 1)[0]
            result = [t for t in result if t.split("=", 1)[0] != key] + [change]
    return tuple(result)


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    body: tuple[str, ...]
    kernel: str  # the Linux kernel it boots (for choosing the default)


def entries(config: GrubConfig, exists: Callable[[str], bool]) -> list[Entry]:
    p = config.prefix
    found: list[Entry] = []

    def need(path: str, what: str, where: str) -> str:
        if not exists(path):
            raise ComponentError(f"{where}: the {what} {path} does not exist")
        return path

    default_kernel = f"{p}/vmlinuz-{config.version}"
    for index, k in enumerate(config.kernels):
        kernel = need(f"{p}/{k.kernelpath.lstrip('/')}", "kernel", k.profile_path)
        initrd = need(f"{p}/{k.initrd.lstrip('/')}", "initrd", k.profile_path) if k.initrd else None
        own = apply_args((), k.kernelargs)
        args = " ".join(own if k.multiboot or kernel != default_kernel else apply_args(own, config.args))
        if k.multiboot:
            xen = need(f"{p}/{k.multiboot.lstrip('/')}", "hypervisor", k.profile_path)
            body = [
                "insmod part_msdos",
                "insmod ext2",
                "insmod multiboot2",
                "insmod gzio",
                f"search --no-floppy --file --set=root {xen}",
                f"multiboot2 {xen} placeholder {' '.join(apply_args((), k.mbargs))}".rstrip(),
                f"module2 {kernel} placeholder {args}".rstrip(),
            ]
            if initrd:
                body.append(f"module2 --nounzip {initrd}")
            title = k.title or f"Xen {k.multiboot.lstrip('/')} / Linux {k.kernelpath.lstrip('/')}"
            found.append(Entry(f"ncm-grub-xen-{index}", title, tuple(body), kernel))
        else:
            body = [
                "insmod part_msdos",
                "insmod ext2",
                "insmod gzio",
                f"search --no-floppy --file --set=root {kernel}",
                f"linux {kernel} {args}".rstrip(),
            ]
            if initrd:
                body.append(f"initrd {initrd}")
            found.append(
                Entry(f"ncm-grub-{index}", k.title or f"Linux {k.kernelpath.lstrip('/')}", tuple(body), kernel)
            )
    if not any(e.kernel == default_kernel and not e.id.startswith("ncm-grub-xen") for e in found):
        kernel = need(default_kernel, "default kernel", "/system/kernel/version")
        initrd = f"{p}/initrd.img-{config.version}"
        body = [
            "insmod part_msdos",
            "insmod ext2",
            "insmod gzio",
            f"search --no-floppy --file --set=root {kernel}",
            f"linux {kernel} {' '.join(apply_args((), config.args))}".rstrip(),
        ]
        if exists(initrd):
            body.append(f"initrd {initrd}")
        found.append(Entry("ncm-grub-default", f"Debian GNU/Linux, Linux {config.version}", tuple(body), kernel))
    return found


def choose_default(found: list[Entry], default_kernel: str) -> Entry:
    """The Xen entry whose dom0 kernel is the default kernel wins; else the default kernel's own entry."""
    xen = [e for e in found if e.id.startswith("ncm-grub-xen") and e.kernel == default_kernel]
    plain = [e for e in found if not e.id.startswith("ncm-grub-xen") and e.kernel == default_kernel]
    return (xen or plain)[0]


def render_block(config: GrubConfig, found: list[Entry]) -> str:
    default = choose_default(found, f"{config.prefix}/vmlinuz-{config.version}")
    lines = [BEGIN]
    for e in found:
        lines.append(f"menuentry '{e.title}' --id '{e.id}' {{")
        lines += [f"\t{line}" for line in e.body]
        lines.append("}")
    lines += [f"set default='{default.id}'", END]
    return "\n".join(lines) + "\n"


def render_full(config: GrubConfig, block: str) -> str:
    head = ["# Written by ncm-grub (fullcontrol). Local edits are overwritten."]
    if config.serial:
        head += [config.serial, "terminal_input serial", "terminal_output serial"]
    head += ["set timeout=3"]
    return "\n".join(head) + "\n" + block


def merge(existing: str, block: str) -> str:
    """Replace the managed block in an existing grub.cfg, or append it."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(existing):
        return pattern.sub(lambda _: block, existing)
    return existing + ("" if existing.endswith("\n") or not existing else "\n") + block


class GrubComponent:
    name = "grub"

    def configure(self, profile: Profile, ctx: Context) -> None:
        config = read(profile)
        found = entries(config, lambda path: ctx.path(path).is_file())
        block = render_block(config, found)
        target = ctx.path(GRUB_CFG)
        if config.fullcontrol:
            content = render_full(config, block)
        else:
            if not target.exists():
                raise ComponentError(f"{GRUB_CFG} does not exist: install GRUB first, or set fullcontrol")
            content = merge(target.read_text(), block)
        ctx.write_file(GRUB_CFG, content, mode=0o444)
