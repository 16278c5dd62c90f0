"""Profiles in panc's XML form (`profile_<host>.xml`, what 2007's CCM fetched), by path and by URL, read
into the same tree and checked by the same readers as the JSON form."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from quattor.aii import node
from quattor.ncm.component import Context
from quattor.ncm.components import xen_model
from quattor.ncm.components.xen import XenComponent
from quattor.profile import ProfileError, load, load_node
from tests.loopback_http import directory, serving
from tests.quattor_helpers import shipped

# Written by hand in panc's `pan` XML format (CCM's XMLPanProfile: nlist/list/string/long/double/boolean,
# a name on every nlist child, checksum/acl/derivation attributes, base64 strings), not from our JSON.
CAGNODE50_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<nlist format="pan" name="profile" derivation="profile_cagnode50">
 <nlist name="hardware">
  <nlist name="cards"><nlist name="nic"><nlist name="eth0">
   <boolean name="boot">true</boolean>
   <string name="hwaddr">AA:00:86:e2:35:72</string>
   <boolean name="pxe">true</boolean>
  </nlist></nlist></nlist>
  <nlist name="harddisks"><nlist name="xvda"><long name="capacity">20480</long></nlist></nlist>
  <list name="ram"><nlist><long name="size" checksum="0a1b2c">512</long></nlist></list>
 </nlist>
 <nlist name="software"><nlist name="components"/></nlist>
 <nlist name="system">
  <nlist name="aii">
   <nlist name="dhcp"><nlist name="options"><string name="tftpserver">gridinstall</string></nlist></nlist>
   <nlist name="nbp"><nlist name="options">
    <string name="append">console=hvc0 net.ifnames=0</string>
    <string name="initrd">http://gridinstall.xenlab.test/boot/installer/initrd.img</string>
    <string name="kernel">http://gridinstall.xenlab.test/boot/installer/vmlinuz</string>
    <string name="ksdevice">eth0</string>
    <string name="label">Install cagnode50</string>
   </nlist></nlist>
   <nlist name="osinstall"><nlist name="options">
    <string name="bootloader_location">mbr</string>
    <string name="kslocation">http://gridinstall.xenlab.test/ks/cagnode50.xenlab.test.ks</string>
    <string name="payload">http://gridinstall.xenlab.test/payload/{image}</string>
    <string name="profile_url">http://gridinstall.xenlab.test/profiles/profile_cagnode50.json</string>
    <string name="rootpw" encoding="base64">JDYkeGVubGFiJDdYNmdPUTcuYjJwSjhlOUxwTzFybEpkZDNUNXlWM1gwdVAzbzNsQjNHazZL
      MGNTM21PcXZQNWU4bEQwWXdHMmJHbTFzNW03SnEycFgxeVE5Y1ExWkov</string>
    <string name="timezone">Europe/Dublin</string>
   </nlist></nlist>
  </nlist>
  <nlist name="kernel"><string name="version">6.1.0-56-amd64</string></nlist>
  <nlist name="network">
   <string name="domainname">xenlab.test</string>
   <string name="hostname">cagnode50</string>
   <nlist name="interfaces"><nlist name="eth0">
    <string name="bootproto">static</string>
    <string name="ip">10.77.0.50</string>
    <string name="netmask">255.255.255.0</string>
   </nlist></nlist>
   <list name="nameserver"><string>10.77.0.1</string></list>
  </nlist>
 </nlist>
</nlist>
"""


def test_the_xml_form_reads_as_the_json_form(tmp_path: Path) -> None:
    (tmp_path / "profile_cagnode50.xml").write_bytes(CAGNODE50_XML)
    assert load(tmp_path / "profile_cagnode50.xml").tree == shipped("cagnode50")
    aii = node.read(load_node(tmp_path, "cagnode50"))  # no .json: the .xml, as AII 1.x named it
    assert (aii.mac, aii.ip, aii.label) == (
        "aa:00:86:e2:35:72",
        ipaddress.IPv4Address("10.77.0.50"),
        "Install cagnode50",
    )


@pytest.fixture
def profile_server(tmp_path: Path) -> Iterator[str]:
    with serving(directory(tmp_path)) as where:
        yield f"http://{where}"


def test_the_xml_form_by_url(tmp_path: Path, profile_server: str) -> None:
    (tmp_path / "profile_cagnode50.xml").write_bytes(CAGNODE50_XML)
    assert load_node(profile_server, "cagnode50").tree == shipped("cagnode50")
    with pytest.raises(ProfileError, match=r"no profile for cagnode99: tried .*profile_cagnode99.json and .*\.xml"):
        load_node(profile_server, "cagnode99")


def test_components_check_xml_profiles_as_they_check_json(tmp_path: Path) -> None:
    host = b"""<?xml version="1.0"?>
<nlist format="pan" name="profile"><nlist name="software"><nlist name="components"><nlist name="xen">
 <boolean name="create_domains">false</boolean>
 <list name="domains"><nlist>
  <string name="name">gridmon</string><string name="memory">512MB</string>
 </nlist></list>
</nlist></nlist></nlist></nlist>"""
    (tmp_path / "p.xml").write_bytes(host)
    with pytest.raises(
        ProfileError,
        match=r'/software/components/xen/domains/0/memory: expected a positive integer \(MiB\), got "512MB"',
    ):
        XenComponent().configure(load(tmp_path / "p.xml"), Context(root=tmp_path))
    good = host.replace(b'<string name="memory">512MB</string>', b'<long name="memory">512</long>')
    (tmp_path / "p.xml").write_bytes(good)
    config = xen_model.read(load(tmp_path / "p.xml").reader("/software/components/xen"))
    assert (config.domains[0].key, config.domains[0].options.memory) == ("gridmon", 512)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><nlist format="pan" name="profile"/>', "DOCTYPE or ENTITY"),
        (b'<nlist format="xmldb" name="profile"/>', "only panc's 'pan' XML format"),
        (b'<list name="profile"/>', "expected an <nlist> at the top"),
        (b'<nlist name="profile"><long name="x">12a</long></nlist>', r"/x: <long> holds '12a'"),
        (b'<nlist name="profile"><boolean name="b">yes</boolean></nlist>', "/b: <boolean> holds 'yes'"),
        (b'<nlist name="profile"><string>no name</string></nlist>', "needs a name"),
        (
            b'<nlist name="profile"><nlist name="a"><link name="l">/x</link></nlist></nlist>',
            "/a/l: unknown element <link>",
        ),
        (b'<nlist name="profile"><string name="s" encoding="base64">!!</string></nlist>', "/s: not valid base64"),
        (b'<nlist name="profile"><string name="s" onload="x">v</string></nlist>', "unknown attribute 'onload'"),
        (b'<nlist name="profile"><string name="a">1</string><string name="a">2</string></nlist>', "/a: defined twice"),
        (b"<nlist name='profile'><unclosed></nlist>", "not well-formed XML"),
    ],
)
def test_bad_xml_profiles_are_refused_naming_where(tmp_path: Path, xml: bytes, message: str) -> None:
    (tmp_path / "p.xml").write_bytes(xml)
    with pytest.raises(ProfileError, match=message):
        load(tmp_path / "p.xml")
