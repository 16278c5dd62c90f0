"""A lab: one isolated world of network namespaces, an install server and VMs, torn down on every path.

```python
spec = LabSpec("netboot", nodes=(NodeSpec("cagnode50", host=50),))
with Lab(spec) as lab:
    lab.serve_install("cagnode50", kickstart="...")
    vm = lab.vm("cagnode50")
    vm.start()
    lab.wait_event("cagnode50", kind=Kind.ACK, phase="ack", timeout=120)
```

Everything a lab starts is entered into one `ExitStack` and recorded in its registry slot, so it is removed
on success, failure, timeout, Ctrl-C and SIGTERM.  If the process dies before its stack is closed (a second
Ctrl-C, a SIGKILL half-way through the teardown), the lab's reaper removes what it started within seconds
(foundation/reaper.py); and what anything else left is removed at the next start or by `./xenlab down`.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import signal
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation import interrupts, netns, registry, settings
from foundation.errors import PreflightError, ProductFailure
from foundation.network import LabNetwork, NetworkConfig, tap_name
from foundation.paths import new_run_dir, work_root
from foundation.process import run
from images import catalog
from lab import accel, image_set, preflight, resources, ssh, topology
from lab.installer_plugin import InstallerPlugin
from lab.timeline import Timeline
from lab.topology import Site
from lab.vm import DiskConfig, NicConfig, Vm, VmConfig
from netboot_stack.config import InstallServerConfig, Route, ServedNode
from netboot_stack.events import Event, Kind
from netboot_stack.server import InstallServer
from quattor.aii.dialect import install_arguments
from quattor.aii.nbp import BootEntry, NodeBoot

log = logging.getLogger("xenlab.lab")

PAYLOAD_DIR = "payload"  # where the install server serves the payloads, as AII's kickstarts name them


@dataclass(frozen=True)
class NodeSpec:
    """A machine of the lab: its address, how it netboots, and its VM."""

    name: str
    host: int  # host number inside the lab subnet
    route: Route = Route.PXELINUX
    mac: str | None = None  # None: derived from the lab's MAC prefix, unique per lab
    memory_mb: int = 512
    cpus: int = 1
    installer: str = "dummy-installer"
    disks: tuple[DiskConfig, ...] = ()
    by_aii: bool = False  # described by a profile: AII writes its boot, DHCP and DNS entries
    boot_order: str = "nc"  # QEMU's: n network, c first disk


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel and initrd straight from QEMU, for VM tests that are not about netbooting."""

    kernel: Path
    initrd: Path
    append: str


@dataclass(frozen=True)
class LabSpec:
    label: str
    nodes: tuple[NodeSpec, ...] = ()
    domain: str = "xenlab.test"
    subnet: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("10.77.0.0/24"))
    server_name: str = "gridinstall"  # the install server's host name, in `domain`
    server_host: int = 1  # its host number inside `subnet`
    payloads: tuple[str, ...] = ()  # payload images the install server serves under payload/ (catalog names)

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise PreflightError(f"the lab has no node {name!r}", hint=f"nodes: {', '.join(n.name for n in self.nodes)}")


def spec_from_profiles(
    label: str, profiles: Path | Site, names: Iterable[str], *, payloads: tuple[str, ...] = (), **node_options: Any
) -> LabSpec:
    """A lab whose nodes are the profiles' machines (their names, MACs and addresses, read the way AII reads
    them) and whose install server, subnet and domain are the install server's profile's."""
    site = profiles if isinstance(profiles, Site) else topology.read_site(profiles)
    nodes = []
    for name in names:
        aii = site.installed(name)
        host = int(aii.ip) - int(site.subnet.network_address)
        nodes.append(NodeSpec(name, host=host, mac=aii.mac, by_aii=True, **node_options))
    return LabSpec(
        label,
        tuple(nodes),
        domain=site.domain,
        subnet=site.subnet,
        server_name=site.server.name,
        server_host=int(site.server.ip) - int(site.subnet.network_address),
        payloads=payloads,
    )


def check_spec(spec: LabSpec) -> None:
    """Bad input found before anything starts."""
    for n in spec.nodes:
        if n.installer not in catalog.NAMES:
            raise PreflightError(
                f"node {n.name}: no image named {n.installer!r}", hint=f"known images: {', '.join(catalog.NAMES)}"
            )
    names = [n.name for n in spec.nodes]
    hosts = [str(n.host) for n in spec.nodes]
    macs = [n.mac.lower() for n in spec.nodes if n.mac]
    for what, values in (("name", names), ("IP address", hosts), ("MAC", macs)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            raise PreflightError(
                f"two nodes share the {what} {sorted(dup)[0]}", hint="every node needs its own name, MAC and IP address"
            )


class Lab:
    def __init__(self, spec: LabSpec, *, run_dir: Path | None = None, keep: bool | None = None) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.keep = settings.current().keep if keep is None else keep
        self.timeline = Timeline()
        self.stack = ExitStack()
        self.vms: dict[str, Vm] = {}
        self._ssh: ssh.SshAccess | None = None
        self._published: set[InstallerPlugin] = set()
        self.images: image_set.ImageSet
        self.slot: registry.LabSlot
        self.network: NetworkConfig
        self.server: InstallServer
        self.accel: accel.Accelerator
        self.work_dir: Path

    # --- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        check_spec(self.spec)
        preflight.check_privileges()
        preflight.check_tools()
        interrupts.raise_on_sigterm()
        try:
            self._up()
        except BaseException:
            self._take_down()
            raise
        return self

    def _up(self) -> None:
        with self.timeline.phase("lab", "images"):
            self.images = image_set.build((n.installer for n in self.spec.nodes), self.spec.payloads)
            preflight.check_dnsmasq(str(self.images.server_rootfs))
            self.accel = accel.choose(self.images.probe / "vmlinuz", self.images.probe / "initrd.img")
        with self.timeline.phase("lab", "lab-up"):
            registry.sweep()
            self.slot = registry.claim_slot()
            self.stack.callback(self.slot.release)
            if self.run_dir is None:
                self.run_dir = new_run_dir(f"{self.spec.label}-{self.slot.lab_id}")
            self.slot.guard(self.run_dir / "reaper.log")  # if this process dies before the stack closes
            self.work_dir = work_root() / self.slot.lab_id
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir.mkdir(parents=True)
            self.stack.callback(shutil.rmtree, self.work_dir, True)
            self.stack.callback(self._save_report)
            self.network = NetworkConfig.around(
                self.slot.lab_id,
                self.spec.subnet,
                self.spec.subnet.network_address + self.spec.server_host,
                used=[n.host for n in self.spec.nodes],
            )
            self.slot.note(namespaces=self.network.netns)
            self.slot.note(namespaces=self.network.server_netns)
            self.net = self.stack.enter_context(LabNetwork(self.network))
            self.resources = resources.Sampler((self.network.netns, self.network.server_netns))
            self.resources.start()
            self.stack.callback(self.resources.stop)
            served = tuple(
                ServedNode(n.name, self.mac(n.name), self.ip(n.name), n.route, n.by_aii) for n in self.spec.nodes
            )
            config = InstallServerConfig(
                self.network, domain=self.spec.domain, server_name=self.spec.server_name, nodes=served
            )
            self.server = InstallServer(
                config,
                slot=self.slot,
                work_dir=self.work_dir,
                log_dir=self.run_dir / "install-server",
                rootfs=self.images.server_rootfs,
                bootfiles=self.images.bootfiles,
            )
            self.stack.enter_context(self.server)
            for file_name, path in self.images.payloads.items():
                self.server.publish(path, f"{PAYLOAD_DIR}/{file_name}")
        log.info("lab %s is up; logs in %s", self.slot.lab_id, self.run_dir)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.keep and hasattr(self, "slot"):
                self.hold()
        finally:
            self._take_down()

    def _take_down(self) -> None:
        """Close the stack to its end: a Ctrl-C meanwhile is raised after it, not half-way through."""
        with interrupts.deferred("taking the lab down"):
            self.stack.close()

    def access(self) -> str:
        """How a person gets into this lab while it runs: consoles, shells, logs, and how to end it."""
        assert self.run_dir is not None
        lines = [f"lab {self.slot.lab_id} ({self.spec.label}) is up; artifacts in {self.run_dir}"]
        for name, vm in self.vms.items():
            lines.append(f"  {name}: console log (live): tail -f {vm.log_dir}/console-*.log")
        if self._ssh is not None:
            for node in self.spec.nodes:
                lines.append(f"  {node.name}: shell: {self._ssh.command(str(self.ip(node.name)))}")
            xen_hosts = [n for n in self.spec.nodes if n.name in self.vms]
            for node in (n for n in self.spec.nodes if n.name not in self.vms and xen_hosts):
                host = self._ssh.command(str(self.ip(xen_hosts[0].name)))
                lines.append(f"  {node.name}: console (if a Xen guest): {host} -t xl console {node.name}")
        lines.append(f"  install server: {self.run_dir}/install-server/ (dnsmasq.log, events.jsonl)")
        lines.append("  take it down: Ctrl-C here, or ./xenlab down --all from another shell")
        return "\n".join(lines)

    def hold(self) -> None:
        """Keep the lab up (after its scenario passed or failed) until Ctrl-C or SIGTERM."""
        text = self.access()
        assert self.run_dir is not None
        (self.run_dir / "ACCESS.txt").write_text(text + "\n")
        log.warning("--keep: %s", text)
        print("\n" + text, file=sys.__stderr__, flush=True)
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            log.warning("lab %s: taking it down", self.slot.lab_id)

    def _save_report(self) -> None:
        assert self.run_dir is not None
        self.timeline.save(self.run_dir / "phases.json")
        (self.run_dir / "phases.txt").write_text(self.timeline.table() + "\n")
        if hasattr(self, "resources"):
            resources.save(self.run_dir / "resources.json", self.timeline.records, self.resources, self.timeline.t0)
            log.info("lab %s: peak memory %.0f MiB", self.slot.lab_id, self.resources.peak_rss_mib)

    # --- identity ------------------------------------------------------------------------------------------
    def mac(self, name: str) -> str:
        node = self.spec.node(name)
        if node.mac:
            return node.mac.lower()
        return f"52:54:00:{self.slot.index:02x}:{node.host >> 8:02x}:{node.host & 0xFF:02x}"

    def ip(self, name: str) -> ipaddress.IPv4Address:
        return self.spec.subnet.network_address + self.spec.node(name).host

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.spec.domain}"

    def node_boot(self, name: str) -> NodeBoot:
        return NodeBoot(self.fqdn(name), self.mac(name), self.ip(name))

    # --- installs ------------------------------------------------------------------------------------------
    def serve_install(
        self,
        name: str,
        *,
        kickstart: str,
        append: Iterable[str] = (),
        installer: InstallerPlugin | None = None,
        console: str = "ttyS0",
        over_http: bool = False,
        xen_pv: bool = False,
        nic: str = "eth0",
    ) -> BootEntry:
        """Publish the node's installer and kickstart, and switch the node to install at its next boot: the
        node's installer image with `ks=`, or an installer plug-in with the boot arguments of its dialect.
        `console`: the installer's console device (a Xen PV guest's is hvc0).  `over_http`: the entry names
        kernel and initrd by their HTTP URLs (as the seed's AII entries do for pypxeboot), else by their
        TFTP paths (what a NIC's PXELINUX fetches).  `xen_pv`: the node is a Xen PV guest, which boots the
        plug-in's `kernel_xen` if it has one.  `nic`: the installer's network device, named to a plug-in
        in its dialect (Anaconda's `ip=<nic>:dhcp`, EL5's `ksdevice=`)."""
        ks = self.server.url(self.server.write(f"ks/{self.fqdn(name)}.ks", kickstart))
        if installer is None:
            node = self.spec.node(name)
            image = self.images.installer(node.installer)
            kernel = self.server.publish(image / "vmlinuz", f"boot/{node.installer}/vmlinuz")
            initrd = self.server.publish(image / "initrd.img", f"boot/{node.installer}/initrd.img")
            install: tuple[str, ...] = (f"ks={ks}",)
        else:
            self.publish_installer(installer)
            kernel = f"{installer.served_dir}/{Path(installer.kernel_for(xen_pv=xen_pv)).name}"
            initrd = f"{installer.served_dir}/{Path(installer.initrd).name}"
            install = install_arguments(installer.dialect, ks=ks, nic=nic)
        if over_http:
            kernel, initrd = self.server.url(kernel), self.server.url(initrd)
        entry = BootEntry(
            label=f"install-{name}",
            kernel=kernel,
            initrd=initrd,
            append=(*install, *(installer.append if installer else ()), f"console={console}", "panic=-1", *append),
        )
        self.server.nbp.configure(self.node_boot(name), entry)
        self.server.nbp.install(self.node_boot(name))
        return entry

    def publish_installer(self, plugin: InstallerPlugin) -> None:
        """Serve an installer plug-in's kernel, initrd, updates image and stage2 under `plugin.served_dir`
        (over HTTP and TFTP), where `lab.profiles.point_at` points AII's entries; the lab's own from its image.
        Once per lab: a file published again is briefly absent, and a machine may be fetching it."""
        if plugin in self._published:
            return
        self._published.add(plugin)
        source = self.images.installer(plugin.image) if plugin.image else plugin.directory
        for name in (plugin.kernel, plugin.kernel_xen, plugin.initrd, plugin.updates, plugin.stage2):
            if name and "://" not in name:
                self.server.publish(source / name, f"{plugin.served_dir}/{Path(name).name}")

    def aii(self, action: str, *hosts: str, profiles: Path, image: str | None = None, payload: str = "payload") -> str:
        """Run aii-shellfe on the install server's tree, as a site does, then apply its DHCP/DNS entries.

        `image` (for --configure) publishes that installer image where the profiles' AII options expect the
        installer: `boot/installer/vmlinuz` and `boot/installer/initrd.img`.
        """
        if image is not None:
            built = self.images.installer(image)
            self.server.publish(built / "vmlinuz", "boot/installer/vmlinuz")
            self.server.publish(built / "initrd.img", "boot/installer/initrd.img")
        argv = [
            sys.executable,
            "-m",
            "quattor.aii.shellfe",
            f"--{action}",
            *hosts,
            "--profiles",
            str(profiles),
            "--root",
            str(self.server.srv),
            "--http-base",
            self.server.config.http_base,
            "--payload-image",
            payload,
        ]
        proc = run(argv, check=False)
        with (self.run_dir or self.work_dir).joinpath("aii-shellfe.log").open("a") as log_file:
            log_file.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ProductFailure(f"aii-shellfe --{action} {' '.join(hosts)} failed:\n{proc.stderr.strip()}")
        if action in ("configure", "remove"):
            self.server.reload()
        return proc.stdout

    # --- machines ------------------------------------------------------------------------------------------
    def vm(self, name: str, *, direct_boot: DirectBoot | None = None) -> Vm:
        """The node's VM (created on first use, not yet started); `direct_boot` skips firmware and PXE."""
        if name in self.vms:
            return self.vms[name]
        node = self.spec.node(name)
        tap = self.net.add_tap(tap_name(self.spec.nodes.index(node), name))
        assert self.run_dir is not None
        config = VmConfig(
            name=name,
            memory_mb=node.memory_mb,
            cpus=node.cpus,
            nics=(NicConfig(self.mac(name), tap),),
            disks=node.disks,
            boot_order=node.boot_order,
            kernel=direct_boot.kernel if direct_boot else None,
            initrd=direct_boot.initrd if direct_boot else None,
            append=direct_boot.append if direct_boot else "",
        )
        vm = Vm(
            config,
            slot=self.slot,
            netns_name=self.network.netns,
            work_dir=self.work_dir / name,
            log_dir=self.run_dir / name,
            accel=self.accel,
        )
        self.vms[name] = self.stack.enter_context(vm)
        return vm

    @property
    def ssh(self) -> ssh.SshAccess:
        """SSH to the lab's machines (a key pair and an ssh_config made for this lab on first use)."""
        if self._ssh is None:
            self._ssh = ssh.setup(self.work_dir / "ssh", self.network.netns)
            self.stack.callback(self._ssh.close)
        return self._ssh

    # --- witnesses -----------------------------------------------------------------------------------------
    def wait_event(
        self, name: str, *, kind: Kind, phase: str, timeout: float, path: str | None = None, since: float = 0.0
    ) -> Event:
        """Wait for the install server to see `kind` from node `name`, recorded as a phase of that node (only
        events read after `since`, a time.monotonic(), count: a node's earlier boots are history).

        The node's own console is watched for fatal output (another machine's failure is not this one's).
        """
        vm = self.vms.get(name)
        watch = [vm.console] if vm is not None and vm.console is not None else []
        with self.timeline.phase(name, phase):
            return self.server.events.wait_for(
                phase=phase, timeout=timeout, kind=kind, node=name, path=path, watch=watch, since=since
            )

    def wait_console(self, name: str, pattern: str, *, phase: str, timeout: float) -> str:
        vm = self.vms[name]
        assert vm.console is not None
        with self.timeline.phase(name, phase):
            return vm.console.expect(pattern, phase=phase, timeout=timeout).group(0)

    def resolve(self, qname: str, rdtype: str = "A") -> list[str]:
        """Ask the lab's DNS server, from the lab network, and return the answers as text."""
        import dns.message
        import dns.query
        import dns.rcode

        def query() -> list[str]:
            response = dns.query.udp(dns.message.make_query(qname, rdtype), str(self.network.server_ip), timeout=3)
            if response.rcode() != dns.rcode.NOERROR:
                return []
            return [item.to_text() for rrset in response.answer for item in rrset]

        return netns.call_in_netns(self.network.netns, query)
