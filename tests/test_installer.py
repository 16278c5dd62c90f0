"""The lab installer's decisions, without a machine: what it accepts, and how it lays out a disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytest import MonkeyPatch

from foundation.paths import REPO
from kickstart_installer import xenlab_installer as inst
from quattor.aii import ks, node
from tests.loopback_http import directory, serving
from tests.quattor_helpers import profile, shipped


def aii_kickstart(name: str) -> str:
    return ks.kickstart(node.read(profile(shipped(name))), payload_image="dom0", ack_base="http://gridinstall")


def test_what_aii_writes_is_all_supported() -> None:
    handler = inst.parse(aii_kickstart("cagxen01"))
    parts = inst.plan(handler, disk_mib=20480)
    assert [(p.name, p.size_mib, p.number, p.fstype, p.label) for p in parts] == [
        ("/", 3072, 1, "ext4", "root"),
        ("pv.01", 16384, 2, None, None),
    ]
    assert inst.sfdisk_script(parts) == (
        "label: dos\nstart=2048, type=83, size=3072MiB, bootable\nstart=, type=8e, size=16384MiB\n"
    )


@pytest.mark.parametrize(
    "command", ["keyboard --vckeymap=us", "firewall --disabled", "selinux --enforcing", "url --url=x"]
)
def test_an_unsupported_command_stops_the_install_naming_it(command: str) -> None:
    with pytest.raises(inst.InstallError, match=f"unsupported kickstart command.*{command.split()[0]}"):
        inst.parse(aii_kickstart("cagnode50") + command + "\n")


def test_a_kickstart_that_does_not_parse_says_why() -> None:
    with pytest.raises(inst.InstallError, match="does not parse"):
        inst.parse("part / --size=lots\n")


def test_partitions_that_do_not_fit_are_refused_with_the_numbers() -> None:
    handler = inst.parse(aii_kickstart("cagxen01"))
    with pytest.raises(inst.InstallError, match="need 19457 MiB but the disk has 8192 MiB"):
        inst.plan(handler, disk_mib=8192)


def test_grow_takes_the_rest() -> None:
    handler = inst.parse("part / --size=1024 --grow --label=root\n")
    (root,) = inst.plan(handler, disk_mib=4096)
    assert root.grow and "size=" not in inst.sfdisk_script([root])


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("http://g/p/dom0.tar.zst", ["zstd", "-dc"]),
        ("http://g/p/x.tar.gz?v=1", ["gzip", "-dc"]),
        ("http://g/p/x.tar.xz", ["xz", "-dc"]),
        ("http://g/p/x.tar", []),
    ],
)
def test_payload_decompressor_follows_the_name(url: str, command: list[str]) -> None:
    assert inst._decompressor(url) == command


def fake_disks(root: Path, sizes_mib: dict[str, int]) -> Path:
    for name, mib in sizes_mib.items():
        (root / name).mkdir(parents=True)
        (root / name / "size").write_text(str(mib * 2048))  # 512-byte sectors
    return root


def test_without_a_named_disk_the_largest_is_used(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    # A PV guest of the seed: its file disk `sda` shows as xvde, its swap volume `hda3` as a disk xvda3.
    monkeypatch.setattr(inst, "SYS_BLOCK", fake_disks(tmp_path, {"xvda3": 6144, "xvde": 10240, "loop0": 99999}))
    assert inst.find_disk(inst.parse("part / --size=1024\n")) == "xvde"


def test_a_named_disk_that_is_missing_is_refused_with_the_disks_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inst, "SYS_BLOCK", fake_disks(tmp_path, {"vda": 4096}))
    with pytest.raises(inst.InstallError, match="names disk xvda, this machine has vda"):
        inst.find_disk(inst.parse("clearpart --all --drives=xvda\npart / --size=1024\n"))


def guest_menu_entry(target: Path, monkeypatch: MonkeyPatch, *, guest_type: str | None = None) -> str:
    """The entry the installer writes for a payload with a kernel and initrd, for a guest's kickstart, on a
    machine whose /sys/hypervisor/guest_type says `guest_type` (None: no such file, not a Xen guest)."""
    monkeypatch.setattr(inst, "TARGET", target)
    monkeypatch.setattr(inst, "GUEST_TYPE", target.parent / "guest_type")
    if guest_type is not None:
        (target.parent / "guest_type").write_text(guest_type + "\n")
    (target / "boot").mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz-6.1.0-56-amd64", "initrd.img-6.1.0-56-amd64"):
        (target / "boot" / name).write_bytes(b"")
    handler = inst.parse('part / --size=1024 --label=root\nbootloader --location=mbr --append="console=hvc0"\n')
    return inst.grub_entry(handler, [inst.Volume("/", "/dev/xvda1", "ext4", "LABEL=root")])


def test_the_grub_entry_boots_the_payloads_kernel_with_the_kickstarts_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = guest_menu_entry(tmp_path, monkeypatch)
    assert "\tlinux /boot/vmlinuz-6.1.0-56-amd64 root=LABEL=root ro console=hvc0\n" in entry
    assert "\tinitrd /boot/initrd.img-6.1.0-56-amd64\n" in entry
    assert entry.startswith("menuentry 'Debian GNU/Linux, 6.1.0-56-amd64' {") and entry.endswith("}\n")


@pytest.mark.parametrize(
    ("guest_type", "with_pv_kernel", "kernel"),
    [
        ("PV", True, "/boot/xen/vmlinuz-6.1.0-56-amd64"),
        ("PV", False, "/boot/vmlinuz-6.1.0-56-amd64"),
        ("HVM", True, "/boot/vmlinuz-6.1.0-56-amd64"),
        (None, True, "/boot/vmlinuz-6.1.0-56-amd64"),
    ],
)
def test_a_pv_guest_boots_the_payloads_pv_kernel_and_any_other_machine_its_bzimage(
    tmp_path: Path, monkeypatch: MonkeyPatch, guest_type: str | None, with_pv_kernel: bool, kernel: str
) -> None:
    """Only a PV guest's domain builder loads a gzipped ELF; GRUB on an HVM guest or a bare machine needs the
    bzImage, and a payload without a PV kernel boots its bzImage in a PV guest too (pygrub and libxc read both)."""
    if with_pv_kernel:
        (tmp_path / "target/boot/xen").mkdir(parents=True)
        (tmp_path / "target/boot/xen/vmlinuz-6.1.0-56-amd64").write_bytes(b"")
    entry = guest_menu_entry(tmp_path / "target", monkeypatch, guest_type=guest_type)
    assert f"\tlinux {kernel} root=LABEL=root ro console=hvc0\n" in entry


def test_a_payload_without_a_kernel_cannot_get_a_boot_entry(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path)
    (tmp_path / "boot").mkdir()
    handler = inst.parse("part / --size=1024\n")
    with pytest.raises(inst.InstallError, match="no kernel in /boot"):
        inst.grub_entry(handler, [inst.Volume("/", "/dev/vda1", "ext4", "UUID=1")])


@pytest.mark.integration
def test_xens_pygrub_reads_the_entry_the_installer_writes(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """The guest's local boot depends on it: pygrub (from the dom0 image's Xen 4.17) parses the menu."""
    import subprocess
    import sys

    from images.recipes import dom0

    pygrub_lib = next((dom0.build() / "rootfs/usr/lib").glob("xen-4.*/lib/python"))
    (tmp_path / "grub.cfg").write_text(inst.GRUB_HEADER + guest_menu_entry(tmp_path / "target", monkeypatch))
    read = (
        "import sys; from grub import GrubConf; c = GrubConf.Grub2ConfigFile(); c.parse(open(sys.argv[1]).read()); "
        "i = c.images[c.default]; print(i.kernel[1], i.initrd[1], i.args, sep='|')"
    )
    out = subprocess.run(
        [sys.executable, "-c", read, str(tmp_path / "grub.cfg")],
        env={"PYTHONPATH": str(pygrub_lib)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "/boot/vmlinuz-6.1.0-56-amd64|/boot/initrd.img-6.1.0-56-amd64|root=LABEL=root ro console=hvc0"


FILL = """
import sys, types
from pathlib import Path
from kickstart_installer import xenlab_installer as inst
inst.TARGET = Path(sys.argv[1])
try:
    inst.payload(types.SimpleNamespace(liveimg=types.SimpleNamespace(url=sys.argv[2])))
except inst.InstallError as exc:
    print("REASON", exc)
"""


def test_a_payload_says_where_its_time_went(
    tmp_path: Path, monkeypatch: MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The payload's progress line splits its time between the network and tar (the figure issue 15's
    cuts are chosen by): the two waits never add up to more than the whole."""
    import re
    import types

    srv, target = tmp_path / "srv", tmp_path / "target"
    (srv / "tree/etc").mkdir(parents=True)
    target.mkdir()
    (srv / "tree/etc/hostname").write_text("cagnode50\n")
    (srv / "tree/blob").write_bytes(os.urandom(3 << 20))
    subprocess.run(["tar", "--zstd", "-C", str(srv / "tree"), "-cf", str(srv / "p.tar.zst"), "."], check=True)
    monkeypatch.setattr(inst, "TARGET", target)
    with serving(directory(srv)) as address:
        inst.payload(types.SimpleNamespace(liveimg=types.SimpleNamespace(url=f"http://{address}/p.tar.zst")))
    assert (target / "etc/hostname").read_text() == "cagnode50\n"
    said = capsys.readouterr().out
    found = re.search(
        r"payload: 3 MiB unpacked \((?P<all>[\d.]+) s: (?P<net>[\d.]+) s waiting on the network, "
        r"(?P<tar>[\d.]+) s on tar, whose CPU was (?P<user>[\d.]+) s user and (?P<kernel>[\d.]+) s kernel\)",
        said,
    )
    assert found, said
    assert float(found["net"]) + float(found["tar"]) <= float(found["all"]) + 0.05, said


@pytest.mark.parametrize("fmt", ["zst", "gz", "xz"])
def test_a_compressed_payload_unpacks_and_a_corrupt_one_fails_with_its_decompressors_reason(
    tmp_path: Path, monkeypatch: MonkeyPatch, fmt: str
) -> None:
    """Each payload format through its decompressor beside tar; a stream cut short or damaged is refused
    with what the decompressor said, never half-installed silently."""
    import types

    srv, target = tmp_path / "srv", tmp_path / "target"
    (srv / "tree/usr/bin").mkdir(parents=True)
    target.mkdir()
    (srv / "tree/usr/bin/tool").write_bytes(os.urandom(2 << 20))
    os.symlink("tool", srv / "tree/usr/bin/link")
    flag = {"zst": "--zstd", "gz": "-z", "xz": "-J"}[fmt]
    subprocess.run(["tar", flag, "-C", str(srv / "tree"), "-cf", str(srv / f"p.tar.{fmt}"), "."], check=True)
    good = (srv / f"p.tar.{fmt}").read_bytes()
    (srv / f"cut.tar.{fmt}").write_bytes(good[: len(good) // 2])
    (srv / f"bad.tar.{fmt}").write_bytes(good[:64] + bytes(b ^ 0x5A for b in good[64:4096]) + good[4096:])
    monkeypatch.setattr(inst, "TARGET", target)

    def install(name: str) -> None:
        inst.payload(types.SimpleNamespace(liveimg=types.SimpleNamespace(url=f"http://{address}/{name}")))

    with serving(directory(srv)) as address:
        install(f"p.tar.{fmt}")
        assert (target / "usr/bin/tool").read_bytes() == (srv / "tree/usr/bin/tool").read_bytes()
        assert os.readlink(target / "usr/bin/link") == "tool"
        for broken in ("cut", "bad"):
            with pytest.raises(inst.InstallError) as failed:
                install(f"{broken}.tar.{fmt}")
            said = str(failed.value)
            command = inst._decompressor(f"x.tar.{fmt}")[0]
            assert f"{broken}.tar.{fmt} did not decompress" in said and f": {command}: " in said, said


def test_a_payload_whose_decompressor_the_installer_lacks_is_refused_by_name(monkeypatch: MonkeyPatch) -> None:
    import types

    monkeypatch.setenv("PATH", "/nonexistent")  # no zstd on it: refused before anything is fetched or started
    with pytest.raises(inst.InstallError, match=r"p\.tar\.zst needs zstd to decompress, which this installer lacks"):
        inst.payload(types.SimpleNamespace(liveimg=types.SimpleNamespace(url="http://192.0.2.1/p.tar.zst")))


@pytest.mark.parametrize("name", ["p.tar", "p.tar.zst"])
def test_a_payload_larger_than_its_file_system_fails_with_the_disk_full(tmp_path: Path, name: str) -> None:
    """Unpacked onto a 1 MiB file system (a tmpfs in a mount namespace of the test's own, gone with it): many
    files that cannot be written, one reason with the count, and no hang on tar's flood of complaints."""
    srv, target = tmp_path / "srv", tmp_path / "target"
    (srv / "tree").mkdir(parents=True)
    target.mkdir()
    for n in range(400):
        (srv / "tree" / f"file{n:03}").write_bytes(os.urandom(8192))
    zstd = ["--zstd"] if name.endswith(".zst") else []
    subprocess.run(["tar", *zstd, "-C", str(srv / "tree"), "-cf", str(srv / name), "."], check=True)
    with serving(directory(srv)) as address:
        proc = subprocess.run(
            [
                "unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount -t tmpfs -o size=1m none "$1" && exec "{sys.executable}" -c "$2" "$1" "$3"',
                "fill", str(target), FILL, f"http://{address}/{name}",
            ],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
        )  # fmt: skip
    reason = next((line for line in proc.stdout.splitlines() if line.startswith("REASON")), proc.stderr)
    prefix = (
        f"payload http://{address}/{name} did not unpack (3 MiB read): No space left on device (cannot write ./file"
    )
    assert prefix in reason and "more complaints)" in reason, reason
    assert not any(target.iterdir()), "the tmpfs was the test's own: the real directory stays empty"


@pytest.mark.parametrize(
    ("complaints", "reason"),
    [
        ("tar: ./a: Cannot open: Permission denied\ntar: Exiting with failure status due to previous errors\n",
         "Permission denied (cannot open ./a)"),
        ("tar: ./usr/x: Cannot write: No space left on device\ntar: ./usr/y: Cannot write: No space left on device\n",
         "No space left on device (cannot write ./usr/x, and 1 more complaints)"),
        ("zstd: /*stdin*\\: unexpected end of file\ntar: Child returned status 1\n",
         "zstd: /*stdin*\\: unexpected end of file (1 more complaints)"),
        ("", "tar exited with status 2"),
    ],
)  # fmt: skip
def test_tars_complaints_give_their_cause_first(complaints: str, reason: str) -> None:
    assert inst.tar_reason(complaints, 2) == reason


def updates_image(tmp_path: Path, members: dict[str, bytes], compress: list[str]) -> Path:
    """A newc cpio (GNU cpio, as Anaconda's updates.img is made), compressed by `compress`."""
    tree = tmp_path / "updates-tree"
    for name, content in members.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    listing = "\n".join(members) + "\n"
    archive = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"], input=listing.encode(), cwd=tree, capture_output=True, check=True
    ).stdout
    out = tmp_path / "srv" / "updates.img"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(subprocess.run(compress, input=archive, capture_output=True, check=True).stdout)
    return out


@pytest.mark.parametrize("compress", [["gzip", "-c"], ["zstd", "-c", "-q"]], ids=["gzip", "zstd"])
def test_an_updates_image_overlays_the_installers_own_files(tmp_path: Path, compress: list[str]) -> None:
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/xenlab-installer").write_text("# the installer as built\n")
    updates_image(tmp_path, {"usr/local/bin/xenlab-installer": b"# patched\n", "etc/xenlab/new": b"x"}, compress)
    with serving(directory(tmp_path / "srv")) as address:
        written = inst.apply_updates(f"http://{address}/updates.img", root)
    assert sorted(written) == ["etc/xenlab/new", "usr/local/bin/xenlab-installer"]
    assert (root / "usr/local/bin/xenlab-installer").read_text() == "# patched\n"
    assert (root / "etc/xenlab/new").read_text() == "x"


def test_an_updates_image_that_climbs_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "escape").mkdir()
    (tmp_path / "escape" / "evil").write_text("x")
    (tmp_path / "updates-tree" / "a").mkdir(parents=True)
    archive = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        input=b"a/../../escape/evil\n",
        cwd=tmp_path / "updates-tree",
        capture_output=True,
        check=True,
    ).stdout
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "updates.img").write_bytes(archive)
    root = tmp_path / "root"
    root.mkdir()
    with serving(directory(tmp_path / "srv")) as address, pytest.raises(inst.InstallError, match="unsafe"):
        inst.apply_updates(f"http://{address}/updates.img", root)
    assert not (tmp_path / "root" / "escape").exists() and list(root.iterdir()) == []
    (tmp_path / "srv" / "updates.img").write_bytes(b"not an archive")
    with serving(directory(tmp_path / "srv")) as address, pytest.raises(inst.InstallError, match="not a"):
        inst.apply_updates(f"http://{address}/updates.img", root)


def test_onerror_scripts_run_after_a_failure_whatever_their_own_status(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path / "sysimage")
    first, second = tmp_path / "first", tmp_path / "second"
    handler = inst.parse(
        "part / --size=1024 --label=root\n"
        f"%onerror\necho one > {first}\nexit 7\n%end\n"
        f"%onerror --interpreter=/bin/bash\necho two > {second}\n%end\n"
        "%post\necho never\n%end\n"
    )
    inst.onerror(handler)
    assert first.read_text() == "one\n" and second.read_text() == "two\n"  # the first one's status stopped nothing


def test_a_swap_partition_is_swap_and_a_relative_or_foreign_file_system_is_refused() -> None:
    handler = inst.parse("part / --size=1024 --label=root\npart swap --size=256\n")
    root, swap = inst.plan(handler, disk_mib=4096)
    assert (swap.fstype, root.fstype) == ("swap", "ext4")
    assert "type=82, size=256MiB" in inst.sfdisk_script([root, swap])
    with pytest.raises(inst.InstallError, match="file system xfs is not supported"):
        inst.plan(inst.parse("part / --size=1024 --fstype=xfs\n"), disk_mib=4096)
    with pytest.raises(inst.InstallError, match="logvol srv: a mount point must be absolute"):
        inst.filesystem_type("srv", "ext4", "logvol")


def test_the_installed_fstab_names_every_file_system_parents_first_and_swap_last() -> None:
    volumes = [
        inst.Volume("/var/log", "/dev/mapper/vg0-log", "ext4", "/dev/mapper/vg0-log"),
        inst.Volume("swap", "/dev/xvda3", "swap", "UUID=5e1f"),
        inst.Volume("/var", "/dev/xvda2", "ext3", "LABEL=var"),
        inst.Volume("/", "/dev/xvda1", "ext4", "LABEL=root"),
    ]
    assert [v.mountpoint for v in inst.mount_order(volumes)] == ["/", "/var", "/var/log"]
    assert inst.fstab(volumes) == (
        "LABEL=root / ext4 defaults 0 1\n"
        "LABEL=var /var ext3 defaults 0 2\n"
        "/dev/mapper/vg0-log /var/log ext4 defaults 0 2\n"
        "UUID=5e1f none swap defaults 0 0\n"
    )


def test_with_a_boot_file_system_of_its_own_the_entry_names_its_paths(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-6.1.0-56-amd64").write_bytes(b"")
    volumes = [
        inst.Volume("/", "/dev/xvda2", "ext4", "UUID=77"),
        inst.Volume("/boot", "/dev/xvda1", "ext4", "LABEL=boot"),
    ]
    entry = inst.grub_entry(inst.parse("part / --size=1024\n"), volumes)
    assert (
        "\tsearch --no-floppy --label --set=root boot\n\tlinux /vmlinuz-6.1.0-56-amd64 root=/dev/xvda2 ro \n" in entry
    )


@pytest.mark.parametrize(
    ("zone", "why"),
    [("../../../etc/passwd", "is not a zone"), ("Europe/Atlantis", "no /usr/share/zoneinfo/Europe/Atlantis")],
)
def test_a_time_zone_the_payload_lacks_or_one_that_climbs_out_is_refused(
    tmp_path: Path, monkeypatch: MonkeyPatch, zone: str, why: str
) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path)
    (tmp_path / "usr/share/zoneinfo/Europe").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(inst.InstallError, match=why):
        inst.configure_timezone(zone)
    assert not (tmp_path / "etc/localtime").exists()


def test_lang_sets_the_language_and_says_it_could_not_generate_it(
    tmp_path: Path, monkeypatch: MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path)
    inst.configure_language("en_IE.UTF-8")
    assert (
        (tmp_path / "etc/default/locale").read_text()
        == (tmp_path / "etc/locale.conf").read_text()
        == ("LANG=en_IE.UTF-8\n")
    )
    assert "en_IE.UTF-8 (the payload has no locale-gen" in capsys.readouterr().out
    with pytest.raises(inst.InstallError, match="is not a locale name"):
        inst.configure_language("en_IE.UTF-8\nLC_ALL=C")


@pytest.mark.parametrize(
    ("content", "tool", "made"),
    [
        (b"", "usr/bin/systemd-machine-id-setup", True),
        (b"\n", "bin/systemd-machine-id-setup", True),
        (b"uninitialized\n", "usr/bin/systemd-machine-id-setup", False),  # systemd's first boot is asked for
        (b"4a1f0c9e2b7d4e6f8a0b1c2d3e4f5a6b\n", "usr/bin/systemd-machine-id-setup", False),
        (b"", None, False),  # a payload without systemd
        (None, "usr/bin/systemd-machine-id-setup", False),  # no file: first boot again
    ],
)
def test_the_machine_id_is_made_at_install_only_where_the_payload_leaves_it_empty(
    tmp_path: Path, monkeypatch: MonkeyPatch, content: bytes | None, tool: str | None, made: bool
) -> None:
    monkeypatch.setattr(inst, "TARGET", tmp_path)
    (tmp_path / "etc").mkdir()
    if content is not None:
        (tmp_path / "etc/machine-id").write_bytes(content)
    if tool:
        (tmp_path / tool).parent.mkdir(parents=True)
        (tmp_path / tool).write_text("#!/bin/sh\n")
    calls: list[tuple[list[str], bool]] = []

    def run(argv: list[str], *, what: str, chroot: bool = False) -> str:
        calls.append((argv, chroot))
        return ""

    monkeypatch.setattr(inst, "run", run)
    inst.configure_machine_id()
    assert calls == ([(["systemd-machine-id-setup"], True)] if made else [])


CONFIGURE = """
import sys
from pathlib import Path
from kickstart_installer import xenlab_installer as inst
inst.TARGET = Path(sys.argv[1])
inst.bind_mounts(True)
try:
    inst.configure_target(inst.parse(sys.argv[2]), [inst.Volume("/", "/dev/xvda1", "ext4", "LABEL=root")])
except inst.InstallError as exc:
    print("REASON", exc)
finally:
    inst.bind_mounts(False)
"""
ACCOUNTS_AND_SERVICES = """\
rootpw --iscrypted $6$xenlab$root
group --name=gridadm --gid=5001
user --name=gridops --groups=wheel,gridadm --uid=1500 --iscrypted --password=$6$kstest$Zm9vYmFy
sshkey --username=gridops "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKstest gridops"
services --enabled=systemd-networkd --disabled=e2scrub_reap,cron
timezone Europe/Dublin
lang en_IE.UTF-8
"""


def configure_in_payload(tmp_path: Path, kickstart: str) -> tuple[Path, str]:
    """The installer's configuration of a real guest payload (the lab's Debian tree), its own useradd and
    systemctl run in it by chroot, in a mount namespace of the test's own (the bind mounts go with it)."""
    from images.recipes import guest_payload

    root = tmp_path / "sysimage"
    root.mkdir()
    subprocess.run(
        ["tar", "-x", "--zstd", "-C", str(root), "-f", str(guest_payload.build() / "guest.tar.zst")], check=True
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", CONFIGURE, str(root), kickstart],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root, proc.stdout


@pytest.mark.integration
def test_accounts_services_language_and_zone_are_configured_in_a_real_payload(tmp_path: Path) -> None:
    root, said = configure_in_payload(tmp_path, ACCOUNTS_AND_SERVICES)
    assert "REASON" not in said, said
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    shadow = {line.split(":")[0]: line.split(":")[1] for line in (root / "etc/shadow").read_text().splitlines()}
    assert passwd["gridops"][2] == "1500" and passwd["gridops"][5] == "/home/gridops"
    assert groups["gridadm"][2] == "5001" and groups["gridadm"][3] == "gridops"
    assert groups["wheel"][3] == "gridops", "a --groups group the payload lacks is made, as Anaconda does"
    assert (shadow["root"], shadow["gridops"]) == ("$6$xenlab$root", "$6$kstest$Zm9vYmFy")
    keys = root / "home/gridops/.ssh/authorized_keys"
    assert keys.read_text().endswith(" gridops\n") and keys.parent.stat().st_uid == keys.stat().st_uid == 1500
    wants = root / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/systemd-networkd.service").is_symlink()
    assert not list(wants.glob("*.wants/e2scrub_reap.service")), "disabled"
    assert "cron.service is not in the payload: not disabled" in said
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Dublin"
    assert (root / "etc/default/locale").read_text() == "LANG=en_IE.UTF-8\n"
    assert (root / "etc/fstab").read_text() == "LABEL=root / ext4 defaults 0 1\n"
    assert re.fullmatch(r"[0-9a-f]{32}\n", (root / "etc/machine-id").read_text()), "made by its own systemd"
    for stamped in ("/etc", "/var"):  # the image's stamps, through the tar round trip, as systemd reads them
        argv = ["chroot", str(root), "systemd-analyze", "condition", f"ConditionNeedsUpdate={stamped}"]
        check = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode != 0 and "ConditionNeedsUpdate" in check.stderr, check.stderr


@pytest.mark.integration
def test_a_plain_password_is_refused_before_any_account_changes(tmp_path: Path) -> None:
    root, said = configure_in_payload(tmp_path, "user --name=gridops --password=secret\n")
    assert "REASON the password of gridops must be crypted" in said
    assert "gridops" not in (root / "etc/passwd").read_text()


def test_what_the_installer_carries_out_is_named_by_pykickstart_and_listed_in_the_readme() -> None:
    table = inst.command_table()
    assert {name for name, _ in table} >= inst.SUPPORTED, "a name pykickstart's handler does not have"
    carried_out = ", ".join(name for name, supported in table if supported)
    readme = (REPO / "README.md").read_text()
    assert (
        f"carries out {sum(s for _, s in table)} of pykickstart's {len(table)} command names: {carried_out}.\n"
        in readme
    )
