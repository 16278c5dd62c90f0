"""ncm-ncd: choosing and ordering components, --noaction, the summary and the exit status."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from quattor.ncm import ncd
from quattor.ncm.component import ComponentError
from tests.quattor_helpers import profile, shipped, write

HOST = shipped("cagxen01")


def host_without_lvm() -> dict[str, Any]:
    t = copy.deepcopy(HOST)
    for domain in t["software"]["components"]["xen"]["domains"]:
        domain["disk"] = [d for d in domain["disk"] if d["type"] == "file"]
    return t


def boot_files(root: Path) -> None:
    version = HOST["system"]["kernel"]["version"]
    (root / "boot/grub").mkdir(parents=True)
    for name in (f"vmlinuz-{version}", f"initrd.img-{version}", "xen-4.17-amd64.gz"):
        (root / "boot" / name).write_bytes(b"x")
    (root / "boot/grub/grub.cfg").write_text("")


def test_pre_dependencies_run_first() -> None:
    assert ncd.order(profile(HOST), ["xen"]) == (["grub", "xen"], {})


def test_a_dependency_cycle_is_named() -> None:
    t = copy.deepcopy(HOST)
    t["software"]["components"]["grub"]["dependencies"] = {"pre": ["xen"]}
    with pytest.raises(ComponentError, match="dependency cycle: xen -> grub -> xen"):
        ncd.order(profile(t), ["xen"])


def test_all_runs_every_component_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boot_files(tmp_path)
    code = ncd.main(
        ["--configure", "--all", "--profile", str(write(tmp_path, host_without_lvm())), "--root", str(tmp_path)]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("[OK] grub: ok (made 1 change)")
    assert out[1].startswith("[OK] xen: ok (made ")
    assert (tmp_path / "etc/xen/cagnode51.cfg").exists()


def test_noaction_reports_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boot_files(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = ncd.main(
        [
            "--configure",
            "xen",
            "--noaction",
            "--profile",
            str(write(tmp_path / "boot", host_without_lvm())),
            "--root",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "would make" in capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != "profile.json") == before


def test_a_failing_component_fails_the_run_and_its_dependents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No boot files: ncm-grub fails; ncm-xen depends on it and is not run.
    code = ncd.main(
        ["--configure", "xen", "--profile", str(write(tmp_path, host_without_lvm())), "--root", str(tmp_path / "root")]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "[ERROR] grub: failed:" in out and "[ERROR] xen: failed: not run, its dependency grub failed" in out


def qwg_host() -> dict[str, Any]:
    """The host as a QWG-compiled 2007 profile: every component depends on spma (upstream-behaviour.md 4.1),
    which ncm-ncd here does not carry."""
    t = host_without_lvm()
    for name in ("grub", "xen"):
        t["software"]["components"][name]["dependencies"] = {"pre": ["spma"]}
    t["software"]["components"]["spma"] = {"active": True, "dispatch": True, "packages": {}}
    return t


def test_a_dependency_not_installed_is_that_components_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boot_files(tmp_path)
    code = ncd.main(["--configure", "--all", "--profile", str(write(tmp_path, qwg_host())), "--root", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "[ERROR] grub: failed: not run, it depends on spma, not installed here (--nodeps ignores it)" in captured.out
    assert "[ERROR] xen: failed: not run, it depends on spma" in captured.out
    assert "component spma is in the profile but not installed here; skipped" in captured.err


def test_nodeps_ignores_dependencies_not_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boot_files(tmp_path)
    argv = ["--configure", "--all", "--nodeps", "--profile", str(write(tmp_path, qwg_host())), "--root", str(tmp_path)]
    assert ncd.main(argv) == 0
    out = capsys.readouterr().out
    assert "[OK] grub: ok" in out and "[OK] xen: ok" in out
    assert (tmp_path / "etc/xen/cagnode51.cfg").exists()


def test_a_crashing_component_is_reported_and_the_others_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from quattor.ncm.components.grub import GrubComponent

    def crash(self: object, profile: object, ctx: object) -> None:
        raise KeyError("kernels")

    monkeypatch.setattr(GrubComponent, "configure", crash)
    t = host_without_lvm()
    del t["software"]["components"]["xen"]["dependencies"]
    code = ncd.main(["--configure", "--all", "--profile", str(write(tmp_path, t)), "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[ERROR] grub: failed: the component crashed (KeyError: 'kernels'); this is a bug in it" in out
    assert "[OK] xen: ok" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--configure", "spma"], "no component named spma"),
        (["--configure", "xen", "--profile", "/nonexistent.json"], "cannot read the profile /nonexistent.json"),
    ],
)
def test_bad_requests_are_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "--profile" not in args:
        args += ["--profile", str(write(tmp_path, HOST))]
    assert ncd.main([*args, "--root", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--configure"], ["--configure", "xen", "--all"], []])
def test_the_action_must_be_clear(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        ncd.main(args)
    assert exit_.value.code == 2


def test_a_failed_command_reports_its_first_error_and_its_last_lines() -> None:
    import subprocess

    from quattor.ncm.component import failure_detail

    stderr = (
        "Parsing config from /etc/xen/cagnode50.cfg\n"
        "libxl: error: libxl_device.c:1111:device_backend_callback: Domain 1:unable to add device with path /x\n"
        "libxl: error: libxl_create.c:1880:domcreate_attach_devices: Domain 1:unable to add disk devices\n"
        "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 1:Non-existant domain\n"
        "libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain 1:Unable to destroy guest\n"
        "libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain 1:Destruction of domain failed\n"
    )
    detail = failure_detail(subprocess.CompletedProcess(["xl"], 3, "", stderr))
    assert detail.startswith("libxl: error: libxl_device.c:1111:device_backend_callback") and " / ... / " in detail
    assert detail.endswith("Destruction of domain failed")
    assert failure_detail(subprocess.CompletedProcess(["x"], 1, "only line\n", "")) == "only line"
