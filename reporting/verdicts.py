"""A run's verdicts, as Xen's gate gives them, and how they compare with the last run.

Each test ends as one of:

| verdict | meaning |
|---|---|
| `pass` | it passed at its first attempt |
| `flaky` | the lab broke at the first attempt (a `LabError`), and the retry passed |
| `fail` | the system under test failed (`ProductFailure`), or the test's own assertion |
| `broken` | the lab itself broke (a `LabError`): no verdict on the product |
| `blocked` | a prerequisite failed: an image it needs did not build (`ImageError`), or it was skipped as blocked |
| `skip` | skipped on purpose |

Against a baseline (the previous run's summary) each test is `regression`, `still failing`, `fixed`, `new` or
`like baseline`, and each phase that took more than `SLOWER` times as long (and at least `MIN_PHASE_S`) is
named.  Only the standard library: the report job runs it on a bare machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

SLOWER = 1.5
MIN_PHASE_S = 5.0  # shorter phases vary more than that from run to run; their ratio says nothing
SCHEMA = 1


class Verdict(StrEnum):
    PASS = "pass"
    FLAKY = "flaky"
    FAIL = "fail"
    BROKEN = "broken"
    BLOCKED = "blocked"
    SKIP = "skip"

    @property
    def good(self) -> bool:
        return self in (Verdict.PASS, Verdict.FLAKY)

    @property
    def bad(self) -> bool:
        return self in (Verdict.FAIL, Verdict.BROKEN, Verdict.BLOCKED)


class Change(StrEnum):
    REGRESSION = "regression"
    STILL_FAILING = "still failing"
    FIXED = "fixed"
    NEW = "new"
    LIKE = "like baseline"
    GONE = "not run"


# failure kind (as the root conftest tags it) -> the verdict it gives
VERDICT_OF_KIND = {"lab": Verdict.BROKEN, "image": Verdict.BLOCKED, "product": Verdict.FAIL, "test": Verdict.FAIL}


@dataclass
class Result:
    test: str  # the pytest node id
    verdict: Verdict
    reason: str = ""  # one line: why it failed, was blocked, or what the retry was for
    attempts: int = 1
    seconds: float = 0.0
    artifacts: list[str] = field(default_factory=list)  # every attempt's run directory
    phases: dict[str, float] = field(default_factory=dict)  # "subject/phase" -> seconds, of the last attempt
    # A fault scenario's provoked failures as the report would judge them: "broken: ServerDown: …" (it passed
    # because each one got the verdict and reason it must)
    diagnosed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.verdict = Verdict(self.verdict)


@dataclass
class Comparison:
    test: str
    change: Change
    before: Verdict | None
    now: Verdict | None
    slower: list[str] = field(default_factory=list)  # "cagxen01/install 2.1x (130 s, was 62 s)"


@dataclass
class Summary:
    results: list[Result]
    run: dict[str, str] = field(default_factory=dict)  # where and what: commit, machine, tier, started

    def by_test(self) -> dict[str, Result]:
        return {r.test: r for r in self.results}

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        return counts

    def diagnosed_counts(self) -> dict[str, int]:
        """How the fault scenarios' provoked failures were judged, by verdict."""
        counts: dict[str, int] = {}
        for fault in (f for r in self.results for f in r.diagnosed):
            verdict = fault.split(":", 1)[0]
            counts[verdict] = counts.get(verdict, 0) + 1
        return counts

    def to_json(self, comparisons: list[Comparison] | None = None) -> str:
        data: dict[str, Any] = {"schema": SCHEMA, "run": self.run, "counts": self.counts()}
        data["results"] = [asdict(r) for r in self.results]
        if comparisons is not None:
            data["comparison"] = [asdict(c) for c in comparisons]
        return json.dumps(data, indent=1, sort_keys=False)

    def write(self, path: Path, comparisons: list[Comparison] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json(comparisons) + "\n")
        tmp.replace(path)


class SummaryError(Exception):
    """A summary file that cannot be read as one."""


def load(path: Path) -> Summary:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise SummaryError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise SummaryError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("results"), list):
        raise SummaryError(f"{path}: not a xenlab summary (schema {SCHEMA}): no 'results' list")
    try:
        results = [Result(**r) for r in data["results"]]
    except (TypeError, ValueError) as exc:
        raise SummaryError(f"{path}: a result does not read: {exc}") from None
    return Summary(results, dict(data.get("run") or {}))


def merge(summaries: list[Summary]) -> Summary:
    """The shards of one run as one summary; a test in two shards is an error (the split overlapped)."""
    results: dict[str, Result] = {}
    for summary in summaries:
        for r in summary.results:
            if r.test in results:
                raise SummaryError(f"{r.test} is in two shards: the split overlapped")
            results[r.test] = r
    run = dict(summaries[0].run) if summaries else {}
    run["shards"] = str(len(summaries))
    return Summary(sorted(results.values(), key=lambda r: r.test), run)


def compare(now: Summary, baseline: Summary) -> list[Comparison]:
    before = baseline.by_test()
    out = []
    for result in now.results:
        old = before.get(result.test)
        if old is None:
            change = Change.NEW
        elif result.verdict.bad and not old.verdict.bad:
            change = Change.REGRESSION
        elif result.verdict.bad:
            change = Change.STILL_FAILING
        elif old.verdict.bad:
            change = Change.FIXED
        else:
            change = Change.LIKE
        out.append(
            Comparison(result.test, change, old.verdict if old else None, result.verdict, slower_phases(result, old))
        )
    seen = now.by_test()
    out += [Comparison(t, Change.GONE, r.verdict, None) for t, r in before.items() if t not in seen]
    return out


def slower_phases(now: Result, old: Result | None) -> list[str]:
    if old is None or not now.verdict.good or not old.verdict.good:
        return []
    return [
        f"{name} {seconds / old.phases[name]:.1f}x ({seconds:.0f} s, was {old.phases[name]:.0f} s)"
        for name, seconds in now.phases.items()
        if seconds >= MIN_PHASE_S and old.phases.get(name, 0) > 0 and seconds > SLOWER * old.phases[name]
    ]


LONG_TABLE = 20  # more results than this: the table lists only the notable ones (the JSON keeps them all)


def table(summary: Summary, comparisons: list[Comparison] | None = None, *, notable_only: bool | None = None) -> str:
    """The run's verdicts as a text table, with the comparison when there is one; `notable_only`: only the
    tests that did not simply pass like last time (a tier of hundreds of passes says so in its count);
    by default, when there are more than LONG_TABLE."""
    if notable_only is None:
        notable_only = len(summary.results) > LONG_TABLE
    changes = {c.test: c for c in comparisons or []}
    rows = [f"{'verdict':<8} {'tries':>5} {'seconds':>8}  {'against baseline':<16} test / reason"]
    for r in summary.results:
        c = changes.get(r.test)
        like_before = c is None or (c.change is Change.LIKE and not c.slower)
        plain = r.verdict is Verdict.PASS and not r.diagnosed and like_before
        if notable_only and plain:
            continue
        rows.append(f"{r.verdict:<8} {r.attempts:>5} {r.seconds:8.1f}  {c.change if c else '-':<16} {r.test}")
        if r.reason:
            rows.append(f"{'':<42} {r.reason}")
        for fault in r.diagnosed:
            rows.append(f"{'':<42} diagnosed {fault}")
        for slow in c.slower if c else []:
            rows.append(f"{'':<42} slower: {slow}")
    for c in comparisons or []:
        if c.change is Change.GONE:
            rows.append(f"{'-':<8} {'':>5} {'':>8}  {c.change:<16} {c.test} (was {c.before})")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts().items()))
    rows.append(f"verdicts: {counts or 'none'}")
    if faults := summary.diagnosed_counts():
        rows.append("faults provoked, diagnosed as: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    return "\n".join(rows)
