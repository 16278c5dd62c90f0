"""The suite's guests as ncm-xen reads them: each kind's domain goes through ncm-xen's own reader and writer
(the component that makes them on the host), and names what the case's boot needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.errors import LabError
from lab import kickstart_cases as kstest
from lab import kstest_guests as on_xen
from quattor.ncm.components import xen_model
from quattor.ncm.components.xen import render
from quattor.profile import Profile

MAC = "52:54:00:01:00:65"


def xl_config(kind: on_xen.GuestKind, name: str = "ks-lvm") -> str:
    tree = {"software": {"components": {"xen": {"create_domains": True, "domains": [kind.domain(name, MAC)]}}}}
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
    xl.write_text('#!/bin/sh\n[ "$1" = domid ] && [ "$2" = ks-up ]\n')
    xl.chmod(0o755)
    dom0 = ["env", f"PATH={tmp_path}:/usr/bin:/bin", "sh", "-c"]  # the SSH hop, replaced by a local shell
    assert on_xen.domain_running(dom0, "ks-up") is True
    assert on_xen.domain_running(dom0, "ks-gone") is False
    silent = ["sh", "-c", "exit 255", "ssh"]  # what ssh does when its connection drops: no answer at all
    assert on_xen.domain_running(silent, "ks-up") is None
    unanswered = [0]
    for _ in range(on_xen.MAX_UNANSWERED - 1):
        assert on_xen.still_running(silent, "ks-up", unanswered)  # counted as running meanwhile
    with pytest.raises(LabError, match="did not answer"):
        on_xen.still_running(silent, "ks-up", unanswered)
    assert on_xen.still_running(dom0, "ks-gone", [5]) is False  # an answer resets the count and decides
