"""The WebSocket denial response extension (docs/extensions.rst "Websocket Denial Response").

asgi.rst "Extensions": only what the live scope advertises may be used.  The
check reads ``scope["extensions"]`` of the very connection it denies: not
advertised -> ``unsupported``; advertised -> the app's status, fields and body
must reach the client instead of the core spec's 403, and the connection then
ends: the denial is the connection's last word.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._probe import Probe, WebSocketSession, expect
from conformance._timing import units
from conformance._verdicts import NotJudged, Unsupported
from conformance.clients.websocket import Handshake, RawWebSocket


DENIAL = "websocket.http.response"
HEADERS = [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]
BODY = [b"not ", b"allowed"]


def _advertised(scope: dict[str, object]) -> None:
    """Unsupported unless the scope of the connection being denied advertises the extension."""
    extensions = scope.get("extensions")
    advertised = extensions if isinstance(extensions, dict) else {}
    if DENIAL not in advertised:
        raise Unsupported(
            f"{DENIAL} is not in scope['extensions'] (advertised: {sorted(advertised) or 'none'})"
        )


@contextlib.asynccontextmanager
async def _denied(asgi: Probe) -> AsyncIterator[tuple[WebSocketSession, Handshake]]:
    """An upgrade the app denies with 401, x-denied: yes and "not allowed" in two bodies:
    the session and the answer the client read (unsupported where not advertised)."""
    script = [ws.connect(), *ws.deny(401, HEADERS, BODY)]
    async with await asgi.websocket(script, read_handshake=False, timeout=units(3)) as session:
        _advertised(await session.app_scope(units(3)))
        yield session, await session.client.read_handshake(units(3))


@requirement("ext.websocket.denial-response")
async def test_denial_response_reaches_the_client(asgi: Probe) -> None:
    """An app denying with 401, x-denied: yes and "not allowed" in two bodies: the client gets exactly that."""
    async with _denied(asgi) as (session, answer):
        timeline = await session.timeline(units(3))
    sent = "websocket.http.response.start 401 with x-denied: yes, then bodies b'not ', b'allowed'"
    steps = [ws.result(timeline, i) for i in range(1, len(timeline))]
    expect(
        answer.status == 401,
        sent=sent,
        expected="HTTP 401",
        observed=f"{answer.status}; the app's sends gave {steps}",
    )
    expect(
        answer.header(b"x-denied") == b"yes",
        sent=sent,
        expected="x-denied: yes in the response",
        observed=repr(answer.headers),
    )
    expect(
        answer.body == b"not allowed",
        sent=sent,
        expected="the body b'not allowed'",
        observed=f"{answer.body!r} ({'complete' if answer.complete else 'cut short'})",
    )


async def _after_the_denial(client: RawWebSocket, answer: Handshake) -> str:
    """What the connection did once the denial was read: "" when the server ended it."""
    await client.drain(units(3))
    if client.ended:
        return ""
    response = "it" if answer.complete else f"its body began ({answer.body!r}) but never ended"
    return f"the connection was still open {units(3):.1f}s after {response}"


@requirement("ext.websocket.denial-closes")
async def test_the_connection_ends_after_the_denial(asgi: Probe) -> None:
    """After the app's 401 and its final body, the server closes the connection."""
    async with _denied(asgi) as (session, answer):
        if answer.status != 401:
            # What ends the connection after some other answer is not this sentence's business.
            raise NotJudged(
                f"the app's denial never reached the client (it got {answer.status})",
                "ext.websocket.denial-response",
            )
        left_open = await _after_the_denial(session.client, answer)
    expect(
        not left_open,
        sent="websocket.http.response.start 401, then bodies b'not ', b'allowed' (the last)",
        expected="HTTP 401, then the end of the connection",
        observed=left_open,
    )
