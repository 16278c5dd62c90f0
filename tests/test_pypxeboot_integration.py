"""pypxeboot against the real install server (dnsmasq DHCP and TFTP in its container), from the lab's bridge.

pypxeboot runs as its own process inside the lab namespace, on `br0`, exactly as it runs in dom0 on
`xenbr0`: raw DHCP for a guest MAC, TFTP from the bridge's own address.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab import netns
from lab.lab import Lab, LabSpec, NodeSpec
from lab.paths import REPO
from quattor.aii.nbp import hexip

pytestmark = pytest.mark.integration

GUESTS = (
    NodeSpec("cagnode50", host=50, mac="aa:00:86:e2:35:72"),
    NodeSpec("cagnode51", host=51),
    NodeSpec("cagnode52", host=52),
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(LabSpec("pypxeboot", nodes=GUESTS)) as lab:
        yield lab


def pypxeboot(lab: Lab, *args: str, mac: str, outdir: Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    argv = netns.exec_argv(
        lab.network.netns,
        [
            sys.executable,
            "-m",
            "pypxeboot",
            "--output=-",
            "--output-format=simple0",
            f"--output-directory={outdir}",
            "--interface=br0",
            f"--timeout={timeout}",
            *args,
            f"mac={mac},bridge=xenbr0",
            "/dev/xenvg/disk",
        ],
    )
    return subprocess.run(argv, capture_output=True, cwd=REPO, timeout=timeout + 10, check=False)


def answer(proc: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr.decode()
    items = [i.decode() for i in proc.stdout.split(b"\0") if i]
    return dict(i.split(" ", 1) for i in items)


def sha(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def served(lab: Lab, name: str) -> Path:
    return lab.server.srv / name


def write_config(lab: Lab, name: str, label: str, append: str) -> None:
    lab.server.write(
        f"pxelinux.cfg/{name}",
        f"default {label}\nlabel {label}\n  kernel boot/dummy-installer/vmlinuz\n"
        f"  append initrd=boot/dummy-installer/initrd.img {append}\n",
    )


def clear_configs(lab: Lab) -> None:
    for path in (lab.server.srv / "pxelinux.cfg").iterdir():
        if path.name != "localboot.cfg":
            path.unlink()


def test_happy_path_through_the_per_mac_config(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    entry = lab.serve_install("cagnode50", kickstart="text\n", append=("ksdevice=eth0", "skipddc"))
    result = answer(pypxeboot(lab, mac="AA:00:86:e2:35:72", outdir=tmp_path))
    assert result["args"] == " ".join(entry.append)  # exactly, in order, without initrd=
    kernel, ramdisk = Path(result["kernel"]), Path(result["ramdisk"])
    assert kernel.parent == tmp_path and ramdisk.parent == tmp_path
    assert sha(kernel) == sha(served(lab, entry.kernel)) and sha(ramdisk) == sha(served(lab, entry.initrd))
    assert oct(kernel.stat().st_mode & 0o777) == "0o600"
    reads = [e.path for e in lab.server.events.select(kind="tftp") if e.client == str(lab.network.observer_ip)]
    assert f"pxelinux.cfg/{lab.node_boot('cagnode50').mac_name}" in reads


@pytest.mark.parametrize("digits", [8, 6, 0], ids=["hex-ip", "hex-prefix", "default"])
def test_lookup_falls_back_like_pxelinux(lab: Lab, tmp_path: Path, digits: int) -> None:
    clear_configs(lab)
    name = hexip(lab.ip("cagnode51"))[:digits] if digits else "default"
    write_config(lab, name, f"via-{digits}", f"marker={name}")
    result = answer(pypxeboot(lab, mac=lab.mac("cagnode51"), outdir=tmp_path))
    assert result["args"] == f"marker={name}"
    misses = [e.path for e in lab.server.events.select(kind="tftp-missing") if e.client == str(lab.network.observer_ip)]
    assert f"pxelinux.cfg/{lab.node_boot('cagnode51').mac_name}" in misses


def test_localboot_hands_over_to_pygrub(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    lab.server.nbp.boot(lab.node_boot("cagnode52"))  # what the install ack does
    fake = tmp_path / "pygrub"
    fake.write_text(
        "#!/bin/sh\n# stands in for Xen's pygrub: records its arguments, answers simple0\n"
        'echo "$@" > "$(dirname "$0")/pygrub.args"\n'
        'for a in "$@"; do case "$a" in --output=*) out=${a#--output=};; '
        "--output-directory=*) dir=${a#--output-directory=};; esac; done\n"
        'echo kernel > "$dir/k.from-disk"\n'
        'printf \'kernel %s/k.from-disk\\0args root=/dev/xvda1 ro\\0\' "$dir" > "$out"\n'
    )
    fake.chmod(0o755)
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = answer(pypxeboot(lab, f"--pygrub={fake}", mac=lab.mac("cagnode52"), outdir=outdir))
    assert result == {"kernel": f"{outdir}/k.from-disk", "args": "root=/dev/xvda1 ro"}
    pygrub_args = (tmp_path / "pygrub.args").read_text().split()
    assert pygrub_args[-1] == "/dev/xenvg/disk" and "--output-format=simple0" in pygrub_args
    assert sorted(p.name for p in outdir.iterdir()) == ["k.from-disk"]  # our own downloads were removed


def test_a_missing_kernel_fails_naming_the_file_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    lab.server.write(
        f"pxelinux.cfg/{lab.node_boot('cagnode51').mac_name}", "default x\nlabel x\n kernel boot/not-there/vmlinuz\n"
    )
    proc = pypxeboot(lab, mac=lab.mac("cagnode51"), outdir=tmp_path)
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"boot/not-there/vmlinuz" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_oversize_kernel_is_stopped_and_removed(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    lab.serve_install("cagnode50", kickstart="text\n")
    proc = pypxeboot(lab, "--max-kernel=1", mac="aa:00:86:e2:35:72", outdir=tmp_path)
    assert proc.returncode == 1 and b"the cap is 1048576" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_silent_network_fails_in_its_time_limit(lab: Lab, tmp_path: Path) -> None:
    if not netns.exists(lab.network.netns) or "brsilent" not in netns.ip(lab.network.netns, "-br", "link"):
        netns.ip(lab.network.netns, "link", "add", "brsilent", "type", "bridge")
        netns.ip(lab.network.netns, "link", "set", "brsilent", "up")
    started = time.monotonic()
    argv = netns.exec_argv(
        lab.network.netns,
        [
            sys.executable,
            "-m",
            "pypxeboot",
            "--interface=brsilent",
            "--timeout=3",
            f"--output-directory={tmp_path}",
            "mac=aa:00:86:e2:35:72",
            "disk",
        ],
    )
    proc = subprocess.run(argv, capture_output=True, cwd=REPO, timeout=20, check=False)
    assert proc.returncode == 1 and b"DHCP: no lease for aa:00:86:e2:35:72 on brsilent" in proc.stderr
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_a_pinned_server_refuses_another(lab: Lab, tmp_path: Path) -> None:
    lab.serve_install("cagnode50", kickstart="text\n")
    proc = pypxeboot(lab, "--server=10.77.0.9", "--timeout=5", mac="aa:00:86:e2:35:72", outdir=tmp_path)
    assert proc.returncode == 1 and b"DHCP: no lease for aa:00:86:e2:35:72 on br0 from 10.77.0.9" in proc.stderr


def test_two_guests_at_once_do_not_clobber_each_other(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    lab.serve_install("cagnode50", kickstart="text\n", append=("who=50",))
    lab.serve_install("cagnode51", kickstart="text\n", append=("who=51",))
    # xend's style: one shared output directory for every guest.
    with ThreadPoolExecutor(2) as pool:
        procs = list(
            pool.map(lambda mac: pypxeboot(lab, mac=mac, outdir=tmp_path), ["aa:00:86:e2:35:72", lab.mac("cagnode51")])
        )
    first, second = answer(procs[0]), answer(procs[1])
    assert first["args"].endswith("who=50") and second["args"].endswith("who=51")
    assert len({first["kernel"], second["kernel"], first["ramdisk"], second["ramdisk"]}) == 4
    kernel = sha(served(lab, "boot/dummy-installer/vmlinuz"))
    assert sha(first["kernel"]) == kernel == sha(second["kernel"])


def test_sxp_answer_for_xend_and_an_http_kernel(lab: Lab, tmp_path: Path) -> None:
    clear_configs(lab)
    base = f"http://{lab.network.server_ip}"
    lab.server.write(
        f"pxelinux.cfg/{lab.node_boot('cagnode51').mac_name}",
        f"default h\nlabel h\n kernel {base}/boot/dummy-installer/vmlinuz\n"
        f" append initrd={base}/boot/dummy-installer/initrd.img it's\n",
    )
    argv = netns.exec_argv(
        lab.network.netns,
        [
            sys.executable,
            "-m",
            "pypxeboot",
            "-q",
            "--interface=br0",
            f"--output-directory={tmp_path}",
            f"mac={lab.mac('cagnode51')}",
            "disk",
        ],
    )
    proc = subprocess.run(argv, capture_output=True, cwd=REPO, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert text.startswith(f"linux (kernel '{tmp_path}/pypxeboot-kernel.") and text.endswith("(args 'it\\'s')")
    http = [e.path for e in lab.server.events.select(kind="http") if e.client == str(lab.network.observer_ip)]
    assert "boot/dummy-installer/vmlinuz" in http


def test_runas_fetches_unprivileged_into_files_root_created(lab: Lab, tmp_path: Path) -> None:
    """libxl's restricted mode (XSA-443): --runas, --quiet, and the answer in the file libxl pre-created."""
    clear_configs(lab)
    entry = lab.serve_install("cagnode50", kickstart="text\n", append=("restricted=1",))
    out = tmp_path / "bootloader.7.out"
    out.touch(mode=0o600)
    outdir = tmp_path / "bootloader.7.d"
    outdir.mkdir(mode=0o700)
    argv = netns.exec_argv(
        lab.network.netns,
        [
            sys.executable,
            "-m",
            "pypxeboot",
            "--runas=65534",
            "--quiet",
            f"--output={out}",
            "--output-format=simple0",
            f"--output-directory={outdir}",
            "--interface=br0",
            "mac=aa:00:86:e2:35:72",
            "/dev/xenvg/disk",
        ],
    )
    proc = subprocess.run(argv, capture_output=True, cwd=REPO, timeout=40, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    items = dict(i.decode().split(" ", 1) for i in out.read_bytes().split(b"\0") if i)
    assert items["args"].endswith("restricted=1")
    kernel = Path(items["kernel"])
    assert sha(kernel) == sha(served(lab, entry.kernel))
    assert kernel.stat().st_uid == 0 and kernel.stat().st_mode & 0o777 == 0o600
