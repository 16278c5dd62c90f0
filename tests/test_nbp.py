"""AII's pxelinux tree: install entries, the per-node links, and the install/boot switch."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path

import pytest

from quattor.aii.nbp import BootEntry, NbpTree, NodeBoot, hexip, pxelinux_config

NODE = NodeBoot("cagnode50.example.org", "AA:00:86:e2:35:72", ipaddress.IPv4Address("134.226.53.114"))
ENTRY = BootEntry("install", "boot/vmlinuz", "boot/initrd.gz", ("ks=http://gridinstall/ks/x.ks", "skipddc"))


def test_hexip_is_upper_case_like_pxelinux() -> None:
    assert hexip(NODE.ip) == "86E23572"
    assert NODE.mac_name == "01-aa-00-86-e2-35-72"


def test_pxelinux_config_keeps_argument_order() -> None:
    text = pxelinux_config(ENTRY)
    assert "append initrd=boot/initrd.gz ks=http://gridinstall/ks/x.ks skipddc\n" in text
    assert text.splitlines()[1] == "default install"


def test_a_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        BootEntry("x", "k", "i", ("ks=a\nLABEL evil",))


def test_configure_then_install_then_boot(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    assert tree.status(NODE) == "undefined"
    tree.configure(NODE, ENTRY)
    assert tree.status(NODE) == "boot"  # a newly configured node boots locally until told to install
    tree.install(NODE)
    assert tree.status(NODE) == "install"
    assert os.readlink(tmp_path / "pxelinux.cfg" / "86E23572") == "cagnode50.example.org.cfg"
    assert os.readlink(tmp_path / "pxelinux.cfg" / "01-aa-00-86-e2-35-72") == "cagnode50.example.org.cfg"
    tree.boot(NODE)
    assert tree.status(NODE) == "boot"
    assert "localboot 0" in (tmp_path / "pxelinux.cfg" / "86E23572").read_text()


def test_configure_keeps_an_install_in_progress(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    tree.configure(NODE, ENTRY)
    tree.install(NODE)
    tree.configure(NODE, ENTRY)
    assert tree.status(NODE) == "install"


def test_links_that_disagree_are_an_error(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    tree.configure(NODE, ENTRY)
    tree.install(NODE)
    (tmp_path / "pxelinux.cfg" / "86E23572").unlink()
    (tmp_path / "pxelinux.cfg" / "86E23572").symlink_to("localboot.cfg")
    assert tree.status(NODE) == "error"


def test_install_without_configure_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="configure it first"):
        NbpTree(tmp_path, "http://gridinstall").install(NODE)


def test_remove(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    tree.configure(NODE, ENTRY)
    tree.remove(NODE)
    assert tree.status(NODE) == "undefined"
    assert not (tmp_path / "pxelinux.cfg" / "cagnode50.example.org.cfg").exists()


def test_ipxe_script_uses_http_urls(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    tree.configure(NODE, ENTRY)
    script = (tmp_path / "ipxe" / "cagnode50.example.org.ipxe").read_text()
    assert "kernel http://gridinstall/boot/vmlinuz initrd=initrd.gz ks=http://gridinstall/ks/x.ks skipddc" in script
    assert "initrd http://gridinstall/boot/initrd.gz" in script


def test_a_node_set_to_sanboot_leaves_ipxe_through_its_first_disk_even_when_the_ack_switches_it(
    tmp_path: Path,
) -> None:
    """`/system/aii/nbp/options/localboot = "sanboot"`: once installed, the node's iPXE script boots BIOS disk
    0x80 itself (iPXE's documented `sanboot --no-describe --drive 0x80`, with the BIOS's way as fallback);
    the install server's ack handler, which knows only the node's name and addresses, keeps that choice."""
    tree = NbpTree(tmp_path, "http://gridinstall")
    sanboot = dataclasses.replace(NODE, localboot="sanboot")
    tree.configure(sanboot, ENTRY)
    tree.install(sanboot)
    tree.boot(NODE)  # as the ack handler does: no localboot of its own
    assert tree.status(NODE) == "boot"
    script = (tmp_path / "ipxe" / os.readlink(tmp_path / "ipxe" / NODE.ipxe_name)).read_text()
    assert script.splitlines() == [
        "#!ipxe",
        "echo xenlab: boot from local disk (sanboot)",
        "sanboot --no-describe --drive 0x80 || exit 1",
    ]
    pxelinux = (tmp_path / "pxelinux.cfg" / os.readlink(tmp_path / "pxelinux.cfg" / NODE.mac_name)).read_text()
    assert "localboot 0" in pxelinux  # a pxelinux client boots its disk as before
    tree.configure(dataclasses.replace(NODE, localboot="exit"), ENTRY)  # the profile changed back
    tree.boot(NODE)
    assert (tmp_path / "ipxe" / os.readlink(tmp_path / "ipxe" / NODE.ipxe_name)).read_text().endswith("exit 1\n")
    tree.remove(NODE)
    assert not (tmp_path / "aii" / "localboot" / NODE.fqdn).exists()


def test_an_ipxe_entry_that_cannot_boot_reports_why_to_the_install_server(tmp_path: Path) -> None:
    tree = NbpTree(tmp_path, "http://gridinstall")
    tree.configure(NODE, ENTRY)
    lines = (tmp_path / "ipxe" / "cagnode50.example.org.ipxe").read_text().splitlines()
    assert [line.split()[0] for line in lines if line.endswith("|| goto failed")] == ["kernel", "initrd", "boot"]
    failed = lines[lines.index(":failed") :]
    assert "imgfetch http://gridinstall/xenlab/install-failed?reason=iPXE-could-not-${step}-error-${errno} ||" in failed
    assert failed[-1] == "exit 1", "then back to the BIOS, as before"
