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
import sys
import time
from pathlib import Path

from benchmarks.netboot import bare_run
from foundation.paths import artifacts_root
from foundation.process import start
from netboot_stack.config import Route
from reporting.gateway_figures import figures_of, report

TEST = "scenarios/test_gateway_reinstall.py::test_the_gateway_reinstalls_from_empty_disks"


def run_gateway(variant: str, start_from: str, profiles: Path | None = None) -> Path:
    """One run of the scenario; its artifacts directory (the last attempt's, if it was retried)."""
    started = time.time()
    argv = [sys.executable, "-m", "pytest", f"{TEST}[{variant}]", "-q", "-p", "no:cacheprovider", "-x"]
    argv += [f"--profiles={profiles}"] if profiles is not None else []
    argv += ["--lab-retries=1", f"--from={start_from}", "-o", "log_cli=true", "--log-cli-level=WARNING"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="seed-pv", help="the scenario's id: seed-pv, seed-hvm, westgrid-pv, …")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--from", dest="start_from", default="empty-disks", choices=("empty-disks", "host-installed"))
    parser.add_argument("--baseline", action="store_true", help="first time this machine's bare QEMU netboot")
    parser.add_argument("--profiles", type=Path, help="a profile set of your own (its variants are site-pv, site-hvm)")
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
        run_dir = run_gateway(args.variant, args.start_from, args.profiles)
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
                        "triple_faults": r.triple_faults,
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
