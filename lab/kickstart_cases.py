"""Kickstart regression cases in rhinstaller/kickstart-tests' format, run by the lab.

A case is two files in a directory (`kickstart_tests/`): `NAME.ks.in`, a kickstart with `@KSTEST_…@`
substitutions, and `NAME.sh`, a shell file of functions, each optional:

  kernel_args       prints boot arguments to add (after the installer's dialect's own)
  prepare KS DIR    may rewrite the kickstart (its path KS) into DIR; prints the path to use
  validate DIR      DIR holds RESULT, read from /root/RESULT of the installed system; exit 0 for a pass
                    (the default: RESULT says SUCCESS)
  expected_failure  prints a regular expression: the install must fail, its reason matching it; with a
                    `validate` of its own too, RESULT is then read from what the failed install left
                    (a %onerror script's work) and must pass it

Substitutions: @KSTEST_LIVEIMG@ (a `liveimg --url=` line for the lab's guest payload), @KSTEST_URL@ (that
URL alone), @KSTEST_NETDEV1@ (the machine's NIC), @KSTEST_SERVER@ (the install server's base URL),
@KSTEST_IP@ and @KSTEST_NETMASK@ (the machine's address in the lab, for a static network), @KSTEST_NAMESERVER@
(the install server, the lab's DNS).  The
runner appends what AII's kickstarts end with, the `%post` that calls the install ack (how the plug-in
says it is done: `[end] ack = "kickstart-post"`).

Verdicts: pass, fail (with the RESULT or the installer's reason), or "unsupported by this installer" (a
skip) when the installer stops on a command it does not support, which its manifest's `unsupported`
console pattern recognises; never a pass for a case that did not run.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from foundation.paths import REPO
from images.catalog import PAYLOAD_FILES
from lab.installer_plugin import InstallerPlugin

if TYPE_CHECKING:
    from lab.lab import Lab

CASES = REPO / "kickstart_tests"
SUBSTITUTION = re.compile(r"@KSTEST_[A-Z0-9_]+@")
UNSUPPORTED_REASON = re.compile(r"unsupported kickstart command\(s\): (.+)")


@dataclass(frozen=True)
class Case:
    name: str
    ks_in: Path
    sh: Path

    def call(self, function: str, *args: str, cwd: Path | None = None) -> tuple[int, str]:
        """Run one of the case's shell functions (absent: status 127 and no output)."""
        script = f'. {shlex.quote(str(self.sh))}; type {function} >/dev/null 2>&1 || exit 127; {function} "$@"'
        proc = subprocess.run(
            ["bash", "-c", script, self.name, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
        )
        return proc.returncode, proc.stdout.strip() or proc.stderr.strip()

    def defines(self, function: str) -> bool:
        """Whether the case's shell file has the function (without running it)."""
        script = f". {shlex.quote(str(self.sh))}; type {function} >/dev/null 2>&1"
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=60, check=False).returncode == 0

    def kernel_args(self) -> list[str]:
        status, out = self.call("kernel_args")
        return out.split() if status == 0 else []

    def expected_failure(self) -> re.Pattern[str] | None:
        status, out = self.call("expected_failure")
        return re.compile(out) if status == 0 and out else None


def cases(directory: Path = CASES) -> list[Case]:
    found = []
    for ks_in in sorted(directory.glob("*.ks.in")):
        name = ks_in.name.removesuffix(".ks.in")
        sh = ks_in.with_name(f"{name}.sh")
        if not sh.exists():
            raise FileNotFoundError(f"{ks_in}: its {sh.name} is missing (a case is NAME.ks.in and NAME.sh)")
        found.append(Case(name, ks_in, sh))
    return found


def render(case: Case, values: dict[str, str], work: Path) -> str:
    """The case's kickstart: substituted, passed through its `prepare`, with the ack `%post` appended."""
    text = case.ks_in.read_text()
    unknown = sorted(set(SUBSTITUTION.findall(text)) - {f"@{k}@" for k in values})
    if unknown:
        raise ValueError(
            f"{case.ks_in}: unknown substitutions {', '.join(unknown)} (known: {', '.join(sorted(values))})"
        )
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    ks = work / "ks.cfg"
    ks.write_text(text)
    status, out = case.call("prepare", str(ks), str(work), cwd=work)
    if status == 0 and out:
        ks = Path(out)
    elif status not in (0, 127):
        raise RuntimeError(f"{case.sh}: prepare failed ({status}): {out}")
    ack = f"{values['KSTEST_SERVER']}/cgi-bin/aii-installack.cgi"
    return ks.read_text().rstrip("\n") + f"\n\n%post --nochroot\nwget -q -O - {ack}\n%end\n"


def unsupported(reason: str, plugin: InstallerPlugin) -> str | None:
    """The commands the installer said it does not support, if that is why it stopped."""
    for pattern in (*plugin.unsupported, UNSUPPORTED_REASON.pattern):
        found = re.search(pattern, reason)
        if found:
            return found.group(1) if found.groups() else reason
    return None


def values(
    server_base: str, payload_url: str, *, netdev: str, address: ipaddress.IPv4Interface, nameserver: str
) -> dict[str, str]:
    """The substitutions of every case, for a machine whose NIC is `netdev` at `address` (its lab address)."""
    return {
        "KSTEST_LIVEIMG": f"liveimg --url={payload_url}",
        "KSTEST_URL": payload_url,
        "KSTEST_NETDEV1": netdev,
        "KSTEST_SERVER": server_base,
        "KSTEST_IP": str(address.ip),
        "KSTEST_NETMASK": str(address.netmask),
        "KSTEST_NAMESERVER": nameserver,
    }


NETDEV = "eth0"  # the cases' guests' one NIC, by its kernel name (they boot with net.ifnames=0)


def lab_values(lab: Lab, node: str, *, netdev: str = NETDEV) -> dict[str, str]:
    """`values` for a node of a running lab: its address, the lab's install server and guest payload."""
    from lab.lab import PAYLOAD_DIR  # lab.lab is the heavy module this one is used beside, not under

    payload = lab.server.url(f"{PAYLOAD_DIR}/{PAYLOAD_FILES['guest-payload']}")
    address = ipaddress.IPv4Interface(f"{lab.ip(node)}/{lab.spec.subnet.prefixlen}")
    return values(
        lab.server.config.http_base, payload, netdev=netdev, address=address, nameserver=str(lab.network.server_ip)
    )


@dataclass(frozen=True)
class Outcome:
    """What a case's install came to, whatever machine it ran on."""

    stopped: str | None  # the installer's reason, when it stopped before its ack
    result: str | None = None  # /root/RESULT on the machine's disk (None: none, or not read)


PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"


def reads_result_after_a_stop(case: Case) -> bool:
    """A case that must fail and checks what the failed install left: its RESULT is read after the stop."""
    return case.expected_failure() is not None and case.defines("validate")


def verdict(case: Case, outcome: Outcome, plugin: InstallerPlugin) -> tuple[str, str]:
    """pass, fail or unsupported, and why: a stop on a command the installer lacks is unsupported; a stop for
    the reason the case names, when it must fail, is a pass; otherwise the verdict of its RESULT."""
    must_fail = case.expected_failure()
    if outcome.stopped is not None:
        commands = unsupported(outcome.stopped, plugin)
        if commands:
            return UNSUPPORTED, commands
        if must_fail is not None and must_fail.search(outcome.stopped):
            said = f"failed as it must: {outcome.stopped.splitlines()[0]}"
            if not case.defines("validate"):
                return PASS, said
            passed, why = validate(case, outcome.result)  # what the failed install left (%onerror's work)
            return (PASS if passed else FAIL), f"{said}; then {why}"
        return FAIL, f"the install stopped: {outcome.stopped}"
    if must_fail is not None:
        return FAIL, f"the install succeeded; it must fail with a reason matching {must_fail.pattern!r}"
    passed, why = validate(case, outcome.result)
    return (PASS if passed else FAIL), why


def validate(case: Case, result: str | None) -> tuple[bool, str]:
    """The case's verdict from /root/RESULT of the installed system (None: there was none)."""
    if result is None:
        return False, "the installed system has no /root/RESULT"
    with tempfile.TemporaryDirectory(prefix=f"kstest-{case.name}-") as tmp:
        (Path(tmp) / "RESULT").write_text(result)
        status, out = case.call("validate", tmp, cwd=Path(tmp))
    if status == 127:  # no validate of its own: kickstart-tests' validate_RESULT
        return result.strip() == "SUCCESS", result.strip()
    return status == 0, out or result.strip()
