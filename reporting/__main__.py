"""`python -m reporting`: merge the shards of a run and compare it with the last good one.

python -m reporting merge --out run.json [--junit-out run.xml] [--baseline last.json] SHARD.json... [SHARD.xml...]
python -m reporting show run.json [--baseline last.json]

`merge` joins the shards' summaries (a test in two shards is an error: the split overlapped) and their JUnit
files into one <testsuites>, prints the verdict table, compared with the baseline when given, and exits 1
if any verdict is fail, broken or blocked.  Standard library only: a report job needs nothing installed.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reporting", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_merge = sub.add_parser("merge", help="merge shards' summaries (and JUnit files) into one")
    p_merge.add_argument("inputs", nargs="+", type=Path, help="the shards' *.json summaries and *.xml JUnit files")
    p_merge.add_argument("--out", type=Path, required=True)
    p_merge.add_argument("--junit-out", type=Path)
    p_merge.add_argument("--baseline", type=Path, help="the summary of the run to compare with")
    p_show = sub.add_parser("show", help="print a summary's verdicts")
    p_show.add_argument("summary", type=Path)
    p_show.add_argument("--baseline", type=Path)
    args = parser.parse_args(argv)
    try:
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
    print(verdicts.table(summary, comparisons))
    return 1 if any(r.verdict.bad for r in summary.results) else 0


if __name__ == "__main__":
    sys.exit(main())
