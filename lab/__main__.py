"""`python -m lab`: look at and take down labs on this machine.

python -m lab status        the labs on this machine, live or left over
python -m lab down          remove what crashed labs left behind
python -m lab down --all    also stop live labs (their owners are asked to stop first)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from foundation import netns, registry
from foundation.process import pid_alive


def status() -> int:
    ids = sorted(registry.known_lab_ids(), key=lambda i: int(i.removeprefix(registry.LAB_PREFIX)))
    if not ids:
        print("no labs on this machine")
        return 0
    for lab_id in ids:
        state = registry.read_state(lab_id)
        owner = state.owner_pid if state else None
        live = owner is not None and pid_alive(owner)
        spaces = [n for n in (lab_id, f"{lab_id}-srv") if netns.exists(n)]
        print(
            f"{lab_id}: {'live, owner pid ' + str(owner) if live else 'left over'}; namespaces: "
            f"{', '.join(spaces) or 'none'}; VM pids: {', '.join(map(str, state.pids)) if state else '-'}"
        )
    return 0


def down(all_labs: bool) -> int:
    cleaned = registry.sweep(include_live=all_labs)
    print(f"removed: {', '.join(cleaned)}" if cleaned else "nothing to remove")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="list the labs on this machine")
    p_down = sub.add_parser("down", help="remove leftover labs")
    p_down.add_argument("--all", action="store_true", help="also stop labs that are still running")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if os.geteuid() != 0:
        print("error: labs are root's: run this as root", file=sys.stderr)
        return 2
    if args.command == "status":
        return status()
    return down(args.all)


if __name__ == "__main__":
    sys.exit(main())
