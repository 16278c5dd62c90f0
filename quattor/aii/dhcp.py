"""AII's DHCP and DNS entries, in the files dnsmasq re-reads on SIGHUP without losing its leases.

`dhcp-hosts`: `<mac>,<ip>,<hostname>` per node (dnsmasq's dhcp-hostsfile), with `,set:httpboot` for a node
whose profile asks for the iPXE route (`/system/aii/dhcp/options/route`: its firmware is iPXE, which then
fetches AII's iPXE script and the installer over HTTP instead of pxelinux and TFTP); `hosts`:
`<ip> <fqdn> <name>` per node (addn-hosts: forward and reverse DNS).  Each file is rewritten whole and
atomically from every node AII knows, one line per node, sorted.
"""

from __future__ import annotations

import os
from pathlib import Path

from quattor.aii.node import AiiNode

HOSTS_FILE = "dhcp-hosts"
HTTPBOOT_TAG = "httpboot"  # the install server's dnsmasq answers iPXE clients with this tag by an iPXE script
DNS_FILE = "hosts"


class DhcpEntries:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _read(self, name: str) -> dict[str, str]:
        path = self.directory / name
        if not path.exists():
            return {}
        entries = {}
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                key = line.split(",")[2] if name == HOSTS_FILE else line.split()[2]
                entries[key] = line
        return entries

    def _write(self, name: str, entries: dict[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{name}.new"
        tmp.write_text("# written by AII (xenlab)\n" + "".join(entries[k] + "\n" for k in sorted(entries)))
        os.replace(tmp, self.directory / name)

    def configure(self, node: AiiNode) -> None:
        hosts, dns = self._read(HOSTS_FILE), self._read(DNS_FILE)
        for entry in hosts.values():
            mac, _, name = entry.split(",")[:3]
            if mac == node.mac and name != node.hostname:
                raise ValueError(f"MAC {node.mac} of {node.fqdn} already belongs to {name}")
        tag = f",set:{HTTPBOOT_TAG}" if node.route == "ipxe" else ""
        hosts[node.hostname] = f"{node.mac},{node.ip},{node.hostname}{tag}"
        dns[node.hostname] = f"{node.ip} {node.fqdn} {node.hostname}"
        self._write(HOSTS_FILE, hosts)
        self._write(DNS_FILE, dns)

    def remove(self, node: AiiNode) -> None:
        hosts, dns = self._read(HOSTS_FILE), self._read(DNS_FILE)
        hosts.pop(node.hostname, None)
        dns.pop(node.hostname, None)
        self._write(HOSTS_FILE, hosts)
        self._write(DNS_FILE, dns)
