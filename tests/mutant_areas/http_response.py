"""Mutants of the HTTP response, streaming and the HTTP extensions.

Each middleware sits between the server and the probe app and breaks one rule of
www.rst "Response Start"/"Response Body" or docs/extensions.rst the way a careless
server would: by rewriting, holding back or dropping what the app sends, or by
advertising an extension it does not carry out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from tests.mutants import ASGIApp, Message, Mutant, Receive, Scope, Send


__all__ = ["MUTANTS"]

Rewrite = Callable[[Scope, Message], list[Message]]


def on_send(rewrite: Rewrite) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware that replaces every HTTP send(message) by the messages ``rewrite`` returns."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return

            async def mutated(message: Message) -> None:
                for out in rewrite(scope, dict(message)):
                    await send(out)

            await app(scope, receive, mutated)

        return mutant

    middleware.__doc__ = rewrite.__doc__
    return middleware


def _start(message: Message) -> bool:
    return message.get("type") == "http.response.start"


def _headers(message: Message) -> list[tuple[bytes, bytes]]:
    return [(bytes(n), bytes(v)) for n, v in message.get("headers", [])]


# -- status and headers ----------------------------------------------------------------------


def status_rewritten(scope: Scope, message: Message) -> list[Message]:
    """Statuses outside the common set become 500 (www.rst "Response Start": status is the HTTP status)."""
    if _start(message) and message["status"] in (201, 418, 599):
        message["status"] = 500
    return [message]


def header_values_reencoded(scope: Scope, message: Message) -> list[Message]:
    """Response header values are re-encoded latin-1 -> UTF-8 (www.rst "HTTP": headers kept exactly)."""
    if _start(message):
        message["headers"] = [
            (n, v.decode("latin-1").encode("utf-8")) for n, v in _headers(message)
        ]
    return [message]


class _RecasingTransport:
    """A transport whose response heads go out with Title-Cased field names."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.") and b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            status, *fields = head.split(b"\r\n")
            recased = [
                name.decode("latin-1").title().encode("latin-1") + b":" + value
                for name, value in (field.split(b":", 1) for field in fields)
            ]
            data = b"\r\n".join([status, *recased]) + b"\r\n\r\n" + rest
        self._transport.write(data)


class RecasingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, except that response field names are re-cased on the wire."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(cast("asyncio.Transport", _RecasingTransport(transport)))


def header_names_recased(app: ASGIApp) -> ASGIApp:
    """Response header names go out Title-Cased on the wire (www.rst "Response Start - send
    event"; HTTP/1.1 names are case-insensitive, so it is recorded): uvicorn's
    ``http=RecasingH11Protocol``."""
    return app


def headers_merged(scope: Scope, message: Message) -> list[Message]:
    """Repeated response fields are joined with ", " (www.rst "Response Start": duplicates kept)."""
    if _start(message):
        merged: dict[bytes, bytes] = {}
        for name, value in _headers(message):
            merged[name] = merged[name] + b", " + value if name in merged else value
        message["headers"] = list(merged.items())
    return [message]


def headers_reversed(scope: Scope, message: Message) -> list[Message]:
    """The response header list is reversed (www.rst "Response Start": "Order must be preserved")."""
    if _start(message):
        message["headers"] = _headers(message)[::-1]
    return [message]


def headers_key_required(scope: Scope, message: Message) -> list[Message]:
    """A start without "headers" is refused (www.rst "Response Start": headers is optional)."""
    if _start(message) and "headers" not in message:
        raise KeyError("headers")
    return [message]


def body_keys_required(scope: Scope, message: Message) -> list[Message]:
    """A body message without body or more_body is refused (www.rst "Response Body": both optional)."""
    if message.get("type") == "http.response.body" and (
        "body" not in message or "more_body" not in message
    ):
        raise KeyError("more_body")
    return [message]


def content_length_dropped(scope: Scope, message: Message) -> list[Message]:
    """The app's Content-Length is dropped, so the server chunks (www.rst "HTTP Connection Scope")."""
    if _start(message):
        message["headers"] = [(n, v) for n, v in _headers(message) if n != b"content-length"]
    return [message]


def server_header_added(scope: Scope, message: Message) -> list[Message]:
    """An x-powered-by field is added to every response (recorded: www.rst is silent)."""
    if _start(message):
        message["headers"] = [*_headers(message), (b"x-powered-by", b"mutant")]
    return [message]


def content_encoding_dropped(scope: Scope, message: Message) -> list[Message]:
    """The app's Content-Encoding is stripped (www.rst "Response Start": the app controls it)."""
    if _start(message):
        message["headers"] = [(n, v) for n, v in _headers(message) if n != b"content-encoding"]
    return [message]


def transfer_encoding_doubled(scope: Scope, message: Message) -> list[Message]:
    """The app's Transfer-Encoding is sent next to the server's own (www.rst "Response Start": ignore it)."""
    headers = _headers(message) if _start(message) else []
    if any(n == b"transfer-encoding" for n, _ in headers):
        message["headers"] = [*headers, (b"transfer-encoding", b"chunked")]
    return [message]


def http10_chunked(scope: Scope, send: Send) -> tuple[Send, Callable[[], Any]]:
    """HTTP/1.0 responses without a length go out chunk-encoded, which an HTTP/1.0 client
    cannot decode (www.rst "HTTP Connection Scope": framing is the server's; RFC 9112 §6.1).

    Served by hypercorn: h11 would strip a chunked header for an HTTP/1.0 peer, so the
    mutant writes the chunk syntax into the body bytes, as the client then sees it.
    """
    chunked = [False]

    async def wrapped(message: Message) -> None:
        if _start(message) and scope["http_version"] == "1.0":
            chunked[0] = not any(n == b"content-length" for n, _ in _headers(message))
        elif message.get("type") == "http.response.body" and chunked[0]:
            body = bytes(message.get("body", b""))
            framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not message.get("more_body", False):
                framed += b"0\r\n\r\n"
            message = {**message, "body": framed}
        await send(message)

    return wrapped, _nothing


def no_body_status_chunked(scope: Scope, message: Message) -> list[Message]:
    """204 and 304 responses get chunked framing and a terminator (www.rst "HTTP Connection Scope")."""
    if _start(message) and message["status"] in (204, 304):
        message["headers"] = [*_headers(message), (b"transfer-encoding", b"chunked")]
    return [message]


def informational_start_dropped(scope: Scope, message: Message) -> list[Message]:
    """A start with a 1xx status is dropped (recorded: www.rst does not say what start(1xx) does)."""
    if _start(message) and 100 <= message["status"] < 200:
        return []
    return [message]


# -- middlewares with per-request state -------------------------------------------------------


def head_as_get(app: ASGIApp) -> ASGIApp:
    """The server writes a HEAD response as if it were GET, body included (www.rst "HTTP
    Connection Scope": framing is the server's; RFC 9112 §6.3)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "HEAD":
            scope["method"] = "GET"  # in place: the server's own copy decides its framing
        await app(scope, receive, send)

    return mutant


def _per_request(
    make: Callable[[Scope, Send], tuple[Send, Callable[[], Any]]],
) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware whose send wrapper keeps state for one request; ``after`` runs on return."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            wrapped, after = make(scope, send)
            try:
                await app(scope, receive, wrapped)
            finally:
                await after()

        return mutant

    middleware.__doc__ = make.__doc__
    return middleware


async def _nothing() -> None:
    return None


def body_buffered(scope: Scope, send: Send) -> tuple[Send, Callable[[], Any]]:
    """Body chunks are held until more_body False, then sent as one (www.rst "Response Body":
    servers must flush each send before returning)."""
    held: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message.get("type") != "http.response.body":
            await send(message)
            return
        held.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"".join(held)})

    return wrapped, _nothing


def length_computed(scope: Scope, send: Send) -> tuple[Send, Callable[[], Any]]:
    """The whole response is buffered and given a Content-Length (recorded: www.rst lets the
    server frame a response without length as it sees fit)."""
    start: list[Message] = []
    held: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if _start(message):
            start.append(dict(message))
            return
        if message.get("type") != "http.response.body":
            await send(message)
            return
        held.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            head = start[0]
            headers = _headers(head)
            body = b"".join(held)
            if not any(n == b"content-length" for n, _ in headers):
                headers.append((b"content-length", str(len(body)).encode()))
            await send({**head, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    return wrapped, _nothing


def final_held(scope: Scope, send: Send) -> tuple[Send, Callable[[], Any]]:
    """The final body is sent only once the app returns (www.rst "Response Body": more_body
    False completes the response at once)."""
    held: list[Message] = []

    async def wrapped(message: Message) -> None:
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            held.append(message)
            return
        await send(message)

    async def after() -> None:
        for message in held:
            await send(message)

    return wrapped, after


def empty_chunk_ends(scope: Scope, message: Message) -> list[Message]:
    """An empty body with more_body True is sent as the final one (www.rst "Response Body")."""
    if message.get("type") == "http.response.body" and not message.get("body"):
        message["more_body"] = False
    return [message]


def first_chunk_dropped(scope: Scope, send: Send) -> tuple[Send, Callable[[], Any]]:
    """The first body chunk of a streamed response is lost (www.rst "Response Body": bodies
    are concatenated)."""
    seen = [0]

    async def wrapped(message: Message) -> None:
        if message.get("type") == "http.response.body" and message.get("more_body", False):
            seen[0] += 1
            if seen[0] == 1:
                return
        await send(message)

    return wrapped, _nothing


def disconnect_once_streaming(app: ASGIApp) -> ASGIApp:
    """receive() returns http.disconnect as soon as the response has started (www.rst
    "Disconnect": only after the response is sent or the connection closed)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        started = [False]

        async def wrapped_send(message: Message) -> None:
            if _start(message):
                started[0] = True
            await send(message)

        async def wrapped_receive() -> Message:
            if started[0]:
                return {"type": "http.disconnect"}
            return await receive()

        await app(scope, wrapped_receive, wrapped_send)

    return mutant


# -- extensions --------------------------------------------------------------------------------


def _advertising(
    name: str, handle: Callable[[Message, Send], Any] | None
) -> Callable[[ASGIApp], ASGIApp]:
    """Advertise extension ``name``; hand its events (and, with None, nothing) to ``handle``."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), name: {}}}

            async def wrapped(message: Message) -> None:
                if handle is not None and message.get("type") == name:
                    await handle(dict(message), send)
                    return
                if _start(message) and name == "http.response.trailers":
                    message = {k: v for k, v in message.items() if k != "trailers"}
                await send(message)

            await app(scope, receive, wrapped)

        return mutant

    return middleware


async def _swallow(message: Message, send: Send) -> None:
    return None


async def _pathsend_empty(message: Message, send: Send) -> None:
    await send({"type": "http.response.body", "body": b""})


async def _zerocopy_ignoring_offset(message: Message, send: Send) -> None:
    file = message["file"]
    count = message.get("count", -1)
    body = os.read(file.fileno(), count if count >= 0 else 1 << 30)
    await send(
        {"type": "http.response.body", "body": body, "more_body": message.get("more_body", False)}
    )


async def _hint_as_start(message: Message, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 103,
            "headers": [(b"link", bytes(link)) for link in message["links"]],
        }
    )


def _documented(middleware: Callable[[ASGIApp], ASGIApp], doc: str) -> Callable[[ASGIApp], ASGIApp]:
    middleware.__doc__ = doc
    return middleware


trailers_dropped = _documented(
    _advertising("http.response.trailers", _swallow),
    "http.response.trailers is advertised but the trailers are dropped and the response ends "
    'at the last body (extensions.rst "HTTP Trailers").',
)
pathsend_empty = _documented(
    _advertising("http.response.pathsend", _pathsend_empty),
    'http.response.pathsend is advertised but the file is never sent (extensions.rst "Path Send").',
)
zerocopy_offset_ignored = _documented(
    _advertising("http.response.zerocopysend", _zerocopy_ignoring_offset),
    'http.response.zerocopysend is advertised but offset is ignored (extensions.rst "Zero Copy Send").',
)
early_hint_as_start = _documented(
    _advertising("http.response.early_hint", _hint_as_start),
    "http.response.early_hint is advertised but a hint is sent as a second response start "
    '(extensions.rst "Early Hints").',
)
debug_advertised = _documented(
    _advertising("http.response.debug", None),
    'http.response.debug is advertised (extensions.rst "Debug": servers should not implement it).',
)


def extension_events_ignored(scope: Scope, message: Message) -> list[Message]:
    """Extension events the server did not advertise are dropped silently (recorded:
    extensions.rst leaves unadvertised events undefined)."""
    if str(message.get("type", "")) in (
        "http.response.trailers",
        "http.response.pathsend",
        "http.response.zerocopysend",
        "http.response.early_hint",
    ):
        return []
    return [message]


MUTANTS: dict[str, Mutant] = {
    "status-rewritten": Mutant(on_send(status_rewritten), ("http.response.status",)),
    "response-values-reencoded": Mutant(
        on_send(header_values_reencoded),
        ("http.response.headers-exact",),
        keeps=("http.response.headers-order",),
    ),
    "response-names-recased": Mutant(
        header_names_recased,
        ("http.response.header-name-case",),
        keeps=("http.response.headers-exact", "http.response.headers-order"),
        uvicorn_options=(("http", "tests.mutant_areas.http_response:RecasingH11Protocol"),),
    ),
    "response-headers-merged": Mutant(
        on_send(headers_merged), ("http.response.headers-duplicates",)
    ),
    "response-headers-reversed": Mutant(
        on_send(headers_reversed),
        ("http.response.headers-order", "http.response.headers-duplicates"),
        keeps=("http.response.headers-exact",),
    ),
    "start-headers-required": Mutant(
        on_send(headers_key_required),
        ("http.response.start-defaults",),
        keeps=("http.response.status",),
    ),
    "body-keys-required": Mutant(on_send(body_keys_required), ("http.response.body-defaults",)),
    "first-chunk-dropped": Mutant(
        _per_request(first_chunk_dropped), ("http.response.body-concat",)
    ),
    "empty-chunk-ends": Mutant(
        on_send(empty_chunk_ends),
        ("http.response.empty-chunk-not-end",),
        keeps=("http.response.body-defaults",),
    ),
    "final-held": Mutant(
        _per_request(final_held),
        ("http.response.complete-on-final",),
        keeps=("http.streaming.flush-per-chunk",),
    ),
    "content-length-dropped": Mutant(
        on_send(content_length_dropped), ("http.response.content-length-honoured",)
    ),
    "length-computed": Mutant(
        _per_request(length_computed), ("http.response.framing-without-length",)
    ),
    "http10-chunked": Mutant(
        _per_request(http10_chunked),
        ("http.response.http10-framing",),
        keeps=("http.response.framing-without-length",),
        server="hypercorn",
    ),
    "head-as-get": Mutant(head_as_get, ("http.response.head-no-body",)),
    "no-body-status-chunked": Mutant(
        on_send(no_body_status_chunked), ("http.response.no-body-status",)
    ),
    "transfer-encoding-doubled": Mutant(
        on_send(transfer_encoding_doubled),
        ("http.response.transfer-encoding-ignored",),
        server="hypercorn",
    ),
    "content-encoding-dropped": Mutant(
        on_send(content_encoding_dropped), ("http.response.content-encoding-untouched",)
    ),
    "server-header-added": Mutant(on_send(server_header_added), ("http.response.server-headers",)),
    "informational-start-dropped": Mutant(
        on_send(informational_start_dropped), ("http.response.informational-from-app",)
    ),
    "body-buffered": Mutant(
        _per_request(body_buffered),
        ("http.streaming.flush-per-chunk", "http.streaming.large-not-buffered"),
        keeps=("http.response.body-concat",),
    ),
    "disconnect-once-streaming": Mutant(
        disconnect_once_streaming, ("http.streaming.receive-while-streaming",)
    ),
    "trailers-dropped": Mutant(trailers_dropped, ("ext.trailers",)),
    "pathsend-empty": Mutant(pathsend_empty, ("ext.pathsend",)),
    "zerocopysend-offset-ignored": Mutant(zerocopy_offset_ignored, ("ext.zerocopysend",)),
    "early-hint-as-start": Mutant(early_hint_as_start, ("ext.early-hint",)),
    "debug-advertised": Mutant(debug_advertised, ("ext.debug-not-offered",)),
    "extension-events-ignored": Mutant(
        on_send(extension_events_ignored), ("ext.unadvertised-events",)
    ),
}
