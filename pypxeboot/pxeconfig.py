"""PXELINUX configs: the names PXELINUX looks up, and a parser that refuses what it does not understand.

Lookup order, as PXELINUX does it: `pxelinux.cfg/01-<mac in lower case with dashes>`, then the client's
IPv4 address in upper-case hex shortened one digit at a time (`0A4D0032`, `0A4D003`, … `0`), then
`default`.

Directives understood: DEFAULT, LABEL, KERNEL/LINUX, APPEND (global or per label; `-` for none), INITRD,
LOCALBOOT, IPAPPEND, MENU DEFAULT, comments.  Labels are read as PXELINUX reads them (syslinux 6's
readconfig.c, and what the lab's own pxelinux.0 was seen to do): a LABEL is the first word of its line
(AII 1.x and the AII 2.0 pxelinux plug-in wrote `label Install Scientific Linux 4.4 (i386)`: the label is
`Install`), DEFAULT is a command line whose first word names the label and whose other words are added to
that label's arguments, exactly as PXELINUX boots such a config.
Directives that only shape an interactive menu (PROMPT, TIMEOUT, SAY, MENU LABEL, TEXT HELP … ENDTEXT …)
are read and ignored.  Anything else is an error naming its line: a config that asks for something
pypxeboot cannot do must not boot something else.

Lines end at `\n` only (and a `\r` before it).  Every other control character (C0, DEL, C1, the Unicode
line and paragraph separators) is an error before anything is downloaded: `splitlines()` would cut a
line at `\x0b` or U+2028 and turn the rest of an APPEND into a directive.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pypxeboot.errors import BootError

MAX_CONFIG = 64 * 1024
MAX_ARGS = 4096
IGNORED = {
    "prompt",
    "timeout",
    "totaltimeout",
    "say",
    "display",
    "menu",
    "serial",
    "console",
    "font",
    "kbdmap",
    "noescape",
    "nocomplete",
    "allowoptions",
    "implicit",
    "ontimeout",
    "onerror",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "f6",
    "f7",
    "f8",
    "f9",
    "f10",
    "f11",
    "f12",
    "text",
    "endtext",
}


def _is_control(c: str) -> bool:
    o = ord(c)
    return (o < 0x20 and c != "\t") or 0x7F <= o <= 0x9F or c in "\u2028\u2029"


def lookup_names(mac: str, address: ipaddress.IPv4Address, prefix: str = "") -> list[str]:
    hexip = f"{int(address):08X}"
    names = ["01-" + mac.lower().replace(":", "-")] + [hexip[:n] for n in range(8, 0, -1)] + ["default"]
    return [f"{prefix}pxelinux.cfg/{n}" for n in names]


@dataclass
class Label:
    name: str
    kernel: str | None = None
    initrds: list[str] = field(default_factory=list)
    append: list[str] | None = None  # None: inherit the global APPEND
    localboot: int | None = None
    ipappend: int = 0


@dataclass(frozen=True)
class BootChoice:
    """What a label boots: a network kernel, or the local disk."""

    label: str
    kernel: str | None
    initrds: tuple[str, ...]
    args: tuple[str, ...]
    localboot: bool


@dataclass
class Config:
    default: str | None = None  # the DEFAULT line (a label, maybe followed by extra arguments)
    menu_default: str | None = None  # the label carrying MENU DEFAULT (menu.c32 configs)
    append: list[str] = field(default_factory=list)
    ipappend: int = 0
    labels: dict[str, Label] = field(default_factory=dict)

    def resolve(self, wanted: str | None) -> tuple[str, list[str]]:
        """The label to boot and the extra arguments its command line adds (`DEFAULT linux single`)."""
        line = wanted or self.default or self.menu_default
        if line is None:
            if len(self.labels) == 1:
                return next(iter(self.labels)), []
            raise BootError("config", f"no DEFAULT and no --label; labels: {self._names()}")
        if not line.split():
            raise BootError("config", f"the label to boot is blank; labels: {self._names()}")
        first, *extra = line.split()
        if first in self.labels:
            return first, extra
        raise BootError("config", f"no label {line!r}; labels: {self._names()}")

    def _names(self) -> str:
        return ", ".join(repr(n) for n in self.labels) or "none"

    def choose(self, wanted: str | None, *, ip_info: str, bootif: str) -> BootChoice:
        name, extra = self.resolve(wanted)
        label = self.labels[name]
        if label.localboot is not None:
            return BootChoice(name, None, (), (), True)
        if not label.kernel:
            raise BootError("config", f"label {name!r} has neither KERNEL nor LOCALBOOT")
        tokens = list(self.append if label.append is None else label.append)
        initrds = list(label.initrds)
        args = []
        for token in tokens:
            if token.startswith("initrd="):
                if not label.initrds:  # an INITRD directive wins over initrd= in APPEND, as in PXELINUX
                    initrds = [p for p in token.removeprefix("initrd=").split(",") if p]
            else:
                args.append(token)
        args += extra
        ipappend = label.ipappend or self.ipappend
        if ipappend & 1:
            args.append(ip_info)
        if ipappend & 2:
            args.append(bootif)
        if len(" ".join(args)) > MAX_ARGS:
            raise BootError("config", f"kernel arguments longer than {MAX_ARGS} characters")
        return BootChoice(name, label.kernel, tuple(initrds), tuple(args), False)


def parse(data: bytes, source: str = "config") -> Config:
    if len(data) > MAX_CONFIG:
        raise BootError(source, f"larger than {MAX_CONFIG} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BootError(source, "not UTF-8 text") from None
    config = Config()
    current: Label | None = None
    in_text = False
    for number, raw in enumerate(text.split("\n"), 1):
        where = f"{source} line {number}"
        raw = raw.removesuffix("\r")
        if any(_is_control(c) for c in raw):
            raise BootError(where, "control characters in the config")
        line = raw.strip()
        if in_text:
            in_text = line.lower() != "endtext"
            continue
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.replace("\t", " ").partition(" ")
        keyword, rest = keyword.lower(), rest.strip()
        if keyword in ("kernel", "linux", "initrd", "localboot") and current is None:
            raise BootError(where, f"{keyword.upper()} outside a LABEL")
        if keyword == "default":
            config.default = _rest(rest, where)
        elif keyword == "label":
            name = _rest(rest, where).split()[0]  # PXELINUX keeps the first word; the rest is a comment to it
            if name in config.labels:
                raise BootError(where, f"label {name!r} defined twice")
            current = config.labels[name] = Label(name)
        elif keyword in ("kernel", "linux"):
            assert current is not None
            current.kernel = _one_word(rest, where)
        elif keyword == "initrd":
            assert current is not None
            current.initrds = [p for p in _one_word(rest, where).split(",") if p]
        elif keyword == "append":
            tokens = [] if rest == "-" else rest.split()
            if current is None:
                config.append = tokens
            else:
                current.append = tokens
        elif keyword == "localboot":
            assert current is not None
            current.localboot = _number(rest, where)
        elif keyword == "ipappend" or keyword == "sysappend":
            value = _number(rest, where)
            if current is None:
                config.ipappend = value
            else:
                current.ipappend = value
        elif keyword == "menu" and rest.lower() == "default" and current is not None:
            config.menu_default = current.name
        elif keyword == "text":
            in_text = True  # TEXT HELP … ENDTEXT: a help text for the menu, never a directive
        elif keyword in IGNORED:
            continue
        else:
            raise BootError(where, f"unsupported directive {keyword.upper()!r}")
    return config


def _rest(rest: str, where: str) -> str:
    """The rest of a DEFAULT or LABEL line, spaces between words made single."""
    if not rest:
        raise BootError(where, "expected a label name")
    return " ".join(rest.split())


def _one_word(rest: str, where: str) -> str:
    if not rest or len(rest.split()) != 1:
        raise BootError(where, f"expected one word, got {rest!r}")
    return rest


def _number(rest: str, where: str) -> int:
    try:
        return int(rest.split()[0]) if rest else 0
    except ValueError:
        raise BootError(where, f"expected a number, got {rest!r}") from None
