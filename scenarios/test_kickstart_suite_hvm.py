"""The kickstart suite's cases on HVM guests of the lab's Xen host (slow): each made by ncm-xen, netbooting from
its NIC's PXE ROM through dom0's bridge to the install server, its serial line in a file in dom0.  Its own
module, so that the PV cases' host (`test_kickstart_suite.py`) is down before this one's comes up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab import kickstart_cases as kstest
from lab.installer_plugin import InstallerPlugin
from lab.kstest_guests import HVM
from scenario_steps.kickstart_on_xen import XenSuite
from scenarios.kstest_common import CASES, run_on, suite_on

pytestmark = pytest.mark.scenario


@pytest.fixture(scope="module")
def hvm_suite(request: pytest.FixtureRequest, installer: InstallerPlugin) -> Iterator[XenSuite]:
    with suite_on(HVM, request, installer) as suite:
        yield suite


@pytest.mark.slow
@pytest.mark.starts_xen_host
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_on_hvm_guest(
    case: kstest.Case, installer: InstallerPlugin, hvm_suite: XenSuite, request: pytest.FixtureRequest
) -> None:
    run_on(hvm_suite, case, installer, request)
