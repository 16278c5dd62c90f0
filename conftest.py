"""Fixtures of every test tier (the scenarios' own are in scenarios/conftest.py); the report of every tier,
its failure kinds, retry and verdicts, is the plugin reporting/pytest_plugin.py."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Generator
from pathlib import Path

import pytest

from foundation import interrupts, settings
from foundation.paths import new_run_dir

pytest_plugins = ("reporting.pytest_plugin", "pytester")


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
