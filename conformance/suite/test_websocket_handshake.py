"""The opening handshake as the app drives it (www.rst "Connect - receive event",
"Accept - send event", "Close - send event").

The client is the raw WebSocket client (wsproto framing over a socket), so the
check reads the server's answer whatever it is: a 101 with its fields, or a
refusal with its status and body.  The probe app's script decides how it answers
``websocket.connect``; its timeline says what ``receive()`` returned.

Only one check waits out a bound (no 101 while the app has not answered): it runs
as a scenario started with the server, so the bound overlaps with the other checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._probe import Probe, WebSocketSession, expect
from conformance._timing import units
from conformance._verdicts import ConformanceFailure, Refused, Unsupported
from conformance.clients import ClientError, Handshake, ServerTimeout


#: How long the client listens for a premature 101 while the app holds its answer.
HOLD_UNITS = 0.4


async def _answer(
    asgi: Probe, script: list[dict[str, Any]], **request: Any
) -> tuple[Handshake, list[dict[str, Any]], dict[str, Any]]:
    """Run ``script`` for one upgrade; the server's answer, the app's timeline and scope."""
    async with await asgi.websocket(script, timeout=units(3), **request) as session:
        assert session.handshake is not None
        if session.handshake.accepted:
            await session.client.wait_closed(units(2))
        timeline = await session.timeline(units(3))
        scope = await session.app_scope(units(1))
    return session.handshake, timeline, scope


@requirement("websocket.handshake.connect-first")
async def test_first_event_is_websocket_connect(asgi: Probe) -> None:
    """The app's first receive() returns {"type": "websocket.connect"}."""
    _, timeline, _ = await _answer(asgi, [ws.connect(units(2)), ws.accept(), ws.close(1000)])
    first = ws.result(timeline, 0)
    expect(
        isinstance(first, dict) and first.get("type") == "websocket.connect",
        sent="an upgrade GET /",
        expected="websocket.connect as the first event",
        observed=repr(first),
    )


async def _held_answer(asgi: Probe) -> tuple[bool, str, Handshake | None]:
    """The app notifies, then waits for a flag before accepting; the client listens meanwhile.

    Returns whether anything arrived before the flag, what, and the answer after it.
    """
    flag = f"ws-hold-{asgi.new_rid()}"
    script = [
        ws.connect(units(2)),
        ws.notify("connected"),
        ws.wait_flag(flag, units(4)),
        ws.accept(),
        ws.close(1000),
    ]
    async with await asgi.websocket(script, read_handshake=False, timeout=units(3)) as session:
        connected = await session.observations("notify", units(3))
        if not connected:
            raise ConformanceFailure(f"the app never got websocket.connect: {session.evidence()}")
        early: str = ""
        try:
            answer = await session.client.read_handshake(units(HOLD_UNITS))
            early = f"{answer.status} before the app answered"
        except ServerTimeout:
            pass
        except ClientError as exc:
            early = f"{exc} before the app answered"
        await anyio.to_thread.run_sync(asgi.server.channel.set_flag, flag)
        if early:
            return True, early, None
        try:
            final = await session.client.read_handshake(units(3))
        except ClientError as exc:
            return False, f"no answer after the app accepted: {exc}", None
    return False, "", final


async def _no_answer(asgi: Probe) -> tuple[list[int], str, bool]:
    """The app receives websocket.connect and returns: every response the server sent until
    it closed the connection (or the bound passed), the raw bytes, and whether it closed."""
    async with await asgi.websocket([ws.connect()], read_handshake=False) as session:
        statuses = await session.client.answers(units(3))
        ended = session.client.ended
    return statuses, repr(bytes(session.client.received[:300])), ended


async def _early_frame(asgi: Probe) -> tuple[Any, Any, str]:
    """A text frame written with the upgrade request: what the app's receive() gave before it
    accepted (bounded), and what the client got after the 101.

    RFC 6455 section 4.1 has a client wait for the 101 before it sends data; sending it
    early is how the check can see whether the server hands it over before the app
    accepted.  The app accepts and closes without reading it (a server that stalls in a
    receive() it cannot finish is another row's matter).
    """
    from wsproto.frame_protocol import FrameProtocol

    frame = bytes(FrameProtocol(client=True, extensions=[]).send_data("early", fin=True))
    script = [ws.connect(units(2)), ws.receive(units(1)), ws.accept(), ws.close(1000)]
    try:
        session = await asgi.websocket(script, early=frame)
    except ClientError as exc:
        raise Refused(
            f"the server would not answer an upgrade with a frame ahead of the 101 ({exc}); "
            "RFC 6455 section 4.1 has the client wait, so refusing it is the server's right"
        ) from None
    # The app's close ends its script once the client answers the close frame: answer it
    # meanwhile, and take the app's report as soon as it comes.
    async with session, anyio.create_task_group() as tasks:
        tasks.start_soon(_close_quietly, session)
        timeline = await session.timeline(units(4))
        tasks.cancel_scope.cancel()
    answer = session.handshake.status if session.handshake else None
    return ws.result(timeline, 1), answer, session.evidence()


async def _close_quietly(session: WebSocketSession) -> None:
    with contextlib.suppress(ClientError):
        await session.client.wait_closed(units(4))


@scenarios(__name__)
def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """The checks that may wait out a bound, started with the server."""
    return {"held-answer": _held_answer, "no-answer": _no_answer, "early-frame": _early_frame}


@requirement("websocket.handshake.no-receive-before-accept")
async def test_no_message_reaches_the_app_before_it_accepts(asgi: Probe) -> None:
    """A frame sent with the upgrade request reaches the app only after websocket.accept."""
    before, after, evidence = await scenario(asgi, __name__, "early-frame")
    expect(
        not (isinstance(before, dict) and before.get("type") == "websocket.receive"),
        sent="an upgrade request with a text frame 'early' in the same write; the app calls "
        "receive() again before it accepts",
        expected=f"no websocket.receive before accept (the receive() waits out {units(1):.1f}s)",
        observed=f"before accept: {before!r}; {evidence}",
    )
    asgi.observe(f"the server answered the upgrade with {after}")


@requirement("websocket.handshake.awaits-app")
async def test_no_101_before_the_app_accepts(asgi: Probe) -> None:
    """While the app holds websocket.connect unanswered the client gets nothing; after accept, a 101."""
    premature, what, final = await scenario(asgi, __name__, "held-answer")
    sent = "an upgrade GET / to an app that waits before accepting"
    expect(
        not premature,
        sent=sent,
        expected=f"no answer for {units(HOLD_UNITS):.1f}s while the app has not accepted",
        observed=what,
    )
    expect(
        final is not None and final.accepted,
        sent=sent,
        expected="a 101 once the app accepted",
        observed=what or (f"{final.status}" if final else "nothing"),
    )


@requirement("websocket.handshake.accept")
async def test_bare_accept_completes_the_handshake(asgi: Probe) -> None:
    """{"type": "websocket.accept"} alone gives a valid 101 that names no subprotocol."""
    answer, _, _ = await _answer(
        asgi, [ws.connect(), ws.accept(), ws.close(1000)], subprotocols=["a", "b"]
    )
    sent = "an upgrade offering subprotocols a, b; the app accepts without choosing one"
    expect(
        answer.accepted,
        sent=sent,
        expected="101 Switching Protocols (Sec-WebSocket-Accept checked by wsproto)",
        observed=f"{answer.status} {answer.body[:100]!r}",
    )
    expect(
        answer.subprotocol is None,
        sent=sent,
        expected="no Sec-WebSocket-Protocol in the 101",
        observed=f"Sec-WebSocket-Protocol: {answer.subprotocol}",
    )


@requirement("websocket.handshake.subprotocol")
async def test_accepted_subprotocol_is_in_the_101(asgi: Probe) -> None:
    """Client offers a, b; the app accepts "b"; the 101 says Sec-WebSocket-Protocol: b."""
    answer, _, _ = await _answer(
        asgi, [ws.connect(), ws.accept(subprotocol="b"), ws.close(1000)], subprotocols=["a", "b"]
    )
    expect(
        answer.accepted and answer.subprotocol == "b",
        sent="an upgrade offering subprotocols a, b; the app accepts 'b'",
        expected="a 101 with Sec-WebSocket-Protocol: b",
        observed=f"{answer.status}, subprotocol {answer.subprotocol!r}",
    )


ACCEPT_HEADERS = [(b"x-accept-a", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


@requirement("websocket.handshake.accept-headers")
async def test_accept_headers_reach_the_client(asgi: Probe) -> None:
    """Accept headers x-accept-a, set-cookie a=1, set-cookie b=2 are in the 101, in that order."""
    script = [ws.connect(), ws.accept(headers=ACCEPT_HEADERS), ws.close(1000)]
    answer, timeline, scope = await _answer(asgi, script)
    claimed, version = ws.spec_version(scope)
    if version < (2, 1):
        raise Unsupported(f"spec_version {claimed!r} claimed: accept headers came in 2.1")
    ours = {name for name, _ in ACCEPT_HEADERS}
    got = [(n.lower(), v) for n, v in answer.headers if n.lower() in ours]
    expect(
        answer.accepted and got == ACCEPT_HEADERS,
        sent=f"websocket.accept with headers {ACCEPT_HEADERS} (spec_version {claimed} claimed)",
        expected="those fields in the 101, in order",
        observed=f"{answer.status}, {got}; accept step {ws.result(timeline, 1)!r}",
    )


@requirement("websocket.handshake.close-403")
async def test_close_before_accept_gives_403(asgi: Probe) -> None:
    """websocket.close before accept: the client gets HTTP 403 and no upgrade."""
    answer, timeline, _ = await _answer(asgi, [ws.connect(), ws.close()])
    expect(
        answer.status == 403,
        sent="an upgrade GET / to an app that closes before accepting",
        expected="HTTP 403",
        observed=f"{answer.status} {answer.body[:100]!r}; close step {ws.result(timeline, 1)!r}",
    )


@requirement("websocket.handshake.app-exit-before-accept")
async def test_app_returning_before_accept_ends_the_handshake(asgi: Probe) -> None:
    """An app that returns without accepting or closing: no 101, and the handshake ends.

    The server must not complete the handshake without the app's reply (www.rst
    "Connect - receive event"), and an instance that is over ends its connection
    (asgi.rst "Error Handling"); an HTTP error response and a plain close both do.
    """
    statuses, raw, ended = await scenario(asgi, __name__, "no-answer")
    sent = "an upgrade GET / to an app that returns right after websocket.connect"
    expect(
        101 not in statuses,
        sent=sent,
        expected="no 101: the app never accepted",
        observed=f"responses {statuses}; bytes {raw}",
    )
    expect(
        any(status >= 400 for status in statuses) or (ended and not statuses),
        sent=sent,
        expected=f"an HTTP error response or the connection closed within {units(3):.1f}s",
        observed=f"no response, the connection still open: {raw}",
    )
    asgi.observe(f"HTTP {statuses[0]}" if statuses else "closed without an HTTP response")
