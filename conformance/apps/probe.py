"""The probe app: one ASGI 3 application whose behaviour the request selects.

The test names a *behaviour* in the ``x-probe`` request header and a request id
in ``x-probe-rid``; further ``x-probe-*`` headers are that behaviour's arguments.
Headers, not the path, carry this because the path is itself under test.

What the app sees is reported through the side channel as observations
``{"rid", "kind", ...}``:

``call``
    the scope exactly as received (types kept), the calling convention, the time.
``done``
    every event ``receive()`` returned, with times, and whether ``send`` raised.
``rendezvous``
    how many requests of a named group were inside the app at once.
``hold``
    a request that waits for the client to leave reports when it entered and left.

The app never judges anything: it observes, the test judges.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from conformance.apps._channel import emit
from conformance.apps._encoding import encode
from conformance.apps._script import parse_script, run_script


__all__ = ["LegacyApp", "app", "contained", "isolated", "survivor"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROBE_HEADER = b"x-probe"
RID_HEADER = b"x-probe-rid"
ARG_PREFIX = b"x-probe-"


def _header_map(scope: Scope) -> dict[bytes, bytes]:
    """The ``x-probe*`` headers, found however the server spelled or typed them."""
    found: dict[bytes, bytes] = {}
    raw: Iterable[Any] = scope.get("headers") or ()
    try:
        for pair in raw:
            name, value = pair[0], pair[1]
            if isinstance(name, str):
                name = name.encode("latin-1", "replace")
            if isinstance(value, str):
                value = value.encode("latin-1", "replace")
            lowered = bytes(name).lower()
            if lowered == PROBE_HEADER or lowered.startswith(ARG_PREFIX):
                found.setdefault(lowered, bytes(value))
    except (TypeError, IndexError, ValueError):
        pass
    return found


def _arg(args: dict[bytes, bytes], name: str, default: str = "") -> str:
    return args.get(ARG_PREFIX + name.encode(), default.encode()).decode("latin-1")


def _wait_arg(args: dict[bytes, bytes]) -> float:
    """The bound on any wait inside the app, chosen by the test in suite time units."""
    try:
        return max(0.0, float(_arg(args, "wait", "5")))
    except ValueError:
        return 5.0


class _Rendezvous:
    """Counts requests of a group that are inside the app at the same moment.

    Thread-safe and loop-agnostic on purpose: a server may run several event
    loops in threads, and the count must span all of them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def enter(self, group: str) -> None:
        with self._lock:
            self._inside[group] = self._inside.get(group, 0) + 1
            self._peak[group] = max(self._peak.get(group, 0), self._inside[group])

    def leave(self, group: str) -> None:
        with self._lock:
            self._inside[group] -= 1

    def peak(self, group: str) -> int:
        with self._lock:
            return self._peak.get(group, 0)


_rendezvous = _Rendezvous()


class _Recorder:
    """Wraps receive/send so every event and every send outcome is noted."""

    def __init__(self, rid: str, receive: Receive, send: Send, *, keep_bodies: bool = True) -> None:
        self.rid = rid
        self._receive = receive
        self._send = send
        #: ``x-probe-bodies: omit`` notes request bodies by size only (MiB bodies, hashed elsewhere).
        self.keep_bodies = keep_bodies
        self.events: list[dict[str, Any]] = []
        self.send_errors: list[str] = []
        self.disconnected = False

    async def receive(self) -> Message:
        message = await self._receive()
        noted: Any = message
        if not self.keep_bodies and isinstance(message, dict) and "body" in message:
            body = message["body"]
            size = len(body) if isinstance(body, (bytes, bytearray, memoryview, str)) else None
            noted = {**message, "body": f"<{type(body).__name__} of {size}>"}
        self.events.append({"t": time.monotonic(), "event": encode(noted)})
        if isinstance(message, dict) and message.get("type") == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        try:
            await self._send(message)
        except Exception as exc:
            self.send_errors.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
            raise

    async def read_body(self, wait: float) -> bytes:
        """Receive until the body is complete, the client leaves, or ``wait`` passes."""
        body = b""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return body
            try:
                message = await asyncio.wait_for(self.receive(), remaining)
            except asyncio.TimeoutError:
                return body
            if message.get("type") != "http.request":
                return body
            chunk = message.get("body", b"")
            if isinstance(chunk, bytes):
                body += chunk
            if not message.get("more_body", False):
                return body

    async def respond(self, status: int, body: bytes) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def done(self, **extra: Any) -> None:
        emit(
            {
                "rid": self.rid,
                "kind": "done",
                "t": time.monotonic(),
                "events": self.events,
                "send_errors": self.send_errors,
                **extra,
            }
        )


async def _handle(scope: Scope, receive: Receive, send: Send, style: str, called_at: float) -> None:
    if isinstance(scope, MutableMapping) and scope.get("type") == "lifespan":
        await _plain_lifespan(receive, send)
        return
    if isinstance(scope, MutableMapping) and scope.get("type") == "websocket":
        from conformance.apps.websocket import serve

        await serve(scope, receive, send, style, called_at)
        return
    if not isinstance(scope, MutableMapping) or scope.get("type") != "http":
        return  # other protocols have their own probes
    args = _header_map(scope)
    rid = args.get(RID_HEADER, b"").decode("latin-1")
    behaviour = args.get(PROBE_HEADER, b"echo").decode("latin-1")
    recorder = _Recorder(rid, receive, send, keep_bodies=_arg(args, "bodies") != "omit")
    if rid:
        emit(
            {
                "rid": rid,
                "kind": "call",
                "t": called_at,
                "pid": os.getpid(),
                "thread": threading.get_ident(),
                "style": style,
                "scope": encode(scope),
            }
        )
    wait = _wait_arg(args)
    handler = _BEHAVIOURS.get(behaviour, _echo)
    await handler(scope, recorder, args, wait)


async def _plain_lifespan(receive: Receive, send: Send) -> None:
    """Complete startup and shutdown at once, so HTTP checks boot every server alike.

    It also says that a lifespan scope arrived, keyed by the instance's tag: the
    lifespan checks learn from the main instance, at no extra boot, whether the
    server runs lifespan at all (lifespan.rst: a server may not).
    """
    emit({"rid": "lifespan:" + os.environ.get("ASGI_CONFORMANCE_INSTANCE", ""), "kind": "plain"})
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _echo(scope: Scope, rec: _Recorder, args: dict[bytes, bytes], wait: float) -> None:
    """Read the whole body, answer 200 with the request id, report the events."""
    await rec.read_body(wait)
    await rec.respond(200, rec.rid.encode("latin-1") or b"ok")
    rec.done()


async def _mutate(scope: Scope, rec: _Recorder, args: dict[bytes, bytes], wait: float) -> None:
    """Change the scope the way a careless app would, to see if it leaks to the next request."""
    scope["x_probe_leak"] = rec.rid
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.append((b"x-probe-leak", rec.rid.encode("latin-1")))
    await _echo(scope, rec, args, wait)


async def _rendezvous_behaviour(
    scope: Scope, rec: _Recorder, args: dict[bytes, bytes], wait: float
) -> None:
    """Stay inside the app until ``size`` requests of ``group`` are inside together, or ``wait``."""
    group = _arg(args, "group", "default")
    try:
        size = int(_arg(args, "size", "2"))
    except ValueError:
        size = 2
    await rec.read_body(wait)
    _rendezvous.enter(group)
    deadline = time.monotonic() + wait
    try:
        while _rendezvous.peak(group) < size and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
    finally:
        _rendezvous.leave(group)
    emit({"rid": rec.rid, "kind": "rendezvous", "group": group, "peak": _rendezvous.peak(group)})
    await rec.respond(200, str(_rendezvous.peak(group)).encode())
    rec.done()


async def _hold(scope: Scope, rec: _Recorder, args: dict[bytes, bytes], wait: float) -> None:
    """Hold the response open (a long poll) until the client leaves or ``wait`` passes."""
    await rec.read_body(wait)
    emit({"rid": rec.rid, "kind": "hold", "phase": "entered", "t": time.monotonic()})
    deadline = time.monotonic() + wait
    while not rec.disconnected and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(rec.receive(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
    emit(
        {
            "rid": rec.rid,
            "kind": "hold",
            "phase": "left",
            "t": time.monotonic(),
            "disconnected": rec.disconnected,
        }
    )
    if not rec.disconnected:
        await rec.respond(200, b"held")
    rec.done()


async def _script(scope: Scope, rec: _Recorder, args: dict[bytes, bytes], wait: float) -> None:
    """Run the steps the test sent in ``x-probe-script`` (see :mod:`._script`)."""
    steps = parse_script(args.get(ARG_PREFIX + b"script", b"W10="))
    try:
        await run_script(steps, rec.receive, rec.send, rec.rid, wait)
    finally:
        rec.done()


_Behaviour = Callable[[Scope, _Recorder, dict[bytes, bytes], float], Awaitable[None]]

_BEHAVIOURS: dict[str, _Behaviour] = {
    "echo": _echo,
    "mutate": _mutate,
    "rendezvous": _rendezvous_behaviour,
    "hold": _hold,
    "script": _script,
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The single-callable (ASGI 3) probe."""
    await _handle(scope, receive, send, "asgi3", time.monotonic())


#: The same app under another name.  Instances are keyed by the app they serve, so
#: ``LaunchConfig(app="conformance.apps.probe:isolated")`` gives a check a server of its
#: own: for checks that may leave a server broken for everyone after them (daphne stops
#: reaping every app once one has raised mid-response).
isolated = app
#: Another name for the same app, for a second server of its own (see ``isolated``).
survivor = app
#: And a third: for the check that lets a send() error escape on purpose, which a server
#: that does not contain it is broken by (every later request 503) while other checks
#: of the same batch still talk to it.
contained = app


class LegacyApp:
    """The double-callable (ASGI 2) probe: ``LegacyApp(scope)`` then ``await instance(receive, send)``.

    asgi.rst "Legacy Applications": the first call happens when the connection
    starts, the second at once after it; the probe notes the first call's time.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.created_at = time.monotonic()

    async def __call__(self, receive: Receive, send: Send) -> None:
        await _handle(self.scope, receive, send, "asgi2", self.created_at)
