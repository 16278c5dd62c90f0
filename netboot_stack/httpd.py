"""The install server's HTTP side and supervisor, run inside the container by its Debian python3.

Standard library only (plus AII's nbp module, bind-mounted beside it).  It starts dnsmasq as its child and
exits if dnsmasq dies, so the container is up exactly when both are.  It serves the TFTP root over HTTP
(kickstarts, boot files, iPXE scripts) and these endpoints:

* `/cgi-bin/aii-installack.cgi`: the install acknowledgement.  The node is the one whose address the request
  comes from; no parameter can name another node.  The node is switched to boot from its disk.
* `/xenlab/install-failed?reason=…`: an installer reports why it stopped (Anaconda's %onerror role).
* `/xenlab/booted`: an installed system says it is up (its xenlab-ready unit), again by its address: the
  witness that a guest, whose console only its Xen host sees, runs what was installed.
* `/xenlab/health`: answers once the server runs (the lab waits for it, and for dnsmasq's ports).

Every request, ack and failure is one JSON line in the events file, with the client's address.
"""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from quattor.aii.nbp import FAILED_REPORT, NbpTree, NodeBoot

ACK_PATH = "/cgi-bin/aii-installack.cgi"
FAILED_PATH = "/" + FAILED_REPORT  # where AII's iPXE entries and the installers report
HEALTH_PATH = "/xenlab/health"
BOOTED_PATH = "/xenlab/booted"


class EventWriter:
    def __init__(self, path: Path) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the server
        self._lock = threading.Lock()

    def write(self, kind: str, **fields: object) -> None:
        record = {"t": round(time.time(), 3), "kind": kind, **fields}
        with self._lock:
            self._file.write(json.dumps(record, sort_keys=True) + "\n")


class Server:
    def __init__(self, config: dict[str, object]) -> None:
        self.root = Path(str(config["root"]))
        self.events = EventWriter(Path(str(config["events"])))
        nodes: list[dict[str, str]] = config["nodes"]  # type: ignore[assignment]  # JSON the lab wrote: a list of objects
        self.nodes = {n["ip"]: n for n in nodes}
        self.nbp = NbpTree(self.root, str(config["http_base"]))
        self.dnsmasq: subprocess.Popen[bytes] | None = None

    def node_for(self, client: str) -> dict[str, str] | None:
        """The node at this address: one the lab declared, else one AII's DHCP and DNS files name."""
        return self.nodes.get(client) or self.aii_node(client)

    def aii_node(self, client: str) -> dict[str, str] | None:
        aii = self.root / "aii"
        try:
            hosts = (aii / "hosts").read_text().splitlines()
            dhcp = (aii / "dhcp-hosts").read_text().splitlines()
        except OSError:
            return None
        for line in hosts:
            parts = line.split()
            if len(parts) == 3 and parts[0] == client:
                macs = [d.split(",")[0] for d in dhcp if d.split(",")[1:3] == [client, parts[2]]]
                if len(macs) == 1:
                    return {"ip": client, "fqdn": parts[1], "name": parts[2], "mac": macs[0]}
        return None

    def ack(self, client: str) -> tuple[int, str]:
        node = self.node_for(client)
        if node is None:
            self.events.write("ack-refused", client=client)
            return 403, f"[ERROR] aii-installack: no node has address {client}\n"
        self.nbp.boot(NodeBoot(node["fqdn"], node["mac"], ipaddress.IPv4Address(node["ip"])))
        self.events.write("ack", client=client, node=node["name"])
        self.events.write("localboot", client=client, node=node["name"])
        return 200, f"[INFO] aii-installack: host '{node['fqdn']}' configured to boot from local disk\n"

    def failed(self, client: str, query: str) -> tuple[int, str]:
        reason = urllib.parse.parse_qs(query).get("reason", ["(no reason given)"])[0][:500]
        node = self.node_for(client)
        self.events.write("install-failed", client=client, node=node["name"] if node else None, reason=reason)
        return 200, "recorded\n"

    def booted(self, client: str) -> tuple[int, str]:
        node = self.node_for(client)
        self.events.write("booted", client=client, node=node["name"] if node else None)
        return 200, "recorded\n"


def make_handler(server: Server) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(server.root), **kwargs)  # type: ignore[arg-type]  # socketserver's args, passed on

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            client = self.client_address[0]
            if path == ACK_PATH:
                self._reply(*server.ack(client))
            elif path == FAILED_PATH:
                self._reply(*server.failed(client, query))
            elif path == BOOTED_PATH:
                self._reply(*server.booted(client))
            elif path == HEALTH_PATH:
                alive = server.dnsmasq is not None and server.dnsmasq.poll() is None
                self._reply(200 if alive else 503, "ok\n" if alive else "dnsmasq is not running\n")
            else:
                super().do_GET()

        do_POST = do_GET

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if self.path.startswith(HEALTH_PATH):
                return
            server.events.write(
                "http",
                client=self.client_address[0],
                method=self.command,
                path=self.path.partition("?")[0],
                status=int(code) if str(code).isdigit() else code,
            )

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write("httpd: " + (format % args) + "\n")

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    server = Server(config)
    server.dnsmasq = subprocess.Popen(config["dnsmasq"], stdin=subprocess.DEVNULL)

    def watch_dnsmasq() -> None:
        assert server.dnsmasq is not None
        code = server.dnsmasq.wait()
        sys.stderr.write(f"httpd: dnsmasq exited with status {code}; stopping the install server\n")
        server.events.write("server-error", what=f"dnsmasq exited with status {code}")
        os._exit(1)

    threading.Thread(target=watch_dnsmasq, daemon=True).start()

    def stop(*_: object) -> None:
        if server.dnsmasq and server.dnsmasq.poll() is None:
            server.dnsmasq.terminate()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)

    def reload(*_: object) -> None:  # AII changed its entries: dnsmasq re-reads them, keeping its leases
        if server.dnsmasq and server.dnsmasq.poll() is None:
            server.dnsmasq.send_signal(signal.SIGHUP)
            server.events.write("reload")

    signal.signal(signal.SIGHUP, reload)
    httpd = http.server.ThreadingHTTPServer((str(config["bind"]), 80), make_handler(server))
    sys.stderr.write(f"httpd: serving {server.root} on {config['bind']}:80\n")
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
