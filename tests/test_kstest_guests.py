"""The suite's guests as ncm-xen reads them: each kind's domain goes through ncm-xen's own reader and writer
(the component that makes them on the host), and names what the case's boot needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foundation.errors import LabError, PreflightError
from foundation.paths import REPO
from lab import kickstart_cases as kstest
from lab import kstest_guests as on_xen
from lab.hvm_state import triple_faults
from quattor.ncm.components import xen_model
from quattor.ncm.components.xen import render
from quattor.profile import Profile

MAC = "52:54:00:01:00:65"


SEED = REPO / "profiles"
WESTGRID = SEED / "westgrid"
SHAPES = {  # as the seed's host profile gives its own guests of each kind (the 2007 list form)
    "pv": on_xen.shape_of(SEED / "profile_cagxen01.json", "cagnode50"),
    "hvm": on_xen.shape_of(SEED / "profile_cagxen01.json", "cagnode52"),
}


def xl_config(kind: on_xen.GuestKind, name: str = "ks-lvm") -> str:
    declared = kind.domain(name, MAC, SHAPES[kind.name])
    tree = {"software": {"components": {"xen": {"create_domains": True, "domains": [declared]}}}}
    profile = Profile(tree, "kstest")
    config = xen_model.read(profile.reader("/software/components/xen"))
    assert not profile.warnings, profile.warnings
    (domain,) = config.domains
    return render(domain.options)


def test_a_pv_case_guest_is_booted_by_pypxeboot_for_its_mac_and_ends_at_its_installers_reboot() -> None:
    text = xl_config(on_xen.PV)
    for line in (
        'bootloader = "/usr/bin/pypxeboot"',
        f'bootloader_args = [ "mac={MAC},bridge=xenbr0" ]',  # pypxeboot DHCPs for the guest's own MAC
        'on_reboot = "destroy"',
        f'vif = [ "mac={MAC},bridge=xenbr0" ]',
        f'disk = [ "format=raw, vdev=xvda, access=rw, target={on_xen.DISK_DIR}/ks-lvm.img" ]',
    ):
        assert line in text.splitlines(), f"{line!r} not in:\n{text}"


def test_an_hvm_case_guest_netboots_from_its_nic_with_its_serial_line_in_a_file() -> None:
    text = xl_config(on_xen.HVM)
    assert 'type = "hvm"' in text and 'boot = "nc"' in text and "bootloader" not in text
    assert 'serial = "file:/var/log/xen/console/hvm-serial-ks-lvm.log"' in text
    assert on_xen.HVM.console_log.format(name="ks-lvm") == "/var/log/xen/console/hvm-serial-ks-lvm.log"
    assert "model=e1000" in text and "vdev=hda" in text


@pytest.mark.parametrize("kind", [on_xen.PV, on_xen.HVM], ids=lambda k: k.name)
def test_every_case_gets_a_guest_ncm_xen_accepts_with_its_own_address(kind: on_xen.GuestKind) -> None:
    nodes = on_xen.case_nodes(kstest.cases(), "installer")
    assert len({n.host for n in nodes}) == len(nodes) == len(kstest.cases())
    for node in nodes:
        assert f'name = "{node.name}"' in xl_config(kind, node.name)


def test_a_domain_is_gone_only_when_xl_says_so_not_when_dom0_does_not_answer(tmp_path: Path) -> None:
    xl = tmp_path / "xl"
    xl.write_text('#!/bin/sh\n[ "$1" = domid ] && [ "$2" = ks-up ] && echo 7\n')
    xl.chmod(0o755)
    dom0 = ["env", f"PATH={tmp_path}:/usr/bin:/bin", "sh", "-c"]  # the SSH hop, replaced by a local shell
    assert on_xen.domain_running(dom0, "ks-up") is True
    assert on_xen.domain_running(dom0, "ks-gone") is False
    silent = ["sh", "-c", "exit 255", "ssh"]  # what ssh does when its connection drops: no answer at all
    assert on_xen.domain_running(silent, "ks-up") is None
    watch = on_xen.DomainWatch(silent, "ks-up")
    for _ in range(on_xen.MAX_UNANSWERED - 1):
        assert watch.running()  # counted as running meanwhile
    with pytest.raises(LabError, match="did not answer"):
        watch.running()
    answered = on_xen.DomainWatch(dom0, "ks-gone", unanswered=5)
    assert answered.running() is False and answered.unanswered == 0  # an answer resets the count and decides
    assert on_xen.domain_state(dom0, "ks-up") == (True, 7)


def test_a_guest_xen_ended_for_a_triple_fault_is_named_with_xens_line(tmp_path: Path) -> None:
    """As on Dec 5: an HVM case's guest rebooted in its kernel's early boot, and only `xl dmesg` said why."""
    xl = tmp_path / "xl"
    xl.write_text(
        "#!/bin/sh\ncase $1 in\n"
        '  domid) [ "$2" = ks-lang ] && [ ! -e "$0.ended" ] && echo 3 ;;\n'
        "  dmesg) printf '(XEN) d13v0 Triple fault - invoking HVM shutdown action 1\\n"
        "(XEN) d3v0 Triple fault - invoking HVM shutdown action 1\\n(XEN) d4v0 bogus\\n' ;;\n"
        "esac\n"
    )
    xl.chmod(0o755)
    dom0 = ["env", f"PATH={tmp_path}:/usr/bin:/bin", "sh", "-c"]
    watch = on_xen.DomainWatch(dom0, "ks-lang")
    assert watch.running() and watch.domid == 3
    (tmp_path / "xl.ended").touch()
    assert not watch.running() and watch.domid == 3, "the id it had while it ran"
    assert watch.triple_fault() == "(XEN) d3v0 Triple fault - invoking HVM shutdown action 1"
    assert triple_faults(dom0, 4) == [] and on_xen.DomainWatch(dom0, "never-seen").triple_fault() is None
    assert triple_faults(dom0, 13) == ["(XEN) d13v0 Triple fault - invoking HVM shutdown action 1"]  # not d3's
    assert len(triple_faults(dom0)) == 2


def test_the_guests_shape_comes_from_the_hosts_profile_in_either_form() -> None:
    assert SHAPES["pv"] == on_xen.GuestShape(512, "/usr/bin/pypxeboot")  # the seed's 2007 list form
    assert SHAPES["hvm"].bootloader is None  # an HVM guest boots from its NIC's ROM
    domains = json.loads((WESTGRID / "profile_vmhost07.json").read_text())["software"]["components"]["xen"]
    name, entry = next(iter(domains["domains"].items()))  # the nlist form, keyed by config name
    shape = on_xen.shape_of(WESTGRID / "profile_vmhost07.json", entry["options"]["name"])
    assert shape == on_xen.GuestShape(entry["options"]["memory"], entry["options"]["bootloader"]), name


def test_a_pv_guest_without_a_bootloader_in_the_profile_is_refused(tmp_path: Path) -> None:
    tree = json.loads((SEED / "profile_cagxen01.json").read_text())
    for domain in tree["software"]["components"]["xen"]["domains"]:
        domain.pop("bootloader", None)
    (tmp_path / "host.json").write_text(json.dumps(tree))
    with pytest.raises(PreflightError, match="cagnode50 has no bootloader"):
        on_xen.shape_of(tmp_path / "host.json", "cagnode50")
