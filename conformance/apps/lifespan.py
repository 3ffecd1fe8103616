"""The lifespan probe apps: one importable attribute per behaviour (lifespan.rst).

Lifespan checks watch a server start and stop, so each runs its own server
instance, started with one of these attributes as ``{app}``.  Every attribute
is the same probe with a different lifespan behaviour:

==========================  =====================================  ==========================
attribute                   on ``lifespan.startup``                on ``lifespan.shutdown``
==========================  =====================================  ==========================
``lifecycle``               waits for the test's flag, complete    waits for the flag, complete
``lifecycle_sigint``        (the same, an instance of its own)
``serving``                 complete at once                       complete at once
``startup_fails``           ``startup.failed`` with a message      -
``startup_fails_silently``  ``startup.failed`` without a message   -
``raises_on_scope``         (raises before its first receive())    -
``raises_after_startup``    raises                                 -
``shutdown_fails``          complete at once                       ``shutdown.failed`` + message
``shutdown_never``          complete at once                       never answers
==========================  =====================================  ==========================

Everything the app sees is reported through the side channel under the request
id ``lifespan:<instance tag>`` (the launcher puts a unique tag in every server
process's environment), so that observations of different instances never mix:

``call``      a lifespan-like call (any scope neither http nor websocket): the scope, pid.
``event``     every event the lifespan instance received, with its time.
``sent``      every event it sent (and whether send() raised), with the time of sending.
``state``     at shutdown: the keys of the lifespan ``state`` namespace.

HTTP requests and WebSockets carrying ``x-lifespan: state`` report what they found
in ``scope["state"]`` (``state``), then change it the way an app would: add a key and
append to the shared list.  ``x-lifespan: hold`` keeps an HTTP request in flight
until the test sets the flag ``<tag>:release`` (``held``, ``left``).  Any other
request is the main probe's (:mod:`conformance.apps.probe`): readiness, echo.

Messages carry a token unique to the instance, so that a check can tell that *this*
app's message is what the server printed.  The app observes; the test judges.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from conformance._timing import units
from conformance.apps import probe
from conformance.apps._channel import emit, wait_flag
from conformance.apps._encoding import encode


__all__ = [
    "ENV_INSTANCE",
    "STATE_KEYS",
    "lifecycle",
    "lifecycle_sigint",
    "raises_after_startup",
    "raises_on_scope",
    "serving",
    "shutdown_fails",
    "shutdown_never",
    "startup_fails",
    "startup_fails_silently",
    "token",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Same name as the launcher's (not imported: the app must not import the harness).
ENV_INSTANCE = "ASGI_CONFORMANCE_INSTANCE"
#: What the app stores in ``scope["state"]`` at startup.
STATE_KEYS = ("probe_list", "probe_object")
#: The header that selects a lifespan behaviour for an HTTP request or a WebSocket.
HEADER = b"x-lifespan"


def _tag() -> str:
    return os.environ.get(ENV_INSTANCE, "untagged")


def token(kind: str, tag: str) -> str:
    """The unique text an app puts in its ``message`` (``kind`` says which message)."""
    return f"lifespan-probe-{kind}-{tag}"


class _Shared:
    """The object the app stores in the state: a request finding *this* object proves a shallow copy."""


#: What the startup stored, per process (a server may fork): the namespace and the object.
_stored: dict[str, Any] = {}


#: Which lifespan call of this process a report belongs to: a server running several
#: application instances in one process (per thread, per event loop) calls each one's
#: lifespan (lifespan.rst "Scope"), and each call's events are judged on their own.
_life: contextvars.ContextVar[str] = contextvars.ContextVar("life", default="")
_lives = itertools.count(1)


def _note(kind: str, **fields: Any) -> None:
    emit(
        {
            "rid": f"lifespan:{_tag()}",
            "kind": kind,
            "t": time.monotonic(),
            "pid": os.getpid(),
            "life": _life.get(),
            **fields,
        }
    )


async def _send(send: Send, message: Message) -> None:
    """Send, noting the moment *before* (the server may act at once) and any error."""
    _note("sent", type=message.get("type"), message=encode(dict(message)))
    try:
        await send(message)
    except Exception as exc:
        # On out of the app, as out of any app: hypercorn raises from send() on a failed
        # event and expects the exception to end the lifespan call.
        _note("send-error", type=message.get("type"), error=f"{type(exc).__name__}: {exc}")
        raise


async def _wait(flag: str) -> bool:
    return await wait_flag(f"{_tag()}:{flag}", units(10))


def _lifespan(startup: str, shutdown: str) -> App:
    """A probe whose lifespan half does ``startup`` and ``shutdown`` (see the module table)."""

    async def run_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        _life.set(f"{os.getpid()}.{next(_lives)}")
        loop = id(asyncio.get_running_loop())
        _note("call", scope=encode(scope), thread=threading.get_ident(), loop=loop)
        if startup == "raise-on-scope":
            raise RuntimeError(token("raise-on-scope", _tag()))
        while True:
            message = await receive()
            _note("event", event=encode(message))
            kind = message.get("type") if isinstance(message, MutableMapping) else None
            if kind == "lifespan.startup":
                if not await _start(scope, send):
                    return  # startup failed: the lifespan call is over
            elif kind == "lifespan.shutdown":
                await _stop(scope, send)
                return

    async def _start(scope: Scope, send: Send) -> bool:
        state = scope.get("state")
        if isinstance(state, MutableMapping):
            shared = _Shared()
            state["probe_list"] = []
            state["probe_object"] = shared
            _stored.update(state=state, object=shared)
        if startup == "hold":
            await _wait("startup")
        if startup == "failed":
            message = token("startup-failed", _tag())
            await _send(send, {"type": "lifespan.startup.failed", "message": message})
            return False
        if startup == "failed-no-message":
            await _send(send, {"type": "lifespan.startup.failed"})
            return False
        if startup == "raise-after-startup":
            raise RuntimeError(token("raise-after-startup", _tag()))
        await _send(send, {"type": "lifespan.startup.complete"})
        return True

    async def _stop(scope: Scope, send: Send) -> None:
        state = scope.get("state")
        keys = sorted(map(str, state)) if isinstance(state, MutableMapping) else None
        _note("state", keys=keys)
        if shutdown == "hold":
            await _wait("shutdown")
        if shutdown == "failed":
            await _send(
                send,
                {"type": "lifespan.shutdown.failed", "message": token("shutdown-failed", _tag())},
            )
        elif shutdown == "never":
            await asyncio.sleep(units(30))  # bounded: the process is killed long before
        else:
            await _send(send, {"type": "lifespan.shutdown.complete"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type") if isinstance(scope, MutableMapping) else None
        if kind not in ("http", "websocket"):
            await run_lifespan(scope, receive, send)
            return
        behaviour = _header(scope)
        if behaviour == b"state":
            await _state_request(scope, receive, send)
        elif behaviour == b"hold" and kind == "http":
            await _hold_request(scope, receive, send)
        else:
            await probe.app(scope, receive, send)

    return app


def _header(scope: Scope) -> bytes:
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == HEADER:
            return bytes(value)
    return b""


def _rid(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == probe.RID_HEADER:
            return bytes(value).decode("latin-1")
    return ""


def _describe_state(scope: Scope) -> dict[str, Any]:
    """What a request found in ``scope["state"]``, as facts the test can judge."""
    if "state" not in scope:
        return {"present": False}
    state = scope["state"]
    facts: dict[str, Any] = {"present": True, "type": type(state).__name__}
    if isinstance(state, MutableMapping):
        facts.update(
            keys=sorted(map(str, state)),
            same_object=state.get("probe_object") is _stored.get("object") and "object" in _stored,
            is_lifespan_namespace=state is _stored.get("state"),
            probe_list=list(state["probe_list"])
            if isinstance(state.get("probe_list"), list)
            else None,
        )
    return facts


def _change_state(scope: Scope, rid: str) -> None:
    """Add a key (must not leak to the next request) and append to the shared list (must show)."""
    state = scope.get("state")
    if isinstance(state, MutableMapping):
        state[f"added_by_{rid}"] = True
        if isinstance(state.get("probe_list"), list):
            state["probe_list"].append(rid)


async def _state_request(scope: Scope, receive: Receive, send: Send) -> None:
    rid = _rid(scope)
    emit({"rid": rid, "kind": "call", "t": time.monotonic(), "pid": os.getpid()})
    loop = id(asyncio.get_running_loop())
    emit({"rid": rid, "kind": "state", "pid": os.getpid(), "loop": loop, **_describe_state(scope)})
    _change_state(scope, rid)
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    await _respond(send, b"state")


async def _hold_request(scope: Scope, receive: Receive, send: Send) -> None:
    """Stay in flight until the test releases the request (or the server cancels it)."""
    rid = _rid(scope)
    emit({"rid": rid, "kind": "call", "t": time.monotonic(), "pid": os.getpid()})
    emit({"rid": rid, "kind": "held", "t": time.monotonic()})
    released = cancelled = False
    try:
        released = await wait_flag(f"{_tag()}:release", units(10))
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        emit(
            {
                "rid": rid,
                "kind": "left",
                "t": time.monotonic(),
                "released": released,
                "cancelled": cancelled,
            }
        )
    await _respond(send, b"released")


async def _respond(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


lifecycle = _lifespan("hold", "hold")
#: The same behaviour, a distinct import string (so a distinct instance and log).
lifecycle_sigint = _lifespan("hold", "hold")
serving = _lifespan("complete", "complete")
startup_fails = _lifespan("failed", "complete")
startup_fails_silently = _lifespan("failed-no-message", "complete")
raises_on_scope = _lifespan("raise-on-scope", "complete")
raises_after_startup = _lifespan("raise-after-startup", "complete")
shutdown_fails = _lifespan("complete", "failed")
shutdown_never = _lifespan("complete", "never")
