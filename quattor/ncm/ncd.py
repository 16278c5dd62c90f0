"""ncm-ncd: run configuration components against a compiled profile.

  ncm-ncd --configure COMPONENT... | --configure --all  [--profile FILE|URL] [--noaction] [--nodeps] [--root DIR]

Components run in the order their `dependencies/pre` ask.  A dependency that is not installed here (every
QWG profile's components depend on `spma`) is that component's error, reported in the summary while the
others run; `--nodeps` ignores such broken dependencies, as upstream ncm-ncd's option does.  One
component's failure, or crash, is that component's: the others run, and at the end a summary line per
component; the exit status is non-zero if any failed.  With --noaction they report what they would
change, files in full.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components import REGISTRY
from quattor.profile import Profile, ProfileError, load

DEFAULT_PROFILE = "/var/lib/ccm/profile.json"


def pre_dependencies(profile: Profile, name: str) -> list[str]:
    deps = profile.get(f"/software/components/{name}/dependencies/pre", []) or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ProfileError(f"/software/components/{name}/dependencies/pre", "expected a list of component names")
    return deps


def order(profile: Profile, wanted: list[str], *, nodeps: bool = False) -> tuple[list[str], dict[str, list[str]]]:
    """`wanted` plus the installed pre-dependencies they pull in, each after what it depends on; and, per
    component, its dependencies that are not installed here (empty with `nodeps`: they are ignored)."""
    result: list[str] = []
    missing: dict[str, list[str]] = {}
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in result:
            return
        if name in visiting:
            raise ComponentError(f"dependency cycle: {' -> '.join((*chain, name))}")
        visiting.add(name)
        for dep in pre_dependencies(profile, name):
            if dep in REGISTRY:
                visit(dep, (*chain, name))
            elif not nodeps:
                missing.setdefault(name, []).append(dep)
        visiting.discard(name)
        result.append(name)

    for name in wanted:
        visit(name, ())
    return result, missing


def selected(profile: Profile, args: argparse.Namespace, ctx: Context) -> list[str]:
    components = profile.get("/software/components", {}) or {}
    if args.all:
        names = []
        for name, tree in components.items():
            if isinstance(tree, dict) and tree.get("active", True) is False:
                continue
            if name not in REGISTRY:
                ctx.warn(f"component {name} is in the profile but not installed here; skipped")
                continue
            names.append(name)
        return names
    for name in args.configure:
        if name not in REGISTRY:
            raise ComponentError(f"no component named {name} (installed: {', '.join(sorted(REGISTRY))})")
        if name not in components:
            raise ComponentError(f"component {name} has no configuration in the profile")
    return list(args.configure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ncm-ncd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configure",
        nargs="*",
        metavar="COMPONENT",
        default=None,
        help="configure these components (with --all: every active one)",
    )
    parser.add_argument("--all", action="store_true", help="every active component of the profile")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile file or URL")
    parser.add_argument("--noaction", action="store_true", help="report what would change; change nothing")
    parser.add_argument(
        "--nodeps", action="store_true", help="ignore dependencies that are not installed here (such as spma)"
    )
    parser.add_argument("--root", type=Path, default=Path("/"), help="manage the system under this directory")
    args = parser.parse_args(argv)
    if args.all and args.configure:
        parser.error("name components or give --all, not both")
    if not args.all and not args.configure:
        parser.error("nothing to do: ncm-ncd --configure COMPONENT... or ncm-ncd --configure --all")
    try:
        profile = load(args.profile)
        ctx = Context(root=args.root, noaction=args.noaction)
        names, missing = order(profile, selected(profile, args, ctx), nodeps=args.nodeps)
    except (ProfileError, ComponentError) as exc:
        print(f"[ERROR] ncm-ncd: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line, never a traceback
        print(f"[ERROR] ncm-ncd: internal error ({type(exc).__name__}: {exc}); this is a bug", file=sys.stderr)
        return 1
    results: dict[str, str] = {}
    for name in names:
        ctx = Context(root=args.root, noaction=args.noaction)
        component = REGISTRY[name]()
        print(f"[INFO] ncm-ncd: running component {name}", file=sys.stderr, flush=True)
        if name in missing:
            deps = ", ".join(missing[name])
            results[name] = f"failed: not run, it depends on {deps}, not installed here (--nodeps ignores it)"
            continue
        failed_deps = [d for d in pre_dependencies(profile, name) if results.get(d, "").startswith("failed")]
        if failed_deps:
            results[name] = f"failed: not run, its dependency {', '.join(failed_deps)} failed"
            continue
        try:
            component.configure(profile, ctx)
            n = len(ctx.changes)
            verb = "would make" if args.noaction else "made"
            results[name] = f"ok ({verb} {n} change{'s' if n != 1 else ''})" if n else "ok (nothing to change)"
        except (ProfileError, ComponentError) as exc:
            results[name] = f"failed: {exc}"
        except Exception as exc:  # a bug in the component is its failure, not the end of the run
            results[name] = f"failed: the component crashed ({type(exc).__name__}: {exc}); this is a bug in it"
        for warning in profile.warnings:
            print(f"[WARN] {warning}", file=sys.stderr)
        profile.warnings.clear()
    for name, result in results.items():
        print(f"[{'OK' if result.startswith('ok') else 'ERROR'}] {name}: {result}")
    return 0 if all(r.startswith("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
