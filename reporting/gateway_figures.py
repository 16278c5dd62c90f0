"""A gateway run's figures from its artifacts (phases.json, resources.json): the journey, the per-phase
profile, the lab's peak memory, the baseline ratio and issue 15's targets.  Standard library only (the
benchmark prints it; a report job could too)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    triple_faults: list[str] = field(default_factory=list)  # Xen's lines: HVM guests xl restarted, the emulation's


def triple_faults_of(run_dir: Path) -> list[str]:
    """Xen's triple-fault lines the gateway recorded for its HVM guests (`<host>/triple-faults.txt`, from the
    host's console): a guest whose emulated CPU triple-faulted is restarted by xl and the run passes, slower by
    a boot."""
    return [line for record in sorted(run_dir.glob("*/triple-faults.txt")) for line in record.read_text().splitlines()]


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
    figures.triple_faults = triple_faults_of(run_dir)
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
    for i, r in enumerate(runs, 1):
        rows += [
            f"run {i}: an HVM guest restarted after a triple fault (the emulation's): {f}" for f in r.triple_faults
        ]
    target = TARGETS.get((variant, start_from))
    if target is not None:
        verdict = "met" if journey <= target else f"not met ({journey - target:.0f} s over)"
        rows.append(f"target (issue 15, 2-core TCG): {target:.0f} s: {verdict}")
    return "\n".join(rows)
