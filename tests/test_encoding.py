"""The probe's JSON form keeps every type an ASGI app can observe (``conformance.apps._encoding``).

Whether ``raw_path`` was ``bytes`` or ``str``, ``client`` a list or a tuple, is a finding:
a value must come back from the side channel with exactly the types it had in the app.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.apps._encoding import Foreign, decode, encode


def _wire(value: Any) -> Any:
    """What the test side gets: encoded in the server, sent as a JSON line, decoded."""
    line = json.dumps(encode(value), separators=(",", ":"))
    return decode(json.loads(line))


def _same(a: Any, b: Any) -> bool:
    """Equal *and* of the same types all the way down (``1 == 1.0 == True`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Foreign):
        return a.type_name == b.type_name and a.text == b.text and _same(list(a), list(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same(ka, kb) and _same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
_keys = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_keys, inner, max_size=4)
    ),
    max_leaves=25,
)


@given(_values)
def test_round_trip_keeps_values_and_types(value: Any) -> None:
    assert _same(_wire(value), value)


@given(_values)
def test_encoded_form_is_plain_json(value: Any) -> None:
    """What the probe sends needs nothing but ``json.dumps``: no custom encoder on the way."""
    encoded = encode(value)
    assert json.loads(json.dumps(encoded)) == encoded or _has_nan(value)


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(k) or _has_nan(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    return False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"/caf\xc3\xa9", b"/caf\xc3\xa9"),
        ("/café", "/café"),
        (("127.0.0.1", 8000), ("127.0.0.1", 8000)),
        (["127.0.0.1", 8000], ["127.0.0.1", 8000]),
        ([(b"host", b"x")], [(b"host", b"x")]),
        ({"~": "bytes", "v": "AA=="}, {"~": "bytes", "v": "AA=="}),
        ({b"k": (1, 2.5, None)}, {b"k": (1, 2.5, None)}),
        (True, True),
    ],
)
def test_the_types_an_asgi_app_sees_survive(value: Any, expected: Any) -> None:
    """Including a dict that looks like an encoded value: it is data, not a tag."""
    assert _same(_wire(value), expected)


def test_bytes_and_str_are_told_apart() -> None:
    assert type(_wire(b"abc")) is bytes
    assert type(_wire("abc")) is str
    assert type(_wire((b"a",))) is tuple
    assert type(_wire([b"a"])) is list


class _Headers(Mapping[bytes, bytes]):
    """A server's own header container."""

    def __init__(self, items: dict[bytes, bytes]) -> None:
        self._items = items

    def __getitem__(self, key: bytes) -> bytes:
        return self._items[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque thing>"


def test_unknown_iterable_is_foreign_with_its_items() -> None:
    value = collections.deque([(b"host", b"example"), (b"x", b"1")])
    decoded = _wire(value)
    assert isinstance(decoded, Foreign)
    assert decoded.type_name == "collections.deque"
    assert decoded == [(b"host", b"example"), (b"x", b"1")]
    assert type(decoded[0]) is tuple


def test_unknown_mapping_is_foreign_with_its_pairs() -> None:
    decoded = _wire({"headers": _Headers({b"a": b"1"})})["headers"]
    assert isinstance(decoded, Foreign)
    assert decoded.type_name == f"{__name__}._Headers"
    assert decoded == [[b"a", b"1"]]


@pytest.mark.parametrize(
    ("value", "type_name", "text"),
    [
        (bytearray(b"ab"), "builtins.bytearray", "b'ab'"),
        (memoryview(b"ab"), "builtins.memoryview", "b'ab'"),
        (_Opaque(), f"{__name__}._Opaque", "<opaque thing>"),
        (collections.Counter, "builtins.type", "<class 'collections.Counter'>"),
    ],
)
def test_unknown_scalar_is_foreign_with_its_repr(value: object, type_name: str, text: str) -> None:
    decoded = _wire(value)
    assert isinstance(decoded, Foreign)
    assert (decoded.type_name, decoded.text, list(decoded)) == (type_name, text, [])
    assert repr(decoded) == f"<{type_name} {text}>"


class _Flag(int):
    """An ``int`` subclass (an IntEnum, a server's status type) is not an ``int`` to the app."""


def test_subclasses_of_json_types_are_foreign() -> None:
    decoded = _wire([_Flag(3), True])
    assert isinstance(decoded[0], Foreign)
    assert decoded[0].type_name == f"{__name__}._Flag"
    assert decoded[1] is True


def test_a_huge_iterable_is_cut_not_sent_whole() -> None:
    decoded = _wire(range(50_000))
    assert isinstance(decoded, Foreign)
    assert len(decoded) == 10_000
    assert decoded[:3] == [0, 1, 2]


def test_foreign_text_is_bounded() -> None:
    decoded = _wire(bytearray(b"x" * 5000))
    assert isinstance(decoded, Foreign)
    assert len(decoded.text) == 500


def test_deep_nesting_is_cut_and_comes_back_as_foreign() -> None:
    """A value nested deeper than the limit is cut, and the test side is told so."""
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    decoded = _wire(value)
    depth = 0
    while isinstance(decoded, list) and not isinstance(decoded, Foreign):
        decoded = decoded[0]
        depth += 1
    assert depth == 33
    assert isinstance(decoded, Foreign)
    assert decoded.text == "<too deep>"


def test_dict_subclass_stays_a_dict_and_names_its_type() -> None:
    """A scope may be a dict subclass: it is still a dict (asgi.rst), but the report says which."""
    import collections

    from conformance.apps._encoding import ForeignDict

    decoded = _wire(collections.OrderedDict(a=b"1"))
    assert isinstance(decoded, ForeignDict)
    assert decoded == {"a": b"1"}
    assert decoded.type_name == "collections.OrderedDict"
