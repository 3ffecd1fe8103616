"""Lifespan: startup, shutdown, failures and state (lifespan.rst; www.rst, the ``state`` key).

Every check here watches a server start or stop, so each scenario runs an instance
of its own (:mod:`conformance._lifespan`) serving a purpose-built probe app
(:mod:`conformance.apps.lifespan`), and the scenarios of a target run at once (a
:class:`~conformance._batch.Batch`): boots and bounded waits overlap.

``lifecycle`` is one instance's whole life, once stopped by SIGTERM and once by
SIGINT: startup held by the app while a request arrives (it must wait), the
state seen by two HTTP requests and a WebSocket, then a request in flight when
the signal comes (lifespan.shutdown must wait for it), then shutdown held by the
app while the test watches that the process stays up.  The other scenarios are a
failing startup (with and without a message), an app that raises on the lifespan
scope or after startup, a failing shutdown, an app that never answers shutdown,
and a request that never ends when the server is told to stop.

A server that never called the main probe app with a lifespan scope (daphne) is
``unsupported`` on every row, with one reason, and no instance is started for it.
Timings in a detail are whole time units (:func:`conformance._lifespan.bucket`), so
a matrix reads the same on every run.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pytest

from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._lifespan import (
    Instance,
    bucket,
    describe_exit,
    lifespan_instance,
    require_lifespan,
)
from conformance._probe import Probe, expect
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance._verdicts import ConformanceFailure, HarnessError, NotJudged, Unsupported
from conformance.apps.lifespan import STATE_KEYS, token
from conformance.clients import Response


SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long a request is held in flight after the signal, and shutdown held after it arrives
#: (shorter than any graceful timeout a server is likely to apply: the request must end by
#: itself, not be cut off).
HOLD = 0.5
#: How long the app holds startup back while a request waits, and shutdown.complete back
#: while the test watches the process stay up.
STARTUP_HOLD = 1.0
SHUTDOWN_HOLD = 1.0
#: How long a never-ending request, or a never-answered shutdown, is watched.
WATCH = 4.0
NO_ANSWER_WATCH = 3.0


def _event_type(report: Observation) -> str:
    event = report.get("event")
    return str(event.get("type")) if isinstance(event, dict) else repr(event)


def _first(reports: list[Observation], event_type: str) -> Observation | None:
    for report in reports:
        if _event_type(report) == event_type or report.get("type") == event_type:
            return report
    return None


async def _wait_event(instance: Instance, event_type: str, timeout: float) -> Observation | None:
    """The lifespan half's report of receiving ``event_type``, waiting at most ``timeout``."""

    def found() -> list[Observation]:
        return [r for r in instance.reported("event") if _event_type(r) == event_type]

    reports = await instance.server.channel.until(found, timeout=timeout)
    return reports[0] if reports else None


async def _wait_sent(instance: Instance, event_type: str, timeout: float) -> Observation | None:
    def found() -> list[Observation]:
        return [r for r in instance.reported("sent") if r.get("type") == event_type]

    reports = await instance.server.channel.until(found, timeout=timeout)
    return reports[0] if reports else None


async def _calls(instance: Instance, rid: str, outcome: object) -> list[Observation]:
    """The app's reports of being called for ``rid``.

    The report travels the side channel, the response the TCP connection: after a
    response the report is waited for (bounded); after a refusal or a close, a short
    bound still catches a call whose report is on its way.
    """
    bound = units(3) if isinstance(outcome, Response) else units(0.5)
    return await instance.reports("call", bound, rid=rid)


def _describe(outcome: Response | str) -> str:
    if isinstance(outcome, str):
        return outcome
    return f"a {outcome.status} response"


# -- the lifecycle: startup, state, shutdown ---------------------------------------------------


@dataclass
class Lifecycle:
    """What one instance's life showed, from a held startup to its exit after a signal."""

    signal: str
    calls: list[Observation]
    events: list[Observation] = field(default_factory=list)
    #: The request sent while startup was pending: was the app called during the window,
    #: when, and what did the client get.
    early_call: Observation | None = None
    early_in_window: bool = False
    early_outcome: str = ""
    #: Set when connections were refused while startup was pending.
    early_refused: str = ""
    complete_sent: Observation | None = None
    #: What each state request found, by name ("http 1", "http 2", "websocket").
    states: dict[str, Observation] = field(default_factory=dict)
    state_errors: list[str] = field(default_factory=list)
    #: The keys of the lifespan namespace when shutdown arrived.
    shutdown_keys: list[str] | None = None
    #: The request in flight when the signal came: when it ended, and whether shutdown came first.
    held_left: Observation | None = None
    held_outcome: str = ""
    shutdown: Observation | None = None
    shutdown_in_window: bool = False
    #: The exit status while the app held shutdown.complete back (None: still running).
    exit_while_held: int | None = None
    exit_status: int | None = None
    log: str = ""

    def scope(self) -> dict[str, Any]:
        if not self.calls:
            raise ConformanceFailure("the app was never called with a lifespan scope")
        scope: dict[str, Any] = self.calls[0]["scope"]
        return scope


async def _early_request(
    instance: Instance, rid: str, out: dict[str, Response | str], pending: anyio.Event
) -> None:
    """A request sent while startup is pending; while connections are refused, tried again.

    A server that listens only once startup is over refuses it at first; the
    request is then retried until startup is released (``pending`` set), so that it
    is the app's startup, not the listener, that the check sees it wait for.
    """
    refused, deadline = 0, float("inf")
    while True:
        outcome = await instance.request(rid, timeout=units(6))
        if not isinstance(outcome, str) or not _refused(outcome):
            break
        if pending.is_set():  # startup is over: the listener gets a bounded while to open
            deadline = min(deadline, _now() + units(3))
            if _now() > deadline:
                break
        refused += 1
        await anyio.sleep(0.05)  # a retry pace, not a bound: the bounds are above
    out["outcome"] = outcome
    if refused:
        out["refused"] = f"refused while startup was pending ({'then ' + _describe(outcome)})"


def _refused(outcome: str) -> bool:
    lowered = outcome.lower()
    return "refused" in lowered or "connection attempts failed" in lowered


async def _lifecycle(probe: Probe, sig: signal.Signals) -> Lifecycle:
    await require_lifespan(probe)
    app = "lifecycle" if sig is signal.SIGTERM else "lifecycle_sigint"
    async with lifespan_instance(probe, app, ready=False) as instance:
        calls = await instance.reports("call", units(20))
        if not calls:
            raise HarnessError(f"the lifespan app was never called\n{instance.evidence()}")
        life = Lifecycle(sig.name, calls)
        await _wait_event(instance, "lifespan.startup", units(5))
        # A request while the app holds startup back: within the window it must not reach the app.
        early_rid, early = probe.new_rid(), dict[str, Response | str]()
        released = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_early_request, instance, early_rid, early, released)
            life.early_in_window = bool(
                await instance.reports("call", units(STARTUP_HOLD), rid=early_rid)
            )
            instance.release("startup")
            released.set()
        life.early_outcome = _describe(early.get("outcome", "no outcome"))
        refused = early.get("refused")
        life.early_refused = refused if isinstance(refused, str) else ""
        found = await _calls(instance, early_rid, early.get("outcome"))
        life.early_call = found[0] if found else None
        life.complete_sent = await _wait_sent(instance, "lifespan.startup.complete", units(3))
        why = await instance.wait_ready(units(10))
        if why:
            raise HarnessError(f"the instance never served after startup: {why}")
        await _state_requests(probe, instance, life)
        await _stop_with_request_in_flight(probe, instance, life, sig)
        life.events = instance.reported("event")
        life.log = instance.output()
    return life


async def _state_requests(probe: Probe, instance: Instance, life: Lifecycle) -> None:
    """Two HTTP requests one after the other, then a WebSocket, each reporting its state."""
    for name in ("http 1", "http 2", "websocket"):
        rid = probe.new_rid()
        if name == "websocket":
            error = await instance.websocket(rid, timeout=units(3))
        else:
            outcome = await instance.request(rid, b"state", timeout=units(3))
            error = "" if isinstance(outcome, Response) else outcome
        found = await instance.reports("state", units(3), rid=rid)
        if found:
            life.states[name] = found[0]
        else:
            life.state_errors.append(f"{name}: the app never reported ({error or 'no error'})")


async def _stop_with_request_in_flight(
    probe: Probe, instance: Instance, life: Lifecycle, sig: signal.Signals
) -> None:
    held_rid, held = probe.new_rid(), dict[str, Response | str]()

    async def hold() -> None:
        held["outcome"] = await instance.request(held_rid, b"hold", timeout=units(10))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hold)
        if not await instance.reports("held", units(3), rid=held_rid):
            raise HarnessError("the request to hold never reached the app")
        instance.signal(sig)
        life.shutdown_in_window = bool(
            await _wait_event(instance, "lifespan.shutdown", units(HOLD))
        )
        instance.release("release")
    life.held_outcome = _describe(held.get("outcome", "no outcome"))
    left = await instance.reports("left", units(3), rid=held_rid)
    life.held_left = left[0] if left else None
    life.shutdown = await _wait_event(instance, "lifespan.shutdown", units(3))
    state = await instance.reports("state", units(3)) if life.shutdown else []
    life.shutdown_keys = state[0].get("keys") if state else None
    if life.shutdown is None:
        life.exit_status = await instance.wait_exit(units(1))
        return
    # The app holds shutdown.complete back: the process must stay up meanwhile.
    life.exit_while_held = await instance.wait_exit(units(SHUTDOWN_HOLD))
    instance.release("shutdown")
    life.exit_status = await instance.wait_exit(units(3))


# -- startup that fails, apps that raise --------------------------------------------------------


@dataclass
class Ending:
    """How an instance ended up: served or not, its exit, what it printed."""

    app: str
    served: bool
    reached_app: bool
    outcome: str
    exit_status: int | None
    calls: list[Observation]
    events: list[Observation]
    log: str
    token: str

    def exit(self) -> str:
        return describe_exit(self.exit_status)


async def _failed_startup(probe: Probe, app: str, kind: str) -> Ending:
    """Startup fails: a request sent right after must not reach the app; the server should exit."""
    await require_lifespan(probe)
    async with lifespan_instance(probe, app, ready=False) as instance:
        if not await _wait_sent(instance, "lifespan.startup.failed", units(20)):
            raise HarnessError(f"the app never sent lifespan.startup.failed\n{instance.evidence()}")
        rid = probe.new_rid()
        outcome: dict[str, Response | str] = {}

        async def attempt() -> None:
            # Retried while refused: a server that opens its listener late would serve it then.
            deadline = _now() + units(3)
            while True:
                outcome["outcome"] = result = await instance.request(rid, timeout=units(2))
                if not isinstance(result, str) or not _refused(result):
                    return
                if not instance.running() or _now() > deadline:
                    return
                await anyio.sleep(0.05)  # a retry pace; the bound is the deadline

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(attempt)
            status = await instance.wait_exit(units(3))
        result = outcome.get("outcome", "no outcome")
        return Ending(
            app=app,
            served=isinstance(result, Response) and result.status < 400,
            reached_app=bool(await _calls(instance, rid, result)),
            outcome=_describe(result),
            exit_status=status,
            calls=instance.reported("call"),
            events=instance.reported("event"),
            log=instance.output(),
            token=token(kind, instance.tag),
        )


async def _raising_app(probe: Probe, app: str, kind: str) -> Ending:
    """The app raises in its lifespan half: requests are served, no later lifespan event."""
    await require_lifespan(probe)
    async with lifespan_instance(probe, app, ready=False) as instance:
        await instance.reports("call", units(20))
        why = await instance.wait_ready(units(10))
        rid = probe.new_rid()
        outcome: Response | str = why
        if not why:
            outcome = await instance.request(rid, timeout=units(3))
        instance.signal(signal.SIGTERM)
        status = await instance.wait_exit(units(3))
        return Ending(
            app=app,
            served=isinstance(outcome, Response) and outcome.status == 200,
            reached_app=bool(await _calls(instance, rid, outcome)),
            outcome=_describe(outcome) if isinstance(outcome, Response) else outcome[:300],
            exit_status=status,
            calls=instance.reported("call"),
            events=instance.reported("event"),
            log=instance.output(),
            token=token(kind, instance.tag),
        )


# -- shutdown that fails or never comes, a request that never ends -------------------------------


@dataclass
class Watched:
    """What a stopped instance did within the watch, as a stable sentence, with evidence."""

    observed: str
    exit_status: int | None = None
    log: str = ""
    token: str = ""
    shutdown_seen: bool = False


async def _failed_shutdown(probe: Probe) -> Watched:
    await require_lifespan(probe)
    async with lifespan_instance(probe, "shutdown_fails") as instance:
        instance.signal(signal.SIGTERM)
        seen = await _wait_event(instance, "lifespan.shutdown", units(3))
        status = await instance.wait_exit(units(3))
        return Watched(
            observed=describe_exit(status),
            exit_status=status,
            log=instance.output(),
            token=token("shutdown-failed", instance.tag),
            shutdown_seen=seen is not None,
        )


async def _never_answered(probe: Probe) -> Watched:
    await require_lifespan(probe)
    async with lifespan_instance(probe, "shutdown_never") as instance:
        instance.signal(signal.SIGTERM)
        seen = await _wait_event(instance, "lifespan.shutdown", units(3))
        if seen is None:
            return Watched("never sent lifespan.shutdown within 3 units of SIGTERM")
        status = await instance.wait_exit(units(NO_ANSWER_WATCH))
        if status is None:
            await instance.kill()  # a second SIGTERM and its grace would tell nothing more
            return Watched(
                f"still waiting for lifespan.shutdown.complete {NO_ANSWER_WATCH:g} units after sending "
                "lifespan.shutdown (no limit within the watch; the test then killed it)",
                shutdown_seen=True,
            )
        after = bucket(_now() - seen["t"])
        return Watched(
            f"gave up waiting: {describe_exit(status)} {after} after lifespan.shutdown",
            status,
            shutdown_seen=True,
        )


def _now() -> float:
    return time.monotonic()


async def _request_that_never_ends(probe: Probe) -> Watched:
    """SIGTERM with a request in flight that never ends by itself: how long does the server wait?"""
    await require_lifespan(probe)
    async with lifespan_instance(probe, "serving") as instance:
        rid = probe.new_rid()
        async with anyio.create_task_group() as tasks:

            async def hold() -> None:
                await instance.request(rid, b"hold", timeout=units(WATCH + 2))

            tasks.start_soon(hold)
            if not await instance.reports("held", units(3), rid=rid):
                raise HarnessError("the request to hold never reached the app")
            began = instance.signal(signal.SIGTERM)
            left = await instance.reports("left", units(WATCH), rid=rid)
            # After the request ended, lifespan.shutdown follows at once (or never).
            shutdown = await _wait_event(instance, "lifespan.shutdown", units(1) if left else 0)
            instance.release("release")
            # All is observed: the client's end of the held request is not waited out (a
            # server that cancels the app may leave the stream open).
            tasks.cancel_scope.cancel()
        if left:
            how = "cancelled the request" if left[0].get("cancelled") else "the request ended"
            then = "then sent lifespan.shutdown" if shutdown else "no lifespan.shutdown yet"
            return Watched(f"{how} {bucket(left[0]['t'] - began)} after SIGTERM; {then}")
        if shutdown is not None:
            return Watched(
                f"sent lifespan.shutdown {bucket(shutdown['t'] - began)} after SIGTERM, "
                "the request still in flight"
            )
        return Watched(
            f"still waiting for the in-flight request {WATCH:.0f} units after SIGTERM "
            "(no limit within the watch)"
        )


# -- which scenarios a run needs --------------------------------------------------------------

_TERM, _INT = (f"lifecycle {sig.name}" for sig in SIGNALS)
_RAISES = ("raises on scope",)
#: The scenarios each requirement's checks read.
USES: dict[str, tuple[str, ...]] = {
    **{
        rid: (_TERM,)
        for rid in (
            "lifespan.scope.type",
            "lifespan.scope.asgi-version",
            "lifespan.scope.spec-version",
            "lifespan.startup.first-event",
            "lifespan.startup.once-per-loop",
            "lifespan.startup.before-requests",
            "lifespan.startup.early-requests",
            "lifespan.state.offered",
            "lifespan.state.http",
            "lifespan.state.websocket",
            "lifespan.state.isolated",
            "lifespan.state.shallow",
            "lifespan.state.untouched",
        )
    },
    "lifespan.shutdown.after-requests": (_TERM, _INT),
    "lifespan.shutdown.complete-then-exit": (_TERM, _INT),
    "lifespan.startup-failed.not-served": ("startup failed",),
    "lifespan.startup-failed.exit": ("startup failed",),
    "lifespan.startup-failed.message": ("startup failed",),
    "lifespan.startup-failed.no-message": ("startup failed silently",),
    "lifespan.error.on-scope": _RAISES,
    "lifespan.error.output": _RAISES,
    "lifespan.error.after-startup": ("raises after startup",),
    "lifespan.shutdown.request-wait": ("request never ends",),
    "lifespan.shutdown-failed.exit": ("shutdown failed",),
    "lifespan.shutdown-failed.message": ("shutdown failed",),
    "lifespan.shutdown.no-answer": ("shutdown never answered",),
}

#: Target name -> the scenarios its selected checks read; None until the plan is known.
_plan: dict[str, set[str]] | None = None


@pytest.fixture(scope="session", autouse=True)
def asgi_lifespan_plan(request: pytest.FixtureRequest) -> None:
    """Note which scenarios each target's *selected* checks read, before its server starts.

    Every scenario boots a server of its own; a run that selects a few lifespan
    checks (``-k``, a mutant's column) should not pay for the others.  This fixture
    is set up before the target's server (pytest sets up autouse fixtures of a scope
    first), so the scenarios started with the server know the plan.  Where it is
    not known yet (the first target of a run whose first checks are not lifespan
    ones), every scenario runs, as before.
    """
    global _plan
    plan: dict[str, set[str]] = {}
    everything = set(_scenarios())
    for item in request.session.items:
        if getattr(getattr(item, "module", None), "__name__", None) != __name__:
            continue
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get("asgi_server") if callspec is not None else None
        marker = item.get_closest_marker("asgi_requirement")
        uses = USES.get(str(marker.args[0])) if marker is not None else None
        plan.setdefault(str(target), set()).update(uses if uses is not None else everything)
    _plan = plan


def _planned(
    name: str, run: Callable[[Probe], Awaitable[Any]]
) -> Callable[[Probe], Awaitable[Any]]:
    """``run``, unless no selected check of the probe's target reads scenario ``name``."""

    async def planned(probe: Probe) -> Any:
        if _plan is not None and name not in _plan.get(probe.target.name, ()):
            return None  # never read: no server booted for it
        return await run(probe)

    return planned


@scenarios(
    __name__,
    lead=("request never ends", "shutdown never answered"),
    early=(_TERM, _INT),
    standalone=True,
)
def _planned_scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """Every scenario of this module, each on an instance of its own, if a selected check reads it."""
    return {name: _planned(name, run) for name, run in _scenarios().items()}


def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """Every scenario of this module by name."""
    return {
        **{f"lifecycle {sig.name}": partial(_lifecycle, sig=sig) for sig in SIGNALS},
        "startup failed": partial(_failed_startup, app="startup_fails", kind="startup-failed"),
        "startup failed silently": partial(
            _failed_startup, app="startup_fails_silently", kind="startup-failed"
        ),
        "raises on scope": partial(_raising_app, app="raises_on_scope", kind="raise-on-scope"),
        "raises after startup": partial(
            _raising_app, app="raises_after_startup", kind="raise-after-startup"
        ),
        "shutdown failed": _failed_shutdown,
        "shutdown never answered": _never_answered,
        "request never ends": _request_that_never_ends,
    }


async def _scenario(asgi: Probe, name: str) -> Any:
    """Scenario ``name``'s outcome; ``unsupported`` at once where the target runs no lifespan.

    Several checks share one scenario: an exception it raised is raised afresh for
    each, so that a traceback does not grow with every check that re-raises it.
    """
    await require_lifespan(asgi)
    try:
        outcome = await scenario(asgi, __name__, name)
    except Unsupported as exc:
        raise Unsupported(str(exc)) from None
    except HarnessError as exc:
        raise HarnessError(f"scenario {name!r}: {exc}") from None
    if outcome is None:
        raise HarnessError(f"scenario {name!r} was not planned for {asgi.target.name} (USES)")
    return outcome


async def _life(asgi: Probe, sig: signal.Signals = signal.SIGTERM) -> Lifecycle:
    life: Lifecycle = await _scenario(asgi, f"lifecycle {sig.name}")
    return life


# -- the scope ---------------------------------------------------------------------------------


@requirement("lifespan.scope.type")
async def test_lifespan_scope_is_a_dict_of_type_lifespan(asgi: Probe) -> None:
    """The lifespan scope is a dict whose keys are all str and whose type is "lifespan"."""
    scope = (await _life(asgi)).scope()
    bad = [key for key in scope if not isinstance(key, str)]
    expect(
        isinstance(scope, dict) and not bad,
        sent="nothing (the server calls the app at startup)",
        expected="a dict with str keys",
        observed=f"{type(scope).__name__} with non-str keys {bad!r}",
    )
    expect(
        scope.get("type") == "lifespan",
        sent="nothing (the server calls the app at startup)",
        expected="scope['type'] == 'lifespan'",
        observed=f"{scope.get('type')!r}",
    )


@requirement("lifespan.scope.asgi-version")
async def test_lifespan_scope_names_the_asgi_version(asgi: Probe) -> None:
    """scope["asgi"] is a dict whose "version" is a str."""
    scope = (await _life(asgi)).scope()
    versions = scope.get("asgi")
    version = versions.get("version") if isinstance(versions, dict) else None
    expect(
        isinstance(version, str),
        sent="nothing (the server calls the app at startup)",
        expected="scope['asgi']['version'], a str",
        observed=f"scope['asgi'] = {versions!r}",
    )
    asgi.observe(f"version {version!r}")


@requirement("lifespan.scope.spec-version")
async def test_lifespan_spec_version_is_a_lifespan_version(asgi: Probe) -> None:
    """asgi["spec_version"] is missing (meaning "1.0") or one of "1.0", "2.0"."""
    scope = (await _life(asgi)).scope()
    found = scope.get("asgi")
    versions: dict[str, Any] = found if isinstance(found, dict) else {}
    if "spec_version" not in versions:
        asgi.observe("missing (1.0 by default)")
        return
    value = versions["spec_version"]
    expect(
        value in ("1.0", "2.0"),
        sent="nothing (the server calls the app at startup)",
        expected="'1.0' or '2.0', the versions of lifespan.rst",
        observed=f"spec_version {value!r}",
    )
    asgi.observe(f"spec_version {value!r}")


# -- startup -------------------------------------------------------------------------------------


@requirement("lifespan.startup.first-event")
async def test_startup_is_the_first_event_and_comes_once(asgi: Probe) -> None:
    """Each lifespan call's first event is lifespan.startup, received once.

    A server may run several application instances in one process (per thread or
    event loop, lifespan.rst "Scope"), each with a lifespan call of its own: the
    events are judged per call, and the number of calls is recorded.
    """
    life = await _life(asgi)
    per_call: dict[str, list[str]] = {str(call.get("life")): [] for call in life.calls}
    for event in life.events:
        per_call.setdefault(str(event.get("life")), []).append(_event_type(event))
    wrong = {
        call: types
        for call, types in per_call.items()
        if not types or types[0] != "lifespan.startup" or types.count("lifespan.startup") != 1
    }
    expect(
        bool(per_call) and not wrong,
        sent="SIGTERM after a normal life",
        expected="in every lifespan call, lifespan.startup first, and once",
        observed=f"events per call {wrong or per_call}",
    )
    calls = f"{len(per_call)} lifespan calls" if len(per_call) > 1 else "one lifespan call"
    asgi.observe(f"{calls}; events {next(iter(per_call.values()))}")


@requirement("lifespan.startup.once-per-loop")
async def test_every_serving_loop_ran_one_lifespan(asgi: Probe) -> None:
    """The event loop of each request (two HTTP, one WebSocket) is one a lifespan call ran on, once."""
    life = await _life(asgi)
    lifespans = Counter((call.get("pid"), call.get("loop")) for call in life.calls)
    serving = {name: (facts.get("pid"), facts.get("loop")) for name, facts in life.states.items()}
    expect(
        bool(serving),
        sent="requests after startup",
        expected="the requests to report their event loop",
        observed=f"no request reported: {life.state_errors}",
    )
    wrong = {
        name: lifespans.get(loop, 0) for name, loop in serving.items() if lifespans.get(loop) != 1
    }
    expect(
        not wrong,
        sent="SIGTERM after a normal life, with requests served between startup and shutdown",
        expected="one lifespan call on the event loop of every request",
        observed=f"lifespan calls on the loop of each request: {wrong}",
    )
    asgi.observe(f"{len(set(serving.values()))} serving loop(s), {len(lifespans)} lifespan loop(s)")


@requirement("lifespan.startup.before-requests")
async def test_request_waits_until_startup_completes(asgi: Probe) -> None:
    """A request sent while the app holds startup back does not reach the app before startup.complete."""
    life = await _life(asgi)
    sent = f"a GET while the app held lifespan.startup.complete back for {STARTUP_HOLD:g} unit"
    expect(
        not life.early_in_window,
        sent=sent,
        expected="the app not called for it while startup is pending",
        observed=f"the app was called for it during startup; the client got {life.early_outcome}",
    )
    call, complete = life.early_call, life.complete_sent
    if call is not None and complete is not None:
        expect(
            call["t"] >= complete["t"],
            sent=sent,
            expected="the app called only after it sent lifespan.startup.complete",
            observed="the app was called before it sent lifespan.startup.complete",
        )


@requirement("lifespan.startup.early-requests")
async def test_request_during_startup_is_recorded(asgi: Probe) -> None:
    """What a request sent while startup is pending meets is recorded."""
    life = await _life(asgi)
    if life.early_in_window:
        asgi.observe(f"answered during startup: {life.early_outcome}")
    elif life.early_refused:
        asgi.observe(f"connections {life.early_refused}")
    elif life.early_call is not None:
        asgi.observe(f"held until startup completed, then served: {life.early_outcome}")
    else:
        asgi.observe(f"never reached the app: {_reason(life.early_outcome)}")


def _lines(log: str) -> str:
    """How much the server printed (its text holds times and pids: not for a stable detail)."""
    count = len([line for line in log.splitlines() if not line.startswith("--- ")])
    return "it printed nothing" if not count else f"it printed {count} line(s)"


def _reason(outcome: str) -> str:
    """A client error without addresses or timings, so that the detail is stable."""
    lowered = outcome.lower()
    for marker, text in (
        ("refused", "connection refused"),
        ("connection attempts failed", "connection refused"),
        ("reset", "connection reset"),
        ("closed", "connection closed"),
        ("timeout", "no answer within the bound"),
        ("within", "no answer within the bound"),
    ):
        if marker in lowered:
            return text
    return outcome.split(":")[0]


async def _ending(asgi: Probe, name: str) -> Ending:
    ending: Ending = await _scenario(asgi, name)
    return ending


@requirement("lifespan.startup-failed.not-served")
async def test_failed_startup_is_never_served(asgi: Probe) -> None:
    """After lifespan.startup.failed, a request sent at once never reaches the app."""
    ending = await _ending(asgi, "startup failed")
    expect(
        not ending.reached_app,
        sent="a GET right after the app sent lifespan.startup.failed",
        expected="the app never called for it",
        observed=f"the app was called; the client got {ending.outcome}",
    )
    asgi.observe(f"the request: {_reason(ending.outcome)}")


@requirement("lifespan.startup-failed.exit")
async def test_failed_startup_makes_the_server_exit_with_an_error(asgi: Probe) -> None:
    """After lifespan.startup.failed the server exits, with a non-zero status, within 3 units."""
    ending = await _ending(asgi, "startup failed")
    expect(
        ending.exit_status is not None and ending.exit_status != 0,
        sent="lifespan.startup.failed with a message",
        expected="a non-zero exit within 3 units",
        observed=ending.exit(),
    )
    asgi.observe(ending.exit())


@requirement("lifespan.startup-failed.message")
async def test_failed_startup_message_is_shown(asgi: Probe) -> None:
    """The message of lifespan.startup.failed appears in the server's output."""
    ending = await _ending(asgi, "startup failed")
    expect(
        ending.token in ending.log,
        sent="lifespan.startup.failed with a unique message",
        expected="the message in the server's output",
        observed=f"not in the server's output ({_lines(ending.log)})",
    )


@requirement("lifespan.startup-failed.no-message")
async def test_failed_startup_without_message_is_handled_alike(asgi: Probe) -> None:
    """lifespan.startup.failed without "message": the request never reaches the app, the server exits non-zero."""
    ending = await _ending(asgi, "startup failed silently")
    sent = "lifespan.startup.failed without a message, then a GET"
    expect(
        not ending.reached_app,
        sent=sent,
        expected="the app never called for the request",
        observed=f"the app was called; the client got {ending.outcome}",
    )
    expect(
        ending.exit_status is not None and ending.exit_status != 0,
        sent=sent,
        expected="a non-zero exit within 3 units",
        observed=ending.exit(),
    )
    asgi.observe(ending.exit())


# -- an app that raises ----------------------------------------------------------------------------


def _judge_raising(asgi: Probe, ending: Ending, sent: str, allowed: list[str]) -> None:
    expect(
        ending.served and ending.reached_app,
        sent=sent + ", then a GET",
        expected="the server goes on without lifespan and serves the request",
        observed=f"the client got {ending.outcome} ({ending.exit()})",
    )
    # A server may run one application instance per event loop (lifespan.rst "Scope"),
    # each with its lifespan call: a second call on the same loop is a retry.
    loops = Counter((c.get("pid"), c.get("thread"), c.get("loop")) for c in ending.calls)
    per_call: dict[str, list[str]] = {str(c.get("life")): [] for c in ending.calls}
    for event in ending.events:
        per_call.setdefault(str(event.get("life")), []).append(_event_type(event))
    expect(
        bool(loops)
        and max(loops.values()) == 1
        and all(types == allowed for types in per_call.values()),
        sent=sent + ", then SIGTERM",
        expected=f"no further lifespan call on the same event loop, nor event (events {allowed})",
        observed=f"{len(ending.calls)} lifespan call(s) on {len(loops)} event loop(s), "
        f"events per call {list(per_call.values())}",
    )


@requirement("lifespan.error.on-scope")
async def test_app_raising_on_lifespan_scope_is_still_served(asgi: Probe) -> None:
    """The app raises when called with the lifespan scope: requests are served, no lifespan event follows."""
    ending = await _ending(asgi, "raises on scope")
    _judge_raising(asgi, ending, "an app that raises as soon as it gets the lifespan scope", [])


@requirement("lifespan.error.after-startup")
async def test_app_raising_after_startup_is_still_served(asgi: Probe) -> None:
    """The app raises after receiving lifespan.startup: requests are served, no lifespan event follows."""
    ending = await _ending(asgi, "raises after startup")
    _judge_raising(
        asgi, ending, "an app that raises after receiving lifespan.startup", ["lifespan.startup"]
    )


@requirement("lifespan.error.output")
async def test_output_about_an_app_raising_on_lifespan_is_recorded(asgi: Probe) -> None:
    """What the server prints when the app raises on the lifespan scope is recorded."""
    ending = await _ending(asgi, "raises on scope")
    shown = ending.token in ending.log
    traceback = "Traceback (most recent call last)" in ending.log
    if shown and traceback:
        asgi.observe("printed the app's exception with its traceback")
    elif shown:
        asgi.observe("printed the app's exception, without a traceback")
    elif "lifespan" in ending.log.lower().replace(ending.app, ""):
        asgi.observe("mentioned lifespan, not the app's exception")
    else:
        asgi.observe("printed nothing about it")


# -- shutdown ----------------------------------------------------------------------------------


@requirement("lifespan.shutdown.after-requests")
async def test_shutdown_waits_for_the_request_in_flight(asgi: Probe) -> None:
    """On SIGTERM and on SIGINT, lifespan.shutdown comes after the request in flight has ended."""
    seen = []
    for sig in SIGNALS:
        life = await _life(asgi, sig)
        sent = f"{sig.name} with a request in flight, released {HOLD:g} unit later"
        expect(
            life.shutdown is not None,
            sent=sent,
            expected="lifespan.shutdown once the request has ended",
            observed=f"no lifespan.shutdown ({describe_exit(life.exit_status)}); request: {life.held_outcome}",
        )
        assert life.shutdown is not None
        left = life.held_left
        expect(
            left is not None and life.shutdown["t"] >= left["t"],
            sent=sent,
            expected="lifespan.shutdown only after the request ended",
            observed="lifespan.shutdown arrived while the request was still in flight"
            + (f" (the request then got {life.held_outcome})" if left else ""),
        )
        ended = "cancelled" if left and left.get("cancelled") else "completed"
        seen.append(f"{sig.name}: request {ended}, then lifespan.shutdown")
    asgi.observe("; ".join(seen))


@requirement("lifespan.shutdown.request-wait")
async def test_wait_for_a_request_that_never_ends_is_recorded(asgi: Probe) -> None:
    """How long the server waits, after SIGTERM, for a request in flight that does not end is recorded."""
    watched: Watched = await _scenario(asgi, "request never ends")
    asgi.observe(watched.observed)


@requirement("lifespan.shutdown.complete-then-exit")
async def test_server_exits_only_after_shutdown_complete(asgi: Probe) -> None:
    """On SIGTERM and on SIGINT the server stays up while the app holds shutdown.complete back, then exits."""
    seen = []
    for sig in SIGNALS:
        life = await _life(asgi, sig)
        sent = (
            f"{sig.name}; the app holds lifespan.shutdown.complete back for {SHUTDOWN_HOLD:g} unit"
        )
        if life.shutdown is None:
            # The held request's fate is the first thing to know when this happens (a server
            # that waits for its connections, a connection the client left open).
            left = "left the app" if life.held_left else "never left the app"
            raise ConformanceFailure(
                f"sent {sig.name}; lifespan.shutdown never came ({describe_exit(life.exit_status)}; "
                f"the request in flight got {life.held_outcome} and {left})"
            )
        expect(
            life.exit_while_held is None,
            sent=sent,
            expected="the server still running until the app sends lifespan.shutdown.complete",
            observed=f"it {describe_exit(life.exit_while_held)} before the app completed shutdown",
        )
        expect(
            life.exit_status is not None,
            sent=sent + ", then sends it",
            expected="the server to exit within 3 units",
            observed="still running",
        )
        seen.append(f"{sig.name}: {describe_exit(life.exit_status)}")
    asgi.observe("; ".join(seen))


@requirement("lifespan.shutdown-failed.exit")
async def test_failed_shutdown_ends_the_server(asgi: Probe) -> None:
    """After lifespan.shutdown.failed the server terminates within 3 units."""
    watched: Watched = await _scenario(asgi, "shutdown failed")
    expect(
        watched.shutdown_seen and watched.exit_status is not None,
        sent="SIGTERM; the app answers lifespan.shutdown.failed with a message",
        expected="the server ends within 3 units",
        observed=watched.observed if watched.shutdown_seen else "lifespan.shutdown never came",
    )
    asgi.observe(watched.observed)


@requirement("lifespan.shutdown-failed.message")
async def test_failed_shutdown_message_is_shown(asgi: Probe) -> None:
    """The message of lifespan.shutdown.failed appears in the server's output."""
    watched: Watched = await _scenario(asgi, "shutdown failed")
    expect(
        watched.token in watched.log,
        sent="SIGTERM; the app answers lifespan.shutdown.failed with a unique message",
        expected="the message in the server's output",
        observed=f"not in the server's output ({_lines(watched.log)})",
    )


@requirement("lifespan.shutdown.no-answer")
async def test_shutdown_never_answered_is_recorded(asgi: Probe) -> None:
    """What the server does when the app never answers lifespan.shutdown is recorded."""
    watched: Watched = await _scenario(asgi, "shutdown never answered")
    asgi.observe(watched.observed)


# -- state -------------------------------------------------------------------------------------


async def _state_life(asgi: Probe) -> Lifecycle:
    """The lifecycle, once the lifespan scope is known to offer state (else unsupported)."""
    life = await _life(asgi)
    if "state" not in life.scope():
        raise Unsupported(f"{asgi.target.name} offers no state in its lifespan scope")
    return life


def _facts(life: Lifecycle, name: str) -> Observation:
    if name not in life.states:
        raise ConformanceFailure(f"no state report from the {name} request: {life.state_errors}")
    return life.states[name]


@requirement("lifespan.state.offered")
async def test_lifespan_scope_offers_an_empty_state(asgi: Probe) -> None:
    """The lifespan scope has "state": an empty dict."""
    state = (await _state_life(asgi)).scope()["state"]
    expect(
        isinstance(state, dict) and not state,
        sent="nothing (the server calls the app at startup)",
        expected="scope['state'], an empty dict",
        observed=f"{type(state).__name__} {state!r}"[:300],
    )


def _judge_stored(asgi: Probe, life: Lifecycle, names: tuple[str, ...]) -> None:
    for name in names:
        facts = _facts(life, name)
        sent = f"a {name.split()[0]} request after startup stored {list(STATE_KEYS)}"
        expect(
            bool(facts.get("present")),
            sent=sent,
            expected="scope['state'] present",
            observed="no 'state' key in the scope",
        )
        missing = [key for key in STATE_KEYS if key not in (facts.get("keys") or [])]
        expect(
            facts.get("type") == "dict" and not missing,
            sent=sent,
            expected=f"a dict holding {list(STATE_KEYS)}",
            observed=f"{facts.get('type')} with keys {facts.get('keys')}",
        )


@requirement("lifespan.state.http")
async def test_http_requests_see_the_startup_state(asgi: Probe) -> None:
    """Every HTTP request's scope["state"] holds the keys startup stored."""
    _judge_stored(asgi, await _state_life(asgi), ("http 1", "http 2"))


@requirement("lifespan.state.websocket")
async def test_websockets_see_the_startup_state(asgi: Probe) -> None:
    """A WebSocket's scope["state"] holds the keys startup stored."""
    life = await _state_life(asgi)
    if "websocket" not in asgi.target.profile.protocols:
        raise Unsupported(f"{asgi.target.name} does not offer WebSocket (per its profile)")
    _judge_stored(asgi, life, ("websocket",))


@requirement("lifespan.state.isolated")
async def test_keys_added_by_one_request_do_not_reach_the_next(asgi: Probe) -> None:
    """A key the first request adds to its state is in neither the second request's nor the WebSocket's."""
    life = await _state_life(asgi)
    first = _facts(life, "http 1")
    expect(
        not first.get("is_lifespan_namespace"),
        sent="an HTTP request after startup",
        expected="a copy of the lifespan namespace",
        observed="the lifespan namespace itself",
    )
    for name in ("http 2", "websocket"):
        if name not in life.states:
            continue
        leaked = [key for key in life.states[name].get("keys") or [] if key.startswith("added_by_")]
        expect(
            not leaked,
            sent="a request that added a key to its state, then another request",
            expected="the other request's state without it",
            observed=f"the {name} request's state holds {leaked}",
        )


@requirement("lifespan.state.shallow")
async def test_state_copy_is_shallow(asgi: Probe) -> None:
    """The state values are the startup's own objects: identity kept, a mutation seen by later requests."""
    life = await _state_life(asgi)
    first, second = _facts(life, "http 1"), _facts(life, "http 2")
    expect(
        bool(first.get("same_object")) and bool(second.get("same_object")),
        sent="two HTTP requests after startup stored an object",
        expected="scope['state']['probe_object'] is the very object startup stored",
        observed="a different object (a deep copy?)",
    )
    expect(
        bool(second.get("probe_list")),
        sent="a request that appended to the list startup stored, then another request",
        expected="the second request sees the appended item",
        observed=f"the list is {second.get('probe_list')!r}",
    )


@requirement("lifespan.state.untouched")
async def test_server_leaves_the_state_as_the_app_wrote_it(asgi: Probe) -> None:
    """Requests see exactly the keys startup stored, and so does shutdown."""
    life = await _state_life(asgi)
    first = _facts(life, "http 1")
    expected = sorted(STATE_KEYS)
    if first.get("keys") is None:
        raise NotJudged("the request's scope has no state at all", "lifespan.state.http")
    expect(
        first.get("keys") == expected,
        sent=f"a request after startup stored {expected}",
        expected=f"exactly {expected}",
        observed=f"keys {first.get('keys')}",
    )
    expect(
        life.shutdown_keys == expected,
        sent=f"SIGTERM after startup stored {expected}",
        expected=f"the lifespan namespace still holding exactly {expected} at shutdown",
        observed=f"keys {life.shutdown_keys}",
    )
