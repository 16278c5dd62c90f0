"""The install server's event log: what it saw, per client, parsed from dnsmasq's log and httpd's events.

Paths are relative to the served root, without a leading slash, whether read by TFTP or HTTP.  The kinds
are `Kind`'s.  Every event carries the client's address and the node it belongs to, when the address is
a known node's.

There is one wait loop (`EventLog.wait_for_each`; `wait_for` is a wait for a list of one): it ends at once
with `ServerDown`, the lab's failure, when the install server reports an error or its container is gone,
and with `ProductFailure` when a node it waits for reports an install failure or a watched console shows a
fatal line.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from foundation.errors import EmulationFault, PhaseTimeout, ProductFailure, ServerDown

POLL_INTERVAL = 0.2  # seconds between reads of the server's logs by the background poller
_DHCPACK = re.compile(r"dnsmasq-dhcp\[\d+\]: (?:\d+ )?DHCPACK\((\S+)\) (\S+) (\S+)(?: (\S+))?")
_DHCPDISCOVER = re.compile(
    r"dnsmasq-dhcp\[\d+\]: (?:\d+ )?DHCPDISCOVER\((\S+)\) (?:(\d+\.\d+\.\d+\.\d+) )?([0-9a-fA-F:]{17})\s*(.*)"
)
_TFTP_SENT = re.compile(r"dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)")
_TFTP_MISSING = re.compile(r"dnsmasq-tftp\[\d+\]: (?:error \d+ )?file (\S+) not found(?: for (\S+))?")
_QUERY = re.compile(r"dnsmasq\[\d+\]: query\[(\w+)\] (\S+) from (\S+)")


class Kind(StrEnum):
    """What the install server saw (the log's strings are these values)."""

    LEASE = "lease"  # a DHCPACK
    DISCOVER = "discover"  # a DHCPDISCOVER reached the server (with why it did not answer, if it says)
    TFTP = "tftp"  # a file sent
    TFTP_MISSING = "tftp-missing"  # a file asked for and not found
    DNS = "dns"  # a query
    HTTP = "http"  # a request and its status
    ACK = "ack"  # AII's install acknowledgement, by the node at its end of %post
    ACK_REFUSED = "ack-refused"  # an acknowledgement from an address that is no node's
    LOCALBOOT = "localboot"  # AII switched the node to boot from its disk
    BOOTED = "booted"  # an installed system says it is up
    INSTALL_FAILED = "install-failed"  # an installer says why it stopped
    SERVER_ERROR = "server-error"  # the install server itself failed (dnsmasq exited)
    RELOAD = "reload"  # dnsmasq re-read AII's entries


@dataclass(frozen=True)
class Event:
    kind: Kind
    client: str | None = None
    node: str | None = None
    mac: str | None = None
    path: str | None = None
    status: int | None = None
    detail: str | None = None
    seen: float = 0.0  # time.monotonic() when the lab read it

    def __str__(self) -> str:
        parts = [self.kind, self.node or self.client or "?"]
        parts += [str(v) for v in (self.path, self.status, self.detail) if v is not None]
        return " ".join(parts)


class Watched(Protocol):
    """Something a wait keeps an eye on, like a console: `check()` raises at once on a fatal sign."""

    def check(self) -> None: ...


def parse_dnsmasq_line(line: str, tftp_root: str = "/srv/lab") -> Event | None:
    if m := _DHCPACK.search(line):
        return Event(Kind.LEASE, client=m.group(2), mac=m.group(3).lower(), node=m.group(4))
    if m := _DHCPDISCOVER.search(line):
        return Event(Kind.DISCOVER, mac=m.group(3).lower(), detail=m.group(4).strip() or None)
    if m := _TFTP_SENT.search(line):
        return Event(Kind.TFTP, client=m.group(2), path=_strip_root(m.group(1), tftp_root))
    if m := _TFTP_MISSING.search(line):
        return Event(Kind.TFTP_MISSING, client=m.group(2), path=_strip_root(m.group(1), tftp_root))
    if m := _QUERY.search(line):
        return Event(Kind.DNS, client=m.group(3), path=m.group(2), detail=m.group(1))
    return None


def parse_event_line(line: str) -> Event | None:
    try:
        rec = json.loads(line)
        kind = Kind(rec["kind"])
    except (ValueError, KeyError, TypeError):
        return None  # not one of the server's records (a line cut by a crash, a kind of a newer server)
    detail = rec.get("reason") or rec.get("what") or rec.get("method")
    path = rec.get("path")
    return Event(
        kind,
        client=rec.get("client"),
        node=rec.get("node"),
        path=path.lstrip("/") if path else None,
        status=rec.get("status"),
        detail=detail,
    )


def mac_of_link_local(address: str) -> str | None:
    """The MAC inside an EUI-64 IPv6 link-local address (iPXE asks DNS from one), else None."""
    try:
        ip = ipaddress.IPv6Address(address.split("%")[0])
    except ValueError:
        return None
    b = ip.packed
    if not ip.is_link_local or b[11:13] != b"\xff\xfe":
        return None
    mac = bytes([b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]])
    return ":".join(f"{x:02x}" for x in mac)


def _strip_root(path: str, root: str) -> str:
    return path[len(root) :].lstrip("/") if path.startswith(root) else path


class _Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [c.decode(errors="replace") for c in complete]


class EventLog:
    """All events so far, read on demand and by a background poller (so that `seen` is when the server logged
    an event, within POLL_INTERVAL, even when no wait was running); `wait_for` polls until one matches."""

    def __init__(
        self,
        dnsmasq_log: Path,
        events_file: Path,
        nodes_by_ip: dict[str, str],
        nodes_by_mac: dict[str, str] | None = None,
    ) -> None:
        self._dnsmasq = _Tail(dnsmasq_log)
        self._events = _Tail(events_file)
        self._nodes_by_ip = nodes_by_ip
        self._nodes_by_mac = nodes_by_mac or {}
        self.all: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        # Set by the install server once it runs: None while it is alive, else why it is not.
        self.liveness: Callable[[], str | None] | None = None

    def poll(self) -> list[Event]:
        with self._lock:
            now = time.monotonic()
            new = [e for e in map(parse_dnsmasq_line, self._dnsmasq.lines()) if e]
            new += [e for e in map(parse_event_line, self._events.lines()) if e]
            new = [self._complete(e, now) for e in new]
            self.all.extend(new)
            return new

    def start_polling(self) -> None:
        def loop() -> None:
            while not self._stop.wait(POLL_INTERVAL):
                self.poll()

        self._poller = threading.Thread(target=loop, name="xenlab-events", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)

    def _complete(self, e: Event, now: float) -> Event:
        node = e.node if e.kind is not Kind.LEASE else self._nodes_by_ip.get(e.client or "", e.node)
        node = node or self._nodes_by_ip.get(e.client or "")
        mac = e.mac or mac_of_link_local(e.client or "")
        node = node or self._nodes_by_mac.get(mac or "")
        return Event(e.kind, e.client, node, mac, e.path, e.status, e.detail, now)

    def select(
        self, kind: Kind | None = None, node: str | None = None, path: str | Callable[[str], bool] | None = None
    ) -> list[Event]:
        self.poll()
        return [e for e in self.all if _matches(e, kind, node, path)]

    def _no_lease_diagnosis(self, nodes: Iterable[str | None]) -> str:
        """Why a node has no lease, from what the server heard: nothing at all, or DISCOVERs and no lease."""
        parts = []
        for node in (n for n in nodes if n is not None):
            discovers = [e for e in self.all if e.kind is Kind.DISCOVER and e.node == node]
            if not discovers:
                parts.append(f"{node}'s DHCPDISCOVER never reached the server (its NIC, tap or bridge)")
            else:
                said = discovers[-1].detail or "see dnsmasq.log"
                parts.append(f"the server heard {len(discovers)} DHCPDISCOVER(s) from {node}, no lease came ({said})")
        return ": " + "; ".join(parts) if parts else ""

    def wait_for(
        self,
        *,
        phase: str,
        timeout: float,
        kind: Kind,
        node: str | None = None,
        path: str | Callable[[str], bool] | None = None,
        watch: Iterable[Watched] = (),
        fail_on_install_failure: bool = True,
        since: float = 0.0,
    ) -> Event:
        """Wait for one event (from `node`, or from anyone); a wait for a list of one."""
        found = self.wait_for_each(
            [node],
            phase=phase,
            timeout=timeout,
            kind=kind,
            path=path,
            watch=watch,
            fail_on_install_failure=fail_on_install_failure,
            since=since,
        )
        return found[node]

    def wait_for_each(
        self,
        nodes: Iterable[str | None],
        *,
        phase: str,
        timeout: float,
        kind: Kind,
        path: str | Callable[[str], bool] | None = None,
        watch: Iterable[Watched] = (),
        arrived: Callable[[Event], None] = lambda e: None,
        fail_on_install_failure: bool = True,
        since: float = 0.0,
    ) -> dict[str | None, Event]:
        """Wait until each of `nodes` has had `kind` (machines working in parallel; None: any client);
        `arrived` hears each as it comes.

        Ends at once: `ServerDown` when the install server reports an error or its container is gone (every
        wait, whatever node it is for); `ProductFailure` when a node waited for reports an install failure, or
        a watched console shows a fatal line; `PhaseTimeout` at `timeout`.  Events the lab read before `since`
        (a time.monotonic(): a node's earlier boot) are history, except the server's own failure.
        """
        waiting: list[str | None] = list(nodes)
        seen: dict[str | None, Event] = {}
        deadline = time.monotonic() + timeout
        watch = list(watch)
        while waiting:
            for e in self.select():
                if e.kind == Kind.SERVER_ERROR:
                    raise ServerDown(
                        f"phase {phase!r}: the install server failed: {e.detail}",
                        hint="see install-server/container.log and dnsmasq.log in the run's artifacts",
                    )
                if e.seen < since:
                    continue
                wanted = next((n for n in waiting if n is None or e.node == n), "")
                if wanted != "" and _matches(e, kind, wanted, path):
                    waiting.remove(wanted)
                    seen[wanted] = e
                    arrived(e)
                elif fail_on_install_failure and e.kind == Kind.INSTALL_FAILED and (wanted != "" or e.node is None):
                    raise ProductFailure(f"phase {phase!r}: {e.node or e.client} reported: {e.kind} {e.detail}")
            if self.liveness is not None and (why := self.liveness()) is not None:
                raise ServerDown(f"phase {phase!r}: {why}", hint="see install-server/container.log in the artifacts")
            for w in watch:
                w.check()
            if waiting and time.monotonic() > deadline:
                recent = "\n".join(f"  {e}" for e in self.all[-15:]) or "  (none)"
                what = " ".join(x for x in (kind, path if isinstance(path, str) else None) if x)
                who = ", ".join(n or "any client" for n in waiting)
                why = self._no_lease_diagnosis(waiting) if kind is Kind.LEASE else ""
                raise PhaseTimeout(
                    f"phase {phase!r}: no install-server event '{what}' from {who} within {timeout:.0f} s{why} "
                    f"(arrived: {', '.join(n or 'any' for n in seen) or 'none'}); last events:\n{recent}"
                )
            if waiting:
                time.sleep(0.1)
        return seen


class ResetLoop:
    """Watches nodes that have acked their install: one that keeps coming back to its network boot entry
    (the pxelinux config or iPXE script AII wrote for it, read by pypxeboot or by its own PXE firmware)
    without its installed system ever saying it is up is resetting in a loop, and no timeout will change
    that.  `check()` raises at the `limit`-th read since the ack, naming the node.

    `lab_resets` (node -> the lab's own account of its resets: an HVM guest's triple faults under nested
    emulation, each one a restart by xl and so one more read) is asked once a node reaches the limit, and again
    at each read after: the reads it explains do not count; `limit` resets that are all the lab's are an
    `EmulationFault`.
    """

    def __init__(
        self,
        events: EventLog,
        entries: dict[str, frozenset[str]],
        *,
        limit: int = 3,
        lab_resets: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.events = events
        self.entries = entries  # node -> the paths of its boot entry
        self.limit = limit
        self.lab_resets = lab_resets
        self._asked: dict[str, tuple[int, list[str]]] = {}  # node -> (its reads when asked, the answer)

    def check(self) -> None:
        events = self.events.select()
        for node, paths in self.entries.items():
            acks = [e for e in events if e.kind is Kind.ACK and e.node == node]
            if not acks or any(e.kind is Kind.BOOTED and e.node == node for e in events):
                continue
            reads = [e for e in events if e.path in paths and e.seen >= acks[0].seen]
            if len(reads) < self.limit:
                continue
            excused = self._lab_resets(node, len(reads))
            if len(reads) - len(excused) >= self.limit:  # the product's loop, whatever else happened
                raise ProductFailure(
                    f"{node}: its installed system does not come up: since its install ack it went back to its "
                    f"network boot entry {len(reads)} times (a reset loop; its console tells why)"
                    + (f"; {len(excused)} of them the lab's: " + "; ".join(excused) if excused else "")
                )
            if len(excused) >= self.limit:
                raise EmulationFault(
                    f"{node}: its installed system does not come up: since its install ack it was restarted "
                    f"{len(excused)} times for the emulation's faults, not its own: " + "; ".join(excused)
                )

    def _lab_resets(self, node: str, reads: int) -> list[str]:
        if self.lab_resets is None:
            return []
        asked = self._asked.get(node)
        if asked is None or asked[0] != reads:
            asked = self._asked[node] = (reads, self.lab_resets(node))
        return asked[1]


def _matches(e: Event, kind: Kind | None, node: str | None, path: str | Callable[[str], bool] | None) -> bool:
    if kind and e.kind != kind:
        return False
    if node and e.node != node:
        return False
    if path is None:
        return True
    if callable(path):
        return e.path is not None and path(e.path)
    return e.path == path
