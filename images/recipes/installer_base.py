"""The installer's base initramfs: Debian 12 minbase with what a kickstart install needs.

python3 (with pykickstart, Anaconda's parser, taken from the project's pinned environment since Debian 12
does not package it), lvm2, e2fsprogs, fdisk, wget and busybox, plus the kernel modules for virtio and
Xen disks and NICs, device-mapper and ext4.  It is one compressed cpio the kernel unpacks as its root;
what changes often (the installer program, the system under test, a test script) goes in a second small
cpio appended after it, so this part is built once per package set.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from foundation.errors import PreflightError
from images import cpio, debian_tree, debs, kmod, mmdebstrap, store
from images.recipes import kernel

FILES = Path(__file__).resolve().parent.parent / "files"
PACKAGES = (
    "python3",
    "python3-requests",  # pykickstart imports it (its load module), even when given the kickstart's text
    "lvm2",
    "e2fsprogs",
    "fdisk",
    "wget",
    "busybox",
    "iproute2",
    "xz-utils",
    "cpio",  # an updates image (inst.updates=) is a compressed newc cpio
    "gzip",
    "tar",
    "zstd",
    "libeatmydata1",  # preloaded into the installer's own commands in the installed system: no fsync there
)
# crc32c_generic: ext4 needs a crc32c at mount time (a soft dependency, absent from depends=); without it
# mounting fails with ENOENT.
MODULES = (
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "e1000",
    "xen-netfront",
    "xen-blkfront",
    "dm-mod",
    "crc32c_generic",
    "ext4",
    "loop",
)
PYTHON_FROM_VENV = ("pykickstart",)
# Pruned after the install (py3compile needs them while packages install); docs are never unpacked.
PRUNE = (
    "usr/lib/python3.11/test",
    "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
    "usr/share/zoneinfo/right",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "usr/share/i18n",
    # Perl, apt and dpkg's records serve package maintenance, never an install: a quarter of the RAM disk.
    "usr/share/perl",
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/perl-base",
    "usr/share/perl5",
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/lib/apt",
    "var/lib/dpkg",
    "var/cache/debconf",
    "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/distutils",
)
PRUNE_FILES = (
    "usr/bin/perl",
    "usr/bin/perl5.36.0",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36.0",
)


def _venv_package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise PreflightError(f"{name} is not installed in the project's environment", hint="./xenlab setup installs it")
    return Path(next(iter(spec.submodule_search_locations)))


def build() -> Path:
    kernel_image = kernel.build()
    resolved = [debs.resolve(p) for p in PACKAGES]
    vendored = {name: store.source_digest(*sorted(_venv_package(name).rglob("*.py"))) for name in PYTHON_FROM_VENV}

    def make(out: Path) -> None:
        rootfs = out / "rootfs"
        mmdebstrap.bootstrap(rootfs, PACKAGES, timeout=1800)
        for junk in PRUNE:
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        for junk in PRUNE_FILES:
            (rootfs / junk).unlink(missing_ok=True)
        site = rootfs / "usr/lib/python3/dist-packages"
        for name in PYTHON_FROM_VENV:
            shutil.copytree(_venv_package(name), site / name, ignore=shutil.ignore_patterns("__pycache__"))
        debian_tree.byte_compile_for_fixed_mtimes(rootfs)  # the cpio zeroes mtimes: Debian's .pyc would not match
        shutil.copy2(FILES / "lvm.conf", rootfs / "etc/lvm/lvm.conf")
        shutil.copy2(FILES / "installer-init.sh", rootfs / "init")
        (rootfs / "init").chmod(0o755)
        modules = rootfs / "lib/modules/xenlab"
        modules.mkdir(parents=True)
        order = kmod.load_order(kernel.module_deps(kernel_image), MODULES)
        for rel in order:
            shutil.copy2(kernel.modules_dir(kernel_image) / rel, modules / Path(rel).name)
        (modules / "load-order").write_text("".join(Path(r).name + "\n" for r in order))
        cpio.write_initrd(rootfs, out / "base.cpio.zst")
        shutil.rmtree(rootfs)
        (out / "vmlinuz").symlink_to(kernel_image / "vmlinuz")

    inputs = {
        "packages": [d.as_input() for d in resolved],
        "kernel": kernel_image.name,
        "vendored": vendored,
        "modules": list(MODULES),
        "recipe": store.source_digest(
            Path(__file__),
            Path(mmdebstrap.__file__),
            Path(cpio.__file__),
            FILES / "installer-init.sh",
            FILES / "lvm.conf",
            Path(debian_tree.__file__),
        ),
    }
    return store.build_or_reuse("installer-base", inputs, make)
