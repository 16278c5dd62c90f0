"""The one way the image builder makes a Debian root filesystem."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from foundation.process import run

SUITE = "bookworm"
DOCS = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")


def bootstrap(
    rootfs: Path,
    packages: Iterable[str],
    *,
    variant: str = "minbase",
    excludes: Iterable[str] = DOCS,
    timeout: float = 1800,
) -> None:
    """`mmdebstrap` of `packages` (no recommends) into `rootfs`, with its temporary files beside it.

    No mirror is named: mmdebstrap then uses the Debian archive the machine's own apt sources name.
    """
    tmp = rootfs.parent / f".{rootfs.name}.tmp"
    tmp.mkdir()
    try:
        run(
            [
                "mmdebstrap",
                "--quiet",
                f"--variant={variant}",
                f"--include={','.join(packages)}",
                *(f"--dpkgopt=path-exclude={e}" for e in excludes),
                "--aptopt=APT::Install-Recommends false",
                SUITE,
                rootfs,
            ],
            env={"TMPDIR": str(tmp)},
            timeout=timeout,
            hint="mmdebstrap needs the Debian archive; ./xenlab setup installs mmdebstrap",
        )
    finally:
        tmp.rmdir()
