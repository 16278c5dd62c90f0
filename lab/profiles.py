"""The lab's last compile step: a directory of compiled profiles made to fit the images this lab installs.

A site compiles its profiles from templates in which the kernel version is a variable, and recompiles when
Debian moves its kernel on (6.1.0-56 to 6.1.0-57, say: the old packages leave the mirror, so the image
builder can only fetch the new one).  The lab does the same on the compiled JSON: the version a profile
declares at `/system/kernel/version` is replaced, wherever that profile names it (ncm-grub's kernel paths
and titles too), by the release of the kernel the lab's payloads carry.  The lab's SSH key goes into every
kickstart's `sshkey`, so that the harness can log in.  Profiles may come in panc's JSON or XML form; the
lab's copies are JSON (its ncm-ncd and AII read either, by content).  The source directory is never written.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from foundation.errors import PreflightError
from lab.installer_plugin import InstallerPlugin
from lab.topology import profile_paths
from quattor.ncm.components import xen_model
from quattor.profile import Profile, ProfileError, load

log = logging.getLogger("xenlab.profiles")

KERNEL_VERSION = ("system", "kernel", "version")
SSHKEY = ("system", "aii", "osinstall", "options", "sshkey")
NBP = ("system", "aii", "nbp", "options")


def replace_strings(tree: Any, old: str, new: str) -> Any:
    """The tree with `old` replaced by `new` in every string value (keys are names, never versions)."""
    if isinstance(tree, str):
        return tree.replace(old, new)
    if isinstance(tree, list):
        return [replace_strings(v, old, new) for v in tree]
    if isinstance(tree, dict):
        return {k: replace_strings(v, old, new) for k, v in tree.items()}
    return tree


def retarget_kernel(tree: dict[str, Any], release: str) -> dict[str, Any]:
    """The profile with its declared kernel version replaced by `release` everywhere it is named."""
    declared = _get(tree, KERNEL_VERSION)
    if not isinstance(declared, str) or not declared or declared == release:
        return tree
    retargeted: dict[str, Any] = replace_strings(tree, declared, release)
    return retargeted


def compile_for_lab(
    source: Path,
    dest: Path,
    *,
    kernel_release: str,
    ssh_public_key: str | None = None,
    installer: InstallerPlugin | None = None,
) -> Path:
    """Copy every profile of `source` into `dest` as JSON, retargeted at `kernel_release` (the payloads'
    kernel, which the lab's `images` know), if given with `ssh_public_key` as each installable node's
    kickstart key, and with every installable node's AII entry pointed at `installer` (`point_at`).
    Returns `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = profile_paths(source)
    if not sources:
        raise PreflightError(
            f"{source}: no compiled profiles (profile_<node>.json or .xml) to compile for the lab",
            hint="point --profiles at panc's output",
        )
    profiles = {}
    for node, path in sources.items():
        try:
            profiles[node] = load(path)
        except ProfileError as exc:
            raise PreflightError(str(exc), hint=f"fix {path}") from None
    pv_guests = xen_guests(profiles.values(), ("pv", "pvh"))
    hvm_guests = xen_guests(profiles.values(), ("hvm",))
    for node, path in sources.items():
        tree = profiles[node].tree
        declared = _get(tree, KERNEL_VERSION)
        out = retarget_kernel(tree, kernel_release)
        if out is not tree:
            log.info("%s: kernel %s -> %s (the kernel of the lab's payloads)", path.name, declared, kernel_release)
        if ssh_public_key is not None and isinstance(_get(out, SSHKEY[:-1]), dict):
            _get(out, SSHKEY[:-1])[SSHKEY[-1]] = ssh_public_key
        if installer is not None and point_at(out, installer, xen_pv=node in pv_guests):
            log.info("%s: installs with %s (%s dialect)", path.name, installer.name, installer.dialect)
        if node in hvm_guests and quiet_kernel(out):
            log.info("%s: an HVM guest: its kernels boot %r (its serial console is emulated)", path.name, QUIET)
        for name in prepare_hvm_guests(out, hvm_guests):
            log.info(
                "%s: HVM guest %s's serial line logged to %s, its disks emulated as %s",
                path.name,
                name,
                HVM_SERIAL_LOG.format(name=name),
                HVM_HDTYPE.upper(),
            )
        (dest / f"profile_{node}.json").write_text(json.dumps(out, indent=1))
    return dest


def xen_guests(profiles: Iterable[Profile], types: tuple[str, ...]) -> set[str]:
    """The domains some Xen host's profile declares of one of `types` (ncm-xen's own reading: `pv`, `pvh` or
    `hvm`).  A PV guest's kernel is loaded by Xen's domain builder from what its bootloader hands it, which need
    not be a bzImage (see images.bzimage); an HVM guest's consoles are emulated (`quiet_kernel`)."""
    names: set[str] = set()
    for profile in profiles:
        if profile.get("/software/components/xen/domains") is None:
            continue
        try:
            domains = xen_model.read(profile.reader("/software/components/xen")).domains
        except ProfileError as exc:
            raise PreflightError(f"{profile.source}: {exc}", hint="ncm-xen reads this on the host") from None
        names.update(d.options.name for d in domains if d.options.type in types)
    return names


# An HVM guest's kernels (its installer's and the installed system's: AII's `append` is both) boot `quiet`.
# Its serial console is a 16550 that qemu-dm emulates in dom0: every byte the kernel or systemd prints there
# is a trip through Xen to qemu-dm, under TCG, about 2.9 ms (Dec 5).  The seed's HVM guest printed 40 KB from
# `xl create` to its login prompt, at 166-204 s; with `quiet` 2.2 KB, at 128 s (Dec 7, README).  Warnings,
# errors, panics and the login prompt still print.
QUIET = "quiet"


def quiet_kernel(tree: Any) -> bool:
    """Add QUIET to a node's AII kernel arguments (`/system/aii/nbp/options/append`) unless they have it;
    False when they do, or the node has no AII entry."""
    nbp = _get(tree, NBP)
    if not isinstance(nbp, dict):
        return False
    append = str(nbp.get("append", "")).split()
    if QUIET in append:
        return False
    nbp["append"] = " ".join([*append, QUIET])
    return True


def point_at(tree: Any, plugin: InstallerPlugin, *, xen_pv: bool = False) -> bool:
    """Point a node's AII entry (`/system/aii/nbp/options`) at the installer plug-in as the install server
    serves it (`plugin.served_dir`, the same server and scheme, or the same relative TFTP form, as the
    profile's own kernel), in its dialect, with its updates image, stage2 and own kernel arguments
    (`installer_append`, on the install entry only); a Xen PV guest's (`xen_pv`) at the plug-in's PV kernel
    if it has one.  False for a node AII does not install."""
    nbp = _get(tree, NBP)
    kslocation = _get(tree, ("system", "aii", "osinstall", "options", "kslocation"))
    if not isinstance(nbp, dict) or not isinstance(kslocation, str):
        return False
    server = urllib.parse.urlsplit(kslocation)

    def served(name: str, like: str = "") -> str:
        path = f"{plugin.served_dir}/{Path(name).name}"
        form = urllib.parse.urlsplit(like) if like else server
        return f"{form.scheme}://{form.netloc}/{path}" if form.scheme else path

    for key, name in (("kernel", plugin.kernel_for(xen_pv=xen_pv)), ("initrd", plugin.initrd)):
        nbp[key] = served(name, str(nbp.get(key, "")) or kslocation)
    nbp["dialect"] = plugin.dialect
    if plugin.append:  # its boot's, not the installed system's (AII's `append` is both: the kickstart's too)
        nbp["installer_append"] = " ".join(plugin.append)
    else:
        nbp.pop("installer_append", None)
    for key in ("updates", "stage2"):
        value = getattr(plugin, key)
        if value:
            nbp[key] = value if "://" in value else served(value)
        else:
            nbp.pop(key, None)
    return True


# Where dom0 keeps an HVM guest's serial line from its first byte (QEMU's `-serial file:`); the run's Xen
# state (lab.xen) carries /var/log/xen into the artifacts.  A pty, the sites' usual choice, is not logged.
# QEMU reopens the file truncated when the rebooted guest gets a new device model: the installer's lines are
# lost at its reboot.  Tried Dec 6 and reverted: `-chardev file,…,append=on` and `-serial chardev:…` through
# `device_model_args_hvm` instead of `serial` kept GRUB's output across the reboot, but the installed
# kernel wrote nothing to it and the domain powered off (with `serial = "file:…"` the same disk booted).
HVM_SERIAL_LOG = "/var/log/xen/console/hvm-serial-{name}.log"


# How the lab's HVM guests' disks are emulated: AHCI, where the sites' 2007 Xen had only IDE.  The guest's
# GRUB reads its kernel and initrd through SeaBIOS's disk calls, and on the emulated IDE controller every
# sector is programmed I/O, each access a round trip through Xen to qemu-dm in dom0, under TCG: GRUB took
# about 135 s per boot for the 8 MiB kernel and 6.5 MiB initrd; on AHCI (DMA, a few register accesses per
# 64 KiB) 26 s (Dec 6, README).  The installed system is the same either way (Linux unplugs the emulated disk
# and uses its PV disk); a profile that sets `hdtype` keeps its own.
HVM_HDTYPE = "ahci"


def prepare_hvm_guests(tree: Any, hvm: Collection[str]) -> list[str]:
    """In a Xen host's profile, point the `serial` of each domain named in `hvm` (the HVM guests, as ncm-xen
    reads them: `xen_guests`) at HVM_SERIAL_LOG and give it HVM_HDTYPE unless it sets one; returns their names."""
    changed = []
    for name, raw in _domain_options(_get(tree, ("software", "components", "xen", "domains"))):
        if name in hvm:
            raw["serial"] = "file:" + HVM_SERIAL_LOG.format(name=name)
            raw.setdefault("hdtype", HVM_HDTYPE)
            changed.append(name)
    return changed


def _domain_options(domains: Any) -> list[tuple[str, dict[str, Any]]]:
    """Each domain's name and its options as ncm-xen reads them: the nlist form's `<name>/options`, or an
    entry of the 2007 list (or an nlist entry written that way) with its own `name`."""
    entries = domains.items() if isinstance(domains, dict) else enumerate(domains) if isinstance(domains, list) else []
    found = []
    for key, entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("options"), dict) and isinstance(key, str):
            found.append((key, entry["options"]))
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            found.append((entry["name"], entry))
    return found


def keep_domains(path: Path, names: Iterable[str]) -> None:
    """The Xen host's profile at `path` with only the ncm-xen domains named (either form of `domains`), for a
    run that starts only those guests."""
    profile = load(path)
    wanted = set(names)
    domains = xen_model.read(profile.reader("/software/components/xen")).domains  # ncm-xen's own reading
    keep = [d.options.name in wanted for d in domains]
    xen = profile.tree["software"]["components"]["xen"]
    if isinstance(xen["domains"], dict):  # the nlist form, keyed by config name
        xen["domains"] = {d.key: xen["domains"][d.key] for d, k in zip(domains, keep, strict=True) if k}
    else:  # the 2007 list form, in profile order
        xen["domains"] = [raw for raw, k in zip(xen["domains"], keep, strict=True) if k]
    path.write_text(json.dumps(profile.tree, indent=1))


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree
