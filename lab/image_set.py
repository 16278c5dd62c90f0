"""Every image one lab uses, built (or found in the cache) in one place, before anything of the lab starts.

The lab asks once for what its spec names: the install server's root filesystem and boot files, each
node's installer, the payloads it serves, and the small kernel and initrd that probe the accelerator.
Nothing else of the lab builds an image; the install server is given every file it serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import PreflightError
from images import catalog
from images.recipes import dom0, server_rootfs, xen_host_disk

PROBE = "dummy-installer"  # the smallest kernel and initrd that prints a marker: the accelerator probe boots it


@dataclass(frozen=True)
class ImageSet:
    server_rootfs: Path  # the install server container's root
    bootfiles: Path  # pxelinux.0 and ldlinux.c32
    installers: Mapping[str, Path]  # installer image name -> its vmlinuz and initrd.img
    payloads: Mapping[str, Path]  # file name served under payload/ -> the file
    probe: Path  # vmlinuz and initrd.img for the accelerator probe
    kernel_release: str | None  # the kernel the payloads carry (ncm-grub must find it); None without payloads

    def installer(self, name: str) -> Path:
        try:
            return self.installers[name]
        except KeyError:
            raise PreflightError(
                f"the lab has no installer image {name!r}",
                hint=f"give a node installer={name!r} in the lab's spec (it has {', '.join(sorted(self.installers))})",
            ) from None

    def payload_kernel_release(self) -> str:
        if self.kernel_release is None:
            raise PreflightError("this lab serves no payload, so it has no payload kernel", hint="add the payloads")
        return self.kernel_release


def build(installers: Iterable[str], payloads: Iterable[str]) -> ImageSet:
    """Build what a lab needs: `installers` and `payloads` are image names of the catalog."""
    installers, payloads = tuple(installers), tuple(payloads)  # read twice below
    for name in (*installers, *payloads):
        catalog.check_name(name)
    # The probe's image is an installer too (it netboots and acks): always there, since the probe needs it.
    built_installers = {name: catalog.build(name) for name in dict.fromkeys((*installers, PROBE))}
    served = {}
    for name in dict.fromkeys(payloads):
        file_name = catalog.PAYLOAD_FILES.get(name)
        if file_name is None:
            raise PreflightError(
                f"{name!r} is not a payload image", hint=f"payloads: {', '.join(catalog.PAYLOAD_FILES)}"
            )
        served[file_name] = catalog.build(name) / file_name
    return ImageSet(
        server_rootfs=server_rootfs.rootfs(catalog.build("server-rootfs")),
        bootfiles=catalog.build("bootfiles"),
        installers=built_installers,
        payloads=served,
        probe=built_installers[PROBE],
        kernel_release=dom0_kernel_release() if served else None,
    )


def dom0_kernel_release() -> str:
    """The release of the kernel the lab's payloads carry (the dom0 tree's: the one ncm-grub must find)."""
    return dom0.release(catalog.build("dom0"))


def xen_host_disk_image(profile: Path) -> Path:
    """A ready-made Xen host disk (the dom0 tree and ncm-grub's grub.cfg from `profile`), for the scenarios
    that boot Xen without installing it first."""
    return xen_host_disk.build(profile) / "disk.img"
