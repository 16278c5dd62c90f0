"""The answer to the toolstack, in the format it asked for.

* `simple0` (libxl): `kernel <path>\\0ramdisk <path>\\0args <cmdline>\\0`
* `simple`: the same with newlines, for people reading it
* `sxp` (xend): `linux (kernel '<path>')(ramdisk '<path>')(args '<cmdline>')`, every value quoted so that
  xend's parser reads back exactly this value (XSA-198: unquoted values let a config inject elements)

A value that contains its format's separator is refused, never escaped into something else.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypxeboot.errors import BootError

FORMATS = ("simple0", "simple", "sxp")


@dataclass(frozen=True)
class BootAnswer:
    kernel: str
    ramdisk: str | None
    args: str


def render(answer: BootAnswer, fmt: str) -> bytes:
    # libxl skips the whitespace that starts a value: arguments are sent without it, and a path that starts
    # (or is nothing but) whitespace is refused, so that every reader gets back exactly what was meant.
    items = [("kernel", answer.kernel)]
    if answer.ramdisk is not None:
        items.append(("ramdisk", answer.ramdisk))
    items.append(("args", answer.args.lstrip(" \t")))
    for key, value in items:
        if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
            raise BootError("output", f"{key} contains a control character; refusing to answer")
        if key != "args" and (not value or value[0] in " \t"):
            raise BootError("output", f"{key} path {value!r} is empty or starts with whitespace; refusing to answer")
    if fmt == "simple0":
        return b"".join(f"{k} {v}".encode() + b"\0" for k, v in items) + b"\0"
    if fmt == "simple":
        return b"".join(f"{k} {v}\n".encode() for k, v in items) + b"\n"
    if fmt == "sxp":
        return ("linux " + "".join(f"({k} {sxp_quote(v)})" for k, v in items)).encode()
    raise BootError("output", f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")


def sxp_quote(value: str) -> str:
    """Single-quote for xend's SXP parser, which understands backslash escapes inside quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse(data: bytes, fmt: str) -> BootAnswer:
    """Read an answer back (used to check what pygrub says before relaying it)."""
    if fmt in ("simple0", "simple"):
        sep = b"\0" if fmt == "simple0" else b"\n"
        fields: dict[str, str] = {}
        for item in data.split(sep):
            if not item:
                continue
            key, _, value = item.decode("utf-8", errors="strict").partition(" ")
            if key not in ("kernel", "ramdisk", "args") or key in fields:
                raise BootError("pygrub answer", f"unexpected item {item[:60]!r}")
            fields[key] = value.lstrip()
        if "kernel" not in fields:
            raise BootError("pygrub answer", "no kernel in the answer")
        return BootAnswer(fields["kernel"], fields.get("ramdisk"), fields.get("args", ""))
    raise BootError("pygrub answer", f"cannot read {fmt} answers; ask pygrub for simple0")
