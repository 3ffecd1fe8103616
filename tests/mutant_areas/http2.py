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
import os
import socket
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


def listener_closed_on_reset(app: ASGIApp) -> ASGIApp:
    """A reset stream takes the server's listener down with it: no new connection is accepted
    while the process lives on (www.rst "HTTP": the server keeps multiplexing requests; RFC 9113
    section 5.4.2, a reset is an error of one stream)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                _shut_listeners()
            return message

        await app(scope, mutated if scope.get("type") == "http" else receive, send)

    return mutant


def _shut_listeners() -> None:
    """Shut every listening TCP socket of this process (connects are refused from now on)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            probe = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket
        try:
            listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            if listening and probe.type == socket.SOCK_STREAM:
                probe.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            probe.close()


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


def streams_capped(app: ASGIApp) -> ASGIApp:
    """More than 8 requests in flight from one client are refused with 503, whatever the
    SETTINGS promised (www.rst "HTTP": each request is given to the app)."""
    in_flight: dict[object, int] = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        client = tuple(scope.get("client") or ())
        if in_flight.get(client, 0) >= 8:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        in_flight[client] = in_flight.get(client, 0) + 1
        try:
            await app(scope, receive, send)
        finally:
            in_flight[client] -= 1

    return mutant


def cookies_split(headers: Headers) -> Headers:
    """Cookie crumbs reach the app as separate fields though the server joins them (www.rst
    "HTTP Connection Scope"; RFC 9113 section 8.2.3 asks for one field joined by "; ")."""
    out: Headers = []
    for name, value in headers:
        if name == b"cookie":
            out.extend((name, crumb) for crumb in value.split(b"; "))
        else:
            out.append((name, value))
    return out


def trailer_in_headers(scope: Scope) -> None:
    """A request's trailer field is reported among its headers (www.rst "Request - receive event"
    has no trailers; a server that exposes them this way is recorded)."""
    if scope.get("method") == "POST":
        scope["headers"] = [*scope["headers"], (b"x-checksum", b"abc")]


def push_ignored(app: ASGIApp) -> ASGIApp:
    """http.response.push is advertised, then dropped: no PUSH_PROMISE (extensions.rst "HTTP/2
    Server Push": the server should attempt the push)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated(message: Message) -> None:
            if message.get("type") != "http.response.push":
                await send(message)

        await app(scope, receive, mutated)

    return mutant


def websocket_over_h2_refused(app: ASGIApp) -> ASGIApp:
    """WebSockets over HTTP/2 are closed before accept though SETTINGS offer extended CONNECT
    (www.rst "WebSocket"; RFC 8441 section 3)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "websocket" and scope.get("http_version") in ("2", "3"):
            await receive()
            await send({"type": "websocket.close", "code": 1000})
            return
        await app(scope, receive, send)

    return mutant


def websocket_over_h2_as_11(scope: Scope) -> None:
    """A WebSocket over HTTP/2 is reported as http_version "1.1" (www.rst "Websocket Connection
    Scope": one of "1.1" or "2")."""
    if scope.get("http_version") in ("2", "3"):
        scope["http_version"] = "1.1"


def websocket_messages_dropped(app: ASGIApp) -> ASGIApp:
    """The client's WebSocket messages over HTTP/2 never reach the app (www.rst "Receive -
    receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated() -> Message:
            while True:
                message = await receive()
                if message.get("type") != "websocket.receive":
                    return message

        deaf = scope.get("type") == "websocket" and scope.get("http_version") in ("2", "3")
        await app(scope, mutated if deaf else receive, send)

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
    "h2-listener-closed": _h2(
        listener_closed_on_reset, ("h2.reset.listener-survives",), ("h2.reset.disconnect",)
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
            "h2.malformed.te-not-trailers",
            "h2.malformed.duplicate-pseudo",
            "h2.malformed.response-pseudo",
            "h2.malformed.empty-path",
            "h2.malformed.pseudo-in-trailers",
        ),
        ("h2.scope.http-version",),
        lenient_h2=True,
    ),
    "h2-truncated-completed": _h2(
        truncated_body_completed,
        ("h2.malformed.content-length-mismatch", "h2.reset.mid-upload"),
        lenient_h2=True,
    ),
    "h2-streams-capped": _h2(streams_capped, ("h2.streams.many",), ("h2.scope.http-version",)),
    "h2-cookies-split": _h2(on_headers(cookies_split), ("h2.cookie.crumbs",)),
    "h2-trailer-in-headers": _h2(on_scope(trailer_in_headers), ("h2.request.trailers",)),
    "h2-push-ignored": _h2(push_ignored, ("h2.push.promise",)),
    "h2-websocket-refused": _h2(websocket_over_h2_refused, ("h2.websocket.extended-connect",)),
    "h2-websocket-as-11": _h2(
        on_scope(websocket_over_h2_as_11, "websocket"),
        ("h2.websocket.scope",),
        ("h2.websocket.extended-connect",),
    ),
    "h2-websocket-deaf": _h2(
        websocket_messages_dropped, ("h2.websocket.echo",), ("h2.websocket.extended-connect",)
    ),
}
