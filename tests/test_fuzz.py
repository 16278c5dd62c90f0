"""The fuzz tier: hypothesis against every parser and validator of the system under test.

Properties: nothing raises but the module's own error type; nothing is written outside the output
directory or `--root`; what is written reads back, through readers written here from the toolstacks'
grammars (xend's SXP parser, libxl's simple0 reader), as what was meant.  Bounded: a fixed number of
examples per property, derandomized, so CI runs the same inputs every time, in seconds.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypxeboot import dhcp, output, pxeconfig, tftp
from pypxeboot.errors import BootError
from quattor import panxml
from quattor.aii import ks, node
from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components.grub import GrubComponent
from quattor.ncm.components.xen import XenComponent
from quattor.profile import Profile, ProfileError
from tests.quattor_helpers import shipped

pytestmark = pytest.mark.fuzz

BUDGET = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHOICE = {"ip_info": "ip=10.0.0.5:10.0.0.1:0.0.0.0:255.255.255.0", "bootif": "BOOTIF=01-aa-00-86-e2-35-72"}

# --- pxelinux configs ------------------------------------------------------------------------------------------
KEYWORDS = [
    "default",
    "label",
    "kernel",
    "linux",
    "append",
    "initrd",
    "localboot",
    "ipappend",
    "menu",
    "text",
    "endtext",
    "timeout",
    "prompt",
    "say",
    "include",
    "mboot.c32",
    "DEFAULT",
    "LABEL",
    "APPEND",
]
pxe_line = st.one_of(
    st.tuples(st.sampled_from(KEYWORDS), st.text(max_size=40)).map(lambda t: f"{t[0]} {t[1]}"),
    st.text(max_size=60),
)
pxe_config = st.one_of(
    st.lists(pxe_line, max_size=12).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
    st.binary(max_size=400),
)


@BUDGET
@given(pxe_config, st.one_of(st.none(), st.text(max_size=20)))
def test_pxelinux_configs_parse_or_say_why(data: bytes, label: str | None) -> None:
    try:
        choice = pxeconfig.parse(data, "cfg").choose(label, **CHOICE)
    except BootError:
        return
    # What a config boots is always free of line breaks and controls: it reaches a kernel command line.
    for value in (choice.label, choice.kernel or "", *choice.initrds, *choice.args):
        assert not any(ord(c) < 0x20 and c != "\t" for c in value), value
        assert "\u2028" not in value and "\x85" not in value


# --- DHCP frames -----------------------------------------------------------------------------------------------
GUEST = bytes.fromhex("aa0086e23572")


def frame_around(bootp: bytes) -> bytes:
    """A well-formed Ethernet/IP/UDP frame around any BOOTP payload, so the fuzzing reaches the options."""
    udp = struct.pack("!HHHH", 67, 68, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x0a\x4d\0\1", b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", dhcp.checksum(ip)) + ip[12:]
    return b"\xff" * 6 + b"\x52\x54\0\0\0\1" + b"\x08\x00" + ip + udp


bootp_payload = st.tuples(st.binary(min_size=0, max_size=300), st.binary(max_size=300)).map(
    lambda t: (
        bytes([2, 1, 6, 0])
        + struct.pack("!I", 7)
        + t[0].ljust(20, b"\0")[:20]
        + GUEST.ljust(16, b"\0")
        + bytes(192)
        + dhcp.MAGIC
        + t[1]
    )
)


@BUDGET
@given(st.one_of(bootp_payload.map(frame_around), st.binary(max_size=600)))
def test_dhcp_replies_are_used_ignored_or_refused(frame: bytes) -> None:
    reply = dhcp.parse_reply(frame, 7, GUEST, checksum_ready=False)
    if reply is None:
        return
    bootp, options = reply
    if 53 not in options or not options[53]:
        return
    why = dhcp.usable(bootp, options)
    if why is None and options[53][0] == dhcp.ACK:
        lease = dhcp.lease_from(bootp, options)  # usable means it becomes a lease, without an exception
        assert isinstance(lease.address, ipaddress.IPv4Address)


# --- TFTP: a server that answers anything ------------------------------------------------------------------------
class ScriptedServer:
    """Stands in for the UDP socket: every packet received is the next of `packets`, from the server."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)
        self.sent: list[bytes] = []

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def settimeout(self, _: float) -> None:
        pass

    def sendto(self, data: bytes, _: tuple[str, int]) -> None:
        self.sent.append(data)

    def recvfrom(self, _: int) -> tuple[bytes, tuple[str, int]]:
        if not self.packets:
            raise TimeoutError
        return self.packets.pop(0), ("10.77.0.1", 40000)


tftp_packet = st.one_of(
    st.binary(max_size=40),
    st.tuples(st.sampled_from([3, 5, 6, 4, 9]), st.integers(0, 70000), st.binary(max_size=600)).map(
        lambda t: struct.pack("!HH", t[0], t[1] & 0xFFFF) + t[2]
    ),
)


@BUDGET
@given(st.lists(tftp_packet, max_size=8), st.integers(0, 2048))
def test_tftp_downloads_keep_their_cap_and_fail_with_a_reason(packets: list[bytes], cap: int) -> None:
    server = ScriptedServer(packets)
    out = io.BytesIO()
    with mock.patch.object(socket, "socket", lambda *a: server), mock.patch.object(tftp, "PACKET_TIMEOUT", 0.001):
        try:
            size = tftp.fetch(
                ipaddress.IPv4Address("10.77.0.1"), "pxelinux.cfg/default", out, cap=cap, deadline=time.monotonic() + 5
            )
        except (BootError, tftp.NotFound):
            size = None
    assert len(out.getvalue()) <= cap
    if size is not None:
        assert size == len(out.getvalue())


# --- the answers, read back by the toolstacks' own grammars ------------------------------------------------------
SXP_SEPARATORS = set(" \t\r\n()[]{}<>!;")
SXP_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "b": "\b", "f": "\f", "v": "\v"}


def read_sxp(text: str) -> Any:
    """xend's sxp.Parser, written from its grammar: lists in (), atoms, '…' or "…" strings with backslash
    escapes (\\n \\t \\\\ \\' \\" \\xHH \\ooo), # comments, separators whitespace ( ) [ ] { } < > ! ;."""
    pos = 0
    stack: list[list[Any]] = [[]]
    while pos < len(text):
        c = text[pos]
        if c in " \t\r\n":
            pos += 1
        elif c == "#":
            pos = text.find("\n", pos) if "\n" in text[pos:] else len(text)
        elif c == "(":
            stack.append([])
            pos += 1
        elif c == ")":
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c in "'\"":
            quote, pos, value = c, pos + 1, ""
            while text[pos] != quote:
                if text[pos] == "\\":
                    e = text[pos + 1]
                    if e == "x":
                        value, pos = value + chr(int(text[pos + 2 : pos + 4], 16)), pos + 4
                        continue
                    if e in "01234567":
                        digits = re.match(r"[0-7]{1,3}", text[pos + 1 :]).group(0)  # type: ignore[union-attr]  # a digit follows
                        value, pos = value + chr(int(digits, 8)), pos + 1 + len(digits)
                        continue
                    value, pos = value + SXP_ESCAPES.get(e, e), pos + 2
                else:
                    value, pos = value + text[pos], pos + 1
            stack[-1].append(value)
            pos += 1
        else:
            start = pos
            while pos < len(text) and text[pos] not in SXP_SEPARATORS:
                pos += 1
            stack[-1].append(text[start:pos])
    assert len(stack) == 1
    return stack[0]


def read_simple0(data: bytes) -> dict[str, str]:
    """libxl's parse_bootloader_result: NUL-separated items `key<whitespace>value`, leading whitespace of the
    value skipped, empty items ignored, to the end."""
    found: dict[str, str] = {}
    for item in data.split(b"\0"):
        if not item:
            continue
        text = item.decode()
        key, _, value = text.partition(" ") if " " in text else text.partition("\t")
        found[key] = value.lstrip(" \t")
    return found


answer_value = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@BUDGET
@given(answer_value, st.one_of(st.none(), answer_value), answer_value)
def test_answers_read_back_as_they_were_meant(kernel: str, ramdisk: str | None, args: str) -> None:
    answer = output.BootAnswer(kernel, ramdisk, args)
    for fmt in ("sxp", "simple0"):
        try:
            data = output.render(answer, fmt)
        except BootError:
            return  # refused (a control character, a path that starts with whitespace): never half-said
        if fmt == "simple0":
            back = read_simple0(data)
            assert back == {
                "kernel": kernel,
                **({"ramdisk": ramdisk} if ramdisk is not None else {}),
                "args": args.lstrip(" \t"),
            }
        else:
            (top,) = [read_sxp(data.decode())]
            assert top[0] == "linux"
            back = {item[0]: item[1] for item in top[1:]}
            assert back == {
                "kernel": kernel,
                **({"ramdisk": ramdisk} if ramdisk is not None else {}),
                "args": args.lstrip(" \t"),
            }
            assert all(len(item) == 2 for item in top[1:])  # no value grew a second element (XSA-198)


# --- profiles and components -------------------------------------------------------------------------------------
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=30),
    st.sampled_from(
        [
            "xvda",
            "/var/x/disk",
            "../..",
            "-rf",
            "mac=AA:00:86:e2:35:72",
            "lvm",
            "file",
            "phy",
            "xenvg",
            "/dev/../etc/shadow",
            "vif[0]",
            "hvm",
            "a\nb",
            "w",
        ]
    ),
)
tree = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)
DISK_KEYS = ["type", "path", "guestdevice", "device", "hostdevice", "hostvol", "size", "rw", "create", "access_method"]
disk = st.dictionaries(st.sampled_from(DISK_KEYS), scalar, max_size=8)
OPTION_KEYS = [
    "name",
    "memory",
    "vif",
    "disk",
    "bootloader",
    "bootargs",
    "type",
    "builder",
    "vcpus",
    "on_crash",
    "extra",
]
domain = st.fixed_dictionaries(
    {"disk": st.lists(disk, max_size=3)}, optional={k: scalar for k in OPTION_KEYS if k != "disk"}
)
xen_tree = st.fixed_dictionaries(
    {
        "domains": st.one_of(
            st.lists(domain, max_size=3),
            st.dictionaries(st.text(max_size=10), st.fixed_dictionaries({"options": domain}), max_size=2),
            tree,
        ),
    },
    optional={"create_filesystems": scalar, "create_domains": st.just(False)},
)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@BUDGET
@given(xen_tree)
def test_ncm_xen_takes_any_profile_or_says_where_it_is_wrong(xen: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as outer:
        root = Path(outer) / "root"
        root.mkdir()
        ctx = Context(root=root, env={"PATH": "/nonexistent", "LC_ALL": "C"})  # no host tool: queries fail
        profile = Profile({"software": {"components": {"xen": xen}}}, "fuzz")
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(ProfileError, ComponentError):
            XenComponent().configure(profile, ctx)
        assert {p.name for p in Path(outer).iterdir()} == {"root"}, "something was written outside --root"
        for path in files_under(root):
            assert path.resolve().is_relative_to(root.resolve()) or path.is_symlink()
            if path.suffix == ".cfg" and path.parent.name == "xen":
                text = path.read_text()
                assert all(line.count('"') % 2 == 0 for line in text.splitlines()), text  # no quote left open


grub_kernel = st.fixed_dictionaries(
    {"kernelpath": scalar}, optional={k: scalar for k in ("kernelargs", "multiboot", "mbargs", "initrd", "title")}
)


@BUDGET
@given(
    st.lists(grub_kernel, max_size=3),
    scalar,
    scalar,
    st.one_of(scalar, st.dictionaries(st.sampled_from(["unit", "speed", "parity"]), scalar)),
)
def test_ncm_grub_takes_any_profile_or_says_where_it_is_wrong(
    kernels: list[Any], args: Any, version: Any, serial: Any
) -> None:
    with tempfile.TemporaryDirectory() as outer:
        root = Path(outer) / "root"
        (root / "boot/grub").mkdir(parents=True)
        (root / "boot/grub/grub.cfg").write_text("# update-grub\n")
        tree = {
            "software": {"components": {"grub": {"kernels": kernels, "args": args, "fullcontrol": True}}},
            "system": {"kernel": {"version": version}},
            "hardware": {"console": {"serial": serial}},
        }
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(ProfileError, ComponentError):
            GrubComponent().configure(Profile(tree, "fuzz"), Context(root=root))
        assert {p.name for p in Path(outer).iterdir()} == {"root"}


def aii_variant(changes: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = json.loads(json.dumps(shipped("cagnode50")))
    for path, value in changes.items():
        where = base
        *parents, last = path.split("/")
        for part in parents:
            where = where.setdefault(part, {}) if isinstance(where, dict) else {}
        if isinstance(where, dict):
            where[last] = value
    return base


AII_PATHS = [
    "hardware/cards/nic",
    "hardware/cards/nic/eth0/hwaddr",
    "system/network/hostname",
    "system/network/domainname",
    "system/network/interfaces/eth0/ip",
    "system/network/interfaces/eth0/netmask",
    "system/aii/nbp/options/append",
    "system/aii/nbp/options/label",
    "system/aii/osinstall/options/profile_url",
    "system/aii/osinstall/options/rootpw",
    "system/aii/osinstall/options/disk",
    "system/aii/osinstall/options/lvm",
    "system/aii/dhcp/options/route",
    "system/aii/osinstall/options/post_components",
    "system/network/nameserver",
]


@BUDGET
@given(st.dictionaries(st.sampled_from(AII_PATHS), tree, max_size=3))
def test_aii_takes_any_profile_or_says_where_it_is_wrong(changes: dict[str, Any]) -> None:
    try:
        aii = node.read(Profile(aii_variant(changes), "fuzz"))
        text = ks.kickstart(aii, payload_image="x", ack_base="http://gridinstall")
        entry = aii.boot_entry()
    except (ProfileError, ValueError):
        return
    assert "\0" not in text
    for value in (entry.label, *entry.append):
        assert "\n" not in value and "\r" not in value


@BUDGET
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.text(max_size=10).map(lambda t: f'<string name="s">{t}</string>'.encode("utf-8", "surrogatepass")),
            lambda inner: st.lists(inner, max_size=3).map(lambda xs: b'<nlist name="n">' + b"".join(xs) + b"</nlist>"),
            max_leaves=10,
        ).map(lambda body: b'<nlist format="pan" name="profile">' + body + b"</nlist>"),
    )
)
def test_panc_xml_parses_or_says_where_it_is_wrong(data: bytes) -> None:
    try:
        tree_ = panxml.parse(data)
    except panxml.PanXmlError:
        return
    assert isinstance(tree_, dict)
