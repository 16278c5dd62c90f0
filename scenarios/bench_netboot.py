"""Benchmark: per-phase netboot times, median of several runs, plus lab up/down times and memory.

  python -m scenarios.bench_netboot [--runs 5] [--routes pxelinux,ipxe] [--json FILE]

Times are seconds from QEMU start to the end of each phase: DHCP lease, boot file (pxelinux config or
iPXE script), kernel start, kickstart fetched, ack.  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from lab.lab import Lab, LabSpec, NodeSpec
from scenarios.netboot import netboot

MILESTONES = ("dhcp", "boot-file", "kernel-start", "kickstart", "ack")


def one_run(route: str) -> dict[str, float]:
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


def _phase(lab: Lab, subject: str, name: str) -> float:
    return next((r.seconds or 0.0) for r in lab.timeline.records if r.subject == subject and r.phase == name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.bench_netboot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--routes", default="pxelinux,ipxe")
    parser.add_argument("--json", type=Path, default=Path("artifacts/reports/bench-netboot.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    results: dict[str, list[dict[str, float]]] = {}
    for route in args.routes.split(","):
        for i in range(args.runs):
            figures = one_run(route)
            results.setdefault(route, []).append(figures)
            print(f"{route} run {i + 1}/{args.runs}: ack at {figures['ack']:.2f} s", file=sys.stderr)
    columns = [*MILESTONES, "lab-up", "lab-down", "qemu-rss-mib", "server-rss-mib"]
    print(f"\nnetboot, median of {args.runs} runs; phases in seconds from QEMU start, memory in MiB")
    print(f"{'route':<10}" + "".join(f"{c:>15}" for c in columns))
    for route, runs in results.items():
        print(f"{route:<10}" + "".join(f"{statistics.median(r[c] for r in runs):15.2f}" for c in columns))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nall runs: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
