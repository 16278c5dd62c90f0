"""An installer the lab netboots, described by a manifest: the lab's own, or a patched Anaconda a user has.

A plug-in is a directory with `installer.toml`:

    name = "xenlab"                  # a short name: the install server serves it under boot/<name>/
    kernel = "vmlinuz"               # paths in the directory (or, for the lab's own, an image of the catalog)
    initrd = "initrd.img"
    kernel_xen = "vmlinuz-xen"       # optional: the kernel a Xen PV guest boots through pypxeboot (RHEL 5's
                                     # images/xen/vmlinuz); without it PV guests boot `kernel` too
    image = "installer"              # optional: the lab's image (images.catalog) that holds kernel and initrd
    stage2 = ""                      # optional: install.img / squashfs, or an install tree URL (inst.stage2)
    updates = ""                     # optional: an updates.img, applied over the installer before it starts
    dialect = "anaconda"             # its boot arguments: "anaconda" (inst.ks=, ip=, inst.updates=, inst.stage2=)
                                     # or "el5" (ks=, ksdevice=, updates=, method=)
    append = ["quiet"]               # optional: its own usual arguments (an EL pxeboot menu's `quiet`), after
                                     # the install ones and before the node's console and profile's own
    [console]
    progress = ['^XENLAB-INSTALL (\\S+)']            # regular expressions on its console
    failure = ['^XENLAB-INSTALL-FAILED (.*)']
    unsupported = ['unsupported kickstart command\\(s\\): (.+)']   # why it stops on a command it lacks
    [end]
    ack = "kickstart-post"           # how it says it is done: the kickstart's %post calls AII's ack (as AII writes)

The manifest is read whole and checked: a missing file, an unknown dialect or key, a pattern that does not
compile is an error naming the manifest and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.errors import PreflightError
from foundation.paths import REPO
from quattor.aii.dialect import DIALECTS

MANIFEST = "installer.toml"
DEFAULT = REPO / "installers" / "xenlab"
ENDS = ("kickstart-post",)
KEYS = {"name", "kernel", "initrd", "kernel_xen", "image", "stage2", "updates", "dialect", "append", "console", "end"}
BOOT_ARGUMENT = re.compile(r"[^\s'\"\\]+")  # one kernel argument: no blanks, quotes or backslashes
# What Anaconda prints when it stops on an error (its exception handler, its dracut stage, Python itself).
ANACONDA_FAILURES = (
    r"The following error occurred",
    r"An unknown error has occurred",
    r"Traceback \(most recent call last\)",
    r"anaconda .* exception report",
    r"dracut-initqueue\[\d+\]: Warning: Could not boot",
)


@dataclass(frozen=True)
class InstallerPlugin:
    directory: Path
    name: str
    kernel: str
    initrd: str
    dialect: str
    image: str | None = None  # the lab's own image of the catalog, built instead of read from `directory`
    kernel_xen: str | None = None  # a Xen PV guest's kernel (an ELF, gzipped or not), if not `kernel`
    stage2: str | None = None
    updates: str | None = None
    append: tuple[str, ...] = ()  # its own kernel arguments, on every entry that boots it
    progress: tuple[str, ...] = ()
    failure: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()  # its reason for stopping on a kickstart command it lacks (group 1: which)
    end: str = "kickstart-post"

    def file(self, value: str) -> Path:
        return (self.directory / value).resolve()

    def kernel_for(self, *, xen_pv: bool) -> str:
        """The kernel a machine boots: a Xen PV guest its own when the plug-in has one."""
        return (self.kernel_xen or self.kernel) if xen_pv else self.kernel

    @property
    def served_dir(self) -> str:
        """Where the install server serves its files (HTTP and TFTP)."""
        return f"boot/{self.name}"


def load(directory: Path) -> InstallerPlugin:
    """Read and check `directory/installer.toml`."""
    manifest = directory / MANIFEST
    try:
        data: dict[str, Any] = tomllib.loads(manifest.read_text())
    except OSError as exc:
        raise PreflightError(
            f"{manifest}: cannot read it ({exc.strerror})",
            hint="an installer plug-in is a directory with installer.toml",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PreflightError(f"{manifest}: not TOML: {exc}") from None

    def fail(key: str, why: str) -> PreflightError:
        return PreflightError(f"{manifest}: {key}: {why}")

    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    name = _string(data, "name", fail, required=True)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,31}", name):
        raise fail("name", f"{name!r} is not a short lower-case name (it becomes a directory on the server)")
    dialect = _string(data, "dialect", fail, required=True)
    if dialect not in DIALECTS:
        raise fail("dialect", f"{dialect!r}: one of {', '.join(DIALECTS)}")
    console = data.get("console", {})
    end = data.get("end", {})
    if not isinstance(console, dict) or not isinstance(end, dict):
        raise fail("console" if not isinstance(console, dict) else "end", "expected a table")
    ack = end.get("ack", "kickstart-post")
    if ack not in ENDS:
        raise fail("end.ack", f"{ack!r}: one of {', '.join(ENDS)}")
    plugin = InstallerPlugin(
        directory=directory.resolve(),
        name=name,
        kernel=_string(data, "kernel", fail, required=True),
        initrd=_string(data, "initrd", fail, required=True),
        kernel_xen=_string(data, "kernel_xen", fail) or None,
        dialect=dialect,
        image=_string(data, "image", fail) or None,
        stage2=_string(data, "stage2", fail) or None,
        updates=_string(data, "updates", fail) or None,
        append=_arguments(data, fail),
        progress=_patterns(console, "progress", fail),
        failure=_patterns(console, "failure", fail) or (ANACONDA_FAILURES if dialect == "anaconda" else ()),
        unsupported=_patterns(console, "unsupported", fail)
        or ((r"Unknown command: (\S+)",) if dialect == "anaconda" else ()),
        end=ack,
    )
    if plugin.image is None:
        for key in ("kernel", "initrd", "kernel_xen", "updates"):
            value = getattr(plugin, key)
            if value and "://" not in value and not plugin.file(value).is_file():
                raise fail(key, f"{plugin.file(value)} does not exist")
    return plugin


def _string(data: dict[str, Any], key: str, fail: Any, *, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise fail(key, "expected a string" if not isinstance(value, str) else "missing")
    return value


def _arguments(data: dict[str, Any], fail: Any) -> tuple[str, ...]:
    value = data.get("append", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and BOOT_ARGUMENT.fullmatch(v) for v in value):
        raise fail("append", "expected a list of kernel arguments, each without blanks, quotes or backslashes")
    return tuple(value)


def _patterns(table: dict[str, Any], key: str, fail: Any) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"console.{key}", "expected a list of regular expressions")
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise fail(f"console.{key}", f"{pattern!r} does not compile: {exc}") from None
    return tuple(value)
