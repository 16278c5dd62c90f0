"""The lab's compile step: shipped profiles retargeted at the payloads' kernel, with the lab's SSH key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lab import installer_plugin, topology
from lab.profiles import compile_for_lab, prepare_hvm_guests, xen_guests
from quattor.aii import ks, node
from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components.grub import GrubComponent
from quattor.ncm.components.xen import XenComponent
from quattor.profile import Profile, load
from tests.quattor_helpers import PROFILES, shipped

NEW = "6.1.0-99-amd64"


def test_the_host_profile_names_the_payload_kernel_everywhere_and_ncm_grub_boots_it(tmp_path: Path) -> None:
    before = (PROFILES / "profile_cagxen01.json").read_text()
    out = compile_for_lab(PROFILES, tmp_path / "lab", kernel_release=NEW, ssh_public_key="ssh-ed25519 AAAA lab")
    assert (PROFILES / "profile_cagxen01.json").read_text() == before  # the source is never written
    old = shipped("cagxen01")["system"]["kernel"]["version"]
    text = (out / "profile_cagxen01.json").read_text()
    assert old not in text
    host = json.loads(text)
    assert host["system"]["kernel"]["version"] == NEW
    (kernel,) = host["software"]["components"]["grub"]["kernels"]
    assert (kernel["kernelpath"], kernel["initrd"]) == (f"/vmlinuz-{NEW}", f"/initrd.img-{NEW}")
    assert host["system"]["aii"]["osinstall"]["options"]["sshkey"] == "ssh-ed25519 AAAA lab"
    # What ncm-grub does with it: on a root that has the new kernel, the Xen entry boots it.
    root = tmp_path / "root"
    (root / "boot/grub").mkdir(parents=True)
    for name in (f"vmlinuz-{NEW}", f"initrd.img-{NEW}", "xen-4.17-amd64.gz"):
        (root / "boot" / name).write_text("")
    (root / "boot/grub/grub.cfg").write_text("# GRUB's own menu\n")
    GrubComponent().configure(load(out / "profile_cagxen01.json"), Context(root=root))
    menu = (root / "boot/grub/grub.cfg").read_text()
    assert f"module2 /boot/vmlinuz-{NEW} placeholder " in menu and "set default='ncm-grub-xen-0'" in menu


def test_every_profile_is_compiled_and_one_without_a_kernel_is_copied_as_it_is(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "profile_plain.json").write_text(json.dumps({"system": {"network": {"hostname": "plain"}}}))
    (src / "profile_guest.json").write_text(
        json.dumps({"system": {"kernel": {"version": "1.0"}, "aii": {"osinstall": {"options": {}}}}})
    )
    out = compile_for_lab(src, tmp_path / "out", kernel_release="2.0", ssh_public_key="key")
    assert json.loads((out / "profile_plain.json").read_text()) == {"system": {"network": {"hostname": "plain"}}}
    guest = json.loads((out / "profile_guest.json").read_text())
    assert guest["system"]["kernel"]["version"] == "2.0"
    assert guest["system"]["aii"]["osinstall"]["options"]["sshkey"] == "key"


def test_a_directory_without_profiles_is_refused(tmp_path: Path) -> None:
    from foundation.errors import PreflightError

    with pytest.raises(PreflightError, match="no compiled profiles"):
        compile_for_lab(tmp_path, tmp_path / "out", kernel_release="2.0")


@pytest.mark.parametrize(
    ("source", "host", "keep"),
    [
        (PROFILES, "cagxen01", ("cagnode50", "cagnode51")),  # the 2007 list form
        (PROFILES / "westgrid", "vmhost07", ("wn-west-worker02",)),  # the nlist form, keyed by config name
    ],
)
def test_a_run_keeps_only_its_guests_in_either_form_of_domains(
    tmp_path: Path, source: Path, host: str, keep: tuple[str, ...]
) -> None:
    from lab.profiles import keep_domains
    from quattor.ncm.components import xen_model

    out = compile_for_lab(source, tmp_path, kernel_release=NEW)
    keep_domains(out / f"profile_{host}.json", keep)
    config = xen_model.read(load(out / f"profile_{host}.json").reader("/software/components/xen"))
    assert tuple(d.options.name for d in config.domains) == keep


def test_hvm_guests_serial_lines_are_logged_from_their_first_byte_and_their_disks_are_ahci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's HVM guest declares `serial = pty` (nothing keeps what a pty shows before someone attaches):
    the lab's compile points it at a file in dom0's Xen log directory, which ncm-xen writes into the guest's
    xl config as it would any serial option.  PV guests keep theirs."""
    out = compile_for_lab(PROFILES, tmp_path / "lab", kernel_release=NEW)
    domains = {
        d["name"]: d
        for d in json.loads((out / "profile_cagxen01.json").read_text())["software"]["components"]["xen"]["domains"]
    }
    assert domains["cagnode52"]["serial"] == "file:/var/log/xen/console/hvm-serial-cagnode52.log"
    assert domains["cagnode52"]["hdtype"] == "ahci"
    shipped_domains = {d["name"]: d for d in shipped("cagxen01")["software"]["components"]["xen"]["domains"]}
    assert shipped_domains["cagnode52"]["serial"] == "pty" and "hdtype" not in shipped_domains["cagnode52"]
    for name in ("cagnode50", "cagnode51"):
        assert domains[name].get("serial") == shipped_domains[name].get("serial")
        assert "hdtype" not in domains[name]
    root = tmp_path / "root"
    tree = json.loads((out / "profile_cagxen01.json").read_text())
    xen = tree["software"]["components"]["xen"]
    xen["domains"] = [domains["cagnode52"]]
    xen["create_domains"] = False
    (tmp_path / "one.json").write_text(json.dumps(tree))
    with pytest.raises(ComponentError):  # its volume group exists only inside the lab's Xen host
        XenComponent().configure(load(tmp_path / "one.json"), Context(root=root, noaction=True))
    shown = capsys.readouterr().err
    assert '    | serial = "file:/var/log/xen/console/hvm-serial-cagnode52.log"' in shown, shown
    assert '    | hdtype = "ahci"' in shown, shown


def test_an_hvm_guests_own_disk_emulation_is_kept(tmp_path: Path) -> None:
    """The lab gives HVM guests AHCI disks (fast BIOS reads for their GRUB) only where the profile says nothing."""
    source = tmp_path / "site"
    source.mkdir()
    for path in PROFILES.glob("profile_*.json"):
        (source / path.name).write_text(path.read_text())
    host = json.loads((source / "profile_cagxen01.json").read_text())
    (hvm,) = [d for d in host["software"]["components"]["xen"]["domains"] if d.get("type") == "hvm"]
    hvm["hdtype"] = "ide"
    (source / "profile_cagxen01.json").write_text(json.dumps(host))
    out = compile_for_lab(source, tmp_path / "lab", kernel_release=NEW)
    domains = json.loads((out / "profile_cagxen01.json").read_text())["software"]["components"]["xen"]["domains"]
    assert [d["hdtype"] for d in domains if d["name"] == hvm["name"]] == ["ide"]


def test_every_installable_node_is_pointed_at_the_installer_plugin(tmp_path: Path) -> None:
    """The lab's compile points AII's entries at the plug-in as the install server serves it: the host's
    relative TFTP path stays relative, a guest's http:// URL stays on its server, in the plug-in's dialect;
    AII then writes Anaconda's boot arguments for it."""
    plugin = dataclasses.replace(installer_plugin.load(installer_plugin.DEFAULT), updates="patch.img")
    out = compile_for_lab(PROFILES, tmp_path / "lab", kernel_release=NEW, installer=plugin)
    host = json.loads((out / "profile_cagxen01.json").read_text())["system"]["aii"]["nbp"]["options"]
    guest = json.loads((out / "profile_cagnode50.json").read_text())["system"]["aii"]["nbp"]["options"]
    assert (host["kernel"], host["initrd"]) == ("boot/xenlab/vmlinuz", "boot/xenlab/initrd.img")
    assert guest["kernel"] == "http://gridinstall.xenlab.test/boot/xenlab/vmlinuz-xen", "a PV guest's own kernel"
    assert guest["initrd"] == "http://gridinstall.xenlab.test/boot/xenlab/initrd.img"
    assert guest["updates"] == "http://gridinstall.xenlab.test/boot/xenlab/patch.img"
    assert host["dialect"] == guest["dialect"] == "anaconda"
    entry = node.read(load(out / "profile_cagnode50.json")).boot_entry()
    assert entry.append[:3] == (
        "inst.ks=http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks",
        "ip=eth0:dhcp",
        "bootdev=eth0",
    )
    assert "inst.updates=http://gridinstall.xenlab.test/boot/xenlab/patch.img" in entry.append
    assert entry.append[4:6] == ("quiet", "console=hvc0"), "the plug-in's own arguments, before the profile's"
    again = tmp_path / "again"
    compile_for_lab(out, again, kernel_release=NEW, installer=plugin)
    recompiled = node.read(load(again / "profile_cagnode50.json"))
    assert recompiled.boot_entry().append.count("quiet") == 1
    assert "quiet" not in ks.kernel_append(recompiled), "the installer's boot only, not the installed system's"
    plain = json.loads((out / "profile_gridinstall.json").read_text())
    assert "nbp" not in json.dumps(plain.get("system", {}).get("aii", {}))  # the install server installs nothing


def test_pv_guests_boot_the_plugins_xen_kernel_and_the_rest_its_bzimage(tmp_path: Path) -> None:
    """Which nodes are PV guests is read from the Xen host's domains (cagnode50 and cagnode51 name no type:
    PV, xm's default; cagnode52 is `type hvm`); a plug-in without `kernel_xen` gives every node its one
    kernel."""
    plugin = installer_plugin.load(installer_plugin.DEFAULT)
    assert plugin.kernel_xen == "vmlinuz-xen"

    def kernels(out: Path) -> dict[str, str]:
        found = {}
        for name in ("cagxen01", "cagnode50", "cagnode51", "cagnode52"):
            nbp = json.loads((out / f"profile_{name}.json").read_text())["system"]["aii"]["nbp"]["options"]
            found[name] = nbp["kernel"].rsplit("/", 1)[-1]
        return found

    out = compile_for_lab(PROFILES, tmp_path / "with", kernel_release=NEW, installer=plugin)
    assert kernels(out) == {
        "cagxen01": "vmlinuz",
        "cagnode50": "vmlinuz-xen",
        "cagnode51": "vmlinuz-xen",
        "cagnode52": "vmlinuz",
    }
    bare = dataclasses.replace(plugin, kernel_xen=None)
    out = compile_for_lab(PROFILES, tmp_path / "without", kernel_release=NEW, installer=bare)
    assert set(kernels(out).values()) == {"vmlinuz"}


def test_a_second_sites_pv_guests_are_the_ones_its_xen_host_declares(tmp_path: Path) -> None:
    """Another site's profiles (domains keyed by name, options nested, as its panc templates write them): the
    nodes pointed at the PV kernel are exactly the PV guests the lab's topology reads from its Xen host."""
    westgrid = PROFILES / "westgrid"
    plugin = installer_plugin.load(installer_plugin.DEFAULT)
    out = compile_for_lab(westgrid, tmp_path / "lab", kernel_release=NEW, installer=plugin)
    pointed = set()
    for path in out.glob("profile_*.json"):
        nbp = json.loads(path.read_text()).get("system", {}).get("aii", {}).get("nbp", {}).get("options", {})
        if str(nbp.get("kernel", "")).endswith("/vmlinuz-xen"):
            pointed.add(path.stem.removeprefix("profile_"))
    expected = {g.name for g in topology.read(westgrid).host.pv_guests}
    assert expected and pointed == expected


def test_an_hvm_guest_in_the_nlist_form_is_prepared_too() -> None:
    """The second site's host writes its domains in the nlist form (`domains/<name>/options`): an HVM guest
    there gets the serial file and AHCI as the seed's list form does; its PV guests stay as they are."""
    tree = json.loads((PROFILES / "westgrid" / "profile_vmhost07.json").read_text())
    domains = tree["software"]["components"]["xen"]["domains"]
    domains["ui-west-storage01"]["options"] |= {"type": "hvm"}
    hvm = xen_guests([Profile(tree, "profile_vmhost07.json")], ("hvm",))  # ncm-xen's reading of the nlist form
    assert hvm == {"ui-west-storage01"} and prepare_hvm_guests(tree, hvm) == ["ui-west-storage01"]
    options = domains["ui-west-storage01"]["options"]
    assert options["serial"] == "file:/var/log/xen/console/hvm-serial-ui-west-storage01.log"
    assert options["hdtype"] == "ahci"
    assert all("hdtype" not in domains[n]["options"] for n in ("wn-west-worker01", "wn-west-worker02"))


def test_hvm_guests_kernels_boot_quiet_and_the_rest_as_their_profiles_say(tmp_path: Path) -> None:
    """The seed's HVM guest (its console ttyS0, emulated by qemu-dm) gets `quiet` in AII's kernel arguments,
    so in its kickstart's `bootloader --append` too; the PV guests (hvc0, Xen's shared ring) and the host keep
    theirs; compiling the lab's copy again adds nothing."""
    out = compile_for_lab(PROFILES, tmp_path / "lab", kernel_release=NEW)

    def append(out: Path, name: str) -> str:
        return str(json.loads((out / f"profile_{name}.json").read_text())["system"]["aii"]["nbp"]["options"]["append"])

    assert append(out, "cagnode52") == "console=ttyS0 net.ifnames=0 quiet"
    installed = ks.kernel_append(node.read(load(out / "profile_cagnode52.json")))
    assert installed.split() == ["console=ttyS0", "net.ifnames=0", "quiet"]
    for name in ("cagxen01", "cagnode50", "cagnode51"):
        assert append(out, name) == str(shipped(name)["system"]["aii"]["nbp"]["options"]["append"]), name
    again = compile_for_lab(out, tmp_path / "again", kernel_release=NEW)
    assert append(again, "cagnode52") == "console=ttyS0 net.ifnames=0 quiet"
