"""Errors the application makes (asgi.rst "Error Handling"; www.rst "Response Start", "Response Body").

Two kinds of mistakes.  An app that *raises* must have its instance and its
connection terminated; the server may report the error however it likes (a
500 is customary, and recorded), but a response cut short must never look
complete on the wire.  An app that *sends an invalid event* (unknown type, a
str where bytes belong, messages out of order) should get an exception out of
``send()``, and nothing built from the invalid event should reach the client.

The client speaks the column's protocol: "complete" means the client saw the end of
the message (on HTTP/1.1, h11 saw Content-Length satisfied or the chunked
terminator; on HTTP/2, END_STREAM rather than RST_STREAM).
The scripted probe app reports what each ``send()`` did (returned, or raised
which exception) through the side channel.

Servers may hang in these error cases (daphne reaps failed apps on a 1 s loop),
so most checks wait out their bound.  Their scenarios are independent: the first
check of this module to run starts them all at once for its target (a
:class:`~conformance._batch.Batch`), and each check judges its own scenario's
outcome, so the bounds overlap instead of adding up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import h11

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._launcher import LaunchConfig
from conformance._probe import Probe, expect
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance._verdicts import ConformanceFailure
from conformance.clients import ClientError, Request, Response, ServerTimeout


@dataclass
class Outcome:
    """How one scripted request ended, as the client saw it."""

    rid: str
    #: The complete response, if h11 saw one end.
    response: Response | None
    #: Why there is no complete response ("" if there is one).
    error: str
    #: Neither a complete response nor a close within the bound.
    timed_out: bool
    #: The status of the final response head that came, complete response or not.
    head_status: int | None
    #: What arrived for the request (raw bytes; HTTP/2: its frames, then its body).
    received: bytes

    def describe(self) -> str:
        if self.response is not None:
            r = self.response
            return f"a complete {r.status} response, body {r.body[:80]!r}"
        status = self.head_status
        head = f"a {status} head, then " if status is not None else ""
        return f"{head}no complete response: {self.error[:300]}"


#: A server of its own for checks that may leave it broken (see probe.isolated).
ISOLATED = LaunchConfig(app="conformance.apps.probe:isolated")
#: Another, for the check that the server survives app errors: it must see only its own.
SURVIVOR = LaunchConfig(app="conformance.apps.probe:survivor")


async def _run(
    asgi: Probe,
    script: Sequence[dict[str, Any]],
    *,
    bound: float,
    config: LaunchConfig | None = None,
    stay_for_the_app: bool = False,
) -> Outcome:
    """Send a request carrying ``script`` on a new connection and read what comes back.

    With ``stay_for_the_app`` the client keeps the connection until the app has reported
    its whole script (bounded): a ``send()`` made after the client left may return
    quietly, as www.rst allows, so on a busy machine a client that gave up first would
    turn "send() must raise" into a verdict about timing.
    """
    response: Response | None = None
    error, timed_out = "", False
    async with await asgi.begin(script=script, config=config, timeout=units(3)) as live:
        try:
            response = await live.read_response(timeout=bound)
        except ServerTimeout as exc:
            error, timed_out = str(exc), True
        except ClientError as exc:
            error = str(exc)
        if stay_for_the_app:
            await _script_report(asgi, live.rid)
        head, received = live.stream.head_status(), live.stream.received()
    return Outcome(live.rid, response, error, timed_out, head, received)


async def _script_report(asgi: Probe, rid: str) -> list[Observation]:
    """The app's report of its whole script (none if it does not come within 3 units)."""
    return await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "script", units(3))


async def _timeline(asgi: Probe, rid: str) -> list[dict[str, Any]]:
    found = await _script_report(asgi, rid)
    if not found:
        raise ConformanceFailure("the probe app never reported its script")
    timeline: list[dict[str, Any]] = found[0]["timeline"]
    return timeline


def _send_outcome(timeline: list[dict[str, Any]], index: int) -> tuple[bool, str]:
    """Whether step ``index`` (a send) raised, and what it did, in words."""
    if index >= len(timeline):
        return False, "was never reached"
    entry = timeline[index]
    if entry.get("ok"):
        return False, "returned quietly"
    return True, f"raised {entry.get('error')}"


async def _scenario(asgi: Probe, name: str) -> Any:
    """What scenario ``name`` returned (or raised); they all start with the target's server."""
    return await scenario(asgi, __name__, name)


# -- the app raises ----------------------------------------------------------------------------


@requirement("http.error.exception-before-start")
async def test_exception_before_start_never_becomes_a_success(asgi: Probe) -> None:
    """An app that raises before http.response.start: the client gets an error status or a close, never a 2xx."""
    outcome: Outcome = await _scenario(asgi, "exception-before-start")
    sent = "GET / to an app that raises before responding"
    expect(
        not outcome.timed_out,
        sent=sent,
        expected=f"an error response or a close within {units(3):.1f}s",
        observed=outcome.describe(),
    )
    status = outcome.response.status if outcome.response is not None else None
    expect(
        status is None or status >= 400,
        sent=sent,
        expected="an error status (the app never chose one) or a closed connection",
        observed=outcome.describe(),
    )
    asgi.observe(outcome.describe())


@requirement("http.error.exception-response")
async def test_exception_response_is_recorded(asgi: Probe) -> None:
    """The status, body and connection fate when the app raises before responding are recorded."""
    asgi.observe(await _scenario(asgi, "exception-response"))


async def _exception_response(asgi: Probe) -> str:
    """What the client got from an app that raised before responding, and the connection's fate."""
    script = [steps.read_body(units(2)), steps.fail()]
    async with await asgi.begin(script=script, timeout=units(3)) as live:
        try:
            response = await live.read_response(timeout=units(3))
        except ClientError as exc:
            raise ConformanceFailure(f"no response: {exc}") from None
        what = f"{response.status} {response.body[:60]!r}"
        if (response.header(b"connection") or b"").lower() == b"close":
            return f"{what}; Connection: close"
        try:
            follow_up = Request(headers=asgi.probe_headers(live.rid, "echo"))
            again = await live.connection.exchange(follow_up, timeout=units(3))
            fate = f"connection kept open (next request: {again.status})"
        except (ClientError, OSError, h11.ProtocolError) as exc:
            fate = f"connection closed ({type(exc).__name__})"
    return f"{what}; {fate}"


def _raise_mid_body(headers: Sequence[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    return [
        steps.read_body(units(2)),
        steps.start(200, headers),
        steps.body(b"partial-", more=True),
        steps.fail(),
    ]


@requirement("http.error.exception-mid-body")
async def test_exception_mid_body_leaves_response_incomplete(asgi: Probe) -> None:
    """An app that raises after part of a body: the connection closes, no chunked terminator, no length met."""
    # Two requests at once, without Content-Length (chunked) and with Content-Length 100
    # (8 bytes sent), on an instance of their own: daphne 4.2 stops reaping apps for good
    # once one raises mid-response (server.py application_checker dies in handle_exception).
    outcomes: dict[str, Outcome] = {}
    for name in _MID_BODY:
        outcomes[name] = await _scenario(asgi, f"mid-body: {name}")
    for name in _MID_BODY:
        outcome = outcomes[name]
        sent = f"GET / to an app that starts a 200 ({name}), sends 8 bytes, then raises"
        expect(
            not outcome.timed_out,
            sent=sent,
            expected=f"the connection closed within {units(2):.1f}s",
            observed=outcome.describe(),
        )
        expect(
            outcome.response is None or outcome.response.status >= 500,
            sent=sent,
            expected="the connection closed before the response is complete",
            observed=outcome.describe() + " (a truncated body passed off as whole)",
        )
    asgi.observe("; ".join(f"{name}: {outcomes[name].describe()}" for name in _MID_BODY))


_MID_BODY: dict[str, list[tuple[bytes, bytes]]] = {
    "no Content-Length": [],
    "Content-Length 100": [(b"content-length", b"100")],
}


@requirement("http.error.no-response")
async def test_app_returning_without_response_is_recorded(asgi: Probe) -> None:
    """What the client gets when the app returns without sending http.response.start is recorded."""
    outcome: Outcome = await _scenario(asgi, "no-response")
    if outcome.timed_out:
        raise ConformanceFailure(f"no response and no close: {outcome.describe()}")
    asgi.observe(outcome.describe())


# -- the app sends invalid events --------------------------------------------------------------

#: The body of every response in these checks; invalid starts announce its length too.
BODY = b"the-response-body"
SIZED = [(b"content-length", str(len(BODY)).encode())]
#: What an app that caught the error sends instead: a 500 of its own (never a 2xx).
FALLBACK = [
    steps.send({"type": "http.response.start", "status": 500, "headers": SIZED}, carry_on=True),
    steps.body(BODY),
]


async def _scripted(
    asgi: Probe, script: Sequence[dict[str, Any]]
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Run ``script`` (bound: 2 units), then fetch what the app did, step by step."""
    outcome = await _run(asgi, script, bound=units(2), stay_for_the_app=True)
    return outcome, await _timeline(asgi, outcome.rid)


def _invalid_script(invalid: dict[str, Any]) -> list[dict[str, Any]]:
    """``invalid``, then the app's fallback."""
    return [steps.read_body(units(2)), steps.send(invalid, carry_on=True), *FALLBACK]


async def _invalid(asgi: Probe, name: str, sent: str) -> None:
    """Judge scenario ``name``: an ``invalid`` event, then the app's fallback, on both ends.

    ``send()`` must raise; the client must see no 2xx head, which only the invalid
    event could have produced (the fallback is a 500).
    """
    outcome, timeline = await _scenario(asgi, name)
    raised, did = _send_outcome(timeline, 1)
    observed = f"send() {did}; the client got {outcome.describe()}"
    expect(raised, sent=sent, expected="send() to raise", observed=observed)
    expect(
        not _garbage_reached(outcome),
        sent=sent,
        expected="no 2xx head on the wire (the app's fallback is a 500)",
        observed=observed,
    )
    asgi.observe(f"send() {did}; the client got {outcome.describe()[:80]}")


def _garbage_reached(outcome: Outcome) -> bool:
    """A 2xx head on the wire: only an invalid event could have made it."""
    status = outcome.head_status
    return status is not None and 200 <= status < 300


@requirement("http.error.invalid-type")
async def test_send_of_unknown_event_type_raises(asgi: Probe) -> None:
    """send() of {"type": "http.response.bogus"} raises."""
    await _invalid(asgi, "invalid-type", "an event of type 'http.response.bogus'")


@requirement("http.error.invalid-status")
async def test_start_with_str_status_raises(asgi: Probe) -> None:
    """http.response.start with status "200" (a str) raises, and no 2xx goes out."""
    await _invalid(asgi, "invalid-status", "http.response.start with status '200' (str)")


@requirement("http.error.invalid-header")
async def test_start_with_str_header_name_raises(asgi: Probe) -> None:
    """http.response.start with a str header name raises, and no 2xx goes out."""
    await _invalid(asgi, "invalid-header-name", "a start with header ('x-str', b'v') (str name)")


@requirement("http.error.invalid-header")
async def test_start_with_str_header_value_raises(asgi: Probe) -> None:
    """http.response.start with a str header value raises, and no 2xx goes out."""
    await _invalid(asgi, "invalid-header-value", "a start with header (b'x-str', 'v') (str value)")


@requirement("http.error.body-before-start")
async def test_body_before_start_raises(asgi: Probe) -> None:
    """http.response.body sent before any http.response.start raises, and no 2xx goes out."""
    await _invalid(asgi, "body-before-start", "http.response.body before http.response.start")


@requirement("http.error.invalid-body")
async def test_body_of_str_raises(asgi: Probe) -> None:
    """http.response.body with a str body raises, and the str never reaches the client."""
    text = _STR_BODY
    outcome, timeline = await _scenario(asgi, "str-body")
    raised, did = _send_outcome(timeline, 2)
    sent = "a valid 200 start, then http.response.body with a str body"
    observed = f"send() {did}; the client got {outcome.describe()}"
    expect(raised, sent=sent, expected="send() to raise", observed=observed)
    expect(
        text.encode() not in outcome.received,
        sent=sent,
        expected="the str nowhere on the wire",
        observed=observed,
    )
    asgi.observe(f"send() {did}")


@requirement("http.error.second-start")
async def test_second_start_raises(asgi: Probe) -> None:
    """A second http.response.start raises, and its status never reaches the client."""
    outcome, timeline = await _scenario(asgi, "second-start")
    raised, did = _send_outcome(timeline, 2)
    sent = "http.response.start 200, then http.response.start 201"
    observed = f"send() {did}; the client got {outcome.describe()}"
    expect(raised, sent=sent, expected="the second send() to raise", observed=observed)
    expect(
        outcome.head_status != 201 and b" 201 " not in outcome.received,
        sent=sent,
        expected="the second start nowhere on the wire",
        observed=f"received {outcome.received[:300]!r}",
    )
    asgi.observe(f"send() {did}")


#: The str sent as a body by the str-body scenario.
_STR_BODY = "a-str-body-instead-of-bytes"


@scenarios(__name__, early=("server-survives", *(f"mid-body: {name}" for name in _MID_BODY)))
def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """Every independent scenario of this module by name: a coroutine of a Probe that sends
    its requests and returns what came back (or raises), for its check to judge.

    The mid-body scenarios (the isolated instance) and server-survives (the survivor
    instance) boot an instance and then wait out bounds: on a server without lifespan
    their paths are the column's longest, so they queue early."""
    return {
        "exception-before-start": partial(
            _run, script=[steps.read_body(units(2)), steps.fail()], bound=units(3)
        ),
        "exception-response": _exception_response,
        **{
            f"mid-body: {name}": partial(
                _run, script=_raise_mid_body(headers), bound=units(2), config=ISOLATED
            )
            for name, headers in _MID_BODY.items()
        },
        "no-response": partial(_run, script=[steps.read_body(units(2))], bound=units(2)),
        "invalid-type": partial(
            _scripted,
            script=_invalid_script(
                {"type": "http.response.bogus", "status": 200, "headers": SIZED}
            ),
        ),
        "invalid-status": partial(
            _scripted,
            script=_invalid_script(
                {"type": "http.response.start", "status": "200", "headers": SIZED}
            ),
        ),
        "invalid-header-name": partial(
            _scripted,
            script=_invalid_script(
                {"type": "http.response.start", "status": 200, "headers": [("x-str", b"v"), *SIZED]}
            ),
        ),
        "invalid-header-value": partial(
            _scripted,
            script=_invalid_script(
                {"type": "http.response.start", "status": 200, "headers": [(b"x-str", "v"), *SIZED]}
            ),
        ),
        "body-before-start": partial(
            _scripted,
            script=_invalid_script(
                {"type": "http.response.body", "body": BODY, "more_body": False}
            ),
        ),
        "str-body": partial(
            _scripted,
            script=[
                steps.read_body(units(2)),
                steps.start(200),
                steps.send(
                    {"type": "http.response.body", "body": _STR_BODY, "more_body": True},
                    carry_on=True,
                ),
                steps.body(BODY),
            ],
        ),
        "server-survives": _errors_then_fresh_requests,
        "second-start": partial(
            _scripted,
            script=[
                steps.read_body(units(2)),
                steps.start(200, SIZED),
                steps.send(
                    {"type": "http.response.start", "status": 201, "headers": SIZED}, carry_on=True
                ),
                steps.body(BODY),
            ],
        ),
    }


# -- the server carries on -----------------------------------------------------------------------


#: Scripts that each end in an app error of a different kind.
_FAILURES: dict[str, list[dict[str, Any]]] = {
    "raise before start": [steps.read_body(units(2)), steps.fail()],
    "raise mid-body": _raise_mid_body([]),
    "return without a response": [steps.read_body(units(2))],
    "invalid start, propagated": [
        steps.read_body(units(2)),
        steps.send({"type": "http.response.start", "status": "x"}, propagate=True),
    ],
    "body before start, propagated": [
        steps.read_body(units(2)),
        steps.send({"type": "http.response.body", "body": b"x"}, propagate=True),
    ],
    "second start, propagated": [
        steps.read_body(units(2)),
        steps.start(200),
        steps.send({"type": "http.response.start", "status": 200}, propagate=True),
    ],
}


async def _errors_then_fresh_requests(asgi: Probe) -> tuple[str, bool, Outcome]:
    """Six kinds of app error, each run to its end, then a fresh request and a fresh raising app.

    On an instance of its own (:data:`SURVIVOR`): the errors may break it for
    anything else, and nothing else's errors may be blamed on it.
    """
    async with AsyncExitStack() as stack:
        rids = {}
        for name, script in _FAILURES.items():
            live = await asgi.begin(script=script, config=SURVIVOR, timeout=units(3))
            rids[name] = (await stack.enter_async_context(live)).rid
        for rid in rids.values():
            await _timeline(asgi, rid)
        try:
            after = await asgi.send(config=SURVIVOR, timeout=units(3))
            observed = f"{after.response.status} {after.response.body[:80]!r}"
            ok = after.response.status == 200
        except ClientError as exc:
            observed, ok = str(exc), False
        again = await _run(
            asgi, [steps.read_body(units(2)), steps.fail()], bound=units(2), config=SURVIVOR
        )
    return observed, ok, again


@requirement("http.error.server-survives")
async def test_server_keeps_serving_after_app_errors(asgi: Probe) -> None:
    """After six kinds of app error at once, a fresh request gets 200 and a fresh raising app still gets its error."""
    observed, ok, again = await _scenario(asgi, "server-survives")
    sent = f"after app errors ({', '.join(_FAILURES)}): "
    expect(ok, sent=sent + "a fresh GET", expected="200", observed=observed)
    status = again.response.status if again.response is not None else None
    expect(
        not again.timed_out and (status is None or status >= 400),
        sent=sent + "a fresh GET to an app that raises",
        expected=f"an error response or a close within {units(2):.1f}s, as before",
        observed=again.describe(),
    )
    asgi.observe(f"then a fresh raising app got {again.describe()[:60]}")
