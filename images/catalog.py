"""The images the lab knows, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
    server_rootfs,
)
from lab.errors import PreflightError

RECIPES: dict[str, Callable[[], Path]] = {
    "kernel": kernel.build,
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


def build(name: str) -> Path:
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise PreflightError(f"no image named {name!r}", hint=f"known images: {', '.join(NAMES)}") from None
    return recipe()
