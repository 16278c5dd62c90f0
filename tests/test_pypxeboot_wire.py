"""pypxeboot on the wire, with the network faked at its boundary: DHCP frames, and TFTP from a loopback server."""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from pypxeboot import dhcp, tftp
from pypxeboot.errors import BootError
from tests.loopback_http import serving

GUEST = bytes.fromhex("aa0086e23572")
DOM0 = bytes.fromhex("525400010032")


# --- DHCP frames --------------------------------------------------------------------------------------------------
def test_request_frame_is_a_broadcast_bootrequest_for_the_guest_mac() -> None:
    frame = dhcp.build_request(DOM0, GUEST, 0x12345678, [(53, bytes([dhcp.DISCOVER]))])
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == DOM0  # sent by dom0's bridge...
    ip = frame[14:34]
    assert dhcp.checksum(ip) == 0
    udp = frame[34:]
    assert struct.unpack("!HH", udp[:4]) == (68, 67)
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert dhcp.checksum(pseudo + udp) == 0
    bootp = udp[8:]
    assert bootp[28:34] == GUEST  # ...on behalf of the guest
    assert struct.unpack("!H", bootp[10:12])[0] == 0x8000  # broadcast flag: nobody holds the guest's MAC yet


def reply(
    xid: int,
    chaddr: bytes,
    kind: int,
    *,
    corrupt_udp: bool = False,
    extra: bytes = b"",
    server_id: bytes | None = socket.inet_aton("10.77.0.1"),
) -> bytes:
    """A server's broadcast answer, built independently of the code under test."""
    bootp = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        2,
        1,
        6,
        0,
        xid,
        0,
        0x8000,
        bytes(4),
        socket.inet_aton("10.77.0.60"),
        socket.inet_aton("10.77.0.1"),
        bytes(4),
        chaddr.ljust(16, b"\0"),
        b"gridinstall".ljust(64, b"\0"),
        b"pxelinux.0".ljust(128, b"\0"),
    )
    opts = (
        dhcp.MAGIC
        + bytes([53, 1, kind])
        + (bytes([54, len(server_id)]) + server_id if server_id is not None else b"")
        + bytes([1, 4])
        + socket.inet_aton("255.255.255.0")
        + bytes([67, 11])
        + b"pxelinux.0\0"
        + extra
        + b"\xff"
    )
    payload = bootp + opts
    src, dst = socket.inet_aton("10.77.0.1"), b"\xff" * 4
    udp = struct.pack("!HHHH", 67, 68, 8 + len(payload), 0) + payload
    csum = dhcp.checksum(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp)
    udp = udp[:6] + struct.pack("!H", csum ^ (0xFF if corrupt_udp else 0)) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", dhcp.checksum(ip)) + ip[12:]
    return b"\xff" * 6 + DOM0 + b"\x08\x00" + ip + udp


def test_an_ack_for_us_becomes_a_lease() -> None:
    parsed = dhcp.parse_reply(reply(7, GUEST, dhcp.ACK), 7, GUEST)
    assert parsed is not None
    lease = dhcp.lease_from(*parsed)
    assert (str(lease.address), str(lease.tftp_server), lease.bootfile) == ("10.77.0.60", "10.77.0.1", "pxelinux.0")
    assert str(lease.netmask) == "255.255.255.0"


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (reply(8, GUEST, dhcp.ACK), "another transaction"),
        (reply(7, bytes.fromhex("aa0086e23573"), dhcp.ACK), "another guest's MAC"),
        (reply(7, GUEST, dhcp.ACK, corrupt_udp=True), "a bad UDP checksum"),
        (reply(7, GUEST, dhcp.ACK, extra=bytes([12, 200]) + b"x"), "a truncated option"),
        (reply(7, GUEST, dhcp.ACK)[:200], "a truncated frame"),
    ],
)
def test_anything_else_on_the_wire_is_ignored(frame: bytes, why: str) -> None:
    assert dhcp.parse_reply(frame, 7, GUEST) is None, why


class FakeRawSocket:
    """The raw socket's receiving side: hands out `frames` in order, then times out."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = list(frames)

    def settimeout(self, _: float) -> None:
        pass

    def recvmsg(self, *_: int) -> tuple[bytes, list[tuple[int, int, bytes]], int, object]:
        if not self.frames:
            raise TimeoutError
        return self.frames.pop(0), [], 0, None


def test_unusable_offers_are_ignored_and_counted_while_a_valid_one_is_awaited() -> None:
    logged: list[str] = []
    ignored = dhcp.Ignored(logged.append)
    frames = [
        reply(7, GUEST, dhcp.OFFER, server_id=None),  # no option 54
        reply(7, GUEST, dhcp.OFFER, server_id=b"\x0a\x4d"),  # a 2-byte one
        reply(7, GUEST, dhcp.OFFER),
    ]
    got = dhcp._receive(FakeRawSocket(frames), 7, GUEST, {dhcp.OFFER}, time.monotonic() + 5, None, ignored)  # type: ignore[arg-type]  # a fake socket
    assert got is not None and got[1][54] == socket.inet_aton("10.77.0.1")
    assert ignored.count == 2 and "no server identifier of 4 bytes (option 54)" in logged[0]
    assert "(2 unusable replies ignored)" in ignored.summary()


def test_an_ack_with_a_binary_host_name_is_ignored_not_fatal() -> None:
    bad = reply(7, GUEST, dhcp.ACK, extra=bytes([12, 3]) + b"\xff\xfe\xfd")  # a host name that is not text
    ignored = dhcp.Ignored(lambda _: None)
    frames = [bad, reply(7, GUEST, dhcp.ACK)]
    got = dhcp._receive(FakeRawSocket(frames), 7, GUEST, {dhcp.ACK}, time.monotonic() + 5, None, ignored)  # type: ignore[arg-type]  # a fake socket
    assert got is not None and ignored.count == 1
    assert dhcp.lease_from(*got).bootfile == "pxelinux.0"


# --- TFTP against a loopback server -------------------------------------------------------------------------------
class FakeTftpServer:
    """Serves `files` from 127.0.0.1; `mode` makes it misbehave on purpose."""

    def __init__(self, files: dict[str, bytes], mode: str = "ok") -> None:
        self.files, self.mode = files, mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                packet, client = self.sock.recvfrom(2048)
            except OSError:
                return
            self.requests.append(packet)
            if self.mode == "silent":
                continue
            name = packet[2:].split(b"\0")[0].decode()
            threading.Thread(target=self.transfer, args=(name, packet, client), daemon=True).start()

    def transfer(self, name: str, request: bytes, client: tuple[str, int]) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(2)
        if name not in self.files:
            s.sendto(struct.pack("!HH", 5, 1) + b"File not found\0", client)
            return
        data = self.files[name]
        parts = request[2:].split(b"\0")
        opts = dict(zip(parts[2::2], parts[3::2], strict=False))
        blksize = int(opts.get(b"blksize", b"512"))
        size = len(data) if self.mode != "lying-tsize" else 10
        s.sendto(struct.pack("!H", 6) + b"blksize\0%d\0tsize\0%d\0" % (blksize, size), client)
        try:
            s.recvfrom(100)
        except OSError:
            return
        if self.mode == "intruder":
            intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            intruder.sendto(struct.pack("!HH", 3, 1) + b"EVIL", client)
            time.sleep(0.05)
        for i in range(0, len(data) + 1, blksize):
            block = i // blksize + 1
            s.sendto(struct.pack("!HH", 3, block & 0xFFFF) + data[i : i + blksize], client)
            try:
                s.recvfrom(100)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeTftpServer]:
    files, mode = request.param
    srv = FakeTftpServer(files, mode)
    yield srv
    srv.close()


def get(srv: FakeTftpServer, name: str, cap: int = 1 << 20, limit: float = 5) -> bytes:
    out = io.BytesIO()
    tftp.fetch(ipaddress.IPv4Address("127.0.0.1"), name, out, cap=cap, deadline=time.monotonic() + limit, port=srv.port)
    return out.getvalue()


KERNEL = bytes(range(256)) * 40 + b"tail"  # not a multiple of the block size


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL, "empty": b"", "exact": b"x" * 1468}, "ok")], indirect=True)
def test_files_arrive_whole(server: FakeTftpServer) -> None:
    assert get(server, "vmlinuz") == KERNEL
    assert get(server, "empty") == b""
    assert get(server, "exact") == b"x" * 1468  # ends with an empty block
    assert b"blksize\x001468\x00tsize\x000\x00" in server.requests[0]


@pytest.mark.parametrize("server", [({}, "ok")], indirect=True)
def test_a_missing_file_is_not_found(server: FakeTftpServer) -> None:
    with pytest.raises(tftp.NotFound):
        get(server, "pxelinux.cfg/01-aa-00-86-e2-35-72")


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL}, "silent")], indirect=True)
def test_a_silent_server_is_an_error_not_a_missing_file(server: FakeTftpServer) -> None:  # upstream bug 9
    with pytest.raises(BootError, match="no answer from 127.0.0.1"):
        get(server, "vmlinuz", limit=30)
    assert len(server.requests) == tftp.RETRIES + 1


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL}, "silent")], indirect=True)
def test_the_deadline_ends_a_transfer(server: FakeTftpServer) -> None:
    started = time.monotonic()
    with pytest.raises(BootError, match="time limit"):
        get(server, "vmlinuz", limit=0.5)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL}, "ok")], indirect=True)
def test_an_announced_size_over_the_cap_stops_at_once(server: FakeTftpServer) -> None:
    with pytest.raises(BootError, match="announces 10244 bytes; the cap is 1000"):
        get(server, "vmlinuz", cap=1000)


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL}, "lying-tsize")], indirect=True)
def test_a_file_growing_past_the_cap_is_stopped(server: FakeTftpServer) -> None:  # XSA-25
    with pytest.raises(BootError, match="larger than the cap of 4000 bytes"):
        get(server, "vmlinuz", cap=4000)


@pytest.mark.parametrize("server", [({"vmlinuz": KERNEL}, "intruder")], indirect=True)
def test_packets_from_another_port_are_not_taken(server: FakeTftpServer) -> None:
    assert get(server, "vmlinuz") == KERNEL


@pytest.mark.parametrize("path", ["../etc/shadow", "boot/../../x", "a\nb", ""])
def test_paths_that_could_escape_are_refused(path: str) -> None:
    with pytest.raises(BootError):
        tftp.valid_path(path)


# --- HTTP: redirects, loopback, credentials -------------------------------------------------------------------------
@pytest.fixture
def redirecting_server() -> Iterator[str]:
    """A loopback HTTP server: /kernel is 12 bytes, /moved redirects to ftp://elsewhere, /other to another host."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/kernel":
                self.send_response(200)
                self.send_header("Content-Length", "12")
                self.end_headers()
                self.wfile.write(b"kernel bytes")
                return
            self.send_response(302)
            target = "ftp://elsewhere/kernel" if self.path == "/moved" else "http://10.99.0.1/kernel"
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as where:
        yield where


def test_redirects_are_never_followed(redirecting_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypxeboot import fetch

    monkeypatch.setattr(fetch, "_local", lambda host: False)  # the test server is on loopback; a real one is not
    out = io.BytesIO()
    deadline = time.monotonic() + 10
    assert (
        fetch.fetch(
            f"http://{redirecting_server}/kernel",
            out,
            server=ipaddress.IPv4Address("10.0.0.1"),
            cap=100,
            deadline=deadline,
        )
        == 12
    )
    for path, where in (("/moved", "ftp://elsewhere/kernel"), ("/other", "http://10.99.0.1/kernel")):
        with pytest.raises(BootError, match=f"HTTP status 302: redirects are not followed \\(to {re.escape(where)}\\)"):
            fetch.fetch(
                f"http://{redirecting_server}{path}",
                io.BytesIO(),
                server=ipaddress.IPv4Address("10.0.0.1"),
                cap=100,
                deadline=deadline,
            )


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/k", "http://localhost/k", "http://[::1]/k", "http://0.0.0.0/k"])
def test_a_config_cannot_make_dom0_fetch_from_its_own_loopback(url: str) -> None:
    from pypxeboot import fetch

    with pytest.raises(BootError, match="names dom0 itself"):
        fetch.fetch(url, io.BytesIO(), server=ipaddress.IPv4Address("10.0.0.1"), cap=100, deadline=time.monotonic() + 5)


def test_credentials_never_reach_a_log_line() -> None:
    from pypxeboot import fetch

    with pytest.raises(BootError) as err:
        fetch.fetch(
            "http://admin:s3cret@127.0.0.1:1/k",
            io.BytesIO(),
            server=ipaddress.IPv4Address("10.0.0.1"),
            cap=100,
            deadline=time.monotonic() + 5,
        )
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value) and "***@127.0.0.1" in str(err.value)
    assert fetch.redact("http://u:p@h:8080/x?y") == "http://***@h:8080/x?y"
