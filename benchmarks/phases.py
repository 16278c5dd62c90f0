"""Benchmark any scenario by its phases: run it N times, print the median seconds of every phase.

  python -m benchmarks.phases scenarios/test_host_install.py [--runs 3] [--json FILE]

Each run of a scenario leaves `phases.json` in its artifacts directory; this collects the runs made now
and prints, per machine and phase, the median duration and the median time the phase ended (from the
first phase of that machine).  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

from foundation.paths import artifacts_root
from foundation.process import start


def run_once(target: str) -> tuple[list[Path], float]:
    """Run the scenario; its runs' phase files and its wall time."""
    started = time.time()
    with start(
        [sys.executable, "-m", "pytest", target, "-q", "-p", "no:cacheprovider", "-x"], stdin=None, env=os.environ
    ) as pytest:
        code = pytest.wait()
    if code != 0:
        raise SystemExit(f"the scenario failed (pytest exit {code}); no figures from a failed run")
    return [p for p in artifacts_root().glob("*/phases.json") if p.stat().st_mtime >= started], time.time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.phases",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help="a scenario test file or node id")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="default: artifacts/reports/bench-<target>.json")
    args = parser.parse_args(argv)
    if args.json is None:
        name = re.sub(r"[^A-Za-z0-9]+", "-", args.target.removeprefix("scenarios/")).strip("-")
        args.json = Path("artifacts/reports") / f"bench-{name}.json"
    durations: dict[tuple[str, str], list[float]] = {}
    ends: dict[tuple[str, str], list[float]] = {}
    walls: list[float] = []
    for i in range(args.runs):
        paths, wall = run_once(args.target)
        walls.append(wall)
        for path in paths:
            records = json.loads(path.read_text())
            first: dict[str, float] = {}
            for r in records:
                if r["seconds"] is None or r["outcome"] != "ok":
                    continue
                first.setdefault(r["subject"], r["start"])
                key = (r["subject"], r["phase"])
                durations.setdefault(key, []).append(r["seconds"])
                ends.setdefault(key, []).append(r["start"] + r["seconds"] - first[r["subject"]])
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    print(f"\n{args.target}: median of {args.runs} runs (seconds)")
    print(f"{'machine':<12} {'phase':<22} {'duration':>9} {'ends at':>9}")
    for key in durations:
        print(f"{key[0]:<12} {key[1]:<22} {statistics.median(durations[key]):9.2f} {statistics.median(ends[key]):9.2f}")
    print(f"whole scenario (pytest wall time, images built): {statistics.median(walls):.1f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in durations.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
