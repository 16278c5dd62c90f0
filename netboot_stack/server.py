"""The install server of one lab: prepares its tree, runs its container, and exposes its event log."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from foundation import netns
from foundation.errors import LabError
from foundation.paths import REPO
from foundation.process import peak_rss_mib, run, run_logged
from foundation.registry import LabSlot, runc_root
from netboot_stack.bundle import Bind, config_json
from netboot_stack.config import AII_DIR, InstallServerConfig, render_dnsmasq
from netboot_stack.events import EventLog
from quattor.aii.nbp import NbpTree

log = logging.getLogger("xenlab.server")

TFTP_ROOT = "/srv/lab"
LOG_DIR = "/var/log/xenlab"
READY_TIMEOUT = 15.0


class InstallServer:
    """Use as a context manager: the container runs inside the `with` block and is removed after it."""

    def __init__(
        self,
        config: InstallServerConfig,
        *,
        slot: LabSlot,
        work_dir: Path,
        log_dir: Path,
        rootfs: Path,
        bootfiles: Path,
    ) -> None:
        self.config = config
        self.slot = slot
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.rootfs = rootfs  # the container's root filesystem
        self.bootfiles = bootfiles  # pxelinux.0 and ldlinux.c32
        self.container_id = f"{config.network.lab_id}-srv"
        self.srv = work_dir / "srv"  # TFTP root and HTTP root
        self.events = EventLog(
            log_dir / "dnsmasq.log",
            log_dir / "events.jsonl",
            {str(n.ip): n.name for n in config.nodes},
            {n.mac: n.name for n in config.nodes},
        )
        self.nbp = NbpTree(self.srv, config.http_base)
        self.started_at = 0.0

    # --- the served tree -----------------------------------------------------------------------------------
    def publish(self, source: Path, name: str) -> str:
        """Make a file (a kernel, an initrd) available over TFTP and HTTP; returns its path in the tree."""
        dest = self.srv / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        real = source.resolve()
        try:
            os.link(real, dest)  # the image cache is read-only to the server; a hard link costs nothing
        except OSError:
            shutil.copy2(real, dest)
        return name

    def write(self, name: str, text: str) -> str:
        dest = self.srv / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        return name

    def url(self, name: str) -> str:
        return f"{self.config.http_base}/{name}"

    # --- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> InstallServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare(self) -> Path:
        self.srv.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for f in ("pxelinux.0", "ldlinux.c32"):
            self.publish(self.bootfiles / f, f)
        self.nbp.ensure_base()
        aii = self.srv / AII_DIR
        aii.mkdir(exist_ok=True)
        for name in ("hosts", "dhcp-hosts"):
            (aii / name).touch()
        conf = self.work_dir / "server"
        conf.mkdir(exist_ok=True)
        (conf / "dnsmasq.conf").write_text(
            render_dnsmasq(
                self.config,
                tftp_root=TFTP_ROOT,
                log_file=f"{LOG_DIR}/dnsmasq.log",
                lease_file=f"{LOG_DIR}/dnsmasq.leases",
            )
        )
        (conf / "dnsmasq.conf").chmod(0o644)
        nodes = [
            {"name": n.name, "fqdn": self.config.fqdn(n.name), "mac": n.mac, "ip": str(n.ip)} for n in self.config.nodes
        ]
        (conf / "httpd.json").write_text(
            json.dumps(
                {
                    "bind": str(self.config.network.server_ip),
                    "root": TFTP_ROOT,
                    "events": f"{LOG_DIR}/events.jsonl",
                    "http_base": self.config.http_base,
                    "nodes": nodes,
                    "dnsmasq": ["/usr/sbin/dnsmasq", "--conf-file=/lab/dnsmasq.conf"],
                },
                indent=1,
            )
        )
        bundle = self.work_dir / "bundle"
        bundle.mkdir(exist_ok=True)
        binds = [
            Bind(conf, "/lab"),
            Bind(self.srv, TFTP_ROOT),
            Bind(self.srv / "pxelinux.cfg", f"{TFTP_ROOT}/pxelinux.cfg", readonly=False),
            Bind(self.srv / "ipxe", f"{TFTP_ROOT}/ipxe", readonly=False),
            Bind(self.log_dir, LOG_DIR, readonly=False),
            Bind(REPO / "netboot_stack", "/opt/xenlab/netboot_stack"),
            Bind(REPO / "quattor", "/opt/xenlab/quattor"),
        ]
        (bundle / "config.json").write_text(
            config_json(
                rootfs=self.rootfs,
                netns_path=netns.NETNS_DIR / self.config.network.server_netns,
                hostname=self.config.server_name,
                args=["/usr/bin/python3.11", "-u", "/opt/xenlab/netboot_stack/httpd.py", "--config", "/lab/httpd.json"],
                binds=binds,
            )
        )
        return bundle

    def start(self) -> None:
        bundle = self._prepare()
        started = time.monotonic()
        self.slot.note(containers=self.container_id)
        run_logged(
            [
                "runc",
                "--root",
                runc_root(),
                "run",
                "--detach",
                "--bundle",
                bundle,
                "--pid-file",
                self.work_dir / "server.pid",
                self.container_id,
            ],
            log_path=self.log_dir / "container.log",
            hint="runc must run as root; see the container log for what the server said",
        )
        self._wait_ready()
        self.events.liveness = self._liveness
        self.events.start_polling()
        self.started_at = time.monotonic()
        log.info("install server %s ready in %.2f s", self.container_id, self.started_at - started)

    def _wait_ready(self) -> None:
        url = f"http://{self.config.network.server_ip}/xenlab/health"
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            state = run(["runc", "--root", runc_root(), "state", self.container_id], check=False)
            if state.returncode != 0 or '"stopped"' in state.stdout:
                break
            try:
                netns.call_in_netns(self.config.network.netns, _get, url, 1.0)
                if self._dnsmasq_ready():
                    return
                last = "dnsmasq has not opened its ports yet"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.05)
        tail = "\n".join((self.log_dir / "container.log").read_text(errors="replace").splitlines()[-20:])
        raise LabError(
            f"install server {self.container_id} did not become ready ({last})\n{tail}",
            hint="is port 53/67/69 in use in the server namespace, or the rootfs image broken? "
            "`./xenlab down --all` removes leftovers; `python -m images build` rebuilds",
        )

    def _liveness(self) -> str | None:
        """None while the container's first process (the HTTP server, which supervises dnsmasq) runs."""
        try:
            pid = int((self.work_dir / "server.pid").read_text())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return f"the install server's container {self.container_id} is gone"
        if state in ("Z", "X"):
            return f"the install server's container {self.container_id} has exited"
        return None

    def _dnsmasq_ready(self) -> bool:
        try:
            text = (self.log_dir / "dnsmasq.log").read_text(errors="replace")
        except FileNotFoundError:
            return False
        return "TFTP root is" in text

    def reload(self, timeout: float = 10.0) -> None:
        """Make dnsmasq re-read AII's DHCP and DNS entries (SIGHUP: its leases are kept)."""
        log_file = self.log_dir / "dnsmasq.log"
        marker = f"read {TFTP_ROOT}/{AII_DIR}/hosts"
        before = log_file.read_text(errors="replace").count(marker)
        run(["runc", "--root", runc_root(), "kill", self.container_id, "HUP"])
        deadline = time.monotonic() + timeout
        while log_file.read_text(errors="replace").count(marker) <= before:
            if time.monotonic() > deadline:
                raise LabError(f"dnsmasq did not re-read {marker.split()[1]} within {timeout:.0f} s after SIGHUP")
            time.sleep(0.05)

    def leases(self) -> list[str]:
        """dnsmasq's lease database, one line per lease (expiry, MAC, IP, name, client id)."""
        path = self.log_dir / "dnsmasq.leases"
        return path.read_text().splitlines() if path.exists() else []

    def dnsmasq_pid(self) -> int:
        """The PID (in the machine's namespace) of the container's dnsmasq: fault scenarios kill it."""
        found = [pid for pid in netns.pids(self.config.network.server_netns) if _command(pid) == "dnsmasq"]
        if len(found) != 1:
            raise LabError(f"expected one dnsmasq in the install server's namespace, found PIDs {found}")
        return found[0]

    def rss_mib(self) -> float:
        """The container's resident memory now (dnsmasq plus the HTTP server)."""
        return sum(peak_rss_mib(pid, "VmRSS") for pid in netns.pids(self.config.network.server_netns))

    def stop(self) -> None:
        self.events.stop_polling()
        self.events.poll()  # the last lines, for whoever reads the log after the lab is down
        root = runc_root()
        if run(["runc", "--root", root, "state", self.container_id], check=False).returncode == 0:
            run(["runc", "--root", root, "kill", self.container_id, "KILL"], check=False)
            run(["runc", "--root", root, "delete", "--force", self.container_id], check=False)
        self.slot.forget(containers=self.container_id)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(errors="replace").strip()
    except OSError:  # it exited
        return ""


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data
