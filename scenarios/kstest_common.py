"""What the kickstart suite's modules share: a case's verdict as pytest reports it, and the Xen host that
runs a module's cases (one per module: a module's host is down before the next module's comes up, and the
machine's Xen-host slot with it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from foundation.paths import new_run_dir
from lab import capacity
from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from lab.kstest_guests import GuestKind, node_name
from scenario_steps.kickstart_on_xen import XenSuite, xen_suite
from scenarios.marks import NEXT_ITEM

CASES = kstest.cases()


def judge(case: kstest.Case, outcome: kstest.Outcome, installer: InstallerPlugin) -> None:
    kind, why = kstest.verdict(case, outcome, installer)
    if kind == kstest.UNSUPPORTED:
        pytest.skip(f"unsupported by this installer: {why}")
    assert kind == kstest.PASS, f"{case.name}: {why}"


@contextmanager
def suite_on(kind: GuestKind, request: pytest.FixtureRequest, installer: InstallerPlugin) -> Iterator[XenSuite]:
    """One Xen host for the module's cases on guests of `kind`."""
    with capacity.xen_host_slot(), xen_suite(installer, new_run_dir(f"kstest-{kind.name}"), kind) as suite:
        yield suite


def run_on(suite: XenSuite, case: kstest.Case, installer: InstallerPlugin, request: pytest.FixtureRequest) -> None:
    """The case's verdict; the case this process runs next starts now beside it (two at a time, and never a
    case no test of this process waits for)."""
    test = request.node
    test.user_properties.append(("artifacts", str(suite.run_dir / node_name(case))))
    after = test.stash.get(NEXT_ITEM, None)
    same = isinstance(after, pytest.Function) and after.originalname == getattr(test, "originalname", None)
    ahead = after.callspec.params.get("case") if same and hasattr(after, "callspec") else None
    suite.start([case, *([ahead] if isinstance(ahead, kstest.Case) else [])])
    judge(case, suite.outcome(case), installer)
