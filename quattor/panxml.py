"""panc's XML form of a compiled profile (`profile.xml`, what 2007's CCM fetched), read into the same tree
as the JSON form.

```xml
<?xml version="1.0" encoding="UTF-8"?>
<nlist format="pan" name="profile">
  <nlist name="system"><nlist name="network"><string name="hostname">cagnode50</string></nlist></nlist>
  <nlist name="hardware"><list name="ram"><nlist><long name="size">512</long></nlist></list></nlist>
</nlist>
```

Elements `nlist`, `list`, `string`, `long`, `double`, `boolean` (in any XML namespace: panc's releases
differ), a `name` on every child of an nlist, and the attributes CCM accepts (`derivation`, `checksum`,
`acl`, `description`, `type`, `encoding`; a string may be `encoding="base64"`).  Anything else is an error
naming the element's path, as for the JSON form.  A DOCTYPE is refused: panc never writes one, and
entities are how XML files attack their readers.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from typing import Any

SCALARS = ("string", "long", "double", "boolean")
KNOWN_ATTRIBUTES = {"name", "format", "derivation", "checksum", "acl", "encoding", "description", "type", "usertype"}


class PanXmlError(ValueError):
    """Not a profile in panc's XML form; the message names the element's path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def looks_like_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def parse(data: bytes) -> dict[str, Any]:
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise PanXmlError("/", "a DOCTYPE or ENTITY declaration (panc never writes one); refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PanXmlError("/", f"not well-formed XML: {exc}") from None
    if _tag(root) != "nlist":
        raise PanXmlError("/", f"expected an <nlist> at the top, got <{_tag(root)}>")
    if root.get("format", "pan") != "pan":
        raise PanXmlError("/", f"format {root.get('format')!r}: only panc's 'pan' XML format is read")
    tree = _value(root, "")
    assert isinstance(tree, dict)
    return tree


def _tag(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _value(element: ET.Element, path: str) -> Any:
    tag = _tag(element)
    where = path or "/"
    unknown = set(element.attrib) - KNOWN_ATTRIBUTES
    if unknown:
        raise PanXmlError(where, f"unknown attribute {sorted(unknown)[0]!r} on <{tag}>")
    if tag == "nlist":
        result: dict[str, Any] = {}
        for child in element:
            name = child.get("name")
            if not name or "/" in name:
                raise PanXmlError(where, f"a <{_tag(child)}> in an nlist needs a name (no '/'), got {name!r}")
            if name in result:
                raise PanXmlError(f"{path}/{name}", "defined twice")
            result[name] = _value(child, f"{path}/{name}")
        return result
    if tag == "list":
        return [_value(child, f"{path}/{i}") for i, child in enumerate(element)]
    if tag not in SCALARS:
        raise PanXmlError(where, f"unknown element <{tag}> (expected nlist, list, {', '.join(SCALARS)})")
    if len(element):
        raise PanXmlError(where, f"<{tag}> holds elements; a scalar holds only text")
    text = _decode(element.text or "", element.get("encoding"), where)
    try:
        if tag == "long":
            return int(text.strip())
        if tag == "double":
            return float(text.strip())
    except ValueError:
        raise PanXmlError(where, f"<{tag}> holds {text.strip()[:40]!r}") from None
    if tag == "boolean":
        if text.strip() not in ("true", "false"):
            raise PanXmlError(where, f"<boolean> holds {text.strip()[:40]!r}, expected true or false")
        return text.strip() == "true"
    return text


def _decode(text: str, encoding: str | None, where: str) -> str:
    if encoding is None:
        return text
    if encoding != "base64":
        raise PanXmlError(where, f"encoding {encoding!r} is not one this reader knows (base64)")
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise PanXmlError(where, "not valid base64 of UTF-8 text") from None
