"""WebSocket data messages (www.rst "WebSocket", "Receive - receive event", "Send - send event").

Each check opens its own connection to the probe app.  Client to app: the raw
client sends exact frames (fragments, a ping between them, bursts in one write)
and the app's timeline says what ``receive()`` returned; payloads over a KiB come
back as size and SHA-256 (:func:`conformance._ws_steps.digest`), so several-MiB
messages are compared by digest, never echoed through the side channel.  App to
client: the script sends, the raw client reads whole messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._probe import Probe, WebSocketSession, expect
from conformance._timing import units
from conformance._verdicts import ConformanceFailure
from conformance.apps._script import pattern
from conformance.clients import ClientError, Received
from conformance.clients.websocket import normal_client_roundtrip


MIB = 1024 * 1024
#: Several MiB each way: 4 MiB binary, 3 Mi characters of mixed-width UTF-8 text.
LARGE_BYTES = 4 * MIB
LARGE_TEXT = 3 * MIB
UNICODE = "héllo wörld – € ✓ 😀 𝄞 \u00a0end"
#: Fragments of 40 KiB each: a real-world size, above what a small read buffer holds.
FRAGMENT = 40 * 1024
BURST = 200
BINARY = b"\x00\xff\x10binary"
#: Sizes over a connection offering permessage-deflate.
DEFLATED = 100_000


def _accepted(session: WebSocketSession, sent: str) -> None:
    answer = session.handshake
    expect(
        answer is not None and answer.accepted,
        sent=sent,
        expected="a 101 (the app accepts)",
        observed=f"{answer.status if answer else None}; {session.evidence()}",
    )


async def _app_receives(
    asgi: Probe, messages: list[str | bytes], *, deflate: bool = False, fragments: bool = False
) -> list[Any]:
    """Send ``messages`` after the handshake; what the app's receive() returned for each.

    With ``fragments`` each message goes in three frames with a ping after the first.
    """
    script = [
        ws.connect(),
        ws.accept(),
        ws.receive_many(len(messages), units(4)),
        ws.close(1000),
    ]
    sent = f"{len(messages)} message(s) after the handshake"
    async with await asgi.websocket(script, deflate=deflate, timeout=units(3)) as session:
        _accepted(session, sent)
        try:
            for message in messages:
                await _send(session, message, fragments=fragments)
        except ClientError as exc:
            closed = await session.client.wait_closed(units(1))
            raise ConformanceFailure(
                f"sent {sent}; the server stopped reading ({exc}); it ended with "
                f"{closed.describe()}; {session.evidence()}"
            ) from None
        # The app closes once it has its events (or its bound passed): the timeline follows.
        with contextlib.suppress(ClientError):
            await session.client.wait_closed(units(6))
        timeline = await session.timeline(units(3))
    got = ws.result(timeline, 2)
    if not isinstance(got, list):
        raise ConformanceFailure(f"sent {sent}; the app's receive() gave {got!r}")
    return got


async def _client_receives(
    asgi: Probe, *, steps: list[dict[str, Any]], count: int, deflate: bool = False
) -> list[Received]:
    """The app runs ``steps`` after accepting; the first ``count`` data messages the client reads."""
    script = [ws.connect(), ws.accept(), *steps, ws.receive(units(4)), ws.close(1000)]
    got: list[Received] = []
    async with await asgi.websocket(script, deflate=deflate, timeout=units(3)) as session:
        _accepted(session, "an upgrade to an app that sends after accepting")
        while len(got) < count:
            try:
                message = await session.client.receive(units(3))
            except ClientError as exc:
                await session.client.abort()
                timeline = await session.observations("script", units(2))
                sends = [
                    f"{e.get('op')}: {'returned' if e.get('ok') else e.get('error')}"
                    for e in (timeline[0]["timeline"][2:] if timeline else [])
                ]
                raise ConformanceFailure(
                    f"the client got {len(got)} of {count} messages, then {exc}; "
                    f"the app's steps after accept: {sends or 'not reported'}; "
                    f"{session.evidence()}"
                ) from None
            if message.kind in ("text", "bytes"):
                got.append(message)
            elif message.kind in ("close", "eof"):
                break
        await session.client.close(1000)
    return got


async def _send(session: WebSocketSession, message: str | bytes, *, fragments: bool) -> None:
    """One message; with ``fragments`` in three frames, a ping after the first."""
    client = session.client
    if fragments:
        third = len(message) // 3
        parts = [message[:third], message[third : 2 * third], message[2 * third :]]
        await client.send_fragments(parts, ping_between=b"between")
    elif isinstance(message, str):
        await client.send_text(message)
    else:
        await client.send_bytes(message)


@scenarios(__name__)
def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """What the app sends in each check, started with the server: a server that loses a
    message makes its check wait out the bound, and these bounds then overlap."""
    sends: dict[str, tuple[list[dict[str, Any]], int, bool]] = {
        "text": ([ws.send_text("hello")], 1, False),
        "bytes": ([ws.send_bytes(BINARY)], 1, False),
        "both-keys": (
            [
                ws.send({"type": "websocket.send", "text": "x", "bytes": None}),
                ws.send({"type": "websocket.send", "bytes": b"y", "text": None}),
            ],
            2,
            False,
        ),
        "empty": ([ws.send_text(""), ws.send_bytes(b""), ws.send_text("after")], 3, False),
        "utf8": ([ws.send_text(UNICODE)], 1, False),
        "large": (
            [ws.send_pattern(LARGE_BYTES, "bytes"), ws.send_pattern(LARGE_TEXT, "text")],
            2,
            False,
        ),
        "burst": ([ws.send_burst(BURST)], BURST, False),
        "deflate": (
            [ws.send_pattern(DEFLATED, "text"), ws.send_pattern(DEFLATED, "bytes")],
            2,
            True,
        ),
    }
    return {
        name: partial(_client_receives, steps=steps, count=count, deflate=deflate)
        for name, (steps, count, deflate) in sends.items()
    }


async def _sent(asgi: Probe, name: str) -> list[Received]:
    """The messages the client got in scenario ``name`` (or the failure it met)."""
    got: list[Received] = await scenario(asgi, __name__, name)
    return got


def _expected(message: str | bytes) -> Any:
    """How the probe reports a received payload: inline, or by digest past a KiB."""
    return ws.describe({"v": message})["v"]


def _payload(event: Any, key: str) -> Any:
    return event.get(key, "<missing>") if isinstance(event, dict) else "<no event>"


@requirement("websocket.message.send-both-keys")
async def test_the_key_that_is_not_none_is_sent(asgi: Probe) -> None:
    """{'text': 'x', 'bytes': None} goes out as text 'x'; {'bytes': b'y', 'text': None} as binary."""
    seen = [(m.kind, m.data) for m in await _sent(asgi, "both-keys")]
    expect(
        seen == [("text", "x"), ("bytes", b"y")],
        sent="websocket.send {'text': 'x', 'bytes': None}, then {'bytes': b'y', 'text': None}",
        expected="[('text', 'x'), ('bytes', b'y')]",
        observed=repr(seen),
    )


# -- client to app ------------------------------------------------------------------------------


@requirement("websocket.message.receive-text")
async def test_text_message_arrives_as_text(asgi: Probe) -> None:
    """A text message "hello" gives websocket.receive with text == "hello"."""
    (event,) = (await _app_receives(asgi, ["hello"]))[:1] or [None]
    expect(
        isinstance(event, dict)
        and event.get("type") == "websocket.receive"
        and type(event.get("text")) is str
        and event.get("text") == "hello",
        sent="a text message 'hello'",
        expected="{'type': 'websocket.receive', 'text': 'hello'}",
        observed=repr(event),
    )


@requirement("websocket.message.receive-bytes")
async def test_binary_message_arrives_as_bytes(asgi: Probe) -> None:
    """A binary message b"\\x00\\xff\\x10" gives websocket.receive with exactly those bytes."""
    data = BINARY
    (event,) = (await _app_receives(asgi, [data]))[:1] or [None]
    expect(
        isinstance(event, dict)
        and event.get("type") == "websocket.receive"
        and type(event.get("bytes")) is bytes
        and event.get("bytes") == data,
        sent=f"a binary message {data!r}",
        expected=f"{{'type': 'websocket.receive', 'bytes': {data!r}}}",
        observed=repr(event),
    )


@requirement("websocket.message.receive-exactly-one")
async def test_receive_sets_exactly_one_of_bytes_and_text(asgi: Probe) -> None:
    """For "a", b"b", "" and b"" the other key of each event is missing or None."""
    sent: list[str | bytes] = ["a", b"b", "", b""]
    events = await _app_receives(asgi, sent)
    wrong = []
    for message, event in zip(sent, events, strict=False):
        key, other = ("text", "bytes") if isinstance(message, str) else ("bytes", "text")
        if not isinstance(event, dict) or event.get(key) is None or event.get(other) is not None:
            wrong.append((message, event))
    expect(
        len(events) == len(sent) and not wrong,
        sent="text 'a', binary b'b', empty text, empty binary",
        expected="each event with its payload key set and the other missing or None",
        observed=repr(wrong or events),
    )


# -- app to client --------------------------------------------------------------------------------


@requirement("websocket.message.send-text")
async def test_sent_text_arrives_as_text(asgi: Probe) -> None:
    """websocket.send with text "hello" reaches the client as a text message "hello"."""
    got = await _sent(asgi, "text")
    seen = [(m.kind, m.data) for m in got]
    expect(
        seen == [("text", "hello")],
        sent="{'type': 'websocket.send', 'text': 'hello'}",
        expected="[('text', 'hello')]",
        observed=repr(seen),
    )


@requirement("websocket.message.send-bytes")
async def test_sent_bytes_arrive_as_binary(asgi: Probe) -> None:
    """websocket.send with bytes b"\\x00\\xff..." reaches the client as that binary message."""
    data = BINARY
    got = await _sent(asgi, "bytes")
    seen = [(m.kind, m.data) for m in got]
    expect(
        seen == [("bytes", data)],
        sent=f"{{'type': 'websocket.send', 'bytes': {data!r}}}",
        expected=repr([("bytes", data)]),
        observed=repr(seen),
    )


@requirement("websocket.message.empty")
async def test_empty_messages_go_through_both_ways(asgi: Probe) -> None:
    """Empty text and empty binary reach the app as "" and b"", and the client as the same."""
    events = await _app_receives(asgi, ["", b"", "after"])
    payloads = [(_payload(e, "text"), _payload(e, "bytes")) for e in events]
    expect(
        len(events) == 3
        and _payload(events[0], "text") == ""
        and _payload(events[1], "bytes") == b""
        and _payload(events[2], "text") == "after",
        sent="empty text, empty binary, then text 'after'",
        expected="three events: text '', bytes b'', text 'after'",
        observed=repr(payloads),
    )
    got = await _sent(asgi, "empty")
    seen = [(m.kind, m.data) for m in got]
    expect(
        seen == [("text", ""), ("bytes", b""), ("text", "after")],
        sent="the app sends '', b'' and 'after'",
        expected="[('text', ''), ('bytes', b''), ('text', 'after')]",
        observed=repr(seen),
    )


@requirement("websocket.message.utf8")
async def test_unicode_text_is_exact_both_ways(asgi: Probe) -> None:
    """Text with 2-, 3- and 4-byte UTF-8 characters is the same str at the other end, each way."""
    (event,) = (await _app_receives(asgi, [UNICODE]))[:1] or [None]
    expect(
        _payload(event, "text") == UNICODE,
        sent=f"a text message {UNICODE!r}",
        expected=repr(UNICODE),
        observed=repr(event),
    )
    got = await _sent(asgi, "utf8")
    seen = [(m.kind, m.data) for m in got]
    expect(
        seen == [("text", UNICODE)],
        sent=f"the app sends {UNICODE!r}",
        expected=f"[('text', {UNICODE!r})]",
        observed=repr(seen),
    )


@requirement("websocket.message.large-receive")
async def test_large_messages_reach_the_app_whole(asgi: Probe) -> None:
    """A 4 MiB binary and a 3 Mi-character text message each arrive as one exact event."""
    data, text = pattern(0, LARGE_BYTES), ws.text_pattern(LARGE_TEXT)
    events = await _app_receives(asgi, [data, text])
    got = [(_payload(e, "bytes") if i == 0 else _payload(e, "text")) for i, e in enumerate(events)]
    want = [_expected(data), _expected(text)]
    expect(
        got == want,
        sent=f"a binary message of {LARGE_BYTES} bytes, a text message of {LARGE_TEXT} characters",
        expected=f"two events with exactly those payloads: {want}",
        observed=repr(events),
    )


@requirement("websocket.message.large-send")
async def test_large_messages_reach_the_client_whole(asgi: Probe) -> None:
    """The app's 4 MiB binary and 3 Mi-character text messages arrive whole and exact."""
    got = await _sent(asgi, "large")
    seen = [ws.digest(m.data) for m in got]
    want = [ws.digest(pattern(0, LARGE_BYTES)), ws.digest(ws.text_pattern(LARGE_TEXT))]
    expect(
        seen == want,
        sent=f"the app sends {LARGE_BYTES} bytes, then {LARGE_TEXT} characters",
        expected=repr(want),
        observed=repr(seen),
    )


@requirement("websocket.message.fragmented")
async def test_fragmented_message_arrives_as_one_event(asgi: Probe) -> None:
    """A text and a binary message, each in three 40 KiB frames with a ping after the first, give one event each."""
    text, data = ws.text_pattern(3 * FRAGMENT), pattern(0, 3 * FRAGMENT)
    events = await _app_receives(asgi, [text, data], fragments=True)
    got = [_payload(events[0], "text") if events else None]
    got.append(_payload(events[1], "bytes") if len(events) > 1 else None)
    want = [_expected(text), _expected(data)]
    expect(
        got == want,
        sent="two messages (text, binary) in three fragments each, a ping after the first fragment",
        expected=f"two websocket.receive events with the whole payloads {want}",
        observed=repr(events),
    )


@requirement("websocket.message.order")
async def test_burst_keeps_its_order_both_ways(asgi: Probe) -> None:
    """200 numbered messages arrive in order at the app, and 200 from the app at the client."""
    sent: list[str | bytes] = [str(i) for i in range(BURST)]
    events = await _app_receives(asgi, sent)
    got = [_payload(e, "text") for e in events]
    expect(
        got == sent,
        sent=f"{BURST} text messages '0'..'{BURST - 1}' back to back",
        expected="the same order at the app",
        observed=f"{got[:20]}... ({len(got)} events)" if got != sent else "",
    )
    received = await _sent(asgi, "burst")
    back = [m.data for m in received]
    expect(
        back == sent,
        sent=f"the app sends '0'..'{BURST - 1}'",
        expected="the same order at the client",
        observed=f"{back[:20]}... ({len(back)} messages)",
    )


@requirement("websocket.message.ping")
async def test_ping_is_answered_by_the_server_alone(asgi: Probe) -> None:
    """A client ping gets a pong with its payload; the app's next event is the text sent after it."""
    script = [ws.connect(), ws.accept(), ws.receive(units(3)), ws.close(1000)]
    async with await asgi.websocket(script, timeout=units(3)) as session:
        _accepted(session, "a ping after the handshake")
        await session.client.ping(b"probe-ping")
        pong: Received | None = None
        try:
            while pong is None:
                got = await session.client.receive(units(2))
                if got.kind == "pong":
                    pong = got
                elif got.kind in ("close", "eof"):
                    break
        except ClientError:
            pass
        await session.client.send_text("after-ping")
        with contextlib.suppress(ClientError):
            await session.client.wait_closed(units(4))
        timeline = await session.timeline(units(3))
    event = ws.result(timeline, 2)
    expect(
        pong is not None and pong.data == b"probe-ping",
        sent="a ping with payload b'probe-ping'",
        expected=f"a pong with the same payload within {units(2):.1f}s",
        observed=f"{pong!r}; {session.evidence()}",
    )
    expect(
        _payload(event, "text") == "after-ping",
        sent="a ping, then a text message 'after-ping'",
        expected="the app's next event is the text (no event for the ping)",
        observed=repr(event),
    )


# -- permessage-deflate ------------------------------------------------------------------------


@requirement("websocket.message.deflate")
async def test_deflate_negotiation_is_recorded(asgi: Probe) -> None:
    """Whether the server accepts permessage-deflate when the client offers it is recorded."""
    script = [ws.connect(), ws.accept(), ws.close(1000)]
    async with await asgi.websocket(script, deflate=True, timeout=units(3)) as session:
        _accepted(session, "an upgrade offering permessage-deflate")
        assert session.handshake is not None
        accepted = session.handshake.extensions
    raw = f"raw client offer: {'accepted' if accepted else 'declined'}"
    if asgi.wire != "http/1.1":  # the websockets library speaks only the HTTP/1.1 upgrade
        asgi.observe(raw)
        return
    # The websockets library, as applications use it, offers it with its own parameters.
    server = asgi.instance()
    probe = asgi.probe_headers(asgi.new_rid(), "websocket")
    try:
        answer, back = await normal_client_roundtrip(
            server.host, server.port, headers=probe, message=UNICODE, timeout=units(3)
        )
    except Exception as exc:  # the library's own errors: recorded, this row is info
        answer, back = None, f"<{type(exc).__name__}: {exc}>"
    asgi.observe(
        f"{raw}; websockets client: "
        f"{answer or 'declined'}, echo {'exact' if back == UNICODE else repr(back)[:80]}"
    )


@requirement("websocket.message.deflate-exact")
async def test_messages_stay_exact_with_deflate_offered(asgi: Probe) -> None:
    """With permessage-deflate offered, text and binary messages are exact both ways."""
    text, data = ws.text_pattern(DEFLATED), pattern(0, DEFLATED)
    events = await _app_receives(asgi, [text, data], deflate=True)
    got = [_payload(events[0], "text") if events else None]
    got.append(_payload(events[1], "bytes") if len(events) > 1 else None)
    want = [_expected(text), _expected(data)]
    expect(
        got == want,
        sent="a text and a binary message over a connection offering permessage-deflate",
        expected=repr(want),
        observed=repr(events),
    )
    received = await _sent(asgi, "deflate")
    seen = [ws.digest(m.data) for m in received]
    expect(
        seen == [ws.digest(text), ws.digest(data)],
        sent="the app sends the same two messages, permessage-deflate offered",
        expected=repr([ws.digest(text), ws.digest(data)]),
        observed=repr(seen),
    )
