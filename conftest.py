"""Fixtures and reporting for every test tier (the scenarios' own are in scenarios/conftest.py).

Failures are tagged as the lab's own (`LabError`: QEMU would not start, an image did not build) or the
product's (`ProductFailure`: a node did not install), in the report and in JUnit XML properties, so that a
nightly report says which it was.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Generator
from pathlib import Path

import pytest

from foundation import interrupts, settings
from foundation.errors import LabError, ProductFailure
from foundation.paths import new_run_dir


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xenlab")
    group.addoption(
        "--keep",
        action="store_true",
        help="keep each lab up after its scenario, passed or failed, until Ctrl-C (prints how to get in)",
    )


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("xenlab").setLevel(logging.INFO)
    interrupts.raise_on_sigterm()  # a CI timeout's SIGTERM unwinds every lab as Ctrl-C does
    if hasattr(config, "workerinput"):
        interrupts.die_with_parent()  # an xdist worker does not outlive its controller
    if config.getoption("keep"):
        os.environ[settings.KEEP] = "1"  # xdist workers inherit it
    settings.reread()


@pytest.fixture(autouse=True)
def settings_of_this_test() -> Generator[None, None, None]:
    """The XENLAB_* settings as this test's environment has them (a test may monkeypatch them), and as the
    process had them again afterwards."""
    settings.reread()
    yield
    settings.reread()


@pytest.fixture
def run_dir(request: pytest.FixtureRequest) -> Path:
    """This test's artifacts directory: consoles, install-server logs, the phase table."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    path = new_run_dir(name)
    request.node.user_properties.append(("artifacts", str(path)))
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or report.passed:
        return
    if call.excinfo.errisinstance(LabError):
        kind = "lab"
    elif call.excinfo.errisinstance(ProductFailure):
        kind = "product"
    else:
        kind = "test"
    report.user_properties.append(("failure_kind", kind))
    report.sections.append(
        (
            "failure kind",
            f"{kind}: "
            + {
                "lab": "the lab itself broke (not a verdict on the system under test)",
                "product": "the system under test failed",
                "test": "an assertion or an unexpected error in the test",
            }[kind],
        )
    )


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
