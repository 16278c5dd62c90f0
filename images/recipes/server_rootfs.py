"""The install server's root filesystem: dnsmasq and a Python for the HTTP server, nothing else.

`mmdebstrap --variant=extract` only unpacks the packages (no maintainer scripts, 65 MB, about 12 s), so
the few files a maintainer script would have made are added here.  The tree is shared read-only by every
lab's container; per-lab configuration is bind-mounted in.
"""

from __future__ import annotations

from pathlib import Path

from images import debs, mmdebstrap, store

PACKAGES = ("dnsmasq-base", "python3.11-minimal", "libpython3.11-stdlib", "busybox-static")


def build() -> Path:
    resolved = [debs.resolve(p) for p in PACKAGES]

    def make(out: Path) -> None:
        rootfs = out / "rootfs"
        mmdebstrap.bootstrap(rootfs, PACKAGES, variant="extract", excludes=mmdebstrap.DOCS[:3])
        (rootfs / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
        (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        for d in ("srv/lab", "lab", "run", "tmp", "var/lib/misc", "var/log/xenlab", "opt/xenlab"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)

    inputs = {
        "packages": [d.as_input() for d in resolved],
        "suite": mmdebstrap.SUITE,
        "recipe": store.source_digest(Path(__file__), Path(mmdebstrap.__file__)),
    }
    return store.build_or_reuse("server-rootfs", inputs, make)


def rootfs(image: Path) -> Path:
    return image / "rootfs"
