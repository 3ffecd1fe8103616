"""The shape of the events an app receives (asgi.rst "Events"), over every transport.

Events are dicts of plain serialisable values; a scope's own shape is judged by
the scope rows, the events' here.  The probe app reports every event it received
with the types it saw (``conformance.apps._encoding``), so a tuple or a bytes key
reaches the test as what it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread

from conformance import requirement
from conformance._probe import Probe, expect
from conformance._timing import units


__all__: list[str] = []

SENT = "POST / with the body 'abc' (the app reads it)"


async def _received_values(asgi: Probe) -> list[tuple[str, Any]]:
    """Every value (nested ones too) of every event the app's receive() returned for one
    POST with a body, with where it was: ``event 0['body']``."""
    exchange = await asgi.send(method=b"POST", body=b"abc")
    done = await anyio.to_thread.run_sync(lambda: exchange.observations("done", timeout=units(3)))
    expect(bool(done), sent=SENT, expected="the app to report its events", observed="no report")
    events = [entry["event"] for entry in done[0]["events"]]
    return [found for n, event in enumerate(events) for found in _walk(event, f"event {n}")]


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (path, value) inside ``value``, itself included."""
    yield where, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")


@requirement("core.event.str-keys")
async def test_event_dicts_have_str_keys(asgi: Probe) -> None:
    """Every dict in every received event, nested ones too, has only str keys."""
    bad = [
        f"{where}: {key!r}"
        for where, value in await _received_values(asgi)
        if isinstance(value, dict)
        for key in value
        if not isinstance(key, str)
    ]
    expect(not bad, sent=SENT, expected="only str keys", observed=f"non-str keys: {bad[:5]}")


@requirement("core.event.no-tuples")
async def test_events_carry_lists_not_tuples(asgi: Probe) -> None:
    """No value in a received event is a tuple."""
    tuples = [
        f"{where} = {value!r}"
        for where, value in await _received_values(asgi)
        if isinstance(value, tuple)
    ]
    expect(not tuples, sent=SENT, expected="lists only", observed=f"tuples: {tuples[:5]}")
