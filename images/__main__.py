"""`python -m images [build|list|gc] [NAME...]`: build (or reuse) the lab's images and print where they are.

`gc` builds (or reuses) every image of the catalog and removes everything else from the store: superseded
versions, per-profile disks (rebuilt on demand), half-built trees.
"""

from __future__ import annotations

import argparse
import logging
import sys

from foundation.errors import XenlabError
from images import catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m images", description=__doc__)
    parser.add_argument("command", nargs="?", default="build", choices=["build", "list", "gc"])
    parser.add_argument("names", nargs="*", help=f"images to build (default: all of {', '.join(catalog.NAMES)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "list":
        print("\n".join(catalog.NAMES))
        return 0
    try:
        if args.command == "gc":
            from images import store

            current = {catalog.build(name) for name in catalog.NAMES}
            for path in store.collect_garbage(current):
                print(f"removed {path.name}")
            return 0
        for name in args.names or catalog.NAMES:
            print(f"{name}: {catalog.build(name)}")
    except XenlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
