"""ncm-xen: Xen guests from the profile: their disks, their xl configs, their start.

* `/etc/xen/<name>.cfg` in xl syntax (xm's Python configs are gone with Xen 4.5): every value is a quoted
  literal checked to be unable to end its quotes, so nothing from a profile is ever executed.  The file
  is owned by the component and written whole; the previous version is kept as `<name>.cfg.old`.
  `install_options` go to `/etc/xen/<name>.start`, used for the first start of a domain whose disk was
  created in the same run.
* Disks: a missing file disk is created **sparse** (`truncate`, no blocks written) in a new directory if
  needed, whatever `create_filesystems` says (as the 2007 component did: the flag was only logged, and
  the QWG templates default it to false); a missing logical volume is created with `lvcreate` when the
  disk says `create` (how the 2007 component decided) or `create_filesystems` is true; a missing volume
  group only when the disk says `create` and names its physical volume in `path`.  An existing file or
  volume is never resized, overwritten or removed: a size that differs is a warning.
* One domain's problem (a disk that cannot be made, a failed `xl create`) does not stop the others: every
  domain is configured, each failure is reported with its profile path, and the component fails at the
  end naming the domains that did not make it.
* `auto` true links `/etc/xen/auto/<name>.cfg`, false removes the link, absent leaves it.
* `create_domains`: `xl create` for each domain not running; running ones are left alone.  When xl or
  Xen is not up yet (first boot, before xen.service), configs and disks are still written and the
  component says the domains will start later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components import xen_model
from quattor.ncm.components.xen_model import Disk, Domain, DomainOptions
from quattor.profile import Profile

XEN_DIR = "/etc/xen"
HEADER = "# Written by ncm-xen from the Quattor profile ({path}). Local edits are overwritten.\n"


def render(options: DomainOptions) -> str:
    lines = [
        HEADER.format(path=options.profile_path),
        f'name = "{options.name}"',
        f'type = "{options.type}"',
        f"memory = {options.memory}",
    ]
    lines += [f'{key} = "{value}"' for key, value in options.strings]
    if options.bootloader_args is not None:
        lines.append(f"bootloader_args = {_list(options.bootloader_args)}")
    lines += [f"{key} = {value}" for key, value in options.integers]
    lines += [f"{key} = {int(value)}" for key, value in options.booleans]
    lines += [f"{key} = {_list(values)}" for key, values in options.lists]
    if options.vifs:
        lines.append(f"vif = {_list(options.vifs)}")
    if options.disks:
        lines.append(f"disk = {_list(d.xl() for d in options.disks)}")
    return "\n".join(lines) + "\n"


def _list(items: Iterable[str]) -> str:
    return "[ " + ", ".join(f'"{i}"' for i in items) + " ]"


class XenComponent:
    name = "xen"

    def configure(self, profile: Profile, ctx: Context) -> None:
        config = xen_model.read(profile.reader("/software/components/xen"))
        fresh: set[str] = set()
        failed: dict[str, str] = {}  # domain -> why, in profile order
        for domain in config.domains:
            for disk in _all_disks(domain):
                try:
                    if self.ensure_disk(disk, ctx, allowed=config.create_filesystems):
                        fresh.add(domain.key)
                except ComponentError as exc:
                    ctx.error(f"domain {domain.key}: {exc}")
                    failed.setdefault(domain.key, str(exc))
            # Its config is written even when a disk is missing: a config starts nothing by itself.
            ctx.write_file(f"{XEN_DIR}/{domain.key}.cfg", render(domain.options))
            if domain.install_options is not None:
                ctx.write_file(f"{XEN_DIR}/{domain.key}.start", render(domain.install_options))
            self.auto_link(domain, ctx)
        if config.create_domains:
            startable = [d for d in config.domains if d.key not in failed]
            failed.update(self.start_domains(startable, fresh, ctx))
        if failed:
            names = ", ".join(sorted(failed, key=[d.key for d in config.domains].index))
            raise ComponentError(
                f"{len(failed)} of {len(config.domains)} domains failed ({names}); see the errors above"
            )

    # --- disks ---------------------------------------------------------------------------------------------
    def ensure_disk(self, disk: Disk, ctx: Context, *, allowed: bool) -> bool:
        """Create the disk if it is missing; returns whether it was created."""
        if disk.type == "file":
            return self._file_disk(disk, ctx, allowed)
        if disk.type == "lvm":
            return self._lvm_disk(disk, ctx, allowed)
        if not ctx.path(disk.target).exists():
            ctx.warn(f"{disk.profile_path}: phy device {disk.target} does not exist")
        return False

    def _file_disk(self, disk: Disk, ctx: Context, allowed: bool) -> bool:
        assert disk.path
        target = ctx.path(disk.path)
        actual = target.stat().st_size // (1024 * 1024) if target.exists() else None
        if actual is None and not allowed:
            ctx.info(f"{disk.path} is missing: created although create_filesystems is false (as ncm-xen always did)")
        if not self._must_create(disk, disk.path, actual, ctx, True):
            return False
        if ctx.change(f"create sparse file disk {disk.path} ({disk.size_mib} MiB)"):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:  # only a dangling symlink is "missing" yet exists
                raise ComponentError(
                    f"{disk.path} is a symlink to nothing ({os.readlink(target)}); remove it or point it at the disk"
                ) from None
            try:
                os.ftruncate(fd, (disk.size_mib or 0) * 1024 * 1024)
            except OSError as exc:
                os.unlink(target)  # a 0-byte disk would pass for an existing one at the next run
                raise ComponentError(f"cannot make {disk.path} ({disk.size_mib} MiB): {exc.strerror}") from None
            finally:
                os.close(fd)
        return True

    def _lvm_disk(self, disk: Disk, ctx: Context, allowed: bool) -> bool:
        vg, lv = disk.hostdevice, disk.hostvol
        assert vg and lv
        if ctx.run(["vgs", "--noheadings", "-o", "vg_name", vg], changes=False, check=False).returncode != 0:
            if not (disk.create and disk.path):
                raise ComponentError(
                    f"volume group {vg} does not exist; to have ncm-xen make it, set create and "
                    f"path (its physical volume) at {disk.profile_path}"
                )
            # No --yes: LVM asks before it wipes a signature it finds (a filesystem someone still needs), and with
            # stdin closed that question is a refusal, which is the answer wanted.
            ctx.run(["vgcreate", vg, disk.path], changes=True)
        size = ctx.run(
            ["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", f"{vg}/{lv}"],
            changes=False,
            check=False,
        )
        actual = int(float(size.stdout.strip())) if size.returncode == 0 and size.stdout.strip() else None
        if not self._must_create(disk, f"{vg}/{lv}", actual, ctx, allowed or disk.create):
            return False
        ctx.run(["lvcreate", "--yes", "--wipesignatures", "y", "-L", f"{disk.size_mib}M", "-n", lv, vg], changes=True)
        return True

    @staticmethod
    def _must_create(disk: Disk, what: str, actual_mib: int | None, ctx: Context, allowed: bool) -> bool:
        """The one policy for every kind of disk: an existing one is left as it is, whatever its size."""
        if actual_mib is not None:
            if disk.size_mib and actual_mib != disk.size_mib:
                ctx.warn(
                    f"{what} has {actual_mib} MiB, the profile says {disk.size_mib}: existing disks are never resized"
                )
            return False
        if not allowed:
            ctx.warn(f"{what} is missing and create_filesystems is false: not created")
            return False
        if not disk.size_mib:
            raise ComponentError(f"{disk.profile_path}/size: needed to create {what}")
        return True

    # --- auto-start and running ----------------------------------------------------------------------------
    def auto_link(self, domain: Domain, ctx: Context) -> None:
        if domain.auto is None:
            return
        link = ctx.path(f"{XEN_DIR}/auto/{domain.key}.cfg")
        target = f"{XEN_DIR}/{domain.key}.cfg"
        if domain.auto and not (link.is_symlink() and os.readlink(link) == target):
            if ctx.change(f"link {XEN_DIR}/auto/{domain.key}.cfg (auto-start)"):
                link.parent.mkdir(parents=True, exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(target)
        elif not domain.auto and link.is_symlink() and ctx.change(f"remove {XEN_DIR}/auto/{domain.key}.cfg"):
            link.unlink()

    def start_domains(self, domains: Iterable[Domain], fresh: set[str], ctx: Context) -> dict[str, str]:
        """`xl create` each domain that is not running; returns the domains that failed to start, and why."""
        failed: dict[str, str] = {}
        info = ctx.run(["xl", "info"], changes=False, check=False)
        if info.returncode != 0:
            why = "xl is not installed" if info.returncode == 127 else "Xen is not running yet (xl info failed)"
            ctx.info(f"{why}: configs and disks are in place, the domains will start when Xen is up")
            return failed
        for domain in domains:
            if ctx.run(["xl", "domid", domain.options.name], changes=False, check=False).returncode == 0:
                ctx.info(f"domain {domain.options.name} is running; left alone")
                continue
            use_install = domain.install_options is not None and domain.key in fresh
            config = f"{XEN_DIR}/{domain.key}.{'start' if use_install else 'cfg'}"
            try:
                ctx.run(["xl", "create", str(ctx.path(config))], changes=True, timeout=300)
            except ComponentError as exc:
                why = str(exc) + bootloader_said(str(exc), ctx)
                ctx.error(f"domain {domain.key}: {why}")
                failed[domain.key] = why
        return failed


BOOTLOADER_LOG = re.compile(r"bootloader failed - consult logfile (/\S+)")


def bootloader_said(failure: str, ctx: Context) -> str:
    """When libxl says the bootloader failed, the bootloader's own last word, from the log libxl names (the
    reason is there, not in xl's message: pypxeboot's "no config on …", pygrub's "no kernel")."""
    found = BOOTLOADER_LOG.search(failure)
    if found is None:
        return ""
    try:
        with ctx.path(found.group(1)).open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f"; the bootloader said: {lines[-1][:300]}" if lines else ""


def _all_disks(domain: Domain) -> list[Disk]:
    disks = list(domain.options.disks)
    if domain.install_options:
        disks += [d for d in domain.install_options.disks if d.target not in {x.target for x in disks}]
    return disks
