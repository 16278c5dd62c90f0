"""What the kickstart suite's modules share: a case's verdict as pytest reports it, and the Xen host that
runs a module's cases (one per module: a module's host is down before the next module's comes up, and the
machine's Xen-host slot with it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from foundation.paths import new_run_dir
from lab import capacity
from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from scenario_steps.kickstart_on_xen import GuestKind, XenSuite, node_name, xen_suite

CASES = kstest.cases()


def judge(case: kstest.Case, outcome: kstest.Outcome, installer: InstallerPlugin) -> None:
    kind, why = kstest.verdict(case, outcome, installer)
    if kind == kstest.UNSUPPORTED:
        pytest.skip(f"unsupported by this installer: {why}")
    assert kind == kstest.PASS, f"{case.name}: {why}"


def selected_cases(session: pytest.Session, test_name: str) -> list[kstest.Case]:
    """The cases of `test_name` this session runs (`-k` and friends applied), in order."""
    found = [
        item.callspec.params["case"]
        for item in session.items
        if isinstance(item, pytest.Function) and item.originalname == test_name and hasattr(item, "callspec")
    ]
    return [c for c in found if isinstance(c, kstest.Case)]


@contextmanager
def suite_on(kind: GuestKind, request: pytest.FixtureRequest, installer: InstallerPlugin) -> Iterator[XenSuite]:
    """One Xen host for every case of the session on guests of `kind`, queued from the start so that two run
    at once."""
    cases = selected_cases(request.session, f"test_case_on_{kind.name}_guest")
    with capacity.xen_host_slot(), xen_suite(installer, new_run_dir(f"kstest-{kind.name}"), cases, kind) as suite:
        yield suite


def run_on(
    suite: XenSuite, case: kstest.Case, installer: InstallerPlugin, record: Callable[[str, object], None]
) -> None:
    record("artifacts", str(suite.run_dir / node_name(case)))
    judge(case, suite.outcome(case), installer)
