"""Fixtures and options of the scenario tests only."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from foundation.errors import PreflightError
from foundation.paths import REPO
from lab import capacity, installer_plugin
from lab.installer_plugin import InstallerPlugin
from scenario_steps.gateway import START_POINTS
from scenarios.marks import NEXT_ITEM


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("xenlab").addoption(
        "--profiles",
        type=Path,
        default=None,
        metavar="DIR",
        help="gateway scenarios: compiled profiles (profile_<node>.json or .xml) instead of the shipped sets",
    )
    parser.getgroup("xenlab").addoption(
        "--installer",
        type=Path,
        default=None,
        metavar="DIR",
        help="gateway scenarios: the installer plug-in (a directory with installer.toml) the nodes install with; "
        "default: installers/xenlab, the lab's own",
    )
    parser.getgroup("xenlab").addoption(
        "--from",
        dest="start_from",
        choices=START_POINTS,
        default=START_POINTS[0],
        help="gateway scenarios: start from the snapshot of the installed host a run of the same inputs kept "
        "(host-installed), or install it (empty-disks, the default)",
    )


XEN_HOST_GROUP = "xen-host"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """Let a test see the next one its process runs (the kickstart suite starts that case beside its own)."""
    item.stash[NEXT_ITEM] = nextitem
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every scenario that boots a nested Xen host (it holds the machine's Xen-host slot, or starts a run
    that does) goes to one xdist group, so that under `--dist loadgroup` one worker runs them in turn and no
    other worker sits waiting for the slot while scenarios without a Xen host queue behind it."""
    for item in items:
        if "xen_host_slot" in getattr(item, "fixturenames", ()) or item.get_closest_marker("starts_xen_host"):
            item.add_marker(pytest.mark.xdist_group(XEN_HOST_GROUP))


@pytest.fixture
def xen_host_slot() -> Generator[int, None, None]:
    """One of the machine's Xen-host slots (lab.capacity), held while a scenario boots a nested Xen host."""
    with capacity.xen_host_slot() as slot:
        yield slot


@pytest.fixture
def gateway_profiles(request: pytest.FixtureRequest) -> Path:
    """The profiles a gateway scenario installs: `--profiles DIR`, else the shipped ones."""
    chosen: Path | None = request.config.getoption("profiles")
    if chosen is None:
        return REPO / "profiles"
    if not chosen.is_dir() or (not any(chosen.glob("profile_*.json")) and not any(chosen.glob("profile_*.xml"))):
        raise pytest.UsageError(
            f"--profiles {chosen}: not a directory of compiled profiles (profile_<node>.json or .xml)"
        )
    return chosen.resolve()


@pytest.fixture(scope="session")
def installer(request: pytest.FixtureRequest) -> InstallerPlugin:
    """The installer plug-in the gateway scenarios install with: `--installer DIR`, else the lab's own."""
    chosen: Path | None = request.config.getoption("installer")
    try:
        return installer_plugin.load(chosen if chosen is not None else installer_plugin.DEFAULT)
    except PreflightError as exc:
        raise pytest.UsageError(f"--installer: {exc}") from None
