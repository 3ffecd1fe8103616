"""Mutants of HTTP/2 (www.rst "HTTP Connection Scope", "Disconnect - receive event"; RFC 9113).

Every one runs over hypercorn (the only runner with h2) on the ``h2c`` column:
prior knowledge on cleartext, the client's HTTP/2 over the same socket hypercorn
binds.  Most are middlewares between hypercorn and the probe app, as elsewhere;
the malformed-request rows need a server that lets a malformed request through,
so their mutant turns off the inbound validation of the h2 library hypercorn is
built on (``lenient_h2``), the way a server with a hand-written parser would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.mutants import (
    ASGIApp,
    Headers,
    Message,
    Mutant,
    Receive,
    Scope,
    Send,
    on_headers,
    on_scope,
)


__all__ = ["MUTANTS"]

Middleware = Callable[[ASGIApp], ASGIApp]


def http2_reported_as_11(scope: Scope) -> None:
    """An HTTP/2 request is reported as "1.1" (www.rst "HTTP Connection Scope": one of "1.0", "1.1" or "2")."""
    if scope.get("http_version") == "2":
        scope["http_version"] = "1.1"


def host_moved_last(headers: Headers) -> Headers:
    """The host field built from :authority comes last, not first (www.rst "HTTP Connection Scope":
    it "must be added to the start of the iterable")."""
    hosts = [(name, value) for name, value in headers if name == b"host"]
    return [(name, value) for name, value in headers if name != b"host"] + hosts


def host_doubled(headers: Headers) -> Headers:
    """:authority is added as a host field next to the client's own (www.rst "HTTP Connection
    Scope": it must "replace any existing host header already present")."""
    hosts = [value for name, value in headers if name == b"host"]
    return [*headers, (b"host", hosts[0])] if hosts else headers


def streams_one_at_a_time(app: ASGIApp) -> ASGIApp:
    """The streams of a connection are served one at a time (www.rst "HTTP": each request is its
    own app instance; "Response Body": data is flushed before send() returns, so streams interleave)."""
    locks: dict[object, asyncio.Lock] = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        lock = locks.setdefault(tuple(scope.get("client") or ()), asyncio.Lock())
        async with lock:
            await app(scope, receive, send)

    return mutant


def reset_unheard(app: ASGIApp) -> ASGIApp:
    """A reset stream's app never gets http.disconnect: receive() waits for ever instead
    (www.rst "Disconnect - receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                await asyncio.Event().wait()
            return message

        await app(scope, mutated if scope.get("type") == "http" else receive, send)

    return mutant


def reset_ends_every_stream(app: ASGIApp) -> ASGIApp:
    """One stream's reset cancels every other request of the connection (www.rst "Disconnect -
    receive event": a reset ends one request, RFC 9113 section 5.4.2)."""
    running: dict[object, set[asyncio.Task[None]]] = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        peers = running.setdefault(tuple(scope.get("client") or ()), set())
        task = asyncio.current_task()
        assert task is not None

        async def mutated() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                for other in peers - {task}:
                    other.cancel()
            return message

        peers.add(task)
        try:
            await app(scope, mutated, send)
        finally:
            peers.discard(task)

    return mutant


def connection_fields_added(app: ASGIApp) -> ASGIApp:
    """The app's connection-specific fields go out on HTTP/2 (www.rst "Response Start - send
    event"; RFC 9113 section 8.2.2 makes such a message malformed).  ``lenient_h2`` lets
    hypercorn's h2 library send them."""
    return app


def truncated_body_completed(app: ASGIApp) -> ASGIApp:
    """A request whose stream ended short of its content-length is handed over as complete: the
    disconnect becomes a final empty http.request (www.rst "Request - receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        done = False

        async def mutated() -> Message:
            nonlocal done
            message = await receive()
            if message.get("type") == "http.disconnect" and not done:
                done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if message.get("type") == "http.request" and not message.get("more_body"):
                done = True
            return message

        await app(scope, mutated, send)

    return mutant


def lenient(app: ASGIApp) -> ASGIApp:
    """Malformed HTTP/2 requests reach the app: the h2 library's inbound validation is off, as in
    a server with a parser of its own (RFC 9113 section 8.1.1; www.rst "HTTP Connection Scope")."""
    return app


def _h2(
    mutant: Middleware,
    breaks: tuple[str, ...],
    keeps: tuple[str, ...] = (),
    *,
    lenient_h2: bool = False,
) -> Mutant:
    return Mutant(
        mutant, breaks, keeps=keeps, server="hypercorn", column="h2c", lenient_h2=lenient_h2
    )


MUTANTS: dict[str, Mutant] = {
    "h2-version-1.1": _h2(on_scope(http2_reported_as_11), ("h2.scope.http-version",)),
    "h2-host-last": _h2(
        on_headers(host_moved_last),
        ("h2.scope.authority-as-host",),
        ("h2.scope.authority-one-host",),
    ),
    "h2-host-doubled": _h2(
        on_headers(host_doubled), ("h2.scope.authority-one-host",), ("h2.scope.authority-as-host",)
    ),
    "h2-streams-serialised": _h2(
        streams_one_at_a_time, ("h2.streams.separate-scopes", "h2.streams.interleaved")
    ),
    "h2-reset-unheard": _h2(
        reset_unheard, ("h2.reset.disconnect",), ("h2.reset.siblings-continue",)
    ),
    "h2-reset-ends-all": _h2(
        reset_ends_every_stream, ("h2.reset.siblings-continue",), ("h2.reset.disconnect",)
    ),
    "h2-connection-fields": _h2(
        connection_fields_added, ("h2.response.no-connection-fields",), lenient_h2=True
    ),
    "h2-malformed-served": _h2(
        lenient,
        (
            "h2.malformed.connection-field",
            "h2.malformed.uppercase-name",
            "h2.malformed.pseudo-after-regular",
        ),
        ("h2.scope.http-version",),
        lenient_h2=True,
    ),
    "h2-truncated-completed": _h2(
        truncated_body_completed, ("h2.malformed.content-length-mismatch",), lenient_h2=True
    ),
}
