"""The WebSocket denial response extension (docs/extensions.rst "Websocket Denial Response").

asgi.rst "Extensions": only what the live scope advertises may be used.  The
check reads ``scope["extensions"]`` of the very connection it denies: not
advertised -> ``unsupported``; advertised -> the app's status, fields and body
must reach the client instead of the core spec's 403.
"""

from __future__ import annotations

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance._verdicts import Unsupported


DENIAL = "websocket.http.response"
HEADERS = [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]
BODY = [b"not ", b"allowed"]


@requirement("ext.websocket.denial-response")
async def test_denial_response_reaches_the_client(asgi: Probe) -> None:
    """An app denying with 401, x-denied: yes and "not allowed" in two bodies: the client gets exactly that."""
    script = [ws.connect(), *ws.deny(401, HEADERS, BODY)]
    async with await asgi.websocket(script, read_handshake=False, timeout=units(3)) as session:
        scope = await session.app_scope(units(3))
        extensions = scope.get("extensions")
        advertised = extensions if isinstance(extensions, dict) else {}
        if DENIAL not in advertised:
            raise Unsupported(
                f"{DENIAL} is not in scope['extensions'] "
                f"(advertised: {sorted(advertised) or 'none'})"
            )
        answer = await session.client.read_handshake(units(3))
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
