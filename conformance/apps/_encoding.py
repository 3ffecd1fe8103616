"""A JSON form of Python values that keeps the types an ASGI app can observe.

Whether ``raw_path`` is ``bytes`` or ``str``, whether ``client`` is a list or a
tuple, whether headers are pairs or some server-specific iterable: these *are*
the findings.  Plain JSON would erase them, so every value JSON cannot carry
faithfully is tagged with ``"~"`` and rebuilt on the test side.  Values of types
the suite does not know (a server's own header container) come back as
:class:`Foreign`, which keeps their type name and, if iterable, their items.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any


__all__ = ["Foreign", "ForeignDict", "decode", "encode"]

_TAG = "~"
_MAX_ITEMS = 10_000


class Foreign(list[Any]):
    """A value of a type the probe did not expect: its type name, and its items if it had any."""

    def __init__(self, type_name: str, items: Iterable[Any] = (), text: str = "") -> None:
        super().__init__(items)
        self.type_name = type_name
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text or list.__repr__(self)}>"


class ForeignDict(dict[Any, Any]):
    """A dict subclass the server used (still a dict, as the spec asks), with its type name."""

    def __init__(self, type_name: str, items: dict[Any, Any]) -> None:
        super().__init__(items)
        self.type_name = type_name


def _type_name(value: object) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def encode(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into JSON-able data that :func:`decode` turns back."""
    if _depth > 32:
        return {_TAG: "foreign", "type": _type_name(value), "v": [], "text": "<too deep>"}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is bytes:
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if type(value) is list:
        return [encode(item, _depth + 1) for item in value]
    if type(value) is tuple:
        return {_TAG: "tuple", "v": [encode(item, _depth + 1) for item in value]}
    if isinstance(value, dict):
        encoded: dict[str, Any] = {
            _TAG: "dict",
            "v": [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in value.items()],
        }
        if type(value) is not dict:
            encoded["type"] = _type_name(value)  # a dict subclass is a dict, but say which
        return encoded
    # Anything else is reported as foreign, with its type name and its content.
    text = ""
    items: list[Any] = []
    if isinstance(value, (bytearray, memoryview)):
        text = repr(bytes(value))
    elif isinstance(value, Mapping):
        items = [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in value.items()]
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        for index, item in enumerate(value):
            if index >= _MAX_ITEMS:
                break
            items.append(encode(item, _depth + 1))
    else:
        text = repr(value)
    return {_TAG: "foreign", "type": _type_name(value), "v": items, "text": text[:500]}


def decode(data: Any) -> Any:
    """Rebuild what :func:`encode` produced."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag == "bytes":
        return base64.b64decode(data["v"])
    if tag == "tuple":
        return tuple(decode(item) for item in data["v"])
    if tag == "dict":
        items = {decode(k): decode(v) for k, v in data["v"]}
        return ForeignDict(data["type"], items) if "type" in data else items
    if tag == "foreign":
        return Foreign(data["type"], (decode(item) for item in data["v"]), data.get("text", ""))
    return {key: decode(value) for key, value in data.items()}
