"""The gateway benchmark's figures from a run's artifacts: the journey, the profile, the target's verdict."""

from __future__ import annotations

import json
from pathlib import Path

from reporting import gateway_figures as gateway


def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    rec = [
        ("lab", "images", 0.0, 40.0),  # the lab's own phases are not the journey
        ("cagxen01", "dhcp", 41.0, 2.0),
        ("cagxen01", "dom0-ready", 43.0, 57.0),
        ("cagnode50", "pypxeboot-dhcp", 90.0, 20.0),
        ("cagnode50", "pygrub-and-boot", 110.0, 150.0),
        ("cagnode51", "pygrub-and-boot", 100.0, 170.0),
        ("checks", "dns", 270.0, 30.0),
    ]
    phases = [{"subject": s, "phase": p, "start": t, "end": t + d, "outcome": "ok", "seconds": d} for s, p, t, d in rec]
    (path / "phases.json").write_text(json.dumps(phases))
    profile = {
        "cores": 2,
        "peak_rss_mib": 2900.5,
        "phases": [
            {"subject": "cagxen01", "phase": "dhcp", "seconds": 2.0, "cpu_s": 0.5, "io_mib": 1.5, "busy": 0.125}
        ],
    }
    (path / "resources.json").write_text(json.dumps(profile))
    return path


def test_the_hvm_guests_triple_faults_the_gateway_recorded_are_reported(tmp_path: Path) -> None:
    """As in h4 (Dec 6): xl restarted the HVM guest after its CPU triple-faulted, and the run passed slower."""
    path = run_dir(tmp_path)
    assert gateway.figures_of(path, wall_s=330.0).triple_faults == []
    (path / "cagxen01").mkdir()
    fault = "(XEN) d6v0 Triple fault - invoking HVM shutdown action 1"
    (path / "cagxen01" / "triple-faults.txt").write_text(f"{fault}\n")
    figures = gateway.figures_of(path, wall_s=330.0)
    assert figures.triple_faults == [fault]
    text = gateway.report("seed-hvm", "empty-disks", [figures], baseline=10.0)
    assert f"run 1: an HVM guest restarted after a triple fault (the emulation's): {fault}" in text


def test_the_journey_runs_from_the_hosts_first_phase_to_the_last_guest_up(tmp_path: Path) -> None:
    figures = gateway.figures_of(run_dir(tmp_path), wall_s=330.0)
    assert figures.journey_s == 270.0 - 41.0
    assert ("lab", "images") not in figures.phases and ("checks", "dns") not in figures.phases
    assert figures.cpu[("cagxen01", "dhcp")] == 0.5 and figures.peak_rss_mib == 2900.5


def test_the_report_gives_ratios_to_the_baseline_and_the_targets_verdict(tmp_path: Path) -> None:
    figures = gateway.figures_of(run_dir(tmp_path), wall_s=330.0)
    text = gateway.report("seed-pv", "empty-disks", [figures], baseline=10.0)
    assert "journey (host's first phase to the last guest up): 229.0 s     22.9x" in text
    assert "target (issue 15, 2-core TCG): 300 s: met" in text
    assert "peak memory of the whole lab (QEMU and the install server): 2900 MiB" in text
    line = next(line for line in text.splitlines() if line.startswith("cagxen01     dhcp"))
    assert line.split()[2:] == ["2.0", "0.2x", "0.5", "1.5", "12%"], line
    slow = gateway.report("seed-pv", "host-installed", [figures], baseline=None)
    assert "target (issue 15, 2-core TCG): 240 s: met" in slow and " x = multiples" not in slow
