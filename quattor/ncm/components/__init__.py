"""The components this ncm-ncd can run, by name (one module each)."""

from __future__ import annotations

from collections.abc import Callable

from quattor.ncm.component import Component
from quattor.ncm.components.grub import GrubComponent
from quattor.ncm.components.xen import XenComponent

REGISTRY: dict[str, Callable[[], Component]] = {"xen": XenComponent, "grub": GrubComponent}
