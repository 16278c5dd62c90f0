"""The XENLAB_* settings table: defaults, every variable read, nonsense refused naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.errors import PreflightError
from foundation.settings import REPO, Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.cache, s.work, s.artifacts, s.state_dir) == (
        Path("/var/cache/xenlab"),
        Path("/var/tmp/xenlab"),
        REPO / "artifacts",
        Path("/run/xenlab"),
    )
    assert (s.accel, s.xen_hosts, s.keep) == (None, None, False)


def test_every_variable_is_read() -> None:
    env = {
        "XENLAB_CACHE": "/c",
        "XENLAB_WORK": "/w",
        "XENLAB_ARTIFACTS": "/a",
        "XENLAB_STATE_DIR": "/s",
        "XENLAB_ACCEL": "tcg",
        "XENLAB_XEN_HOSTS": "2",
        "XENLAB_KEEP": "1",
    }
    assert Settings.from_env(env) == Settings(Path("/c"), Path("/w"), Path("/a"), Path("/s"), "tcg", 2, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"XENLAB_CACHE": "relative/dir"}, "XENLAB_CACHE='relative/dir': expected an absolute path"),
        ({"XENLAB_ACCEL": "kvm"}, "XENLAB_ACCEL='kvm': only 'tcg' is known"),
        ({"XENLAB_XEN_HOSTS": "two"}, "XENLAB_XEN_HOSTS='two': expected a number"),
        ({"XENLAB_XEN_HOSTS": "0"}, "XENLAB_XEN_HOSTS=0: at least 1"),
        ({"XENLAB_KEEP": "yes"}, "XENLAB_KEEP='yes': expected 1 or 0"),
    ],
)
def test_nonsense_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(PreflightError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)
