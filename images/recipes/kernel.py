"""The Debian Linux kernel (bzImage and modules), used by installers, dom0 and guests."""

from __future__ import annotations

import json
from pathlib import Path

from images import debs, kmod, store

META_PACKAGE = "linux-image-amd64"


def build() -> Path:
    package = debs.depends_on(META_PACKAGE, r"linux-image-[0-9].*-amd64")
    deb = debs.resolve(package)

    def make(out: Path) -> None:
        debs.extract(debs.fetch(deb), out / "root")
        (vmlinuz,) = (out / "root" / "boot").glob("vmlinuz-*")
        (out / "vmlinuz").symlink_to(vmlinuz.relative_to(out))
        release = vmlinuz.name.removeprefix("vmlinuz-")
        (out / "release").write_text(release)
        deps = kmod.dependency_map(out / "root" / "lib" / "modules" / release)
        (out / "modules.json").write_text(json.dumps(deps, indent=0, sort_keys=True))

    inputs = {"deb": deb.as_input(), "recipe": store.source_digest(Path(__file__), Path(kmod.__file__))}
    return store.build_or_reuse("kernel", inputs, make)


def release(image: Path) -> str:
    return (image / "release").read_text().strip()


def modules_dir(image: Path) -> Path:
    return image / "root" / "lib" / "modules" / release(image)


def module_deps(image: Path) -> dict[str, kmod.Module]:
    deps: dict[str, kmod.Module] = json.loads((image / "modules.json").read_text())
    return deps
