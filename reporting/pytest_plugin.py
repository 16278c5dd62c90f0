"""The report of every test tier: failure kinds, one visible retry of a lab failure, verdicts in JSON.

- Each failure is tagged as the lab's own (`LabError`), a prerequisite's (`ImageError`: an image did not
  build), the product's (`ProductFailure`) or the test's, in the report, in JUnit XML properties and in the
  terminal, so a nightly report says which it was.
- `--lab-retries N`: a test that failed for a lab reason runs again, at most N times; the first attempt is
  reported as RERUN (not hidden), every attempt keeps its own artifacts directory, and a pass on a retry is
  the verdict `flaky`.  A product failure is never retried.
- `--summary FILE`: the run's verdicts (reporting/verdicts.py) as JSON, with each scenario's phase times;
  compared with `--baseline FILE`, or else with the summary FILE held before this run (kept beside it as
  `*.previous.json`).  The comparison is printed at the end and kept in the JSON.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from foundation.errors import ImageError, LabError, ProductFailure
from reporting import verdicts
from reporting.verdicts import Result, Summary, Verdict

log = logging.getLogger("xenlab.report")

KIND_MEANING = {
    "lab": "the lab itself broke (not a verdict on the system under test)",
    "image": "a prerequisite failed: an image did not build (blocked, not a verdict on the system under test)",
    "product": "the system under test failed",
    "test": "an assertion or an unexpected error in the test",
}
RETRYABLE_KINDS = {"lab"}
BLOCKED_PREFIX = "blocked:"
RERUN = "rerun"
ATTEMPT = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xenlab")
    group.addoption(
        "--lab-retries",
        type=int,
        default=0,
        metavar="N",
        help="run a test that failed for a lab reason (LabError) again, up to N times (reported as RERUN)",
    )
    group.addoption("--summary", type=Path, metavar="FILE", help="write the run's verdicts as JSON to FILE")
    group.addoption(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="compare the verdicts with this earlier summary (default: the one --summary FILE held before)",
    )


def failure_kind(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    if excinfo.errisinstance(ImageError):
        return "image"
    if excinfo.errisinstance(LabError):
        return "lab"
    if excinfo.errisinstance(ProductFailure):
        return "product"
    return "test"


def reason_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The failure's one-line reason, as the report gives it."""
    return one_line(f"{excinfo.typename}: {excinfo.value}")


DIAGNOSED = "diagnosed"
Diagnose = Callable[[pytest.ExceptionInfo[BaseException]], Verdict]


@pytest.fixture
def diagnose(request: pytest.FixtureRequest) -> Diagnose:
    """For a fault scenario: `diagnose(excinfo)` is the verdict the report gives the failure it provoked; it is
    recorded with its reason beside the test's own verdict, so that the night's report shows what each fault
    was judged as (the test asserts it is the right one)."""

    def judge(excinfo: pytest.ExceptionInfo[BaseException]) -> Verdict:
        verdict = verdicts.VERDICT_OF_KIND[failure_kind(excinfo)]
        request.node.user_properties.append((DIAGNOSED, f"{verdict}: {reason_of(excinfo)}"))
        return verdict

    return judge


def one_line(text: str, limit: int = 200) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or report.passed or report.skipped:
        return
    kind = failure_kind(call.excinfo)
    report.user_properties.append(("failure_kind", kind))
    report.user_properties.append(("reason", reason_of(call.excinfo)))
    report.sections.append(("failure kind", f"{kind}: {KIND_MEANING[kind]}"))


# --- retry -----------------------------------------------------------------------------------------------
def _retryable(reports: list[pytest.TestReport]) -> bool:
    kinds = {v for r in reports if r.failed for k, v in r.user_properties if k == "failure_kind"}
    return bool(kinds) and kinds <= RETRYABLE_KINDS


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    retries: int = item.config.getoption("lab_retries")
    if retries <= 0:
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in range(1, retries + 2):
        item.stash[ATTEMPT] = attempt
        item.user_properties[:] = [p for p in item.user_properties if p[0] != DIAGNOSED]  # this attempt's only
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        last = attempt == retries + 1
        if last or not _retryable(reports):
            break
        reason = next((v for r in reports for k, v in r.user_properties if k == "reason"), "")
        log.warning("%s: the lab broke at attempt %d (%s): running it again", item.nodeid, attempt, reason)
        for report in reports:
            if report.failed:
                report.outcome = RERUN  # type: ignore[assignment]  # the outcome pytest-rerunfailures uses too
            item.ihook.pytest_runtest_logreport(report=report)
        item._initrequest()  # type: ignore[attr-defined]  # fresh fixtures for the next attempt
    for report in reports:
        report.user_properties.append(("attempts", str(attempt)))
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.fixture
def attempt(request: pytest.FixtureRequest) -> int:
    """Which attempt of the test this is: 1, or 2 and more when `--lab-retries` runs it again."""
    item: pytest.Item = request.node
    return item.stash.get(ATTEMPT, 1)


def is_rerun(report: pytest.TestReport) -> bool:
    outcome: str = report.outcome  # pytest's type knows three; a retried attempt's reports have a fourth
    return outcome == RERUN


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    if is_rerun(report):
        return "rerun", "R", ("RERUN", {"yellow": True})
    return None


# --- verdicts --------------------------------------------------------------------------------------------
class Collector:
    """Every report of the run (on the xdist controller, every worker's), folded into one result per test;
    written as the run's summary at its end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.retrying = config.getoption("lab_retries") > 0
        self.results: dict[str, Result] = {}
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = report.user_properties
        result = self.results.setdefault(report.nodeid, Result(report.nodeid, Verdict.PASS))
        result.seconds += report.duration
        for path in (str(v) for k, v in props if k == "artifacts"):
            if path not in result.artifacts:
                result.artifacts.append(path)
        if is_rerun(report):
            result.attempts += 1
            result.reason = "the lab broke at an earlier attempt: " + _prop(props, "reason")
            return
        if self.retrying and not _prop(props, "attempts"):
            return  # a phase of an earlier attempt that passed (its setup, its teardown)
        if report.failed:
            result.verdict = verdicts.VERDICT_OF_KIND[_prop(props, "failure_kind") or "test"]
            result.reason = _prop(props, "reason") or one_line(str(report.longrepr))
        elif report.skipped and result.verdict is Verdict.PASS:
            why = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            why = why.removeprefix("Skipped: ")
            result.verdict = Verdict.BLOCKED if why.startswith(BLOCKED_PREFIX) else Verdict.SKIP
            result.reason = one_line(why)
        if report.when == "call":
            result.diagnosed = [str(v) for k, v in props if k == DIAGNOSED]
        if report.when == "teardown":
            if result.verdict is Verdict.PASS and result.attempts > 1:
                result.verdict = Verdict.FLAKY
                result.reason = "passed on retry; " + result.reason
            result.phases = phases_of(result.artifacts[-1]) if result.artifacts else {}

    def summary(self) -> Summary:
        run = {
            "started": self.started,
            "machine": platform.node(),
            "cores": str(os.cpu_count()),
            "commit": _git_commit(self.config.rootpath),
            "args": " ".join(self.config.invocation_params.args),
        }
        return Summary(sorted(self.results.values(), key=lambda r: r.test), run)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for result in self.results.values():
            if result.verdict is Verdict.FLAKY:
                terminalreporter.write_line(f"flaky: passed on retry: {result.test}", yellow=True)
        path: Path | None = self.config.getoption("summary")
        if path is None:
            return
        summary = self.summary()
        baseline_path: Path | None = self.config.getoption("baseline")
        if baseline_path is None and path.exists():
            baseline_path = path.with_suffix(".previous.json")
            path.replace(baseline_path)
        comparisons = None
        if baseline_path is not None:
            try:
                comparisons = verdicts.compare(summary, verdicts.load(baseline_path))
            except verdicts.SummaryError as exc:
                terminalreporter.write_line(f"baseline not compared: {exc}", red=True)
        summary.write(path, comparisons)
        against = f"; against {baseline_path}" if comparisons is not None else ""
        terminalreporter.write_sep("-", f"verdicts (JSON in {path}{against})")
        terminalreporter.write_line(verdicts.table(summary, comparisons))


def _prop(props: list[tuple[str, object]], key: str) -> str:
    return next((str(v) for k, v in props if k == key), "")


def phases_of(artifacts: str) -> dict[str, float]:
    """'subject/phase' -> seconds from a run directory's phases.json (a repeated name gets '#2', '#3')."""
    try:
        records = json.loads((Path(artifacts) / "phases.json").read_text())
    except (OSError, ValueError):
        return {}
    phases: dict[str, float] = {}
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or record.get("seconds") is None:
            continue
        name, n = f"{record.get('subject')}/{record.get('phase')}", 1
        while (key := name if n == 1 else f"{name}#{n}") in phases:
            n += 1
        phases[key] = round(float(record["seconds"]), 2)
    return phases


def _git_commit(root: Path) -> str:
    if shutil.which("git") is None:
        return ""
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # xdist workers send their reports to the controller
        config.pluginmanager.register(Collector(config), "xenlab-verdicts")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_phase_tables(terminalreporter)
    kinds: dict[str, int] = {}
    for report in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "failure_kind":
                kinds[value] = kinds.get(value, 0) + 1
    if kinds:
        terminalreporter.write_line("failures by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))


def print_phase_tables(terminalreporter: pytest.TerminalReporter) -> None:
    """Each scenario's per-phase table (host and each guest), at the end of the run, passed or failed."""
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            artifacts = dict(getattr(report, "user_properties", [])).get("artifacts")
            table = Path(artifacts) / "phases.txt" if artifacts else None
            if table is not None and table.exists():
                terminalreporter.write_sep("-", f"phases of {report.nodeid} ({outcome}; seconds)")
                terminalreporter.write_line(table.read_text().rstrip())
