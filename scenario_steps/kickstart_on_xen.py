"""The kickstart suite's cases on guests of the lab's Xen host: each made by ncm-xen; a PV guest booted by
pypxeboot, an HVM guest by its NIC's PXE ROM (`GuestKind`).

One Xen host serves the whole suite: the seed's, sized as in the gateway run (so the snapshot of its
installed disks that run keeps is this one's too: `gateway.reinstall(start_from="host-installed")`, which
installs it when there is none), with no guests of its own.  Each case is a guest domain with its own name,
MAC and address.  The lab serves the case's kickstart and a pxelinux entry for the MAC (the installer
plug-in's kernel, initrd and boot dialect), then does what a site does to add a guest: the host's profile
gains the domain and dom0 runs `ncm-ncd --configure xen` against it.  ncm-xen makes the file disk and the
xl config and starts the domain; pypxeboot DHCPs for its MAC, reads the entry, fetches kernel and initrd;
the installer installs from the case's kickstart, acks, and reboots or powers off, which ends the domain
(`on_reboot = "destroy"`: kickstart-tests' VMs do not boot what they installed either).

What the verdict is made of (`kickstart_cases.verdict`): the installer's reason if it stopped (its report
to the install server, or a failure line of its console as xenconsoled logged it in dom0: the plug-in's
`[console] failure` patterns), else /root/RESULT read from the guest's disk in dom0.  Then the domain, its
disk and its config go.  `PARALLEL` cases run at once (each guest has one vCPU, the host two): a test
starts its own case and the next one its process runs (`XenSuite.start`).
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from foundation.errors import EmulationFault, LabError, PhaseTimeout, ProductFailure
from foundation.paths import REPO
from foundation.process import run
from lab import host_snapshot
from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from lab.kickstart_cases import Case, Outcome
from lab.kstest_guests import DISK_DIR, DomainWatch, GuestKind, GuestShape, case_nodes, node_name, shape_of
from lab.lab import Lab
from lab.remote_console import GuestConsoleLog
from netboot_stack.events import Kind
from scenario_steps import gateway
from scenario_steps.gateway import Gateway
from scenario_steps.host_install import SEED

log = logging.getLogger("xenlab.kstest-xen")

PARALLEL = 2
ENDED_S = 300  # from the ack to the domain's end (its reboot or power-off)
CLOSE_S = 120
READ_RESULT = REPO / "lab" / "guest_disk_file.py"  # sent to dom0's python3


class Stopped(LabError):
    """The suite is being taken down (Ctrl-C, a failed fixture): a case still running ends here."""


@dataclass
class _Watch:
    """A case's guest while the lab waits for its ack: its console's failure lines, its domain's end."""

    console: GuestConsoleLog
    domain: DomainWatch
    stop: threading.Event
    interval: float = 5.0
    _last: float = 0.0

    def check(self) -> None:
        name = self.domain.name
        if self.stop.is_set():
            raise Stopped(f"{name}: the suite was stopped")
        self.console.check()
        if time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        if not self.domain.running():
            time.sleep(1)  # xenconsoled's last lines
            self.console.check(now=True)  # a failure line it printed before it ended is its reason
            if fault := self.domain.triple_fault():
                raise EmulationFault(
                    f"{name}: Xen ended the guest for a triple fault of its emulated CPU ({fault}), before its install "
                    "ack: an HVM guest under nested emulation (TCG under Xen) does so now and then, in its kernel's "
                    "boot or mid-install; no verdict on the installer, the lab's retry runs the case again\n"
                    f"--- last console lines ({self.console.copy}) ---\n{self.console.tail()}"
                )
            raise ProductFailure(
                f"{name}: the domain ended before its install ack\n"
                f"--- last console lines ({self.console.copy}) ---\n{self.console.tail()}"
            )


class XenSuite:
    """Runs cases on guests of a ready Xen host, `PARALLEL` at a time; each case's `Outcome` a future."""

    def __init__(
        self, lab: Lab, gateway: Gateway, plugin: InstallerPlugin, run_dir: Path, kind: GuestKind, shape: GuestShape
    ) -> None:
        self.lab = lab
        self.kind = kind
        self.shape = shape
        self.host = gateway.host.name
        self.host_profile = json.loads((gateway.profiles / f"profile_{self.host}.json").read_text())
        self.plugin = plugin
        self.run_dir = run_dir
        self.ssh = lab.ssh.argv(str(lab.ip(self.host)))
        self.stop = threading.Event()
        self._serving = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="kstest")
        self._futures: dict[str, Future[Outcome]] = {}
        lab.publish_installer(plugin)

    def start(self, cases: Iterable[Case]) -> None:
        """Queue cases not yet run; one the lab broke under (a LabError: a retry asks for it again) runs anew."""
        for case in cases:
            before = self._futures.get(case.name)
            if before is None or (
                before.done() and not before.cancelled() and isinstance(before.exception(), LabError)
            ):
                self._futures[case.name] = self._pool.submit(self._run, case)

    def outcome(self, case: Case) -> Outcome:
        """The case's outcome (started now if it was not): raises what ended it otherwise."""
        self.start([case])
        return self._futures[case.name].result()

    def close(self) -> None:
        """Stop: cases not begun are dropped, running ones end at their next check (a case inside a long SSH
        command is waited for at most `CLOSE_S`: the lab's teardown then ends the command with the host)."""
        self.stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        running = [f for f in self._futures.values() if not f.done()]
        if running and wait(running, timeout=CLOSE_S).not_done:
            log.warning("%d case(s) still in an SSH command to dom0: the lab's teardown ends them", len(running))

    # --- one case ------------------------------------------------------------------------------------------
    def _run(self, case: Case) -> Outcome:
        if self.stop.is_set():
            raise Stopped(f"{case.name}: the suite was stopped before it began")
        name = node_name(case)
        work = self.run_dir / name
        work.mkdir(parents=True, exist_ok=True)
        try:
            since = time.monotonic()
            self._serve(case, name, work)
            self._create(name, work)
            return self._follow(case, name, work, since)
        finally:
            self._remove(name)

    def _serve(self, case: Case, name: str, work: Path) -> None:
        lab = self.lab
        with lab.timeline.phase(name, "serve-case"), self._serving:
            kickstart = kstest.render(case, kstest.lab_values(lab, name), work)
            lab.serve_install(
                name,
                kickstart=kickstart,
                append=("net.ifnames=0", *case.kernel_args()),
                installer=self.plugin,
                console=self.kind.console,
                over_http=self.kind.over_http,
                xen_pv=self.kind.xen_pv,
                nic=kstest.NETDEV,
            )
            profile = json.loads(json.dumps(self.host_profile))
            xen = profile["software"]["components"]["xen"]
            xen["domains"] = [self.kind.domain(name, lab.mac(name), self.shape)]
            xen["create_domains"] = True
            lab.server.write(f"profiles/kstest/{name}.json", json.dumps(profile))

    def _create(self, name: str, work: Path) -> None:
        """dom0's `ncm-ncd --configure xen` with the profile that declares the guest: it makes its disk and
        config and starts it (pypxeboot's DHCP and fetches happen inside its `xl create`)."""
        url = self.lab.server.url(f"profiles/kstest/{name}.json")
        # dom0 appends to a guest's console log across its domains: an earlier attempt's lines must not be read
        # as this one's (the lab's copy of them is in that attempt's artifacts)
        forget = f"rm -f {shlex.quote(self.kind.console_log.format(name=name))}"
        with self.lab.timeline.phase(name, "ncm-xen-start"):
            command = f"{forget}; ncm-ncd --configure xen --profile {shlex.quote(url)}"
            proc = run([*self.ssh, command], check=False, timeout=900)
            (work / "ncm-ncd.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                said = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
                raise ProductFailure(f"{name}: ncm-ncd --configure xen failed in dom0:\n" + "\n".join(said))

    def _follow(self, case: Case, name: str, work: Path, since: float) -> Outcome:
        lab = self.lab
        console = GuestConsoleLog(
            self.ssh,
            name,
            work / "console.log",
            failure=self.plugin.failure,
            progress=self.plugin.progress,
            path=self.kind.console_log.format(name=name),
        )
        watch = _Watch(console, DomainWatch(self.ssh, name), self.stop)
        try:
            with lab.timeline.phase(name, "install-and-ack"):
                lab.server.events.wait_for(
                    phase="install-and-ack",
                    timeout=self.kind.install_s,
                    kind=Kind.ACK,
                    node=name,
                    watch=[watch],
                    since=since,
                )
        except PhaseTimeout:
            raise  # no reason from the installer: the case errs, it is not judged
        except ProductFailure as exc:  # its failure report, a failure line of its console, its domain's end
            if not kstest.reads_result_after_a_stop(case):
                return Outcome(stopped=str(exc))
            self._wait_end(name, "stopped", or_destroy=True)  # an installer may wait at its error
            with lab.timeline.phase(name, "read-result"):
                return Outcome(stopped=str(exc), result=self._read(name, "/root/RESULT"))
        self._wait_end(name, "acked")
        with lab.timeline.phase(name, "read-result"):
            return Outcome(stopped=None, result=self._read(name, "/root/RESULT"))

    def _wait_end(self, name: str, after: str, *, or_destroy: bool = False) -> None:
        """Until the domain has ended by its own reboot or power-off (`or_destroy`: else it is destroyed)."""
        with self.lab.timeline.phase(name, "install-done"):
            deadline, domain = time.monotonic() + ENDED_S, DomainWatch(self.ssh, name)
            while domain.running():
                if self.stop.is_set():
                    raise Stopped(f"{name}: the suite was stopped")
                if time.monotonic() > deadline and or_destroy:
                    run([*self.ssh, f"xl destroy {shlex.quote(name)}"], check=False, timeout=60)
                elif time.monotonic() > deadline:
                    raise PhaseTimeout(f"{name}: {after}, and still running {ENDED_S} s later (no reboot or power-off)")
                time.sleep(3)

    def _read(self, name: str, path: str) -> str | None:
        """A file of the guest's root file system (label `root`), read from its disk in dom0."""
        script = READ_RESULT.read_bytes()
        disk = f"{DISK_DIR}/{name}.img"
        proc = run([*self.ssh, f"python3 - {shlex.quote(disk)} {shlex.quote(path)}"], input=script, timeout=300)
        found = json.loads(proc.stdout)
        if found.get("error"):
            log.warning("%s: %s", name, found["error"])
        text = found.get("text")
        return text if isinstance(text, str) else None

    def _remove(self, name: str) -> None:
        """The guest goes, whatever happened: domain, disk, config (ncm-xen never removes what it made)."""
        q = shlex.quote(name)
        remove = (
            f"xl destroy {q} >/dev/null 2>&1; rm -f {DISK_DIR}/{q}.img /etc/xen/{q}.cfg /etc/xen/{q}.cfg.old "
            f"/etc/xen/{q}.start /etc/xen/auto/{q}.cfg"
        )
        proc = run([*self.ssh, remove], check=False, timeout=120)
        if proc.returncode != 0:
            log.warning("%s: could not remove the guest from dom0: %s", name, proc.stderr.strip())


@contextmanager
def xen_suite(plugin: InstallerPlugin, run_dir: Path, kind: GuestKind) -> Iterator[XenSuite]:
    """A lab with the seed's Xen host ready (from its snapshot when one fits) and every case's guest node, to
    run cases on guests of `kind` (`XenSuite.start`); everything taken down on the way out."""
    chosen = gateway.plan(SEED, kind.name)
    shape = shape_of(chosen.host.path, chosen.host.guests[0].name)  # as the profile shapes its own guests
    host_only = Gateway(chosen.topology, chosen.host.with_guests(()))
    spec = host_only.spec(f"kstest-{kind.name}")
    guests = case_nodes(kstest.cases(), plugin.image or "installer", kind.route)
    spec = replace(spec, nodes=(*spec.nodes, *guests))
    with Lab(spec, run_dir=run_dir) as lab:
        served = gateway.lab_profiles(lab, host_only, run_dir / "profiles", plugin)
        with gateway.xen_state_saved(lab, served.host.name):
            started = gateway.reinstall(lab, served, start_from=host_snapshot.PHASE)
            log.info("the suite's Xen host is ready (from %s); %d cases at a time", started, PARALLEL)
            suite = XenSuite(lab, served, plugin, run_dir, kind, shape)
            try:
                yield suite
            finally:
                suite.close()
