"""The lab installer's decisions, without a machine: what it accepts, and how it lays out a disk."""

from __future__ import annotations

import pytest

from images.installer import xenlab_installer as inst
from quattor.aii import ks, node
from tests.quattor_helpers import profile, shipped


def aii_kickstart(name: str) -> str:
    return ks.kickstart(node.read(profile(shipped(name))), payload_image="dom0", ack_base="http://gridinstall")


def test_what_aii_writes_is_all_supported() -> None:
    handler = inst.parse(aii_kickstart("cagxen01"))
    parts = inst.plan(handler, disk_mib=20480)
    assert [(p.name, p.size_mib, p.number, p.fstype, p.label) for p in parts] == [
        ("/", 3072, 1, "ext4", "root"),
        ("pv.01", 16384, 2, None, None),
    ]
    assert inst.sfdisk_script(parts) == (
        "label: dos\nstart=2048, type=83, size=3072MiB, bootable\nstart=, type=8e, size=16384MiB\n"
    )


@pytest.mark.parametrize("command", ["lang en_US.UTF-8", "firewall --disabled", "selinux --enforcing", "url --url=x"])
def test_an_unsupported_command_stops_the_install_naming_it(command: str) -> None:
    with pytest.raises(inst.InstallError, match=f"unsupported kickstart command.*{command.split()[0]}"):
        inst.parse(aii_kickstart("cagnode50") + command + "\n")


def test_a_kickstart_that_does_not_parse_says_why() -> None:
    with pytest.raises(inst.InstallError, match="does not parse"):
        inst.parse("part / --size=lots\n")


def test_partitions_that_do_not_fit_are_refused_with_the_numbers() -> None:
    handler = inst.parse(aii_kickstart("cagxen01"))
    with pytest.raises(inst.InstallError, match="need 19457 MiB but the disk has 8192 MiB"):
        inst.plan(handler, disk_mib=8192)


def test_grow_takes_the_rest() -> None:
    handler = inst.parse("part / --size=1024 --grow --label=root\n")
    (root,) = inst.plan(handler, disk_mib=4096)
    assert root.grow and "size=" not in inst.sfdisk_script([root])


@pytest.mark.parametrize(
    ("url", "flags"),
    [("http://g/p/dom0.tar.zst", ["--zstd"]), ("http://g/p/x.tar.gz", ["-z"]), ("http://g/p/x.tar", [])],
)
def test_payload_compression_follows_the_name(url: str, flags: list[str]) -> None:
    assert inst._compression(url) == flags
