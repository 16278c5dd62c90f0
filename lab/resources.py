"""Where a lab run's time goes: CPU, I/O and memory of every process in the lab's namespaces, sampled.

Every process of a lab runs in one of its two network namespaces (the VMs' QEMU under `ip netns exec`, the
install server's container in its own), so those namespaces are the lab.  A sampler thread reads, once a
second, each process's CPU time (user and system, all its threads: for QEMU under TCG, the emulated
machine's work), its block I/O (`/proc/PID/io` read_bytes and write_bytes: disk images, payload files) and
its resident memory.  For each phase of the timeline the run's profile then says how many CPU seconds and
I/O bytes fell in it, and how much of its wall time the machine's cores were busy with the lab: the rest is
waiting (on a timer, the network, a guest's firmware).  Phases that overlap (guests in parallel) share their
window's figures.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from foundation import netns
from lab.timeline import PhaseRecord

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
PIDS_EVERY_S = 5.0  # `ip netns pids` is a command: the set of processes is refreshed less often


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    cpu_s: float  # CPU seconds of the lab's processes, cumulative (of those still running)
    io_bytes: int  # bytes read and written to block devices, cumulative
    rss_mib: float  # resident memory now, summed


@dataclass(frozen=True)
class PhaseProfile:
    subject: str
    phase: str
    seconds: float
    cpu_s: float
    io_mib: float
    busy: float  # CPU seconds / (seconds x cores): 1.0 is every core busy with the lab all the phase


def _cpu_and_rss(pid: int) -> tuple[float, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    # after the command: state is field 3, utime 14, stime 15, rss 24 (1-based in proc(5)) -> index - 3
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE_KIB / 1024


def _io_bytes(pid: int) -> int:
    try:
        values = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return int(values.get("read_bytes", 0)) + int(values.get("write_bytes", 0))
    except (OSError, ValueError):
        return 0


class Sampler:
    """Samples the processes of the namespaces `namespaces` every `interval` seconds while running.

    CPU and I/O are kept per process and summed, so that a process that exits keeps what it used."""

    def __init__(self, namespaces: tuple[str, ...], interval: float = 1.0) -> None:
        self.namespaces = namespaces
        self.interval = interval
        self.samples: list[Sample] = []
        self._last: dict[int, tuple[float, int]] = {}  # pid -> its cpu_s and io_bytes at the last sample
        self._gone_cpu = 0.0
        self._gone_io = 0
        self._pids: list[int] = []
        self._pids_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-resources", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> Sample:
        now = time.monotonic()
        if now - self._pids_at >= PIDS_EVERY_S or not self._pids:
            self._pids = sorted({p for ns in self.namespaces for p in netns.pids(ns)})
            self._pids_at = now
        seen: dict[int, tuple[float, int]] = {}
        rss = 0.0
        for pid in self._pids:
            cpu, resident = _cpu_and_rss(pid)
            if cpu == 0.0 and resident == 0.0 and not Path(f"/proc/{pid}").exists():
                continue
            seen[pid] = (cpu, _io_bytes(pid))
            rss += resident
        for pid, (cpu, io) in self._last.items():
            if pid not in seen:  # exited since: what it used stays counted
                self._gone_cpu += cpu
                self._gone_io += io
        self._last = seen
        sample = Sample(
            now,
            self._gone_cpu + sum(c for c, _ in seen.values()),
            self._gone_io + sum(i for _, i in seen.values()),
            round(rss, 1),
        )
        self.samples.append(sample)
        return sample

    @property
    def peak_rss_mib(self) -> float:
        return max((s.rss_mib for s in self.samples), default=0.0)


def _at(samples: list[Sample], t: float) -> Sample | None:
    """The last sample at or before `t`, else the first one."""
    before = [s for s in samples if s.at <= t]
    return before[-1] if before else (samples[0] if samples else None)


def profile(records: list[PhaseRecord], samples: list[Sample], t0: float, cores: int) -> list[PhaseProfile]:
    """Each finished phase's CPU seconds, I/O and how busy the cores were, from the samples in its window."""
    out = []
    for r in records:
        if r.end is None or r.end <= r.start:
            continue
        first, last = _at(samples, t0 + r.start), _at(samples, t0 + r.end)
        if first is None or last is None:
            continue
        seconds = r.end - r.start
        cpu = max(0.0, last.cpu_s - first.cpu_s)
        io = max(0, last.io_bytes - first.io_bytes)
        out.append(PhaseProfile(r.subject, r.phase, seconds, cpu, io / 2**20, min(1.0, cpu / (seconds * cores))))
    return out


def save(path: Path, records: list[PhaseRecord], sampler: Sampler, t0: float) -> None:
    cores = os.cpu_count() or 1
    data = {
        "cores": cores,
        "peak_rss_mib": sampler.peak_rss_mib,
        "cpu_s": sampler.samples[-1].cpu_s if sampler.samples else 0.0,
        "phases": [asdict(p) for p in profile(records, sampler.samples, t0, cores)],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
