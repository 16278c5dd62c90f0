"""Fetching what a config names: by TFTP from the boot server, or by HTTP when the config gives a URL.

Paths are resolved as PXELINUX resolves them: relative to the directory of the boot file the DHCP server
named, `::path` from the TFTP root, `/path` as given; `http://` URLs are fetched over HTTP (much faster
than lock-step TFTP for big initrds).  Every download has a size cap and the run's deadline.
"""

from __future__ import annotations

import ipaddress
import posixpath
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO

from pypxeboot import tftp
from pypxeboot.errors import BootError

CHUNK = 256 * 1024


def resolve(path: str, prefix: str) -> str:
    if "://" in path:
        return path
    if path.startswith("::"):
        return path[2:]
    if path.startswith("/"):
        return path
    return posixpath.join(prefix, path) if prefix else path


def prefix_of(bootfile: str) -> str:
    """PXELINUX's path prefix: the directory of its own boot file."""
    directory = posixpath.dirname(bootfile.lstrip("/"))
    return f"{directory}/" if directory else ""


def fetch(
    location: str,
    out: BinaryIO,
    *,
    server: ipaddress.IPv4Address,
    cap: int,
    deadline: float,
    pinned: ipaddress.IPv4Address | None = None,
) -> int:
    if "://" in location:
        return _http(location, out, cap=cap, deadline=deadline, pinned=pinned)
    return tftp.fetch(server, location, out, cap=cap, deadline=deadline)


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere (another host, ftp://, dom0's own loopback): it is an error, never followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxies either: the boot server is on the guest's bridge, and an environment's proxy is not.
NO_REDIRECTS = urllib.request.build_opener(_Refuse, urllib.request.ProxyHandler({}))


def _http(url: str, out: BinaryIO, *, cap: int, deadline: float, pinned: ipaddress.IPv4Address | None) -> int:
    step = f"HTTP {redact(url)}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BootError(step, "only http:// URLs are fetched")
    if pinned is not None and parts.hostname != str(pinned):
        raise BootError(step, f"the URL's host is not the pinned server {pinned}")
    if _local(parts.hostname):
        raise BootError(step, "the URL names dom0 itself (loopback); a boot server is never on dom0's loopback")
    left = deadline - time.monotonic()
    if left <= 0:
        raise BootError(step, "the time limit ran out")
    try:
        with NO_REDIRECTS.open(url, timeout=min(left, 30)) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > cap:
                raise BootError(step, f"the server announces {length} bytes; the cap is {cap}")
            total = 0
            while chunk := resp.read(CHUNK):
                total += len(chunk)
                if total > cap:
                    raise BootError(step, f"larger than the cap of {cap} bytes; transfer stopped")
                if time.monotonic() > deadline:
                    raise BootError(step, "the time limit ran out during the transfer")
                out.write(chunk)
            return total
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = redact(exc.headers.get("Location", "?"))
            raise BootError(step, f"HTTP status {exc.code}: redirects are not followed (to {where})") from None
        raise BootError(step, f"HTTP status {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BootError(step, str(getattr(exc, "reason", exc))) from None


def _local(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a[4][0]) for a in socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)]
        except (OSError, ValueError):
            return False  # unresolvable: the fetch itself will say so
    return any(a.is_loopback or a.is_unspecified or a.is_link_local for a in addresses)


def redact(url: str) -> str:
    """Never print credentials a URL may carry (the console is visible to the guest's owner)."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password or parts.username:
        netloc = f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
