"""ncm-grub on a temporary root, checked by GRUB's own grub-script-check."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from images.recipes import grub_tools
from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components.grub import BEGIN, GrubComponent, apply_args
from tests.quattor_helpers import profile, shipped

HOST = shipped("cagxen01")
VERSION = HOST["system"]["kernel"]["version"]


def boot_files(root: Path) -> None:
    boot = root / "boot"
    (boot / "grub").mkdir(parents=True)
    for name in (f"vmlinuz-{VERSION}", f"initrd.img-{VERSION}", "xen-4.17-amd64.gz"):
        (boot / name).write_bytes(b"x")


def tree(**grub: Any) -> dict[str, Any]:
    t = copy.deepcopy(HOST)
    t["software"]["components"]["grub"].update(grub)
    return t


def configure(root: Path, t: dict[str, Any]) -> Context:
    ctx = Context(root=root)
    GrubComponent().configure(profile(t), ctx)
    return ctx


@pytest.fixture(scope="module")
def script_check() -> tuple[list[str], dict[str, str]]:
    return grub_tools.script_check(grub_tools.build())


def check(script_check: tuple[list[str], dict[str, str]], cfg: Path) -> None:
    argv, env = script_check
    proc = subprocess.run([*argv, str(cfg)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_xen_entry_is_the_default_and_valid_grub(tmp_path: Path, script_check: Any) -> None:
    boot_files(tmp_path)
    (tmp_path / "boot/grub/grub.cfg").write_text("set default=0\nmenuentry 'Debian' { linux /vmlinuz }\n")
    configure(tmp_path, HOST)
    cfg = tmp_path / "boot/grub/grub.cfg"
    text = cfg.read_text()
    check(script_check, cfg)
    assert text.startswith("set default=0\nmenuentry 'Debian'")  # what was there stays
    assert "\tmultiboot2 /boot/xen-4.17-amd64.gz placeholder dom0_mem=512M,max:512M" in text
    assert f"\tmodule2 /boot/vmlinuz-{VERSION} placeholder root=LABEL=root ro console=hvc0" in text
    assert f"\tmodule2 --nounzip /boot/initrd.img-{VERSION}" in text
    # The default kernel is the dom0 kernel of the multiboot entry: the Xen entry is the default.
    assert text.rstrip().endswith("set default='ncm-grub-xen-0'\n### END ncm-grub ###".rstrip())


def test_idempotent(tmp_path: Path) -> None:
    boot_files(tmp_path)
    (tmp_path / "boot/grub/grub.cfg").write_text("# from update-grub\n")
    configure(tmp_path, HOST)
    first = (tmp_path / "boot/grub/grub.cfg").read_text()
    assert configure(tmp_path, HOST).changes == []
    assert (tmp_path / "boot/grub/grub.cfg").read_text() == first
    assert first.count(BEGIN) == 1


def test_without_a_multiboot_entry_the_plain_kernel_is_default(tmp_path: Path, script_check: Any) -> None:
    boot_files(tmp_path)
    configure(tmp_path, tree(kernels=[], fullcontrol=True))
    cfg = tmp_path / "boot/grub/grub.cfg"
    check(script_check, cfg)
    text = cfg.read_text()
    assert "set default='ncm-grub-default'" in text and "multiboot2" not in text
    assert f"linux /boot/vmlinuz-{VERSION} console=ttyS0" in text
    assert "serial --unit=0 --speed=115200" in text  # fullcontrol writes the header from /hardware/console


@pytest.mark.parametrize("missing", [f"vmlinuz-{VERSION}", "xen-4.17-amd64.gz", f"initrd.img-{VERSION}"])
def test_a_missing_boot_file_is_an_error_naming_it(tmp_path: Path, missing: str) -> None:
    boot_files(tmp_path)
    (tmp_path / "boot/grub/grub.cfg").write_text("")
    (tmp_path / "boot" / missing).unlink()
    with pytest.raises(ComponentError, match=f"/boot/{missing} does not exist"):
        configure(tmp_path, HOST)


def test_args_syntax_adds_replaces_and_removes() -> None:
    assert apply_args(("ro", "quiet", "console=tty0"), ("-quiet", "console=ttyS0", "rw")) == (
        "ro",
        "console=ttyS0",
        "rw",
    )


def test_an_argument_grub_would_interpret_is_refused(tmp_path: Path) -> None:
    from quattor.profile import ProfileError

    boot_files(tmp_path)
    with pytest.raises(ProfileError, match="/software/components/grub/kernels/0/kernelargs"):
        configure(
            tmp_path,
            tree(kernels=[dict(HOST["software"]["components"]["grub"]["kernels"][0], kernelargs="ro; reboot")]),
        )


def qwg_kernels() -> list[dict[str, Any]]:
    """A 2007 host's list as the QWG `xen/grub.pan` template and the kernel RPM left it (upstream-behaviour.md
    4.3): the plain kernel first, the Xen entry second, `-token` removals in both."""
    return [
        {
            "kernelpath": f"/vmlinuz-{VERSION}",
            "kernelargs": "ro root=LABEL=/ rhgb quiet",
            "initrd": f"/initrd.img-{VERSION}",
        },
        {
            "multiboot": "/xen-4.17-amd64.gz",
            "mbargs": "dom0_mem=400M -noreboot",
            "title": f"Xen 4.17 / XenLinux {VERSION}",
            "kernelpath": f"/vmlinuz-{VERSION}",
            "kernelargs": "max_loop=128 root=LABEL=/ ro console=tty0 -quiet",
            "initrd": f"/initrd.img-{VERSION}",
        },
    ]


def test_removals_never_reach_a_command_line(tmp_path: Path, script_check: Any) -> None:
    boot_files(tmp_path)
    configure(tmp_path, tree(kernels=qwg_kernels(), args="-quiet -rhgb console=ttyS0", fullcontrol=True))
    cfg = tmp_path / "boot/grub/grub.cfg"
    check(script_check, cfg)
    text = cfg.read_text()
    assert f"\tlinux /boot/vmlinuz-{VERSION} ro root=LABEL=/ console=ttyS0\n" in text  # `args` on the plain entry
    assert f"\tmodule2 /boot/vmlinuz-{VERSION} placeholder max_loop=128 root=LABEL=/ ro console=tty0\n" in text
    assert "\tmultiboot2 /boot/xen-4.17-amd64.gz placeholder dom0_mem=400M\n" in text
    assert " -quiet" not in text and " -rhgb" not in text and " -noreboot" not in text
    # The Xen entry is second in the list, and still the default: its dom0 kernel is the default kernel.
    assert "set default='ncm-grub-xen-1'" in text and "ncm-grub-default" not in text


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"kernels": [{"kernelpath": "/../../../../etc/passwd"}]}, "/software/components/grub/kernels/0/kernelpath"),
        ({"kernels": [{"kernelpath": "/vmlinuz", "initrd": "/x/../../../etc/shadow"}]}, "kernels/0/initrd"),
        ({"prefix": "/boot/../.."}, "/software/components/grub/prefix"),
    ],
)
def test_paths_that_climb_out_of_the_root_are_refused(tmp_path: Path, change: dict[str, Any], path: str) -> None:
    from quattor.profile import ProfileError

    boot_files(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path.parent / "etc-passwd-bait").write_text("")  # what `..` would have found outside --root
    with pytest.raises(ProfileError, match=re.escape(path)):
        configure(tmp_path, tree(**change))


def test_a_serial_unit_that_is_not_a_number_names_its_path(tmp_path: Path) -> None:
    from quattor.profile import ProfileError

    boot_files(tmp_path)
    t = tree(fullcontrol=True)
    t["hardware"]["console"]["serial"]["unit"] = "abc"
    with pytest.raises(ProfileError, match="/hardware/console/serial/unit: expected an integer"):
        configure(tmp_path, t)
