"""`python -m images [build] [NAME...]`: build (or reuse) the lab's images and print where they are."""

from __future__ import annotations

import argparse
import logging
import sys

from images import catalog
from lab.errors import XenlabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m images", description=__doc__)
    parser.add_argument("command", nargs="?", default="build", choices=["build", "list"])
    parser.add_argument("names", nargs="*", help=f"images to build (default: all of {', '.join(catalog.NAMES)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "list":
        print("\n".join(catalog.NAMES))
        return 0
    try:
        for name in args.names or catalog.NAMES:
            print(f"{name}: {catalog.build(name)}")
    except XenlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
