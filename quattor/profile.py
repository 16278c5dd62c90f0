"""Compiled Quattor profiles (panc's JSON form, or its XML form as 2007's CCM fetched it) and the validating
reader every component uses.

A component reads its subtree once, at the edge, into typed objects.  A bad value fails there with the
profile path and what was expected; an unknown key is warned about, never silently ignored:

```
/software/components/xen/domains/0/memory: expected a positive integer (MiB), got "512MB"
```
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from quattor import panxml

T = TypeVar("T")
MAX_PROFILE = 16 * 1024 * 1024


class ProfileError(Exception):
    """A profile value that is missing or wrong, with the path where it is."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


@dataclass
class Profile:
    tree: dict[str, Any]
    source: str
    warnings: list[str] = field(default_factory=list)

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.tree
        for part in path.strip("/").split("/"):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    def reader(self, path: str) -> Reader:
        node = self.get(path)
        if node is None:
            raise ProfileError(path, "missing from the profile")
        return Reader(node, path, self.warnings)

    @property
    def hostname(self) -> str:
        return str(self.get("/system/network/hostname", ""))

    @property
    def fqdn(self) -> str:
        domain = self.get("/system/network/domainname")
        return f"{self.hostname}.{domain}" if domain else self.hostname


def load(location: str | Path) -> Profile:
    """Read a profile, JSON or panc's XML (`quattor.panxml`), from a file or an http(s) URL (a Quattor profile
    server).  The form is told by the content, not by the name."""
    text = str(location)
    try:
        if text.startswith(("http://", "https://")):
            with urllib.request.urlopen(text, timeout=30) as resp:
                data = resp.read(MAX_PROFILE + 1)
        else:
            data = Path(text).read_bytes()
    except (OSError, urllib.error.URLError) as exc:
        raise ProfileError("/", f"cannot read the profile {text}: {getattr(exc, 'reason', exc)}") from None
    if len(data) > MAX_PROFILE:
        raise ProfileError("/", f"the profile {text} is larger than {MAX_PROFILE} bytes")
    if panxml.looks_like_xml(data):
        try:
            return Profile(panxml.parse(data), text)
        except panxml.PanXmlError as exc:
            raise ProfileError(exc.path, f"{text} is not a compiled profile in panc's XML form: {exc}") from None
    try:
        tree = json.loads(data)
    except ValueError as exc:
        raise ProfileError("/", f"{text} is not a compiled JSON profile: {exc}") from None
    if not isinstance(tree, dict):
        raise ProfileError("/", f"{text}: expected an object at the top")
    return Profile(tree, text)


PROFILE_FORMS = ("json", "xml")  # what a profile server may hold for a node: panc's JSON, or its XML


def load_node(base: str | Path, host: str, prefix: str = "profile_") -> Profile:
    """The node's profile in a directory or at a profile server's URL: `<prefix><host>.json`, else
    `<prefix><host>.xml` (AII 1.x's default name)."""
    tried = []
    for form in PROFILE_FORMS:
        location = f"{str(base).rstrip('/')}/{prefix}{host}.{form}"
        try:
            return load(location)
        except ProfileError as exc:
            if exc.path != "/" or "cannot read the profile" not in str(exc):
                raise  # it is there, and wrong: say so, never fall back past it
            tried.append(location)
    raise ProfileError("/", f"no profile for {host}: tried {' and '.join(tried)}")


class Reader:
    """Typed access to one dict of a profile; remembers which keys were read to warn about the rest."""

    def __init__(self, node: Any, path: str, warnings: list[str]) -> None:
        if not isinstance(node, dict):
            raise ProfileError(path, f"expected an nlist (object), got {_show(node)}")
        self.node: dict[str, Any] = node
        self.path = path
        self.warnings = warnings
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}/{key}"

    def has(self, key: str) -> bool:
        return key in self.node

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.node.get(key)

    def string(
        self, key: str, *, required: bool = False, default: str | None = None, choices: tuple[str, ...] | None = None
    ) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ProfileError(self.at(key), "required, missing")
            return default
        if not isinstance(value, str):
            raise ProfileError(self.at(key), f"expected a string, got {_show(value)}")
        if choices and value not in choices:
            raise ProfileError(self.at(key), f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value

    def req_string(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.string(key, required=True, choices=choices)
        assert value is not None
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int | None = None, unit: str = "") -> int | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ProfileError(self.at(key), "required, missing")
            return None
        what = "a positive integer" if minimum == 1 else "an integer"
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise ProfileError(self.at(key), f"expected {what}{f' ({unit})' if unit else ''}, got {_show(value)}")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProfileError(self.at(key), f"expected a boolean, got {_show(value)}")
        return value

    def strings(self, key: str) -> list[str] | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(self.at(key), f"expected a list of strings, got {_show(value)}")
        return list(value)

    def child(self, key: str, *, required: bool = False) -> Reader | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ProfileError(self.at(key), "required, missing")
            return None
        return Reader(value, self.at(key), self.warnings)

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """(path segment, value) of a list or an nlist."""
        value = self.raw(key)
        if value is None:
            return
        if isinstance(value, list):
            yield from ((str(i), v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            yield from value.items()
        else:
            raise ProfileError(self.at(key), f"expected a list or an nlist, got {_show(value)}")

    def each(self, key: str, build: Callable[[Reader], T]) -> list[T]:
        return [build(Reader(v, f"{self.at(key)}/{k}", self.warnings)) for k, v in self.items(key)]

    def finish(self, ignore: tuple[str, ...] = ()) -> None:
        for key in sorted(set(self.node) - self.seen - set(ignore)):
            self.warnings.append(f"{self.at(key)}: unknown key, ignored")


# Keys every component subtree has (panc's structure_component): read by ncm-ncd, not by the component.
STRUCTURE_KEYS = ("active", "dispatch", "dependencies", "register_change", "version", "ncm-module")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
