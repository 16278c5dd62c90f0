"""The images the lab knows, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from foundation.errors import PreflightError
from images.recipes import (
    bootfiles,
    dom0,
    dom0_payload,
    dummy_installer,
    grub_tools,
    guest_payload,
    installer,
    installer_base,
    kernel,
    pv_kernel,
    server_rootfs,
)

RECIPES: dict[str, Callable[[], Path]] = {
    "kernel": kernel.build,
    "pv-kernel": pv_kernel.build,
    "bootfiles": bootfiles.build,
    "server-rootfs": server_rootfs.build,
    "dummy-installer": dummy_installer.build,
    "grub-tools": grub_tools.build,
    "installer-base": installer_base.build,
    "dom0": dom0.build,
    "installer": installer.build,
    "dom0-payload": dom0_payload.build,
    "guest-payload": guest_payload.build,
}
NAMES = tuple(RECIPES)
# The payload images, by the one file each holds (what the install server serves under payload/).
PAYLOAD_FILES = {"dom0-payload": "dom0.tar.zst", "guest-payload": "guest.tar.zst"}


def check_name(name: str) -> None:
    if name not in RECIPES:
        raise PreflightError(f"no image named {name!r}", hint=f"known images: {', '.join(NAMES)}")


def build(name: str) -> Path:
    check_name(name)
    return RECIPES[name]()
