"""The kickstart-tests case format as the lab reads it: every shipped case renders, its shell functions run,
RESULT decides, and an installer's "unsupported" reason is recognised as such."""

from __future__ import annotations

from pathlib import Path

import pytest
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from lab import installer_plugin
from lab import kickstart_cases as kstest

VALUES = {
    "KSTEST_LIVEIMG": "liveimg --url=http://gridinstall.xenlab.test/payload/guest.tar.zst",
    "KSTEST_URL": "http://gridinstall.xenlab.test/payload/guest.tar.zst",
    "KSTEST_NETDEV1": "eth0",
    "KSTEST_SERVER": "http://gridinstall.xenlab.test",
    "KSTEST_IP": "10.77.0.60",
    "KSTEST_NETMASK": "255.255.255.0",
    "KSTEST_NAMESERVER": "10.77.0.1",
}


def test_there_are_at_least_twelve_cases_each_of_two_files() -> None:
    names = [c.name for c in kstest.cases()]
    assert len(names) >= 12, names
    assert {"part-sizes", "lvm", "network-static", "post-erroronfail", "disk-too-small"} <= set(names)


@pytest.mark.parametrize("case", kstest.cases(), ids=lambda c: c.name)
def test_every_case_renders_to_a_kickstart_anacondas_parser_reads(case: kstest.Case, tmp_path: Path) -> None:
    text = kstest.render(case, VALUES, tmp_path)
    assert "@KSTEST_" not in text
    assert text.rstrip().endswith("wget -q -O - http://gridinstall.xenlab.test/cgi-bin/aii-installack.cgi\n%end")
    KickstartParser(makeVersion()).readKickstartFromString(text)  # pykickstart, as Anaconda parses it


def test_a_cases_functions_run_and_prepare_may_rewrite_the_kickstart(tmp_path: Path) -> None:
    by_name = {c.name: c for c in kstest.cases()}
    assert "--size=256 " in kstest.render(by_name["lvm"], VALUES, tmp_path)  # its prepare() rewrote 300
    assert by_name["bootloader-append"].kernel_args() == ["kstest.installer=bootargs"]
    assert by_name["part-sizes"].kernel_args() == []
    pattern = by_name["post-erroronfail"].expected_failure()
    assert pattern is not None and pattern.search("install-failed %post script 2 failed with status 3")
    assert by_name["part-sizes"].expected_failure() is None


def test_result_decides_and_a_missing_result_fails(tmp_path: Path) -> None:
    plain = next(c for c in kstest.cases() if c.name == "rootpw")
    assert kstest.validate(plain, "SUCCESS\n") == (True, "SUCCESS")
    assert kstest.validate(plain, "root's hash is not the kickstart's\n") == (
        False,
        "root's hash is not the kickstart's",
    )
    assert kstest.validate(plain, None) == (False, "the installed system has no /root/RESULT")
    own = next(c for c in kstest.cases() if c.name == "network-static")  # a validate() of its own
    assert kstest.validate(own, "IP is 10.77.0.99\n") == (False, "IP is 10.77.0.99")


def test_an_unknown_substitution_is_refused(tmp_path: Path) -> None:
    case_dir = tmp_path / "cases"
    case_dir.mkdir()
    (case_dir / "x.ks.in").write_text("text\n@KSTEST_FTP_URL@\n")
    (case_dir / "x.sh").write_text("")
    with pytest.raises(ValueError, match="unknown substitutions @KSTEST_FTP_URL@"):
        kstest.render(kstest.cases(case_dir)[0], VALUES, tmp_path)
    (case_dir / "y.ks.in").write_text("text\n")
    with pytest.raises(FileNotFoundError, match="its y.sh is missing"):
        kstest.cases(case_dir)


def test_the_installers_own_words_for_a_missing_command_make_a_case_unsupported() -> None:
    ours = installer_plugin.load(installer_plugin.DEFAULT)
    reason = "phase 'install': kstest reported: install-failed unsupported kickstart command(s): lang, user"
    assert kstest.unsupported(reason, ours) == "lang, user"
    assert kstest.unsupported("install-failed the partitions need 999999 MiB", ours) is None


def test_the_verdict_of_each_kind_of_outcome() -> None:
    plugin = installer_plugin.load(installer_plugin.DEFAULT)
    by_name = {c.name: c for c in kstest.cases()}
    stopped = "ks-x: fatal console output: XENLAB-INSTALL-FAILED %post script 1 failed with status 4"
    unsupported = "ks-lang reported: install-failed unsupported kickstart command(s): lang"
    cases = [
        ("rootpw", kstest.Outcome(None, "SUCCESS\n"), kstest.PASS),
        ("rootpw", kstest.Outcome(None, "root's hash differs\n"), kstest.FAIL),
        ("rootpw", kstest.Outcome(None, None), kstest.FAIL),  # no RESULT is never a pass
        ("rootpw", kstest.Outcome(stopped), kstest.FAIL),  # it must not stop
        ("lang", kstest.Outcome(unsupported), kstest.UNSUPPORTED),
        ("onerror", kstest.Outcome(stopped, "SUCCESS\n"), kstest.PASS),  # stopped as it must, %onerror did its work
        ("onerror", kstest.Outcome(stopped, None), kstest.FAIL),  # stopped as it must, %onerror left nothing
        ("onerror", kstest.Outcome(stopped.replace("status 4", "status 1"), "SUCCESS\n"), kstest.FAIL),  # other reason
        ("onerror", kstest.Outcome(None, "SUCCESS\n"), kstest.FAIL),  # it must stop
        ("post-erroronfail", kstest.Outcome(stopped.replace("status 4", "status 3")), kstest.PASS),
    ]
    got = [(name, kstest.verdict(by_name[name], outcome, plugin)[0]) for name, outcome, _ in cases]
    assert got == [(name, expected) for name, _, expected in cases]
    assert kstest.verdict(by_name["lang"], kstest.Outcome(unsupported), plugin)[1] == "lang"


def test_only_a_case_that_must_fail_and_validates_reads_its_disk_after_the_stop() -> None:
    by_name = {c.name: c for c in kstest.cases()}
    assert kstest.reads_result_after_a_stop(by_name["onerror"])
    assert not kstest.reads_result_after_a_stop(by_name["post-erroronfail"])  # no validate of its own
    assert not kstest.reads_result_after_a_stop(by_name["network-static"])  # a validate, but it must not fail
