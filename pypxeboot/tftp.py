"""A TFTP client (RFC 1350, with the blksize and tsize options of RFCs 2347-2349).

Made for hostile servers: the server's transfer port is fixed by its first answer and packets from anyone
else are refused; a transfer stops at its size cap (also when the announced tsize exceeds it); every
packet wait has a timeout and the whole transfer a deadline.  "File not found" is told apart from a
silent server: only the former lets the config lookup fall back to the next name.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from typing import BinaryIO

from pypxeboot.errors import BootError

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6
NOT_FOUND = 1
BLKSIZE = 1468  # the largest that fits an Ethernet frame unfragmented
PACKET_TIMEOUT = 1.0
RETRIES = 5


class NotFound(Exception):
    """The server says the file does not exist (TFTP error 1)."""


def valid_path(path: str) -> str:
    """Refuse what could climb out of the TFTP root or confuse the server."""
    if not path or len(path) > 255 or any(ord(c) < 0x21 or ord(c) > 0x7E for c in path):
        raise BootError(f"TFTP {path[:60]!r}", "not a plain printable path")
    if ".." in path.replace("\\", "/").split("/"):
        raise BootError(f"TFTP {path}", "paths with '..' are refused")
    return path


def fetch(
    server: ipaddress.IPv4Address,
    path: str,
    out: BinaryIO,
    *,
    cap: int,
    deadline: float,
    port: int = 69,
    blksize: int = BLKSIZE,
) -> int:
    """Download `path` into `out`; return its size.  Raises NotFound, or BootError naming the file."""
    step = f"TFTP {path}"
    valid_path(path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("!H", RRQ) + path.encode() + b"\0octet\0blksize\0%d\0tsize\0000\0" % blksize
        last_sent, dest = request, (str(server), port)
        peer: tuple[str, int] | None = None
        block_size, expected, received = 512, 1, 0
        sock.sendto(last_sent, dest)
        while True:
            packet, source = _receive(sock, last_sent, dest, peer, str(server), deadline, step)
            if peer is None:
                peer = source
                dest = peer
            opcode = struct.unpack("!H", packet[:2])[0] if len(packet) >= 2 else 0
            if opcode == ERROR:
                code = struct.unpack("!H", packet[2:4])[0] if len(packet) >= 4 else 0
                message = packet[4:].split(b"\0", 1)[0].decode("ascii", errors="replace")[:120]
                if code == NOT_FOUND:
                    raise NotFound(path)
                raise BootError(step, f"the server refused: error {code} {message!r}")
            if opcode == OACK and expected == 1 and received == 0:
                options = _oack(packet[2:], step)
                block_size = options.get("blksize", 512)
                if not 8 <= block_size <= blksize:
                    raise BootError(step, f"the server chose block size {block_size}, not what we offered")
                if options.get("tsize", 0) > cap:
                    _abort(sock, dest, f"file too large ({options['tsize']} bytes)")
                    raise BootError(step, f"the server announces {options['tsize']} bytes; the cap is {cap}")
                last_sent = struct.pack("!HH", ACK, 0)
                sock.sendto(last_sent, dest)
                continue
            if opcode != DATA or len(packet) < 4:
                raise BootError(step, f"unexpected packet (opcode {opcode})")
            block = struct.unpack("!H", packet[2:4])[0]
            data = packet[4:]
            if block == expected & 0xFFFF:
                if len(data) > block_size:
                    raise BootError(step, f"block {expected} is larger than the block size {block_size}")
                received += len(data)
                if received > cap:
                    _abort(sock, dest, "file too large")
                    raise BootError(step, f"larger than the cap of {cap} bytes; transfer stopped")
                out.write(data)
                last_sent = struct.pack("!HH", ACK, block)
                sock.sendto(last_sent, dest)
                expected += 1
                if len(data) < block_size:
                    return received
            elif block == (expected - 1) & 0xFFFF:
                sock.sendto(last_sent, dest)  # our ACK was lost: say it again


def _receive(
    sock: socket.socket,
    last_sent: bytes,
    dest: tuple[str, int],
    peer: tuple[str, int] | None,
    server: str,
    deadline: float,
    step: str,
) -> tuple[bytes, tuple[str, int]]:
    for attempt in range(RETRIES + 1):
        wait_until = min(deadline, time.monotonic() + PACKET_TIMEOUT)
        while (left := wait_until - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                packet, source = sock.recvfrom(65536)
            except TimeoutError:
                break
            if peer is None and source[0] == server:
                return packet, source
            if source == peer:
                return packet, source
            # Someone else: tell them off (RFC 1350: unknown transfer ID) and keep waiting.
            sock.sendto(struct.pack("!HH", ERROR, 5) + b"unknown transfer id\0", source)
        if time.monotonic() >= deadline:
            raise BootError(step, "the time limit ran out during the transfer")
        if attempt < RETRIES:  # the request once plus RETRIES retries: no resend after the last wait
            sock.sendto(last_sent, dest)
    raise BootError(step, f"no answer from {server} after {RETRIES + 1} tries")


def _oack(body: bytes, step: str) -> dict[str, int]:
    parts = body.split(b"\0")
    options: dict[str, int] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        if not key:
            break
        try:
            options[key.decode("ascii").lower()] = int(value)
        except (UnicodeDecodeError, ValueError):
            raise BootError(step, f"malformed option acknowledgement {body[:60]!r}") from None
    return options


def _abort(sock: socket.socket, dest: tuple[str, int], message: str) -> None:
    sock.sendto(struct.pack("!HH", ERROR, 3) + message.encode() + b"\0", dest)
