"""AII: kickstarts that Anaconda's parser reads back, the shell front end, DHCP and DNS entries."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import pytest
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from quattor.aii import dhcp, ks, node, shellfe
from quattor.profile import ProfileError
from tests.quattor_helpers import PROFILES, profile, shipped, write


def parse_ks(text: str) -> KickstartParser:
    parser = KickstartParser(makeVersion())
    parser.readKickstartFromString(text)
    return parser


def test_the_seed_guest_is_shipped_as_the_talk_declares_it() -> None:
    seed = shipped("cagxen01")["software"]["components"]["xen"]["domains"][0]
    assert seed == {
        "memory": 512,
        "name": "cagnode50",
        "disk": [
            {"type": "file", "path": "/var/xen-grid/cagnode50/fs/disk", "device": "sda", "size": 10240, "rw": "w"},
            {
                "type": "lvm",
                "hostdevice": "xenvg",
                "hostvol": "cagnode50-swap",
                "size": 6144,
                "device": "hda3",
                "rw": "w",
            },
        ],
        "vif": "[ 'mac=AA:00:86:e2:35:72' ]",
        "bootloader": "/usr/bin/pypxeboot",
        "bootargs": "vif[0]",
    }
    assert node.read(profile(shipped("cagnode50"))).mac == "aa:00:86:e2:35:72"


def test_host_kickstart_round_trips_through_pykickstart() -> None:
    aii = node.read(profile(shipped("cagxen01")))
    text = ks.kickstart(aii, payload_image="dom0.tar.zst", ack_base="http://gridinstall.xenlab.test")
    parser = parse_ks(text)
    h = parser.handler
    assert h.network.network[0].ip == "10.77.0.20" and h.network.network[0].hostname == "cagxen01.xenlab.test"
    assert h.rootpw.isCrypted and h.rootpw.password.startswith("$6$")
    assert h.liveimg.url == "http://gridinstall.xenlab.test/payload/dom0.tar.zst"
    assert [p.mountpoint for p in h.partition.partitions] == ["/", "pv.01"]
    assert h.volgroup.vgList[0].vgname == "xenvg" and h.volgroup.vgList[0].physvols == ["pv.01"]
    assert h.bootloader.location == "mbr" and h.clearpart.initAll and h.zerombr.zerombr and h.reboot.action
    post = h.scripts[0].script
    assert (
        "ncm-ncd --nodeps --profile http://gridinstall.xenlab.test/profiles/profile_cagxen01.json --configure grub"
        in post
    )
    assert post.rstrip().endswith("wget -q -O - http://gridinstall.xenlab.test/cgi-bin/aii-installack.cgi")
    # Round trip: what pykickstart writes back parses to the same meaning.
    again = parse_ks(str(h)).handler
    assert str(again) == str(h)


def test_guest_kickstart_has_no_volume_group() -> None:
    aii = node.read(profile(shipped("cagnode50")))
    h = parse_ks(ks.kickstart(aii, payload_image="guest", ack_base="http://gridinstall")).handler
    assert [p.mountpoint for p in h.partition.partitions] == ["/"] and not h.volgroup.vgList


def test_boot_entry_follows_aii_conventions() -> None:
    aii = node.read(profile(shipped("cagnode50")))
    entry = aii.boot_entry()
    assert entry.append == (
        "ks=http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks",
        "ksdevice=eth0",
        "console=hvc0",  # a PV guest's console
        "net.ifnames=0",
    )
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["system"]["aii"]["nbp"]["options"]["ramdisk"] = True
    assert node.read(profile(tree)).boot_entry().append[0] == "ramdisk=32768"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("/system/aii/osinstall/options/rootpw", "secret", "never plain"),
        ("/system/aii/osinstall/options/timezone", "Europe/Dublin\n%pre\nrm -rf /\n%end", "one-line string"),
    ],
)
def test_kickstart_refuses_dangerous_values(path: str, value: str, message: str) -> None:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["system"]["aii"]["osinstall"]["options"][path.rsplit("/", 1)[1]] = value
    with pytest.raises(ProfileError, match=message):
        ks.kickstart(node.read(profile(tree)), payload_image="x", ack_base="http://g")


def test_a_quote_in_the_profile_url_stays_inside_its_shell_word() -> None:
    import shlex

    tree = copy.deepcopy(shipped("cagnode50"))
    url = "http://gridinstall/p.json'; touch /tmp/pwned; echo '"
    tree["system"]["aii"]["osinstall"]["options"]["profile_url"] = url
    text = ks.kickstart(node.read(profile(tree)), payload_image="x", ack_base="http://g")
    (line,) = [line for line in text.splitlines() if "/etc/ccm.conf" in line]
    assert shlex.split(line) == ["echo", f"profile {url}", ">", "/etc/ccm.conf"]  # one word, as a shell reads it


def test_a_quote_in_the_kernel_arguments_is_refused() -> None:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["system"]["aii"]["nbp"]["options"]["append"] = 'console=hvc0 x="y --location=none'
    with pytest.raises(ProfileError, match="/system/aii/nbp/options/append: kernel argument 'x=\"y' has a quote"):
        ks.kickstart(node.read(profile(tree)), payload_image="x", ack_base="http://g")


@pytest.mark.parametrize("nics", [[{"hwaddr": "AA:00:86:e2:35:72", "boot": True}], "eth0"])
def test_nics_that_are_not_an_nlist_are_refused(nics: object) -> None:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["hardware"]["cards"]["nic"] = nics
    with pytest.raises(ProfileError, match="/hardware/cards/nic: expected an nlist of NICs"):
        node.read(profile(tree))


def test_a_mac_with_a_trailing_newline_is_refused() -> None:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["hardware"]["cards"]["nic"]["eth0"]["hwaddr"] = "AA:00:86:e2:35:72\n"
    with pytest.raises(ProfileError, match="/hardware/cards/nic/eth0/hwaddr: expected a MAC"):
        node.read(profile(tree))


def test_a_profile_without_one_boot_nic_is_refused() -> None:
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["hardware"]["cards"]["nic"]["eth0"]["boot"] = False
    with pytest.raises(ProfileError, match="/hardware/cards/nic: expected exactly one NIC with boot true"):
        node.read(profile(tree))


def test_shellfe_configure_install_boot_status_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "srv"
    base = ["--profiles", str(PROFILES), "--root", str(root), "--http-base", "http://gridinstall.xenlab.test"]
    assert shellfe.main(["--configure", "cagxen01", "cagnode50", *base]) == 0
    assert (root / "ks/cagxen01.xenlab.test.ks").exists()
    assert "aa:00:86:e2:35:72,10.77.0.50,cagnode50" in (root / "aii/dhcp-hosts").read_text()
    assert "10.77.0.20 cagxen01.xenlab.test cagxen01" in (root / "aii/hosts").read_text()
    assert shellfe.main(["--install", "cagnode50", *base]) == 0
    assert (root / "pxelinux.cfg/0A4D0032").readlink() == Path("cagnode50.xenlab.test.cfg")
    capsys.readouterr()
    assert shellfe.main(["--status", "cagnode50", "cagxen01", *base]) == 0
    out = capsys.readouterr().out
    assert "cagnode50.xenlab.test: install" in out and "cagxen01.xenlab.test: boot" in out
    assert shellfe.main(["--boot", "cagnode50", *base]) == 0
    assert shellfe.main(["--remove", "cagnode50", *base]) == 0
    assert not (root / "ks/cagnode50.xenlab.test.ks").exists()
    assert "cagnode50" not in (root / "aii/dhcp-hosts").read_text()


def test_shellfe_reports_each_bad_host_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = shellfe.main(
        ["--configure", "nosuchnode", "cagnode50", "--profiles", str(PROFILES), "--root", str(tmp_path)]
    )
    assert code == 1
    assert "nosuchnode: /: no profile for nosuchnode: tried " in capsys.readouterr().err
    assert (tmp_path / "ks/cagnode50.xenlab.test.ks").exists()  # the good host was still done


def test_dhcp_entries_refuse_a_mac_taken_by_another_node(tmp_path: Path) -> None:
    entries = dhcp.DhcpEntries(tmp_path)
    a = node.read(profile(shipped("cagnode50")))
    entries.configure(a)
    entries.configure(a)  # idempotent
    assert (tmp_path / "dhcp-hosts").read_text().count("cagnode50") == 1
    other = copy.deepcopy(shipped("cagnode51"))
    other["hardware"]["cards"]["nic"]["eth0"]["hwaddr"] = "AA:00:86:e2:35:72"
    with pytest.raises(ValueError, match="already belongs to cagnode50"):
        entries.configure(node.read(profile(other)))


def test_profiles_load_from_a_url(tmp_path: Path) -> None:
    from quattor.profile import load
    from tests.loopback_http import directory, serving

    write(tmp_path, shipped("cagnode50"), "profile_cagnode50.json")
    with serving(directory(tmp_path)) as where:
        aii = node.read(load(f"http://{where}/profile_cagnode50.json"))
    assert aii.ip == ipaddress.IPv4Address("10.77.0.50")


def test_a_lab_from_profiles_reads_them_as_aii_does(tmp_path: Path) -> None:
    from foundation.errors import PreflightError
    from lab.lab import spec_from_profiles

    spec = spec_from_profiles("t", PROFILES, ("cagxen01", "cagnode50"))
    assert [(n.name, n.host, n.mac) for n in spec.nodes] == [
        ("cagxen01", 20, "52:54:00:77:00:20"),
        ("cagnode50", 50, "aa:00:86:e2:35:72"),
    ]
    assert (spec.domain, str(spec.subnet)) == ("xenlab.test", "10.77.0.0/24")
    broken = copy.deepcopy(shipped("cagnode50"))
    broken["hardware"]["cards"]["nic"]["eth0"]["hwaddr"] = "not-a-mac"
    write(tmp_path, broken, "profile_cagnode50.json")
    with pytest.raises(PreflightError, match="/hardware/cards/nic/eth0/hwaddr: expected a MAC"):
        spec_from_profiles("t", tmp_path, ("cagnode50",))


def test_a_node_whose_firmware_is_ipxe_gets_the_http_route_tag(tmp_path: Path) -> None:
    """A profile that asks for the iPXE route (its firmware is iPXE): its DHCP entry carries the tag the install
    server answers with an iPXE script; the others' entries do not; an unknown route is refused."""
    from quattor.aii.dhcp import HTTPBOOT_TAG, DhcpEntries

    ipxe = copy.deepcopy(shipped("cagnode52"))
    ipxe["system"]["aii"]["dhcp"]["options"]["route"] = "ipxe"
    entries = DhcpEntries(tmp_path)
    entries.configure(node.read(profile(shipped("cagnode50"))))
    entries.configure(node.read(profile(ipxe)))
    lines = (tmp_path / "dhcp-hosts").read_text().splitlines()[1:]
    assert lines == [
        "aa:00:86:e2:35:72,10.77.0.50,cagnode50",
        f"aa:00:86:e2:35:74,10.77.0.52,cagnode52,set:{HTTPBOOT_TAG}",
    ]
    entries.configure(node.read(profile(ipxe)))  # configuring again keeps one line per node
    assert len((tmp_path / "dhcp-hosts").read_text().splitlines()) == 3
    tree = copy.deepcopy(shipped("cagnode50"))
    tree["system"]["aii"]["dhcp"]["options"]["route"] = "tftp"
    with pytest.raises(ProfileError, match="route: expected one of pxelinux, ipxe"):
        node.read(profile(tree))


def test_shellfe_reports_a_crash_as_that_hosts_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def crash_once(action: str, aii: node.AiiNode, *rest: object) -> str:
        calls.append(aii.hostname)
        if aii.hostname == "cagnode50":
            raise KeyError("label")
        return "configured"

    monkeypatch.setattr(shellfe, "run", crash_once)
    code = shellfe.main(["--configure", "cagnode50", "cagnode51", "--profiles", str(PROFILES), "--root", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1 and calls == ["cagnode50", "cagnode51"]  # the second host is still done
    assert "[ERROR] aii-shellfe: cagnode50: internal error (KeyError: 'label'); a bug" in captured.err
    assert "cagnode51.xenlab.test: configured" in captured.out


def test_the_way_out_of_the_network_boot_is_read_from_the_profile() -> None:
    tree = copy.deepcopy(shipped("cagnode52"))
    assert node.read(profile(tree)).boot.localboot == "exit"  # the default: back to the BIOS's boot order
    tree["system"]["aii"]["nbp"]["options"]["localboot"] = "sanboot"
    assert node.read(profile(tree)).boot.localboot == "sanboot"
    tree["system"]["aii"]["nbp"]["options"]["localboot"] = "chain"
    with pytest.raises(ProfileError, match=r"/system/aii/nbp/options/localboot"):
        node.read(profile(tree))
