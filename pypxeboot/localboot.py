"""LOCALBOOT: hand the boot to pygrub on the guest's own disk, and relay its answer.

After an install, AII points the guest's config at `localboot`; the next boot runs pypxeboot again, which
runs pygrub with the same output options, checks its answer (the files it names must be regular files
in the output directory) and relays it in the format the toolstack asked for.  No config changes in dom0.

With libxl's `--runas`, pygrub gets it too: Xen's pygrub (since XSA-443) opens the guest's disk, then
drops to that uid in new namespaces with tight rlimits before it parses anything the guest wrote.  pygrub
never reads a guest's disk as root here.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

from pypxeboot import output
from pypxeboot.arguments import Options
from pypxeboot.errors import BootError


def _version(path: str) -> tuple[int, ...]:
    """(4, 17) for /usr/lib/xen-4.17/bin/pygrub: numbers compare as numbers (4.17 is newer than 4.9)."""
    match = re.search(r"/xen-([0-9.]+)/", path)
    return tuple(int(p) for p in match.group(1).split(".") if p) if match else ()


def find_pygrub(explicit: str | None) -> str:
    if explicit:
        return explicit
    candidates = sorted(glob.glob("/usr/lib/xen-*/bin/pygrub"), key=_version, reverse=True)
    found = candidates[0] if candidates else shutil.which("pygrub")
    if not found:
        raise BootError("LOCALBOOT", "pygrub not found: install Xen's tools or pass --pygrub=PATH")
    return found


def via_pygrub(opts: Options, *, deadline: float, runas: int | None = None) -> output.BootAnswer:
    pygrub = find_pygrub(opts.pygrub)
    fd, answer_path = tempfile.mkstemp(dir=opts.output_directory, prefix="pypxeboot-pygrub.")
    os.close(fd)
    argv = [
        pygrub,
        "--quiet",
        f"--output={answer_path}",
        "--output-format=simple0",
        f"--output-directory={opts.output_directory}",
    ]
    for flag, value in (
        ("kernel", opts.toolstack_kernel),
        ("ramdisk", opts.toolstack_ramdisk),
        ("args", opts.toolstack_args),
    ):
        if value:
            argv.append(f"--{flag}={value}")
    if runas is not None:
        argv.append(f"--runas={runas}")  # pygrub drops to it itself, after opening the disk
    argv.append(opts.disk)
    try:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(deadline - time.monotonic(), 1),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BootError("LOCALBOOT", "pygrub did not finish within the time limit") from None
        except OSError as exc:
            raise BootError("LOCALBOOT", f"cannot run {pygrub}: {exc.strerror}") from None
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise BootError("LOCALBOOT", f"pygrub failed with status {proc.returncode}: {' / '.join(tail)}")
        with open(answer_path, "rb") as f:
            data = f.read()
        if not data.strip(b"\0"):
            # Xen 4.17's pygrub exits 0 when its deprivileged child fails (it passes a wait status to exit):
            # an empty answer is its failure, and its stderr says why (a disk --runas cannot read, say).
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-2:]
            raise BootError("LOCALBOOT", f"pygrub gave no answer: {' / '.join(tail) or 'no message'}")
        answer = output.parse(data, "simple0")
    finally:
        os.unlink(answer_path)
    directory = os.path.realpath(opts.output_directory)
    for path in filter(None, (answer.kernel, answer.ramdisk)):
        real = os.path.realpath(path)
        if os.path.dirname(real) != directory or not os.path.isfile(real):
            raise BootError("LOCALBOOT", f"pygrub named {path!r}, not a file of the output directory")
    return answer
