"""pypxeboot's one error type: every failure names the step it happened in."""

from __future__ import annotations


class BootError(Exception):
    """A failed step (`DHCP`, `TFTP pxelinux.cfg/default`, `config line 3`…) and why."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"{step}: {message}")


class UsageError(Exception):
    """The command line itself is wrong (exit status 2)."""
