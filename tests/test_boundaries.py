"""Layers point one way: each package of the tree may import exactly the packages below it, and no other.

From the bottom: the system under test (`pypxeboot`, `quattor`) and the `foundation`; side by side on the
foundation, the install server (`netboot_stack`), the images (`images`) and the lab's installer
(`kickstart_installer`, which runs inside VMs); above them `lab`, which composes them; then the scenario
steps (`scenario_steps`), and at the top the scenario tests (`scenarios`) and the benchmarks.  The unit and
integration tests (`tests`) test everything but the scenario layers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SUT = {"pypxeboot", "quattor"}
SIDE_BY_SIDE = {"foundation", "netboot_stack", "images", "kickstart_installer"}
# package -> the project's packages it may import (itself always)
ALLOWED: dict[str, set[str]] = {
    "pypxeboot": set(),
    "quattor": set(),
    "foundation": set(),
    "netboot_stack": {"foundation", "quattor"},  # it serves what AII (the system under test) writes
    "images": {"foundation", "quattor"},  # a prebuilt Xen host disk carries ncm-grub's own grub.cfg
    "kickstart_installer": set(),
    "lab": {"foundation", "netboot_stack", "images", "quattor"},
    "scenario_steps": {"foundation", "netboot_stack", "images", "lab", "quattor"},
    "scenarios": {"foundation", "netboot_stack", "images", "lab", "quattor", "scenario_steps", "reporting"},
    "benchmarks": {"foundation", "netboot_stack", "lab", "scenario_steps", "reporting"},
    "reporting": {"foundation"},  # the verdicts of every tier; its model and CLI on the standard library alone
    "tests": {*SUT, *SIDE_BY_SIDE, "lab", "reporting"},
}
# Root-level modules: the root conftest serves every tier, so it stands on the foundation alone.
ROOT_MODULES = {"conftest.py": {"foundation", "reporting"}, "noxfile.py": set()}
PROJECT = set(ALLOWED)
STDLIB_ONLY = {"pypxeboot", "quattor", "foundation"}
# The install server's in-container program runs on the container's bare python3.
CONTAINER_SIDE = [REPO / "netboot_stack" / "httpd.py"]
# The report job merges summaries on a machine with only Python: the model and the CLI need nothing else.
REPORT_SIDE = [REPO / "reporting" / f for f in ("verdicts.py", "__main__.py", "gateway_figures.py")]
# The installer runs inside the VM on the standard library and pykickstart.
INSTALLER_NEEDS = {"pykickstart"}


def imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth (function-local imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def project_imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imports(path)} & PROJECT


def files_of(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_every_package_of_the_tree_has_a_rule() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} | {"tests"}
    assert packages == PROJECT, (
        f"packages without a rule: {packages - PROJECT}; rules without a package: {PROJECT - packages}"
    )


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    bad = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in files_of(package)
        for name in sorted(project_imports(path) - ALLOWED[package] - {package})
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(ROOT_MODULES))
def test_root_modules_import_only_the_foundation(module: str) -> None:
    assert project_imports(REPO / module) <= ROOT_MODULES[module]


def test_the_rules_are_a_layering() -> None:
    """No two packages may import each other, directly or around a cycle: the arrows point one way."""
    seen: dict[str, set[str]] = {}

    def below(package: str, path: tuple[str, ...] = ()) -> set[str]:
        assert package not in path, f"import cycle in the rules: {' -> '.join((*path, package))}"
        if package not in seen:
            seen[package] = set().union(*({p} | below(p, (*path, package)) for p in ALLOWED[package]))
        return seen[package]

    for package in ALLOWED:
        below(package)
    for package in ("scenarios", "benchmarks", "tests"):
        assert not any(package in ALLOWED[other] for other in ALLOWED), f"{package} is imported by a package"


@pytest.mark.parametrize(
    "path",
    [
        *(p for pkg in sorted(STDLIB_ONLY) for p in files_of(pkg)),
        *CONTAINER_SIDE,
        *REPORT_SIDE,
        *files_of("kickstart_installer"),
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_what_runs_in_dom0_a_vm_the_container_or_the_report_job_needs_only_the_standard_library(path: Path) -> None:
    package = path.relative_to(REPO).parts[0]
    own = {package} | ({"quattor"} if path in CONTAINER_SIDE else set())
    extra = INSTALLER_NEEDS if package == "kickstart_installer" else set()
    outside = {name.split(".")[0] for name in imports(path)} - set(sys.stdlib_module_names) - own - extra
    assert not outside, f"{path.relative_to(REPO)} imports {outside}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rule can fail: an arrow back up is found."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from lab.lab import Lab\n")
    assert project_imports(bad) - ALLOWED["netboot_stack"] == {"lab"}
