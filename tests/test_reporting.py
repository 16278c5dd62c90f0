"""The report plugin through pytest itself: retry of lab failures only, verdicts, baselines, shards merged."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.paths import REPO
from reporting import __main__ as cli
from reporting import verdicts
from reporting.verdicts import Change, Result, Summary, Verdict

# Inner tests: each keeps a per-attempt artifacts directory with a phases.json, as the lab's run_dir does.
INNER_CONFTEST = """
import itertools, json, pytest
counter = itertools.count()

@pytest.fixture
def run_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"attempt{next(counter)}")
    (path / "phases.json").write_text(json.dumps([{"subject": "host", "phase": "install", "seconds": 60.0}]))
    request.node.user_properties.append(("artifacts", str(path)))
    return path
"""
INNER_TESTS = """
import pathlib, pytest
from foundation.errors import ImageError, LabError, ProductFailure

def test_flaky_lab(run_dir, tmp_path_factory):
    mark = tmp_path_factory.getbasetemp() / "seen"
    if not mark.exists():
        mark.write_text("1")
        raise LabError("QEMU would not start")

def test_product(run_dir):
    raise ProductFailure("cagnode50 did not install")

def test_lab_twice(run_dir):
    raise LabError("dnsmasq exited")

def test_image(run_dir):
    raise ImageError("no kernel in linux-image-amd64")

def test_blocked():
    pytest.skip("blocked: the host did not install")

def test_fine(run_dir):
    pass

def test_provoked_faults(run_dir, diagnose, attempt):
    with pytest.raises(ProductFailure) as failed:
        raise ProductFailure("cagnode50 reported: install-failed No space left on device\\nits console: ...")
    assert diagnose(failed) == "fail"
    if attempt == 1:  # this attempt's diagnosis is dropped with it
        raise LabError("the install server's container exited")
    with pytest.raises(LabError) as broken:
        raise LabError("dnsmasq exited (status 137)")
    assert diagnose(broken) == "broken"
"""


def run_inner(
    pytester: pytest.Pytester, *args: str, tests: str = INNER_TESTS
) -> tuple[pytest.RunResult, dict[str, Any]]:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=tests)
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_subprocess("-p", "reporting.pytest_plugin", f"--summary={summary}", *args)
    return result, json.loads(summary.read_text())


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester


def by_test(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["test"].split("::")[-1]: r for r in summary["results"]}


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_only_lab_failures_are_retried_and_each_verdict_is_given(inner: pytest.Pytester, xdist: list[str]) -> None:
    result, summary = run_inner(inner, "--lab-retries=1", *xdist)
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 3 and outcomes["failed"] == 3 and outcomes["skipped"] == 1
    assert outcomes["rerun"] == 3  # test_flaky_lab, test_lab_twice and test_provoked_faults, once each
    tests = by_test(summary)
    assert {name: r["verdict"] for name, r in tests.items()} == {
        "test_flaky_lab": "flaky",
        "test_product": "fail",
        "test_lab_twice": "broken",
        "test_image": "blocked",
        "test_blocked": "blocked",
        "test_fine": "pass",
        "test_provoked_faults": "flaky",
    }
    assert {name: r["attempts"] for name, r in tests.items() if r["attempts"] > 1} == {
        "test_flaky_lab": 2,
        "test_lab_twice": 2,
        "test_provoked_faults": 2,
    }
    assert tests["test_provoked_faults"]["diagnosed"] == [
        "fail: ProductFailure: cagnode50 reported: install-failed No space left on device",
        "broken: LabError: dnsmasq exited (status 137)",
    ]
    assert tests["test_fine"]["diagnosed"] == []
    assert len(tests["test_flaky_lab"]["artifacts"]) == 2, "both attempts' artifacts are kept"
    assert "passed on retry" in tests["test_flaky_lab"]["reason"]
    assert "QEMU would not start" in tests["test_flaky_lab"]["reason"]
    assert tests["test_product"]["reason"] == "ProductFailure: cagnode50 did not install"
    assert tests["test_fine"]["phases"] == {"host/install": 60.0}
    result.stdout.fnmatch_lines(
        [
            "*flaky: passed on retry: test_inner.py::test_flaky_lab*",
            "*diagnosed broken: LabError: dnsmasq exited (status 137)",
            "faults provoked, diagnosed as: broken 1, fail 1",
        ]
    )


def test_without_retries_a_lab_failure_is_broken_at_once(inner: pytest.Pytester) -> None:
    result, summary = run_inner(inner)
    assert "rerun" not in result.parseoutcomes()
    assert by_test(summary)["test_flaky_lab"]["verdict"] == "broken"


def test_the_next_run_is_compared_with_the_last(inner: pytest.Pytester) -> None:
    run_inner(inner, "-k", "fine or product")
    fixed = INNER_TESTS.replace('raise ProductFailure("cagnode50 did not install")', "pass")
    result, summary = run_inner(inner, "-k", "fine or product or image", tests=fixed)
    assert (inner.path / "summary.previous.json").exists()
    changes = {c["test"].split("::")[-1]: c["change"] for c in summary["comparison"]}
    assert changes == {"test_fine": "like baseline", "test_product": "fixed", "test_image": "new"}
    result.stdout.fnmatch_lines(["*verdicts (JSON in*; against*summary.previous.json)*"])


def result(test: str, verdict: Verdict, **phases: float) -> Result:
    return Result(test, verdict, phases={k.replace("__", "/"): v for k, v in phases.items()})


def test_regressions_and_slower_phases_are_named() -> None:
    before = Summary([result("a", Verdict.PASS, host__install=60, host__dhcp=2), result("b", Verdict.FAIL)])
    now = Summary(
        [result("a", Verdict.FLAKY, host__install=100, host__dhcp=4), result("c", Verdict.BROKEN)],
    )
    changes = {c.test: c for c in verdicts.compare(now, before)}
    assert changes["a"].change is Change.LIKE
    assert changes["a"].slower == ["host/install 1.7x (100 s, was 60 s)"]  # dhcp doubled but is under 5 s
    assert changes["c"].change is Change.NEW
    assert changes["b"].change is Change.GONE
    regressed = verdicts.compare(Summary([result("a", Verdict.BROKEN)]), before)
    assert regressed[0].change is Change.REGRESSION
    still = verdicts.compare(Summary([result("b", Verdict.BLOCKED)]), before)
    assert still[0].change is Change.STILL_FAILING


def test_shards_merge_into_one_run_and_an_overlap_is_refused(tmp_path: Path) -> None:
    one, two = tmp_path / "1.json", tmp_path / "2.json"
    Summary([result("a", Verdict.PASS)]).write(one)
    Summary([result("b", Verdict.FAIL)]).write(two)
    for name in ("1", "2"):
        (tmp_path / f"{name}.xml").write_text(
            f'<testsuites><testsuite name="pytest" tests="1"><testcase name="t{name}"/></testsuite></testsuites>'
        )
    out = tmp_path / "merged.json"
    status = cli.main(
        [
            "merge",
            "--out",
            str(out),
            "--junit-out",
            str(tmp_path / "m.xml"),
            str(one),
            str(two),
            str(tmp_path / "1.xml"),
            str(tmp_path / "2.xml"),
        ]
    )
    assert status == 1  # a fail among the verdicts
    merged = verdicts.load(out)
    assert [r.test for r in merged.results] == ["a", "b"] and merged.run["shards"] == "2"
    assert (tmp_path / "m.xml").read_text().count("<testcase") == 2
    assert cli.main(["merge", "--out", str(out), str(one), str(one)]) == 2  # the same shard twice


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
)
def test_any_json_is_a_summary_or_a_clear_error(data: object) -> None:
    path = Path(f"/tmp/xenlab-summary-fuzz-{os.getpid()}.json")
    doc = {"schema": 1, "results": data} if not isinstance(data, dict) else data
    path.write_text(json.dumps(doc))
    try:
        verdicts.load(path)
    except verdicts.SummaryError as exc:
        assert str(path) in str(exc)
    finally:
        path.unlink()


def test_a_long_table_shows_only_what_did_not_simply_pass_like_last_time() -> None:
    before = Summary([result("a", Verdict.PASS), result("b", Verdict.PASS, x__y=10), result("c", Verdict.PASS)])
    now = Summary([result("a", Verdict.PASS), result("b", Verdict.PASS, x__y=30), result("c", Verdict.FLAKY)])
    text = verdicts.table(now, verdicts.compare(now, before), notable_only=True)
    listed = [line.split()[-1] for line in text.splitlines()[1:] if line.startswith(("pass", "flaky"))]
    assert listed == ["b", "c"]  # b took 3x as long; c needed its retry
    assert text.splitlines()[-1] == "verdicts: flaky 1, pass 2"


def test_a_summary_written_before_fault_diagnoses_were_kept_is_still_a_baseline(tmp_path: Path) -> None:
    """Last night's file, from before `diagnosed` existed: it loads, and compares with tonight's."""
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps(
            {
                "schema": 1,
                "run": {"commit": "efb0622"},
                "counts": {"pass": 1},
                "results": [
                    {"test": "a", "verdict": "pass", "reason": "", "attempts": 1, "seconds": 3.0, "artifacts": []}
                ],
            }
        )
    )
    before = verdicts.load(old)
    assert before.results[0].diagnosed == []
    now = Summary([Result("a", Verdict.PASS, diagnosed=["broken: ServerDown: dnsmasq exited"])])
    [change] = verdicts.compare(now, before)
    assert change.change is Change.LIKE
    text = verdicts.table(now, [change], notable_only=True)
    assert "diagnosed broken: ServerDown: dnsmasq exited" in text  # a fault scenario's pass is always shown
    assert text.splitlines()[-1] == "faults provoked, diagnosed as: broken 1"
