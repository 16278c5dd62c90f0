"""The lab's resource profile: CPU and I/O per phase window, peak memory, processes that exit counted."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from foundation import netns
from lab import resources
from lab.resources import Sample, Sampler
from lab.timeline import PhaseRecord


def test_each_phase_gets_the_cpu_and_io_of_its_window() -> None:
    t0 = 1000.0
    samples = [
        Sample(t0 + t, cpu, io, rss)
        for t, cpu, io, rss in [(0, 0, 0, 100), (10, 15, 2**20, 900), (20, 16, 3 * 2**20, 400)]
    ]
    records = [
        PhaseRecord("cagxen01", "payload", 0.0, 10.0, "ok"),  # both cores busy 3/4 of the time
        PhaseRecord("cagxen01", "grub", 10.0, 20.0, "ok"),  # mostly waiting
        PhaseRecord("cagnode50", "install", 5.0, None, "running"),  # never ended: no figures
    ]
    payload, grub = resources.profile(records, samples, t0, cores=2)
    assert (payload.phase, payload.cpu_s, payload.io_mib, payload.busy) == ("payload", 15.0, 1.0, 0.75)
    assert (grub.phase, grub.cpu_s, grub.io_mib, grub.busy) == ("grub", 1.0, 2.0, 0.05)


def test_a_busy_process_in_the_lab_is_counted_and_what_it_used_stays_after_it_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    burner = subprocess.Popen([sys.executable, "-c", "import time\nwhile time.process_time() < 0.6: pass"])
    monkeypatch.setattr(netns, "pids", lambda ns: [burner.pid] if burner.poll() is None else [])
    sampler = Sampler(("lab-ns",))
    deadline = time.monotonic() + 30  # on a loaded machine the burner gets its CPU late, not never
    while (alive := sampler.sample()).cpu_s < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)
    burner.wait()
    sampler._pids_at = 0.0  # refresh the process list now: the burner is gone
    gone = sampler.sample()
    assert alive.cpu_s >= 0.3 and alive.rss_mib > 1.0, sampler.samples
    assert gone.cpu_s >= alive.cpu_s, f"the exited process's CPU time was lost: {sampler.samples}"
    assert gone.rss_mib == 0.0 and sampler.peak_rss_mib >= alive.rss_mib
