"""Benchmark: per-phase netboot times, median of several runs, plus lab up/down times and memory.

  python -m benchmarks.netboot [--runs 5] [--routes pxelinux,ipxe] [--baseline] [--json FILE]

Times are seconds from QEMU start to the end of each phase: DHCP lease, boot file (pxelinux config or
iPXE script), kernel start, kickstart fetched, ack.  Figures are printed, never asserted.

`--baseline` adds a row per route for the same boot by a bare QEMU (the netboot prototype's own command
line: serial on stdout, no QMP, no disk) against the same install server: the difference between the two
rows is what the harness costs, and the bare row is what this machine's TCG gives at best.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from foundation import netns
from foundation.errors import LabError
from foundation.network import tap_name
from foundation.process import spawn
from lab.lab import Lab, LabSpec, NodeSpec
from lab.vm import QEMU
from netboot_stack.config import Route
from netboot_stack.events import Kind
from scenario_steps.netboot import kickstart_for, netboot

MILESTONES = ("dhcp", "boot-file", "kernel-start", "kickstart", "ack")


def one_run(route: Route) -> dict[str, float]:
    spec = LabSpec(f"bench-{route}", nodes=(NodeSpec("cagnode50", host=50, route=route),))
    figures: dict[str, float] = {}
    started = time.monotonic()
    lab = Lab(spec)
    with lab:
        figures["lab-up"] = time.monotonic() - started - _phase(lab, "lab", "images")
        result = netboot(lab, "cagnode50")
        figures["qemu-rss-mib"] = result.qemu_peak_rss_mib
        figures["server-rss-mib"] = result.server_rss_mib
        zero = next(r.start for r in lab.timeline.records if r.phase == "qemu-start")
        for r in lab.timeline.records:
            if r.subject == "cagnode50" and r.phase in MILESTONES and r.end is not None:
                figures[r.phase] = r.end - zero
        down_started = time.monotonic()
    figures["lab-down"] = time.monotonic() - down_started
    return figures


def bare_run(route: Route) -> dict[str, float]:
    """The prototype's QEMU command in a lab: markers read from its stdout, events from the install server."""
    node = "cagnode50"
    lab = Lab(LabSpec(f"bench-bare-{route}", nodes=(NodeSpec(node, host=50, route=route),)))
    with lab:
        lab.serve_install(node, kickstart=kickstart_for(lab, node, "bare"))
        tap = lab.net.add_tap(tap_name(0, node))
        argv = [
            QEMU, *lab.accel.qemu_args(), "-m", "1024", "-nodefaults", "-vga", "none", "-display", "none",
            "-machine", "graphics=off", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={lab.mac(node)}", "-boot", "n",
        ]  # fmt: skip
        assert lab.run_dir is not None
        console = lab.run_dir / node / "console-bare.log"
        started = time.monotonic()
        proc = spawn(netns.exec_argv(lab.network.netns, argv), log_path=console)
        lab.slot.note(pids=proc.pid)
        figures: dict[str, float] = {}
        wanted = {
            "dhcp": (Kind.LEASE, None),
            "kickstart": (Kind.HTTP, f"ks/{lab.fqdn(node)}.ks"),
            "ack": (Kind.ACK, None),
        }
        try:
            running = True
            while "ack" not in figures and running and time.monotonic() - started < 120:
                running = proc.poll() is None  # one more look after it powers off: the ack may be just in
                now = time.monotonic() - started
                if "kernel-start" not in figures and b"Linux version" in console.read_bytes():
                    figures["kernel-start"] = now
                for phase, (kind, path) in wanted.items():
                    if phase not in figures and lab.server.events.select(kind=kind, node=node, path=path):
                        figures[phase] = now
                time.sleep(0.05)
        finally:
            proc.stop()
            lab.slot.forget(pids=proc.pid)
    if "ack" not in figures:
        raise LabError(f"bare QEMU ({route}) did not reach the ack; its console: {console}")
    return figures


def _phase(lab: Lab, subject: str, name: str) -> float:
    return next((r.seconds or 0.0) for r in lab.timeline.records if r.subject == subject and r.phase == name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.netboot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--routes", default="pxelinux,ipxe")
    parser.add_argument("--baseline", action="store_true", help="also time a bare QEMU (the prototype's)")
    parser.add_argument("--json", type=Path, default=Path("artifacts/reports/bench-netboot.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    results: dict[str, list[dict[str, float]]] = {}
    for route in (Route(name) for name in args.routes.split(",")):
        for i in range(args.runs):
            figures = one_run(route)
            results.setdefault(route, []).append(figures)
            print(f"{route} run {i + 1}/{args.runs}: ack at {figures['ack']:.2f} s", file=sys.stderr)
            if args.baseline:
                bare = bare_run(route)
                results.setdefault(f"{route}-bare", []).append(bare)
                print(f"{route} bare QEMU run {i + 1}/{args.runs}: ack at {bare['ack']:.2f} s", file=sys.stderr)
    columns = [*MILESTONES, "lab-up", "lab-down", "qemu-rss-mib", "server-rss-mib"]
    print(f"\nnetboot, median of {args.runs} runs; phases in seconds from QEMU start, memory in MiB")
    print(f"{'route':<14}" + "".join(f"{c:>15}" for c in columns))
    for row, runs in results.items():
        cells = [statistics.median(r[c] for r in runs) if c in runs[0] else None for c in columns]
        print(f"{row:<14}" + "".join(f"{'-':>15}" if v is None else f"{v:15.2f}" for v in cells))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nall runs: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
