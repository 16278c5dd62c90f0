"""DHCP on behalf of a guest that does not exist yet.

From dom0, on the bridge the guest will sit on, pypxeboot sends DISCOVER and REQUEST with the guest's MAC as
the client hardware address (chaddr) from a raw AF_PACKET socket.  The broadcast flag is set so that the
server broadcasts its answers: a unicast would go to the guest's MAC, which nobody holds yet.  Answers are
accepted only if they carry our transaction id and the guest's MAC (and, when pinned, come from the
expected server), and their IP and UDP checksums are right.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from pypxeboot.errors import BootError

ETH_P_IP = 0x0800
MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK = 1, 2, 3, 4, 5, 6
PARAMS = bytes([1, 3, 6, 12, 15, 28, 51, 54, 66, 67])
# Packet sockets: ask for each frame's auxiliary data, which says whether the kernel has filled in the
# checksum yet (frames between local namespaces, veths and bridges often carry a partial one).
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 1 << 3


@dataclass(frozen=True)
class Lease:
    address: ipaddress.IPv4Address
    server: ipaddress.IPv4Address  # the DHCP server (option 54)
    next_server: ipaddress.IPv4Address  # siaddr: where to TFTP from
    netmask: ipaddress.IPv4Address | None
    router: ipaddress.IPv4Address | None
    bootfile: str
    hostname: str | None

    @property
    def tftp_server(self) -> ipaddress.IPv4Address:
        return self.next_server if int(self.next_server) else self.server


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_request(src_mac: bytes, chaddr: bytes, xid: int, options: list[tuple[int, bytes]]) -> bytes:
    """An Ethernet frame holding a broadcast BOOTREQUEST from 0.0.0.0:68 to 255.255.255.255:67."""
    bootp = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,
        1,
        6,
        0,
        xid,
        0,
        0x8000,
        bytes(4),
        bytes(4),
        bytes(4),
        bytes(4),
        chaddr.ljust(16, b"\0"),
        bytes(64),
        bytes(128),
    )
    opts = MAGIC + b"".join(bytes([code, len(value)]) + value for code, value in options) + b"\xff"
    payload = (bootp + opts).ljust(300, b"\0")
    udp_len = 8 + len(payload)
    src, dst = bytes(4), b"\xff" * 4
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", 68, 67, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + src_mac + struct.pack("!H", ETH_P_IP) + ip + udp


def parse_options(data: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise ValueError("truncated DHCP option")
        options[code] = options.get(code, b"") + data[i + 2 : i + 2 + data[i + 1]]  # RFC 3396: concatenate
        i += 2 + data[i + 1]
    return options


def parse_reply(
    frame: bytes, xid: int, chaddr: bytes, *, checksum_ready: bool = True
) -> tuple[bytes, dict[int, bytes]] | None:
    """The BOOTP payload and options of a reply to us, or None for anything else on the wire.

    `checksum_ready` is False when the kernel says the UDP checksum is not computed yet (offloaded), in
    which case it cannot be checked.
    """
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != struct.pack("!H", ETH_P_IP):
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17 or ihl < 20 or checksum(ip[:ihl]) != 0:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    udp = ip[ihl:total]
    if len(udp) < 8 or struct.unpack("!H", udp[2:4])[0] != 68:
        return None
    if checksum_ready and udp[6:8] != b"\0\0":
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        if checksum(pseudo + udp) != 0:
            return None
    bootp = udp[8:]
    if len(bootp) < 240 or bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid:
        return None
    if bootp[28 : 28 + 6] != chaddr or bootp[236:240] != MAGIC:
        return None
    try:
        return bootp, parse_options(bootp[240:])
    except ValueError:
        return None


def _text(options: dict[int, bytes], code: int, fallback: bytes = b"") -> str:
    raw = options.get(code, fallback).split(b"\0", 1)[0]  # dnsmasq NUL-terminates options 66 and 67
    return raw.decode("ascii", errors="strict")


def lease_from(bootp: bytes, options: dict[int, bytes]) -> Lease:
    def addr(code: int) -> ipaddress.IPv4Address | None:
        value = options.get(code)
        return ipaddress.IPv4Address(value[:4]) if value and len(value) >= 4 else None

    server = addr(54)
    if server is None:
        raise BootError("DHCP", "the ACK has no server identifier (option 54)")
    try:
        bootfile = _text(options, 67, bootp[108:236])
        hostname = _text(options, 12) or None
    except UnicodeDecodeError:
        raise BootError("DHCP", "the boot file name or host name is not ASCII") from None
    return Lease(
        address=ipaddress.IPv4Address(bootp[16:20]),
        server=server,
        next_server=ipaddress.IPv4Address(bootp[20:24]),
        netmask=addr(1),
        router=addr(3),
        bootfile=bootfile,
        hostname=hostname,
    )


def request_lease(
    interface: str,
    mac: str,
    *,
    deadline: float,
    tries: int = 6,
    wait: float = 3.0,  # a dom0 starved of CPU (nested, under TCG) answers slowly
    expect_server: ipaddress.IPv4Address | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Lease:
    """DISCOVER → OFFER → REQUEST → ACK for `mac`, from `interface`."""
    chaddr = bytes.fromhex(mac.replace(":", ""))
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    except PermissionError:
        raise BootError("DHCP", "a raw socket needs root (CAP_NET_RAW)") from None
    with sock:
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        try:
            sock.bind((interface, ETH_P_IP))
        except OSError as exc:
            raise BootError("DHCP", f"cannot use interface {interface}: {exc.strerror}") from None
        src_mac = sock.getsockname()[4]
        xid = int.from_bytes(os.urandom(4), "big")
        params = (55, PARAMS)
        ignored = Ignored(log)
        for attempt in range(1, tries + 1):
            if time.monotonic() >= deadline:
                break
            sock.send(build_request(src_mac, chaddr, xid, [(53, bytes([DISCOVER])), params]))
            log(f"DHCPDISCOVER for {mac} on {interface} (try {attempt}/{tries})")
            until = min(deadline, time.monotonic() + wait)
            offer = _receive(sock, xid, chaddr, {OFFER}, until, expect_server, ignored)
            if offer is None:
                continue
            bootp, options = offer
            offered, server = bootp[16:20], options[54]
            log(f"DHCPOFFER {ipaddress.IPv4Address(offered)} from {ipaddress.IPv4Address(server)}")
            sock.send(
                build_request(src_mac, chaddr, xid, [(53, bytes([REQUEST])), (50, offered), (54, server), params])
            )
            until = min(deadline, time.monotonic() + wait)
            reply = _receive(sock, xid, chaddr, {ACK, NAK}, until, expect_server, ignored, server=server)
            if reply is None:
                continue
            bootp, options = reply
            if options[53][0] == NAK:
                log("DHCPNAK; starting over")
                continue
            lease = lease_from(bootp, options)
            log(f"DHCPACK {lease.address} next-server {lease.tftp_server} bootfile {lease.bootfile!r}")
            return lease
    who = f" from {expect_server}" if expect_server else ""
    raise BootError("DHCP", f"no lease for {mac} on {interface}{who} after {tries} tries{ignored.summary()}")


class Ignored:
    """Replies for our transaction that could not be used (no 4-byte server identifier, a boot file name that
    is not text…): each is logged and counted, and the wait for a valid one goes on.  One stray or hostile
    packet on the bridge must not end a guest's boot."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.count = 0

    def add(self, why: str) -> None:
        self.count += 1
        self.log(f"ignored a DHCP reply: {why} ({self.count} so far)")

    def summary(self) -> str:
        return f" ({self.count} unusable replies ignored)" if self.count else ""


def usable(bootp: bytes, options: dict[int, bytes]) -> str | None:
    """Why a reply cannot be used, or None."""
    if len(options.get(54, b"")) != 4:
        return "no server identifier of 4 bytes (option 54)"
    if options[53][0] == ACK:
        try:
            lease_from(bootp, options)
        except BootError as exc:
            return str(exc).split(": ", 1)[-1]
    return None


def _receive(
    sock: socket.socket,
    xid: int,
    chaddr: bytes,
    kinds: set[int],
    until: float,
    expect_server: ipaddress.IPv4Address | None,
    ignored: Ignored,
    *,
    server: bytes | None = None,
) -> tuple[bytes, dict[int, bytes]] | None:
    """The next usable reply of one of `kinds` (from `server`, once one was chosen), or None at `until`."""
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame, ancillary, _, _ = sock.recvmsg(65535, socket.CMSG_SPACE(32))
        except TimeoutError:
            return None
        status = next(
            (
                struct.unpack_from("=I", data)[0]
                for level, kind, data in ancillary
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 4
            ),
            0,
        )
        reply = parse_reply(frame, xid, chaddr, checksum_ready=not status & TP_STATUS_CSUMNOTREADY)
        if reply is None or 53 not in reply[1] or reply[1][53][:1] == b"" or reply[1][53][0] not in kinds:
            continue
        why = usable(*reply)
        if why is not None:
            ignored.add(why)
            continue
        if expect_server is not None and reply[1][54] != expect_server.packed:
            continue  # another server answering for our MAC: not the one we trust
        if server is not None and reply[1][54] != server:
            continue  # not the server we sent our REQUEST to
        return reply
    return None
