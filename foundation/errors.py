"""Exception types that keep "the lab broke" apart from "the product failed".

A nightly report only means something if a QEMU that would not start is not counted as a Xen host that
did not install.  `LabError` and its children are the lab's own faults (setup, tools, images); a
`ProductFailure` is the system under test misbehaving, as seen by one of the witnesses.
"""

from __future__ import annotations


class XenlabError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class LabError(XenlabError):
    """The lab itself broke: a tool is missing, QEMU would not start, an image did not build."""


class PreflightError(LabError):
    """Bad input or a machine that cannot run the lab, found before anything was started."""


class ImageError(LabError):
    """An image cannot be built from its inputs (a package lacks what the recipe takes from it)."""


class EmulationFault(LabError):
    """The emulated machine itself failed under QEMU's TCG: Xen crashed in the exit path of its (emulated)
    hardware virtualisation, or an HVM guest's emulated CPU triple-faulted.  No verdict on the product."""


class ServerDown(LabError):
    """The install server (its dnsmasq, or the whole container) stopped while the lab waited on it: no wait
    can end well, and it is the lab's fault, not the product's."""


class CommandError(LabError):
    """A command the lab ran failed; carries the argv, the status and both output streams."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str, hint: str | None = None):
        import shlex

        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        super().__init__(f"command failed with {status}: {shlex.join(argv)}\n{tail}", hint)


class ProductFailure(XenlabError):
    """The system under test failed: a node did not install, a guest did not boot."""


class PhaseTimeout(ProductFailure):
    """A named phase did not reach what it waited for in time."""


class FatalConsoleOutput(ProductFailure):
    """A known fatal pattern (a kernel panic, a traceback) appeared on a console."""
