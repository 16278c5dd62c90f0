"""Installer plug-ins: manifests read and refused with the key at fault, and the boot arguments AII writes
for each dialect checked against Anaconda's documented boot options, in pxelinux and iPXE form."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from foundation.errors import PreflightError
from lab import installer_plugin
from quattor.aii import nbp, node
from tests.quattor_helpers import profile, shipped

# Anaconda's boot options as rhinstaller/anaconda documents them (docs/boot-options.rst, rhel-9 and master):
# the option names with a value, and dracut's ip= forms it refers to (dracut.cmdline(7)).
ANACONDA_OPTIONS = {"inst.ks", "inst.repo", "inst.stage2", "inst.updates", "ip", "bootdev", "nameserver", "console"}
DRACUT_IP_AUTOCONF = re.compile(r"^[a-z0-9]+:(dhcp|dhcp6|auto6|ibft)$")
# What Anaconda's documentation lists as deprecated or gone (Red Hat's "deprecated boot options" tables).
DEPRECATED = {"ks", "ksdevice", "method", "dns", "updates", "stage2", "repo"}


def test_the_labs_own_installer_is_described_by_a_manifest() -> None:
    plugin = installer_plugin.load(installer_plugin.DEFAULT)
    assert (plugin.name, plugin.image, plugin.kernel, plugin.initrd) == ("xenlab", "installer", "vmlinuz", "initrd.img")
    assert plugin.kernel_for(xen_pv=True) == "vmlinuz-xen" and plugin.kernel_for(xen_pv=False) == "vmlinuz"
    assert plugin.dialect == "anaconda" and plugin.end == "kickstart-post" and plugin.append == ("quiet",)
    assert any(re.search(p, "XENLAB-INSTALL-FAILED the partitions need 3073 MiB") for p in plugin.failure)
    assert any(re.search(p, "XENLAB-INSTALL payload: 80 MiB unpacked") for p in plugin.progress)


def manifest(tmp_path: Path, text: str, files: tuple[str, ...] = ("vmlinuz", "initrd.img")) -> Path:
    for name in files:
        (tmp_path / name).write_bytes(b"\0")
    (tmp_path / "installer.toml").write_text(text)
    return tmp_path


GOOD = 'name = "el9-patched"\nkernel = "vmlinuz"\ninitrd = "initrd.img"\ndialect = "anaconda"\n'


def test_an_anaconda_plugin_gets_anacondas_failure_patterns_by_default(tmp_path: Path) -> None:
    plugin = installer_plugin.load(manifest(tmp_path, GOOD))
    assert plugin.served_dir == "boot/el9-patched" and plugin.file("vmlinuz") == (tmp_path / "vmlinuz").resolve()
    assert any(re.search(p, "The following error occurred while installing.") for p in plugin.failure)
    assert any(re.search(p, "Traceback (most recent call last):") for p in plugin.failure)


@pytest.mark.parametrize(
    ("text", "files", "names"),
    [
        (GOOD.replace('"anaconda"', '"debian-installer"'), None, "dialect: 'debian-installer': one of el5, anaconda"),
        (GOOD + "kernal = 'x'\n", None, "kernal: unknown key"),
        (GOOD, ("initrd.img",), "kernel: "),
        (GOOD.replace("el9-patched", "EL 9"), None, "name: 'EL 9' is not a short lower-case name"),
        (GOOD + "[console]\nfailure = ['(unclosed']\n", None, "console.failure: '(unclosed' does not compile"),
        (GOOD + "[end]\nack = 'reboot'\n", None, "end.ack: 'reboot': one of kickstart-post"),
        ("name = ", None, "not TOML"),
        (GOOD + "append = ['quiet', 'a b']\n", None, "append: expected a list of kernel arguments"),
        (GOOD + "append = 'quiet'\n", None, "append: expected a list of kernel arguments"),
        (GOOD + "kernel_xen = 'vmlinuz-xen'\n", None, "kernel_xen: "),
        (GOOD + "kernel_xen = 1\n", None, "kernel_xen: expected a string"),
    ],
)
def test_a_bad_manifest_is_refused_naming_its_key(
    tmp_path: Path, text: str, files: tuple[str, ...] | None, names: str
) -> None:
    directory = manifest(tmp_path, text, files if files is not None else ("vmlinuz", "initrd.img"))
    with pytest.raises(PreflightError) as excinfo:
        installer_plugin.load(directory)
    assert str(tmp_path / "installer.toml") in str(excinfo.value) and names in str(excinfo.value), str(excinfo.value)


def aii_node(dialect: str, **options: str) -> node.AiiNode:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["system"]["aii"]["nbp"]["options"].update(dialect=dialect, **options)
    return node.read(profile(tree))


def test_the_anaconda_dialect_writes_only_documented_current_boot_options() -> None:
    aii = aii_node(
        "anaconda",
        updates="http://gridinstall.xenlab.test/updates/patch.img",
        stage2="http://gridinstall.xenlab.test/el9/",
    )
    entry = aii.boot_entry()
    pxelinux = nbp.pxelinux_config(entry)
    ipxe = nbp.ipxe_script(entry, "http://gridinstall.xenlab.test")
    append = next(line for line in pxelinux.splitlines() if line.strip().startswith("append ")).split()[1:]
    kernel_line = next(line for line in ipxe.splitlines() if line.startswith("kernel ")).split()[2:]
    for args in (append, kernel_line):
        names = {a.split("=", 1)[0] for a in args if "=" in a} - {"initrd", "net.ifnames"}
        assert names <= ANACONDA_OPTIONS, names - ANACONDA_OPTIONS
        assert not names & DEPRECATED, names & DEPRECATED
        values = dict(a.split("=", 1) for a in args if "=" in a)
        assert values["inst.ks"] == "http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks"
        assert DRACUT_IP_AUTOCONF.match(values["ip"]) and values["bootdev"] == values["ip"].split(":")[0]
        assert values["inst.updates"].endswith("/updates/patch.img") and values["inst.stage2"].endswith("/el9/")
        assert values["console"] == "hvc0"


def test_the_el5_dialect_is_what_aii_wrote_in_2007() -> None:
    entry = aii_node("el5", updates="http://g/u.img").boot_entry()
    assert entry.append[:3] == (
        "ks=http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks",
        "ksdevice=eth0",
        "updates=http://g/u.img",
    )
    assert node.read(profile(shipped("cagnode50"))).boot_entry().append[:2] == entry.append[:2]  # the default
