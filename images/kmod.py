"""Kernel module dependencies read straight from the modules' `.modinfo` ELF sections.

A kernel package's modules.dep is made by depmod at install time, which we never run: the image builder
reads `depends=` from each module instead, so no kmod is needed on the machine.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from foundation.errors import ImageError


def modinfo(ko: Path) -> dict[str, list[str]]:
    """The key=value pairs of a (64-bit little-endian, uncompressed) module's .modinfo section."""
    data = ko.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ImageError(
            f"{ko}: not a 64-bit ELF module", hint="the kernel package's modules must be uncompressed x86-64 ELF"
        )
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = sections[shstrndx]
    names = data[strtab[4] : strtab[4] + strtab[5]]
    info: dict[str, list[str]] = {}
    for sec in sections:
        name = names[sec[0] : names.index(b"\0", sec[0])]
        if name == b".modinfo":
            for item in data[sec[4] : sec[4] + sec[5]].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
    return info


class Module(TypedDict):
    path: str  # the .ko file, relative to the modules directory
    depends: list[str]  # module names


def dependency_map(modules_dir: Path) -> dict[str, Module]:
    """{module name: {"path": relative .ko path, "depends": [module names]}} for every module."""
    result: dict[str, Module] = {}
    for ko in sorted((modules_dir / "kernel").rglob("*.ko")):
        deps = [d for d in ",".join(modinfo(ko).get("depends", [""])).split(",") if d]
        name = ko.name.removesuffix(".ko").replace("-", "_")
        result[name] = {"path": ko.relative_to(modules_dir).as_posix(), "depends": deps}
    return result


def load_order(deps: Mapping[str, Module], wanted: tuple[str, ...]) -> list[str]:
    """Relative .ko paths to insmod, dependencies first, each once."""
    order: list[str] = []

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key not in deps:
            raise ImageError(
                f"kernel module {name} does not exist in this kernel",
                hint="drop it from the recipe's module list, or pick a kernel that builds it",
            )
        path = str(deps[key]["path"])
        if path in order:
            return
        for dep in deps[key]["depends"]:
            visit(dep)
        order.append(path)

    for name in wanted:
        visit(name)
    return order
