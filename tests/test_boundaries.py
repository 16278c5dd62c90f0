"""Layers point one way: the system under test imports nothing of the lab, the lab no scenario."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# package -> top-level packages it must never import
FORBIDDEN = {
    "pypxeboot": {"lab", "images", "netboot_stack", "scenarios", "quattor"},
    "quattor": {"lab", "images", "netboot_stack", "scenarios", "pypxeboot"},
    "images": {"netboot_stack", "scenarios", "pypxeboot"},
    "netboot_stack": {"scenarios", "images.recipes.dummy_installer"},
    "lab": {"scenarios"},
}
STDLIB_ONLY = {"pypxeboot", "quattor"}
# The install server's in-container program runs on the container's bare python3.
CONTAINER_SIDE = [REPO / "netboot_stack" / "httpd.py"]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files_of(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_one_way(package: str) -> None:
    bad = []
    for path in files_of(package):
        for name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "path",
    [*(p for pkg in sorted(STDLIB_ONLY) for p in files_of(pkg)), *CONTAINER_SIDE],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_what_runs_in_dom0_or_the_container_needs_only_the_standard_library(path: Path) -> None:
    import sys

    own = {path.relative_to(REPO).parts[0], "quattor"}
    outside = {name.split(".")[0] for name in imports(path)} - set(sys.stdlib_module_names) - own
    assert not outside, f"{path.relative_to(REPO)} imports {outside}"
