"""Benchmark: the gateway reinstall phase by phase, where each phase's time goes, the lab's peak memory, and
every figure against this machine's baseline.

  python -m benchmarks.gateway [--variant seed-pv] [--runs 1] [--from host-installed] [--baseline] [--json FILE]

Each run is the gateway scenario itself (pytest, the same checks).  Per machine and phase it prints the
median seconds, the CPU seconds the lab's processes used in that window, the block I/O, and how busy the
cores were (`busy`: 100 % is every core emulating for the lab all the phase long; the rest is waiting on a
timer, the network or a firmware).  Then the journey (from the host's first phase to the last guest's
installed system up), the lab's peak resident memory, and the target of issue 15 for the variant.

`--baseline` first times this machine's bare QEMU netboot to its ack (benchmarks.netboot's bare row, the
prototype's command line, against the same install server): every time is also printed as a multiple of
it, so that figures from machines of different speed compare.  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.netboot import bare_run
from foundation.paths import artifacts_root
from foundation.process import start
from netboot_stack.config import Route

TEST = "scenarios/test_gateway_reinstall.py::test_the_gateway_reinstalls_from_empty_disks"
# Issue 15's targets on a 2-core TCG machine (seconds of the journey)
TARGETS = {("seed-pv", "empty-disks"): 300.0, ("seed-hvm", "empty-disks"): 900.0, ("seed-pv", "host-installed"): 240.0}
GUEST_LAST_PHASES = ("pygrub-and-boot", "grub-and-boot")


@dataclass
class RunFigures:
    phases: dict[tuple[str, str], float] = field(default_factory=dict)  # (subject, phase) -> seconds
    cpu: dict[tuple[str, str], float] = field(default_factory=dict)
    io_mib: dict[tuple[str, str], float] = field(default_factory=dict)
    busy: dict[tuple[str, str], float] = field(default_factory=dict)
    journey_s: float = 0.0
    peak_rss_mib: float = 0.0
    wall_s: float = 0.0


def run_gateway(variant: str, start_from: str) -> Path:
    """One run of the scenario; its artifacts directory (the last attempt's, if it was retried)."""
    started = time.time()
    argv = [sys.executable, "-m", "pytest", f"{TEST}[{variant}]", "-q", "-p", "no:cacheprovider", "-x"]
    argv += ["--lab-retries=1", f"--from={start_from}"]
    with start(argv, stdin=None, env=os.environ) as pytest:
        code = pytest.wait()
    if code != 0:
        raise SystemExit(f"the gateway scenario failed (pytest exit {code}); no figures from a failed run")
    runs = sorted(
        (p.parent for p in artifacts_root().glob("*/phases.json") if p.stat().st_mtime >= started),
        key=lambda d: (d / "phases.json").stat().st_mtime,
    )
    if not runs:
        raise SystemExit(f"the scenario passed but left no phases.json under {artifacts_root()}")
    return runs[-1]


def figures_of(run_dir: Path, wall_s: float) -> RunFigures:
    records = json.loads((run_dir / "phases.json").read_text())
    figures = RunFigures(wall_s=wall_s)
    journey_start, journey_end = None, 0.0
    for r in records:
        if r.get("seconds") is None or r.get("outcome") != "ok" or r["subject"] in ("lab", "checks"):
            continue
        figures.phases[(r["subject"], r["phase"])] = r["seconds"]
        journey_start = r["start"] if journey_start is None else min(journey_start, r["start"])
        if r["phase"] in GUEST_LAST_PHASES:
            journey_end = max(journey_end, r["start"] + r["seconds"])
    figures.journey_s = journey_end - (journey_start or 0.0)
    try:
        profile: dict[str, Any] = json.loads((run_dir / "resources.json").read_text())
    except (OSError, ValueError):
        return figures
    figures.peak_rss_mib = float(profile.get("peak_rss_mib", 0.0))
    for p in profile.get("phases", []):
        key = (p["subject"], p["phase"])
        figures.cpu[key], figures.io_mib[key], figures.busy[key] = p["cpu_s"], p["io_mib"], p["busy"]
    return figures


def median(runs: list[RunFigures], pick: str, key: tuple[str, str]) -> float | None:
    values = [getattr(r, pick)[key] for r in runs if key in getattr(r, pick)]
    return statistics.median(values) if values else None


def ratio(seconds: float, baseline: float | None) -> str:
    return f"{seconds / baseline:9.1f}x" if baseline else f"{'-':>10}"


def report(variant: str, start_from: str, runs: list[RunFigures], baseline: float | None) -> str:
    keys = list(dict.fromkeys(k for r in runs for k in r.phases))
    rows = [
        f"{variant} from {start_from}: median of {len(runs)} run(s); seconds, CPU seconds of the lab, block I/O, "
        f"busy cores" + (f"; x = multiples of this machine's bare netboot ({baseline:.1f} s)" if baseline else ""),
        f"{'machine':<12} {'phase':<24} {'seconds':>8} {'x':>10} {'cpu-s':>8} {'io-MiB':>8} {'busy':>6}",
    ]
    for key in keys:
        seconds = median(runs, "phases", key) or 0.0
        cpu, io, busy = (median(runs, pick, key) for pick in ("cpu", "io_mib", "busy"))
        rows.append(
            f"{key[0]:<12} {key[1]:<24} {seconds:8.1f} {ratio(seconds, baseline)} "
            + (
                f"{cpu:8.1f} {io:8.1f} {busy * 100:5.0f}%"
                if cpu is not None and io is not None and busy is not None
                else ""
            )
        )
    journey = statistics.median(r.journey_s for r in runs)
    peak = statistics.median(r.peak_rss_mib for r in runs)
    wall = statistics.median(r.wall_s for r in runs)
    rows.append(f"journey (host's first phase to the last guest up): {journey:.1f} s{ratio(journey, baseline)}")
    rows.append(f"peak memory of the whole lab (QEMU and the install server): {peak:.0f} MiB")
    rows.append(f"scenario wall time (pytest: lab up, images, checks, teardown): {wall:.1f} s")
    target = TARGETS.get((variant, start_from))
    if target is not None:
        verdict = "met" if journey <= target else f"not met ({journey - target:.0f} s over)"
        rows.append(f"target (issue 15, 2-core TCG): {target:.0f} s: {verdict}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="seed-pv", help="the scenario's id: seed-pv, seed-hvm, westgrid-pv, …")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--from", dest="start_from", default="empty-disks", choices=("empty-disks", "host-installed"))
    parser.add_argument("--baseline", action="store_true", help="first time this machine's bare QEMU netboot")
    parser.add_argument(
        "--json", type=Path, default=None, help="default: artifacts/reports/bench-gateway-<variant>.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    baseline = bare_run(Route.PXELINUX)["ack"] if args.baseline else None
    if baseline is not None:
        print(f"baseline: bare QEMU netboot to its ack in {baseline:.2f} s", file=sys.stderr)
    runs = []
    for i in range(args.runs):
        started = time.monotonic()
        run_dir = run_gateway(args.variant, args.start_from)
        runs.append(figures_of(run_dir, time.monotonic() - started))
        print(f"run {i + 1}/{args.runs}: journey {runs[-1].journey_s:.1f} s ({run_dir})", file=sys.stderr)
    print("\n" + report(args.variant, args.start_from, runs, baseline))
    out = args.json or Path("artifacts/reports") / f"bench-gateway-{args.variant}-{args.start_from}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "variant": args.variant,
                "from": args.start_from,
                "baseline_s": baseline,
                "runs": [
                    {
                        "journey_s": r.journey_s,
                        "peak_rss_mib": r.peak_rss_mib,
                        "wall_s": r.wall_s,
                        "phases": {f"{k[0]}/{k[1]}": v for k, v in r.phases.items()},
                        "cpu_s": {f"{k[0]}/{k[1]}": v for k, v in r.cpu.items()},
                    }
                    for r in runs
                ],
            },
            indent=1,
        )
    )
    print(f"\nall runs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
