"""`python -m reporting`: merge the shards of a run and compare it with the last good one.

python -m reporting report [DIR] [--baseline last.json]
python -m reporting merge --out run.json [--junit-out run.xml] [--baseline last.json] SHARD.json... [SHARD.xml...]
python -m reporting show run.json [--baseline last.json]
python -m reporting durations --out .ci/test_durations.json SUMMARY.json...

`report` merges what the shards left in DIR (default: $XENLAB_ARTIFACTS/reports, else artifacts/reports):
every `*.summary.json` and JUnit `*.xml` into `run.summary.json` and `run.xml` there.
`merge` joins the shards' summaries (a test in two shards is an error: the split overlapped) and their JUnit
files into one <testsuites>, prints the verdict table, compared with the baseline when given, and exits 1
if any verdict is fail, broken or blocked.  `durations` records each test's time from the summaries in
pytest-split's file (tests not in them keep their old figure), for the next run's shards.  Standard library
only: a report job needs nothing installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from reporting import verdicts


def merge_junit(paths: list[Path], out: Path) -> int:
    """The <testsuite>s of every file under one <testsuites>; returns how many test cases."""
    root = ET.Element("testsuites")
    for path in paths:
        try:
            tree = ET.parse(path)
        except (OSError, ET.ParseError) as exc:
            raise verdicts.SummaryError(f"{path}: not JUnit XML ({exc})") from None
        top = tree.getroot()
        root.extend(top.findall("testsuite") if top.tag == "testsuites" else [top])
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return len(root.findall("testsuite/testcase"))


def record_durations(summaries: list[verdicts.Summary], out: Path) -> int:
    """Update pytest-split's durations file ({node id: seconds}) from the summaries; returns how many."""
    try:
        recorded = json.loads(out.read_text()) if out.exists() else {}
    except ValueError:
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    fresh = {
        r.test: round(r.seconds, 2) for s in summaries for r in s.results if r.verdict is not verdicts.Verdict.SKIP
    }
    recorded.update(fresh)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
    return len(fresh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reporting", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    printing = argparse.ArgumentParser(add_help=False)
    printing.add_argument(
        "--all", action="store_true", help=f"list every test (default: the notable ones past {verdicts.LONG_TABLE})"
    )
    p_merge = sub.add_parser("merge", parents=[printing], help="merge shards' summaries (and JUnit files) into one")
    p_merge.add_argument("inputs", nargs="+", type=Path, help="the shards' *.json summaries and *.xml JUnit files")
    p_merge.add_argument("--out", type=Path, required=True)
    p_merge.add_argument("--junit-out", type=Path)
    p_merge.add_argument("--baseline", type=Path, help="the summary of the run to compare with")
    p_report = sub.add_parser("report", parents=[printing], help="merge the shards' reports found in a directory")
    default_dir = Path(os.environ.get("XENLAB_ARTIFACTS") or "artifacts") / "reports"
    p_report.add_argument("dir", nargs="?", type=Path, default=default_dir)
    p_report.add_argument("--baseline", type=Path)
    p_show = sub.add_parser("show", parents=[printing], help="print a summary's verdicts")
    p_show.add_argument("summary", type=Path)
    p_show.add_argument("--baseline", type=Path)
    p_durations = sub.add_parser("durations", help="record the tests' durations for pytest-split")
    p_durations.add_argument("summaries", nargs="+", type=Path)
    p_durations.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "report":
        summaries = [p for p in sorted(args.dir.glob("*.summary.json")) if p.name != "run.summary.json"]
        if not summaries:
            print(f"error: no *.summary.json in {args.dir}: did the shards' artifacts arrive?", file=sys.stderr)
            return 2
        junit = [p for p in sorted(args.dir.glob("*.xml")) if p.name != "run.xml"]
        args.command, args.inputs = "merge", summaries + junit
        args.out, args.junit_out = args.dir / "run.summary.json", args.dir / "run.xml"
    try:
        if args.command == "durations":
            count = record_durations([verdicts.load(p) for p in args.summaries], args.out)
            print(f"{count} tests' durations recorded in {args.out}")
            return 0
        if args.command == "merge":
            summary = verdicts.merge([verdicts.load(p) for p in args.inputs if p.suffix == ".json"])
            junit = [p for p in args.inputs if p.suffix == ".xml"]
            if junit:
                if args.junit_out is None:
                    parser.error("JUnit files given without --junit-out")
                cases = merge_junit(junit, args.junit_out)
                print(f"JUnit: {len(junit)} files, {cases} test cases -> {args.junit_out}")
        else:
            summary = verdicts.load(args.summary)
        comparisons = verdicts.compare(summary, verdicts.load(args.baseline)) if args.baseline else None
    except verdicts.SummaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "merge":
        summary.write(args.out, comparisons)
    print(verdicts.table(summary, comparisons, notable_only=False if args.all else None))
    return 1 if any(r.verdict.bad for r in summary.results) else 0


if __name__ == "__main__":
    sys.exit(main())
