"""Closing a WebSocket (www.rst "Close - send event", "Disconnect - receive event",
"Disconnected Client - send exception", "Websocket Connection Scope"; asgi.rst "Error Handling").

Either side closes, or the socket is lost: the app closes with a code and a
reason and the raw client reads the close frame; the client sends a close frame
(with a code, a reason, or nothing) or drops the TCP connection, and the app's
timeline says what ``websocket.disconnect`` it got.  Several of these wait out a
bound (a server that never tells the app, never closes the socket), so every
scenario of this module starts with the server (:mod:`conformance._batch`) and the
bounds overlap.

Rows added by later spec versions (close ``reason`` 2.3, disconnect ``reason`` 2.5,
``send()`` raising after the end 2.4) are judged by the ``spec_version`` the scope
claims, read from the very connection judged (absent means "2.0").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance._verdicts import ConformanceFailure, NotJudged, Unsupported
from conformance.apps._encoding import Foreign
from conformance.clients import ClientError, Closed


#: How long the app waits for websocket.disconnect: servers notice a close in milliseconds.
DISCONNECT_UNITS = 2
#: How long the client waits for the server to close the socket of a finished app.
CLOSE_UNITS = 2
REASON = "bye ünï 😀"


@dataclass(frozen=True)
class Outcome:
    """One scenario as both ends saw it."""

    #: How the connection ended for the client (None: not within the bound).
    closed: Closed | None
    #: The app's timeline and scope.
    timeline: list[dict[str, Any]]
    scope: dict[str, Any]
    evidence: str
    #: How the client drops the connection without a close frame, and how it resets it,
    #: on this column (a TCP FIN and RST; a closed connection and a reset stream).
    drops: tuple[str, str] = ("a TCP close (FIN)", "a TCP reset (RST)")

    def step(self, index: int) -> Any:
        return ws.result(self.timeline, index)

    def disconnect(self, index: int) -> dict[str, Any] | None:
        """The websocket.disconnect event an ``await_disconnect`` step got, if any."""
        got = self.step(index)
        if isinstance(got, dict) and got.get("disconnected"):
            event: dict[str, Any] = got["event"]
            return event
        return None

    def describe_close(self) -> str:
        return (
            self.closed.describe() if self.closed else f"no close within {units(CLOSE_UNITS):.1f}s"
        )


async def _run(
    asgi: Probe,
    script: list[dict[str, Any]],
    client: Callable[[Any], Awaitable[None]] | None = None,
) -> Outcome:
    """Open a WebSocket running ``script``; ``client`` acts on it; then read how it ends."""
    async with await asgi.websocket(script, timeout=units(3)) as session:
        answer = session.handshake
        if answer is None or not answer.accepted:
            raise ConformanceFailure(
                f"the handshake failed: {answer.status if answer else None}; {session.evidence()}"
            )
        closed: Closed | None = None
        try:
            if client is not None:
                await client(session.client)
            closed = await session.client.wait_closed(units(CLOSE_UNITS))
        except ClientError:
            closed = None if client is None else Closed(None, "")
        timeline = await session.timeline(units(DISCONNECT_UNITS + 3))
        scope = await session.app_scope(units(1))
    drops = (session.client.describe_drop(), session.client.describe_drop(reset=True))
    return Outcome(closed, timeline, scope, session.evidence(), drops)


async def _client_close(code: int | None, reason: str, client: Any) -> None:
    await client.close(code, reason)


async def _drop(reset: bool, client: Any) -> None:
    await client.abort(reset=reset)


def _app_close(code: int | None, reason: str | None) -> list[dict[str, Any]]:
    return [ws.connect(), ws.accept(), ws.close(code, reason)]


#: The app waits for the disconnect after accepting (step 2 holds the event).
_HEARS = [ws.connect(), ws.accept(), ws.await_disconnect(units(DISCONNECT_UNITS))]


@scenarios(__name__)
def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """Every scenario of this module, by name (each an independent connection)."""
    return {
        "app-close-4001": partial(
            _run, script=[*_app_close(4001, None), ws.await_disconnect(units(DISCONNECT_UNITS))]
        ),
        "app-close-default": partial(_run, script=_app_close(None, None)),
        "app-close-reason": partial(_run, script=_app_close(4002, REASON)),
        "client-close": partial(_run, script=_HEARS, client=partial(_client_close, 4003, "ciao")),
        "client-close-no-code": partial(
            _run, script=_HEARS, client=partial(_client_close, None, "")
        ),
        "abrupt": partial(_run, script=_HEARS, client=partial(_drop, False)),
        "reset": partial(_run, script=_HEARS, client=partial(_drop, True)),
        "send-after-disconnect": partial(
            _run,
            script=[*_HEARS, ws.send_text("late")],
            client=partial(_client_close, 1000, ""),
        ),
        "app-error": partial(_run, script=[ws.connect(), ws.accept(), ws.fail()]),
        "app-return": partial(_run, script=[ws.connect(), ws.accept()]),
    }


async def _outcome(asgi: Probe, name: str) -> Outcome:
    result: Outcome = await scenario(asgi, __name__, name)
    return result


# -- the app closes -------------------------------------------------------------------------------


@requirement("websocket.close.code")
async def test_app_close_code_reaches_the_client(asgi: Probe) -> None:
    """websocket.close with code 4001 after accept: the client's close frame says 4001."""
    outcome = await _outcome(asgi, "app-close-4001")
    expect(
        outcome.closed is not None and outcome.closed.code == 4001,
        sent="websocket.close with code 4001 after accept",
        expected="a close frame with code 4001",
        observed=outcome.describe_close(),
    )


@requirement("websocket.close.default-code")
async def test_app_close_without_code_is_1000(asgi: Probe) -> None:
    """websocket.close without a code: the close frame says 1000."""
    outcome = await _outcome(asgi, "app-close-default")
    expect(
        outcome.closed is not None and outcome.closed.code == 1000,
        sent="{'type': 'websocket.close'} after accept",
        expected="a close frame with code 1000",
        observed=outcome.describe_close(),
    )


@requirement("websocket.close.reason")
async def test_app_close_reason_reaches_the_client(asgi: Probe) -> None:
    """websocket.close with code 4002 and a non-ASCII reason: the close frame carries that reason."""
    outcome = await _outcome(asgi, "app-close-reason")
    claimed, version = ws.spec_version(outcome.scope)
    if version < (2, 3):
        raise Unsupported(f"spec_version {claimed!r} claimed: the close reason came in 2.3")
    expect(
        outcome.closed is not None
        and outcome.closed.code == 4002
        and outcome.closed.reason == REASON,
        sent=f"websocket.close with code 4002 and reason {REASON!r} (spec_version {claimed})",
        expected=f"a close frame with code 4002 and reason {REASON!r}",
        observed=outcome.describe_close(),
    )


@requirement("websocket.close.after-server-close")
async def test_receive_after_app_close_returns_disconnect(asgi: Probe) -> None:
    """An app that sent websocket.close (code 4001) then calls receive() gets websocket.disconnect."""
    outcome = await _outcome(asgi, "app-close-4001")
    event = outcome.disconnect(3)
    expect(
        event is not None,
        sent="websocket.close with code 4001, then receive()",
        expected=f"websocket.disconnect within {units(DISCONNECT_UNITS):.1f}s",
        observed=repr(outcome.step(3)),
    )
    asgi.observe(f"code {_code_value(event.get('code')) if event else None}")


# -- the client closes ----------------------------------------------------------------------------


@requirement("websocket.close.client-code")
async def test_client_close_code_reaches_the_app(asgi: Probe) -> None:
    """A client close frame with code 4003 gives the app websocket.disconnect with code 4003 (an int)."""
    outcome = await _outcome(asgi, "client-close")
    event = outcome.disconnect(2)
    code = event.get("code") if event else None
    expect(
        event is not None and type(code) is int and code == 4003,
        sent="a close frame with code 4003 and reason 'ciao'",
        expected="websocket.disconnect with code 4003",
        observed=repr(event or outcome.step(2)),
    )


@requirement("websocket.close.client-reason")
async def test_client_close_reason_reaches_the_app(asgi: Probe) -> None:
    """A client close frame with reason "ciao" gives websocket.disconnect with reason "ciao"."""
    outcome = await _outcome(asgi, "client-close")
    claimed, version = ws.spec_version(outcome.scope)
    event = outcome.disconnect(2)
    if version < (2, 5):
        raise Unsupported(
            f"spec_version {claimed!r} claimed: the disconnect reason came in 2.5 "
            f"(the event was {event!r})"
        )
    expect(
        event is not None and event.get("reason") == "ciao",
        sent=f"a close frame with code 4003 and reason 'ciao' (spec_version {claimed})",
        expected="websocket.disconnect with reason 'ciao'",
        observed=repr(event or outcome.step(2)),
    )


def _code_value(code: Any) -> Any:
    """An int code's value; an int subclass (an IntEnum member) arrives as a Foreign value
    whose repr ends in its number, and counts by that value."""
    if isinstance(code, Foreign):
        found = re.search(r"(-?\d+)>?$", code.text)
        return int(found.group(1)) if found else code
    return code


@requirement("websocket.close.no-code-1005")
async def test_close_frame_without_code_gives_1005(asgi: Probe) -> None:
    """An empty close frame (no status code) gives websocket.disconnect with code 1005."""
    outcome = await _outcome(asgi, "client-close-no-code")
    event = outcome.disconnect(2)
    expect(
        event is not None and _code_value(event.get("code")) == 1005,
        sent="a close frame with no payload",
        expected="websocket.disconnect with code 1005",
        observed=repr(event or outcome.step(2)),
    )


@requirement("websocket.close.abrupt")
async def test_dropped_connection_gives_disconnect(asgi: Probe) -> None:
    """A TCP close (and, apart, a reset) without a close frame gives the app websocket.disconnect.

    Over a stream (RFC 8441, RFC 9220): the client's connection closed, and apart, the stream reset.
    """
    for name, drop in (("abrupt", 0), ("reset", 1)):
        outcome = await _outcome(asgi, name)
        how = outcome.drops[drop]
        event = outcome.disconnect(2)
        expect(
            event is not None,
            sent=f"{how} after the handshake, no close frame",
            expected=f"websocket.disconnect within {units(DISCONNECT_UNITS):.1f}s",
            observed=repr(outcome.step(2)),
        )


@requirement("websocket.close.abrupt-1006")
async def test_dropped_connection_disconnect_code_is_1006(asgi: Probe) -> None:
    """The websocket.disconnect for a connection dropped without a close frame has code 1006."""
    outcome = await _outcome(asgi, "abrupt")
    event = outcome.disconnect(2)
    if event is None:
        raise NotJudged(
            f"no websocket.disconnect to read a code from ({outcome.step(2)!r})",
            "websocket.close.abrupt",
        )
    expect(
        _code_value(event.get("code")) == 1006,
        sent=f"{outcome.drops[0]} after the handshake, no close frame",
        expected="websocket.disconnect with code 1006",
        observed=repr(event),
    )


@requirement("websocket.close.send-after-disconnect")
async def test_send_after_disconnect_follows_declared_spec_version(asgi: Probe) -> None:
    """send() after websocket.disconnect raises an OSError subclass from spec_version 2.4, below it returns quietly."""
    outcome = await _outcome(asgi, "send-after-disconnect")
    claimed, version = ws.spec_version(outcome.scope)
    if outcome.disconnect(2) is None:
        raise NotJudged(
            f"the app never got websocket.disconnect after a client close ({outcome.step(2)!r})",
            "websocket.close.client-code",
        )
    expect(
        len(outcome.timeline) > 3,
        sent="a client close frame",
        expected="the app to send once more after websocket.disconnect",
        observed=f"the script stopped at {outcome.timeline[-1] if outcome.timeline else None}",
    )
    late = outcome.timeline[3]
    if late.get("ok"):
        seen = "returned quietly (a no-op)"
    else:
        kind = "an OSError" if late.get("is_oserror") else "not an OSError"
        seen = f"raised {late.get('error')} ({kind})"
    what = f"spec_version {claimed!r} claimed; send() after websocket.disconnect {seen}"
    if version >= (2, 4):
        ok, expected = bool(late.get("is_oserror")), "an OSError subclass raised (2.4+)"
    else:
        ok, expected = bool(late.get("ok")), "a no-op (below 2.4, asgi.rst Error Handling)"
    expect(ok, sent="websocket.send after websocket.disconnect", expected=expected, observed=what)
    asgi.observe(what)


# -- the app ends ---------------------------------------------------------------------------------


@requirement("websocket.close.app-error")
async def test_socket_of_a_raising_app_is_closed(asgi: Probe) -> None:
    """An app that raises after accepting: the client sees the connection end (close frame or TCP close)."""
    outcome = await _outcome(asgi, "app-error")
    expect(
        outcome.closed is not None,
        sent="an upgrade to an app that accepts, then raises",
        expected=f"the connection to end within {units(CLOSE_UNITS):.1f}s",
        observed=f"{outcome.describe_close()}; {outcome.evidence}",
    )


@requirement("websocket.close.app-error-code")
async def test_close_code_of_a_raising_app_is_recorded(asgi: Probe) -> None:
    """How the socket of an app that raised after accepting is closed is recorded."""
    outcome = await _outcome(asgi, "app-error")
    asgi.observe(outcome.describe_close())


@requirement("websocket.close.app-return")
async def test_socket_of_a_returning_app_is_closed(asgi: Probe) -> None:
    """An app that accepts and returns without closing: the client sees the connection end."""
    outcome = await _outcome(asgi, "app-return")
    expect(
        outcome.closed is not None,
        sent="an upgrade to an app that accepts, then returns",
        expected=f"the connection to end within {units(CLOSE_UNITS):.1f}s",
        observed=f"{outcome.describe_close()}; {outcome.evidence}",
    )
    asgi.observe(outcome.describe_close())
