"""Sessions are the test tiers and jobs.  Run through `./xenlab`, which sets the machine up first.

The environment is the project's own `.venv` (made by `./xenlab setup`): nox here orders and reports the
tiers rather than building environments, since the lab needs root and a machine-wide set-up anyway.

  ci        lint, then the unit, integration and scenario tiers (JUnit XML and HTML in artifacts/reports)
  gateway   the main job: the end-to-end scenario with its phases shown live
  nightly   every tier including the slow scenarios
  bench     per-phase timings of netboots (median of several runs), lab up/down times, the host install
  bench-gateway  per-phase timings of the whole gateway reinstall, host and each guest
  lint      ruff and mypy
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["ci"]
REPORTS = Path("artifacts/reports")

# (tier, pytest arguments).  Scenarios run two labs at once: on 2 cores that is the measured sweet spot.  The
# scenarios with a nested Xen host take a machine-wide slot (lab.capacity: one per four cores), so on 2 cores
# they run one after another while the other worker runs the rest.
TIERS = {
    "unit": ["tests", "-m", "not integration"],
    "integration": ["tests", "-m", "integration"],
    "scenario": ["scenarios", "-m", "scenario and not slow", "-n", "2"],
    "slow": ["scenarios", "-m", "slow", "-n", "2"],
}
EXIT_NO_TESTS = 5


def run_tier(session: nox.Session, tier: str, extra: list[str]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *TIERS[tier],
        f"--junitxml={REPORTS / tier}.xml",
        f"--html={REPORTS / tier}.html",
        "--self-contained-html",
        *extra,
    ]
    session.log(" ".join(argv))
    code = subprocess.call(argv)
    if code == EXIT_NO_TESTS:
        # A tier that collects nothing is a broken selection, never a pass.
        session.error(f"tier {tier!r} collected no tests: its selection {TIERS[tier]} matches nothing")
    if code != 0:
        session.error(f"tier {tier!r} failed (pytest exit status {code}); reports in {REPORTS}/{tier}.*")


@nox.session
def ci(session: nox.Session) -> None:
    lint(session)
    for tier in ("unit", "integration", "scenario"):
        run_tier(session, tier, session.posargs)


@nox.session
def nightly(session: nox.Session) -> None:
    for tier in ("unit", "integration", "scenario", "slow"):
        run_tier(session, tier, session.posargs)


@nox.session
def gateway(session: nox.Session) -> None:
    """The main job: the gateway reinstall, phases shown as they pass (`--keep`, `--profiles DIR` pass through)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run(
        sys.executable,
        "-m",
        "pytest",
        "scenarios/test_gateway_reinstall.py",
        "-k",
        gateway_selection(session.posargs),
        "-p",
        "no:cacheprovider",
        f"--junitxml={REPORTS}/gateway.xml",
        f"--html={REPORTS}/gateway.html",
        "--self-contained-html",
        "-o",
        "log_cli=true",
        "--log-cli-level=INFO",
        *session.posargs,
    )


def gateway_selection(posargs: list[str]) -> str:
    """The main job's runs: the set's PV guests, then its HVM guests on their own host (if it has any: the
    run says so when not).  The shipped seed's, or with `--profiles DIR` that set's (pytest names it `site`)."""
    profile_set = "site" if any(a == "--profiles" or a.startswith("--profiles=") for a in posargs) else "seed"
    return f"{profile_set}-pv or {profile_set}-hvm"


@nox.session
def bench(session: nox.Session) -> None:
    """Netboot phases and memory; then the host install's phases (pass --runs N to either)."""
    session.run(sys.executable, "-m", "benchmarks.netboot", *session.posargs)
    host_args = [a for a in session.posargs if a != "--baseline"]  # the bare-QEMU baseline is the netboot's
    session.run(sys.executable, "-m", "benchmarks.phases", "scenarios/test_host_install.py", *host_args)


@nox.session(name="bench-gateway")
def bench_gateway(session: nox.Session) -> None:
    """The whole gateway reinstall's phases per machine (one run unless --runs N: it takes minutes)."""
    argv = session.posargs or ["--runs", "1"]
    test = "scenarios/test_gateway_reinstall.py::test_the_gateway_reinstalls_from_empty_disks"
    for run in ("seed-pv", "seed-hvm"):
        session.run(sys.executable, "-m", "benchmarks.phases", f"{test}[{run}]", *argv)


@nox.session
def lint(session: nox.Session) -> None:
    session.run(sys.executable, "-m", "ruff", "check", ".")
    session.run(sys.executable, "-m", "mypy")
