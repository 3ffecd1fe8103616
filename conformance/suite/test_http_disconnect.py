"""The client going away (www.rst "Disconnect - receive event", "Disconnected Client - send exception").

Every check drives one connection of its own (any wire) and a scripted probe app:
the client closes at a moment the check chooses (mid-body, during a long poll, mid
response) and the app's timeline, reported through the side channel, says what
``receive()`` returned and whether ``send()`` raised.  Ordering never rests on a
sleep: the client acts only after it has *seen* the app get somewhere (a
``notify`` observation, or response bytes on the wire), and every wait is a
bound in suite time units.

Two regimes for ``send()`` after the client left: from spec_version 2.4 (www.rst
"Spec Versions") it "should raise a server-specific subclass of OSError"; below,
asgi.rst "Error Handling" says it "should act as a no-op".  The check reads the
spec_version from the HTTP scope the app was given (absent means "2.0"), so one
server may be graded by either rule (uvicorn says 2.4 on WebSocket scopes, 2.3 on HTTP).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio.to_thread

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import Scenario, ahead, scenario, scenarios
from conformance._launcher import LaunchConfig
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance._verdicts import ConformanceFailure, NotJudged
from conformance.apps._encoding import ForeignDict
from conformance.clients import ClientError
from conformance.suite._premises import (
    after_the_request,
    no_request_after_the_body,
    read_streamed,
)


#: How long (in units) an app waits for http.disconnect: servers notice a close in milliseconds.
DISCONNECT_UNITS = 2
#: Bytes the app sends first when it streams; the client reads up to them, then leaves.
FIRST = b"first-chunk-of-a-streamed-response"


async def _wait(asgi: Probe, rid: str, kind: str, timeout: float) -> list[dict[str, Any]]:
    """Observations of ``kind`` for ``rid`` (none if the bound passes), without blocking the loop."""
    return await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, kind, timeout)


async def _timeline(asgi: Probe, rid: str, timeout: float) -> list[dict[str, Any]]:
    found = await _wait(asgi, rid, "script", timeout)
    if not found:
        raise ConformanceFailure(f"the probe app never finished its script within {timeout:.1f}s")
    timeline: list[dict[str, Any]] = found[0]["timeline"]
    return timeline


def _names(events: list[Any]) -> str:
    """read_body's events, compactly: http.request(more_body=True), http.disconnect."""
    return ", ".join(
        f"{e.get('type')}(more_body={e.get('more_body')})"
        if isinstance(e, dict) and e.get("type") == "http.request"
        else str(e.get("type") if isinstance(e, dict) else e)
        for e in events
    )


def _latency(outcome: dict[str, Any], closed_at: float) -> str:
    """How soon the app heard, from the client's close (clocks are both time.monotonic)."""
    return f"http.disconnect within {max(0.0, outcome['t'] - closed_at):.3f}s of the close"


def _result(timeline: list[dict[str, Any]], index: int) -> Any:
    """What step ``index`` returned, or why there is nothing (the script stopped earlier)."""
    if index >= len(timeline):
        last = timeline[-1] if timeline else {}
        return f"<not reached: step {last.get('i')} ({last.get('op')}) {last.get('error', '')}>"
    entry = timeline[index]
    return entry.get("result") if entry.get("ok", False) else f"<raised {entry.get('error')}>"


async def _stream_then_leave(
    asgi: Probe,
    after: Sequence[dict[str, Any]],
    config: LaunchConfig | None = None,
    *,
    sends: Sequence[dict[str, Any]] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """The app streams FIRST and runs ``after``; the client reads FIRST and closes.

    ``sends`` are the app's send() steps after the client left, run after ``after``
    behind a ``notify`` step: the bound that proves such a send() blocks (two units)
    starts when the app gets there, not at the close, since the app's own wait for
    the disconnect comes first.

    Returns the app's timeline, the scope it saw, and when the client closed.
    """
    script = [
        steps.read_body(units(2)),
        steps.start(200),
        steps.body(FIRST, more=True),
        *after,
        *([steps.notify("sending after the close"), *sends] if sends else []),
    ]
    live = await asgi.begin(script=script, timeout=units(3), config=config)
    rid = live.rid
    async with live:
        await read_streamed(live, FIRST, timeout=units(3))
    closed_at = time.monotonic()
    if sends:
        await _wait(asgi, rid, "notify", units(DISCONNECT_UNITS + 3))
        timeline = await _timeline(asgi, rid, units(2))
    else:
        timeline = await _timeline(asgi, rid, units(6))
    calls = await _wait(asgi, rid, "call", units(1))
    scope: dict[str, Any] = calls[0]["scope"] if calls else {}
    return timeline, scope, closed_at


async def _after_response(asgi: Probe, receives: int) -> tuple[list[dict[str, Any]], Any]:
    """The app answers, then calls receive() ``receives`` times while the keep-alive client waits.

    The first call may take a unit; later ones should return at once, half a unit each.

    Returns the timeline and the events the app received (from its ``done`` report).
    """
    script = [
        steps.read_body(units(2)),
        steps.start(200, [(b"content-length", b"2")]),
        steps.body(b"ok"),
        steps.receive(units(1)),
        *(steps.receive(units(0.5)) for _ in range(receives - 1)),
    ]
    live = await asgi.begin(script=script, timeout=units(3))
    rid = live.rid
    async with live:
        response = await live.read_response()
        expect(
            response.status == 200,
            sent="GET / to an app that answers 200",
            expected="200",
            observed=str(response.status),
        )
        # The connection stays open (keep-alive) until the app has finished its receives.
        timeline = await _timeline(asgi, rid, units(3 + receives))
    done = await _wait(asgi, rid, "done", units(1))
    events = [e["event"] for e in done[0]["events"]] if done else []
    return timeline, events


async def _leave_mid_body(asgi: Probe) -> list[Any] | None:
    """Send 10 of 1000 announced body bytes and close; the events the app got (None: never called)."""
    script = [steps.read_body(units(DISCONNECT_UNITS))]
    live = await asgi.begin(
        method=b"POST",
        headers=[(b"content-length", b"1000")],
        script=script,
        end=False,
        timeout=units(3),
    )
    rid = live.rid
    async with live:
        await live.send_body(b"0123456789")
        # Close only once the app is running, so its receive() is what the close interrupts.
        # How soon the server calls the app is no part of the rule (an HTTP/3 server on a
        # busy machine takes a while): the bound only tells a server that waits for the
        # whole body before calling the app, and it runs in the background, beside the rest.
        called = await _wait(asgi, rid, "call", units(3))
    if not called:
        # Some servers (daphne) call the app only once the body is complete.  Give the
        # server a full request to handle, then look again: a late call is still judged.
        await asgi.send(timeout=units(3))
        if not asgi.server.channel.records(rid):
            return None
    timeline = await _timeline(asgi, rid, units(5))
    events = _result(timeline, 0)
    expect(
        isinstance(events, list),
        sent=LEFT_MID_BODY,
        expected="the app's receive() calls to return",
        observed=repr(events),
    )
    found: list[Any] = events
    return found


LEFT_MID_BODY = "POST with Content-Length 1000, 10 body bytes, then close"


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    """The scenarios whose bounded waits start with the server (conformance/_batch.py)."""
    return {
        "during-body": _leave_mid_body,
        # One exchange serves the three checks of what receive() gives after the response.
        "after-response": partial(_after_response, receives=1),
        "repeats": partial(_after_response, receives=3),
    }


@requirement("http.disconnect.during-body")
async def test_app_gets_disconnect_not_a_complete_body_when_client_leaves_mid_body(
    asgi: Probe,
) -> None:
    """A client that sends 10 of 1000 announced body bytes and closes: the app gets http.disconnect, never more_body False."""
    events = await scenario(asgi, __name__, "during-body")
    if events is None:
        asgi.observe("the app was never called: the server waits for the whole body")
        return
    complete = [e for e in events if isinstance(e, dict) and e.get("type") == "http.request"]
    complete = [e for e in complete if not e.get("more_body")]
    last = events[-1] if events else None
    expect(
        not complete,
        sent=LEFT_MID_BODY,
        expected="no http.request with more_body False (the body never arrived whole)",
        observed=_names(events),
    )
    expect(
        isinstance(last, dict) and last.get("type") == "http.disconnect",
        sent=LEFT_MID_BODY,
        expected=f"http.disconnect within {units(DISCONNECT_UNITS):.1f}s",
        observed=_names(events),
    )
    asgi.observe(f"the app received {_names(events)}")


@requirement("http.disconnect.long-poll")
@ahead
async def test_waiting_app_gets_disconnect_when_client_closes(asgi: Probe) -> None:
    """An app that read the body and waits in receive() gets http.disconnect when the client closes."""
    script = [
        steps.read_body(units(2)),
        steps.notify("waiting"),
        steps.await_disconnect(units(DISCONNECT_UNITS)),
    ]
    live = await asgi.begin(script=script, timeout=units(3))
    rid = live.rid
    async with live:
        waiting = await _wait(asgi, rid, "notify", units(3))
        expect(
            bool(waiting),
            sent="GET / to a long-poll app",
            expected="the app to read the request and start waiting",
            observed="it never got there",
        )
    closed_at = time.monotonic()
    timeline = await _timeline(asgi, rid, units(5))
    outcome = _result(timeline, 2)
    disconnected = isinstance(outcome, dict) and outcome.get("disconnected") is True
    expect(
        disconnected,
        sent="a complete GET, then close while the app waits in receive()",
        expected=f"http.disconnect within {units(DISCONNECT_UNITS):.1f}s",
        observed=f"receive() gave {outcome}",
    )
    asgi.observe(_latency(outcome, closed_at))


@requirement("http.disconnect.streaming")
@ahead
async def test_streaming_app_gets_disconnect_when_client_leaves_mid_response(
    asgi: Probe,
) -> None:
    """An app streaming a response gets http.disconnect when the client reads a chunk and closes."""
    timeline, _, closed_at = await _stream_then_leave(
        asgi, [steps.await_disconnect(units(DISCONNECT_UNITS))]
    )
    outcome = _result(timeline, 3)
    disconnected = isinstance(outcome, dict) and outcome.get("disconnected") is True
    expect(
        disconnected,
        sent="GET /, read the first streamed chunk, close",
        expected=f"http.disconnect within {units(DISCONNECT_UNITS):.1f}s",
        observed=f"receive() gave {outcome}",
    )
    asgi.observe(_latency(outcome, closed_at))


@requirement("http.disconnect.after-response")
async def test_receive_after_complete_response_returns_disconnect(asgi: Probe) -> None:
    """receive() after the response is complete returns http.disconnect while the keep-alive client stays."""
    timeline, _ = await scenario(asgi, __name__, "after-response")
    outcome = _result(timeline, 3)
    expect(
        isinstance(outcome, dict) and outcome.get("type") == "http.disconnect",
        sent="GET / (keep-alive, connection held open) to an app that answers then calls receive()",
        expected=f"http.disconnect within {units(1):.1f}s",
        observed=f"receive() gave {outcome!r}",
    )


@requirement("http.disconnect.shape")
async def test_disconnect_event_is_dict_with_type(asgi: Probe) -> None:
    """The event receive() returns after the response is a dict with type "http.disconnect"."""
    _, events = await scenario(asgi, __name__, "after-response")
    after = after_the_request(events)
    if not after:
        raise NotJudged(
            f"receive() returned no event in {units(1):.1f}s after the response",
            "http.disconnect.after-response",
        )
    event = after[0]
    expect(
        isinstance(event, dict) and event.get("type") == "http.disconnect",
        sent="GET / to an app that answers then calls receive()",
        expected="{'type': 'http.disconnect'}",
        observed=repr(event),
    )
    if isinstance(event, ForeignDict):
        asgi.observe(f"the event is a dict subclass, {event.type_name}")


@requirement("http.disconnect.extra-keys")
async def test_disconnect_event_keys_are_recorded(asgi: Probe) -> None:
    """Keys of http.disconnect beyond 'type' are recorded."""
    _, events = await scenario(asgi, __name__, "after-response")
    after = [e for e in after_the_request(events) if isinstance(e, dict)]
    if not after:
        raise NotJudged(
            f"no event after the response to inspect (events {events})",
            "http.disconnect.after-response",
        )
    extra = sorted(str(k) for k in after[0] if k != "type")
    asgi.observe(f"extra keys {extra}" if extra else "no keys beyond 'type'")


@requirement("http.disconnect.repeats")
async def test_receive_keeps_returning_disconnect(asgi: Probe) -> None:
    """Two more receive() calls after the first http.disconnect return http.disconnect again."""
    timeline, _ = await scenario(asgi, __name__, "repeats")
    outcomes = [_result(timeline, i) for i in (3, 4, 5)]
    if not (isinstance(outcomes[0], dict) and outcomes[0].get("type") == "http.disconnect"):
        raise NotJudged(
            f"the first receive() after the response gave {outcomes[0]!r}, no http.disconnect",
            "http.disconnect.after-response",
        )
    later = outcomes[1:]
    expect(
        all(isinstance(o, dict) and o.get("type") == "http.disconnect" for o in later),
        sent="GET / to an app that answers then calls receive() three times",
        expected="http.disconnect from the second and third calls too",
        observed=repr(later),
    )


@requirement("http.disconnect.not-premature")
@ahead
async def test_receive_waits_while_client_is_connected(asgi: Probe) -> None:
    """After the body, receive() waits while the client is connected and the response unfinished."""
    wait = units(0.3)
    script = [
        steps.read_body(units(2)),
        steps.receive(wait),
        steps.start(200, [(b"content-length", b"2")]),
        steps.body(b"ok"),
    ]
    # The client waits for the response, so it is connected all through the receive().
    exchange = await asgi.send(script=script, timeout=units(3))
    outcome = _result(exchange.timeline(), 1)
    no_request_after_the_body(outcome)
    expect(
        outcome == "timeout",
        sent="GET /, client connected and waiting for the response",
        expected=f"receive() after the body to wait ({wait:.1f}s bound)",
        observed=f"it returned {outcome!r}",
    )


def _version(scope: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """The HTTP spec_version the scope claims, as given and as numbers; absent means "2.0"."""
    claimed = (scope.get("asgi") or {}).get("spec_version", "2.0")
    try:
        return str(claimed), tuple(int(part) for part in str(claimed).split("."))
    except ValueError:
        return str(claimed), (2, 0)


@requirement("http.disconnect.send-after-close")
@ahead
async def test_send_after_client_left_follows_declared_spec_version(asgi: Probe) -> None:
    """send() after the client left raises an OSError subclass from spec_version 2.4, below it returns quietly."""
    try:
        timeline, scope, _ = await _stream_then_leave(
            asgi,
            [steps.await_disconnect(units(DISCONNECT_UNITS))],
            sends=[steps.body(b"late", more=True), steps.body(b"")],
        )
    except ConformanceFailure as exc:
        raise ConformanceFailure(
            "sent GET /, read the first chunk, closed; expected the app's send() afterwards "
            f"to raise or return; observed neither: {exc} (send() blocks)"
        ) from None
    claimed, version = _version(scope)
    heard = _result(timeline, 3)
    noticed = "after" if isinstance(heard, dict) and heard.get("disconnected") else "without"
    expect(
        len(timeline) > 5,
        sent="GET /, read the first chunk, close",
        expected="the app to send once more after the client left",
        observed=f"the script stopped at {timeline[-1] if timeline else None}",
    )
    late = timeline[5]
    if late.get("ok"):
        seen = "returned quietly (a no-op)"
    else:
        kind = "an OSError" if late.get("is_oserror") else "not an OSError"
        seen = f"raised {late.get('error')} ({kind})"
    what = f"spec_version {claimed!r} claimed; send() {noticed} http.disconnect {seen}"
    if version >= (2, 4):
        ok, expected = bool(late.get("is_oserror")), "an OSError subclass raised (2.4+)"
    else:
        ok, expected = bool(late.get("ok")), "a no-op (below 2.4, asgi.rst Error Handling)"
    expect(
        ok, sent="send() of a body chunk after the client closed", expected=expected, observed=what
    )
    asgi.observe(what)


#: A server of its own for the check that may break it for every request after (run ahead,
#: beside other checks of the main instance).
CONTAINED = LaunchConfig(app="conformance.apps.probe:contained")


@requirement("http.disconnect.send-error-contained")
@ahead
async def test_server_survives_send_error_escaping_the_app(asgi: Probe) -> None:
    """A send-after-close error the app lets propagate leaves the server serving the next request."""
    try:
        timeline, _, _ = await _stream_then_leave(
            asgi,
            [steps.await_disconnect(units(DISCONNECT_UNITS))],
            config=CONTAINED,
            sends=[steps.body(b"late", more=True, propagate=True), steps.body(b"", propagate=True)],
        )
    except ConformanceFailure:
        timeline = []  # send() blocked: nothing escaped, and the server must still serve
    raised = [e.get("error") for e in timeline if not e.get("ok", True)]
    try:
        after = await asgi.send(timeout=units(3), config=CONTAINED)
    except ClientError as exc:
        raise ConformanceFailure(
            f"sent a fresh GET after the app let {raised or 'nothing'} escape; "
            f"expected 200; observed {exc}"
        ) from None
    expect(
        after.response.status == 200,
        sent="a fresh GET after the app let its send() error escape",
        expected="200",
        observed=f"{after.response.status} {after.response.body[:100]!r}",
    )
    asgi.observe(
        f"escaped the app: {raised[0]}" if raised else "send() never raised: nothing escaped"
    )
