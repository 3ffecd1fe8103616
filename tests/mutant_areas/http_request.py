"""Mutants of the request side: the body events an app receives, and the kept-alive connection.

Most are middlewares over ``receive``: they hand the app the body the way a careless
server would (wrong types, a body that never ends, lost, repeated or reordered bytes,
chunk framing left in, everything at once).  Connection rules cannot be broken from
inside an app call, so three mutants reach into uvicorn's HTTP protocol through the
``send`` callable it passes (its request cycle); they name the uvicorn internals they
use and stop with a clear error if those are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.mutants import ASGIApp, Message, Middleware, Mutant, Receive, Scope, Send


__all__ = ["MUTANTS"]


def on_receive(make: Callable[[Scope, Receive], Receive]) -> Middleware:
    """A middleware that gives every HTTP app call ``make(scope, receive)`` as its receive."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") == "http":
                receive = make(scope, receive)
            await app(scope, receive, send)

        return mutant

    middleware.__doc__ = make.__doc__
    return middleware


def _is_request(message: Message) -> bool:
    return message.get("type") == "http.request"


def _final(message: Message) -> bool:
    return _is_request(message) and not message.get("more_body", False)


# -- types -----------------------------------------------------------------------------------


def body_bytearray(scope: Scope, receive: Receive) -> Receive:
    """Request bodies arrive as bytearray (www.rst "Request - receive event": body is a byte string)."""

    async def wrapped() -> Message:
        message = await receive()
        if _is_request(message) and "body" in message:
            return {**message, "body": bytearray(message["body"])}
        return message

    return wrapped


def more_body_int(scope: Scope, receive: Receive) -> Receive:
    """more_body is the int 1 or 0 (www.rst "Request - receive event": more_body is a bool)."""

    async def wrapped() -> Message:
        message = await receive()
        if _is_request(message):
            return {**message, "more_body": int(bool(message.get("more_body", False)))}
        return message

    return wrapped


def bytes_key_added(scope: Scope, receive: Receive) -> Receive:
    """Request events carry a bytes key (asgi.rst "Events": dict keys must be Unicode strings)."""

    async def wrapped() -> Message:
        message = await receive()
        if not _is_request(message):
            return message
        keyed: dict[Any, Any] = {**message, b"more_body": False}
        return keyed

    return wrapped


def tuple_value_added(scope: Scope, receive: Receive) -> Receive:
    """Request events carry a tuple (asgi.rst "Events": tuples should be encoded as lists)."""

    async def wrapped() -> Message:
        message = await receive()
        return {**message, "x_server_extra": ("a", "b")} if _is_request(message) else message

    return wrapped


# -- the sequence ----------------------------------------------------------------------------


def more_body_stuck(scope: Scope, receive: Receive) -> Receive:
    """The last http.request of a body still says more_body True (www.rst "Request - receive
    event"); requests framed without a body (a plain GET) are left alone."""
    framed = any(
        bytes(name).lower() in (b"content-length", b"transfer-encoding")
        for name, _ in scope.get("headers", [])
    )

    async def wrapped() -> Message:
        message = await receive()
        if framed and _final(message):
            return {**message, "more_body": True}
        return message

    return wrapped


def extra_request_event(scope: Scope, receive: Receive) -> Receive:
    """An empty http.request follows the final one (www.rst "Request - receive event": False ends the body)."""
    state = {"ended": False, "extra_sent": False}

    async def wrapped() -> Message:
        if state["ended"] and not state["extra_sent"]:
            state["extra_sent"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        message = await receive()
        state["ended"] = state["ended"] or _final(message)
        return message

    return wrapped


def empty_body_split(scope: Scope, receive: Receive) -> Receive:
    """An empty body comes as two events, b"" with more_body True then the final one
    (www.rst "Request - receive event": no body is one event)."""
    pending: list[Message] = []
    state = {"first": True}

    async def wrapped() -> Message:
        if pending:
            return pending.pop(0)
        message = await receive()
        first, state["first"] = state["first"], False
        if first and _final(message) and not message.get("body"):
            pending.append(message)
            return {"type": "http.request", "body": b"", "more_body": True}
        return message

    return wrapped


# -- the bytes -------------------------------------------------------------------------------


def first_byte_lost(scope: Scope, receive: Receive) -> Receive:
    """The first byte of every request body is lost (www.rst "Request - receive event": concatenate the chunks)."""
    state = {"lost": False}

    async def wrapped() -> Message:
        message = await receive()
        if not state["lost"] and _is_request(message) and message.get("body"):
            state["lost"] = True
            return {**message, "body": bytes(message["body"][1:])}
        return message

    return wrapped


def body_duplicated(scope: Scope, receive: Receive) -> Receive:
    """The first piece of every body is delivered twice (www.rst "Request - receive event")."""
    pending: list[Message] = []
    state = {"done": False}

    async def wrapped() -> Message:
        if pending:
            return pending.pop(0)
        message = await receive()
        if not state["done"] and _is_request(message) and message.get("body"):
            state["done"] = True
            pending.append(message)
            return {**message, "more_body": True}
        return message

    return wrapped


def body_reordered(scope: Scope, receive: Receive) -> Receive:
    """The first two pieces of a body swap places (www.rst "Request - receive event": in order)."""
    pending: list[Message] = []
    state = {"done": False}

    async def wrapped() -> Message:
        if pending:
            return pending.pop(0)
        message = await receive()
        if state["done"] or not (_is_request(message) and message.get("body")):
            return message
        state["done"] = True
        if not message.get("more_body", False):
            return message
        following = await receive()
        if not (_is_request(following) and following.get("body")):
            pending.append(following)
            return message
        # Same flags in the same places, the bodies swapped.
        pending.append({**following, "body": message["body"]})
        return {**message, "body": following["body"]}

    return wrapped


def chunk_framing_kept(scope: Scope, receive: Receive) -> Receive:
    """A chunked request body reaches the app with its chunk framing (www.rst "Request - receive
    event": the server is responsible for handling Transfer-Encoding: chunked)."""
    chunked = any(
        bytes(name).lower() == b"transfer-encoding" and b"chunked" in bytes(value).lower()
        for name, value in scope.get("headers", [])
    )

    async def wrapped() -> Message:
        message = await receive()
        if not (chunked and _is_request(message)):
            return message
        body = bytes(message.get("body", b""))
        framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        if not message.get("more_body", False):
            framed += b"0\r\n\r\n"
        return {**message, "body": framed}

    return wrapped


# -- streaming -------------------------------------------------------------------------------


def events_coalesced(scope: Scope, receive: Receive) -> Receive:
    """The whole body is handed over as one event once it is complete (www.rst "Request -
    receive event": the body message streams large bodies in chunks)."""
    pending: list[Message] = []
    state = {"done": False}

    async def wrapped() -> Message:
        if pending:
            return pending.pop(0)
        if state["done"]:
            return await receive()
        state["done"] = True
        pieces: list[bytes] = []
        while True:
            message = await receive()
            if not _is_request(message):
                pending.append(message)
                return {"type": "http.request", "body": b"".join(pieces), "more_body": True}
            pieces.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(pieces), "more_body": False}

    return wrapped


def drained_before_call(app: ASGIApp) -> ASGIApp:
    """The app is called only once the whole body has been read into a buffer (www.rst
    "Request - receive event": bodies stream; and 100 Continue goes out before the app reads)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        buffered: list[Message] = []
        while True:
            message = await receive()
            buffered.append(message)
            if not _is_request(message) or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await app(scope, replay, send)

    return mutant


# -- the connection --------------------------------------------------------------------------


def _client(scope: Scope) -> tuple[Any, ...]:
    """One TCP connection, as the scope names it (client host and port)."""
    return tuple(scope.get("client") or ())


def unread_body_leaks(app: ASGIApp) -> ASGIApp:
    """A body the app left unread is handed to the next request on the connection (www.rst
    "HTTP Connection Scope": each request is its own scope, even on one socket)."""
    leftovers: dict[tuple[Any, ...], list[Message]] = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        key = _client(scope)
        carried = leftovers.pop(key, [])
        state = {"ended": False}

        async def wrapped() -> Message:
            if carried:
                return carried.pop(0)
            message = await receive()
            state["ended"] = state["ended"] or not _is_request(message) or _final(message)
            return message

        async def wrapped_send(message: Message) -> None:
            final_body = message.get("type") == "http.response.body" and not message.get(
                "more_body", False
            )
            if final_body and not state["ended"]:
                # Read what the app left before the response ends, and keep it for later.
                kept: list[Message] = []
                while True:
                    event = await receive()
                    if not _is_request(event):
                        break
                    kept.append({**event, "more_body": True})
                    if _final(event):
                        break
                leftovers[key] = kept
                state["ended"] = True
            await send(message)

        await app(scope, wrapped, wrapped_send)

    return mutant


def scope_per_connection(app: ASGIApp) -> ASGIApp:
    """Every request on a connection is given the connection's first scope (www.rst "HTTP
    Connection Scope": a single-request scope, even on a socket serving several requests)."""
    first: dict[tuple[Any, ...], Scope] = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            scope = first.setdefault(_client(scope), dict(scope))
        await app(scope, receive, send)

    return mutant


def close_always(app: ASGIApp) -> ASGIApp:
    """Every response says Connection: close, so no connection serves a second request
    (www.rst "HTTP": HTTP/1.1 connections persist, RFC 9112 §9.3)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def closing(message: Message) -> None:
            if message.get("type") == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, closing if scope.get("type") == "http" else send)

    return mutant


def _uvicorn_cycle(send: Send, *attributes: str) -> Any:
    """uvicorn's request cycle behind ``send`` (a bound ``RequestResponseCycle.send``)."""
    cycle = getattr(send, "__self__", None)
    missing = [name for name in attributes if not hasattr(cycle, name)]
    if missing:
        raise RuntimeError(f"this mutant needs uvicorn's httptools request cycle; no {missing}")
    return cycle


def close_ignored(app: ASGIApp) -> ASGIApp:
    """The connection stays open after a Connection: close or HTTP/1.0 request (www.rst
    "HTTP": the server closes after the response, RFC 9112 §9.3 and §9.6).

    Sets uvicorn's ``RequestResponseCycle.keep_alive`` back to True before the app
    answers, as a server that never reads the Connection header would.
    """

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            _uvicorn_cycle(send, "keep_alive").keep_alive = True
        await app(scope, receive, send)

    return mutant


def pipelined_concurrently(app: ASGIApp) -> ASGIApp:
    """Pipelined requests run at once and are answered as each finishes (www.rst "HTTP":
    responses go in request order, RFC 9112 §9.3.2).

    uvicorn (httptools) queues a pipelined request in ``HttpToolsProtocol.pipeline`` until
    the previous response is complete; this starts the queued ones at once instead, with
    the protocol's own ``_start_asgi_task``, and each writes its answer when it has it.
    """

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            cycle = _uvicorn_cycle(send, "on_response")
            protocol: Any = getattr(cycle.on_response, "__self__", None)
            if not hasattr(protocol, "pipeline") or not hasattr(protocol, "_start_asgi_task"):
                raise RuntimeError("this mutant needs uvicorn's HttpToolsProtocol")
            while protocol.pipeline:
                queued_cycle, queued_app = protocol.pipeline.pop()
                protocol._start_asgi_task(queued_cycle, queued_app)
        await app(scope, receive, send)

    return mutant


# -- the table -------------------------------------------------------------------------------

MUTANTS: dict[str, Mutant] = {
    "request-body-bytearray": Mutant(
        on_receive(body_bytearray),
        ("http.request.field-types",),
        keeps=("http.request.body-complete", "http.request.more-body-sequence"),
    ),
    "request-more-body-int": Mutant(
        on_receive(more_body_int),
        ("http.request.field-types",),
        keeps=("http.request.more-body-sequence", "http.request.empty-body"),
    ),
    "event-bytes-key": Mutant(
        on_receive(bytes_key_added),
        ("core.event.str-keys",),
        keeps=("core.event.no-tuples", "http.request.body-complete"),
    ),
    "event-tuple-value": Mutant(
        on_receive(tuple_value_added),
        ("core.event.no-tuples",),
        keeps=("core.event.str-keys", "http.request.body-complete"),
    ),
    "request-more-body-stuck": Mutant(
        on_receive(more_body_stuck), ("http.request.more-body-sequence",)
    ),
    "request-extra-event": Mutant(
        on_receive(extra_request_event),
        ("http.request.more-body-sequence", "http.request.empty-body"),
        keeps=("http.request.body-complete",),
    ),
    "request-empty-body-split": Mutant(
        on_receive(empty_body_split),
        ("http.request.empty-body",),
        keeps=("http.request.more-body-sequence",),
    ),
    "request-first-byte-lost": Mutant(
        on_receive(first_byte_lost),
        ("http.request.body-complete", "http.request.chunked-decoded"),
        keeps=("http.request.more-body-sequence",),
    ),
    "request-body-duplicated": Mutant(
        on_receive(body_duplicated),
        ("http.request.body-complete", "http.request.chunked-decoded"),
    ),
    "request-body-reordered": Mutant(
        on_receive(body_reordered),
        ("http.request.body-complete",),
        keeps=("http.request.field-types",),
    ),
    "request-chunk-framing-kept": Mutant(
        on_receive(chunk_framing_kept),
        ("http.request.chunked-decoded",),
        keeps=("http.request.body-complete",),
    ),
    "request-events-coalesced": Mutant(
        on_receive(events_coalesced),
        ("http.request.streamed",),
        keeps=("http.request.body-complete", "http.request.more-body-sequence"),
    ),
    "request-drained-before-call": Mutant(
        drained_before_call,
        ("http.request.streamed", "http.request.expect-continue"),
        keeps=("http.request.body-complete",),
    ),
    "request-unread-body-leaks": Mutant(
        unread_body_leaks,
        ("http.request.unread-body",),
        keeps=("http.keepalive.one-call-per-request",),
    ),
    "keepalive-scope-per-connection": Mutant(
        scope_per_connection,
        ("http.keepalive.one-call-per-request",),
        keeps=("http.keepalive.client-close",),
    ),
    "keepalive-close-always": Mutant(
        close_always,
        ("http.keepalive.persistent",),
        keeps=("http.keepalive.client-close", "http.keepalive.http10-close"),
    ),
    "keepalive-close-ignored": Mutant(
        close_ignored,
        ("http.keepalive.client-close", "http.keepalive.http10-close"),
        keeps=("http.keepalive.persistent",),
    ),
    "keepalive-pipelined-concurrently": Mutant(
        pipelined_concurrently,
        ("http.keepalive.pipelined-in-order",),
        keeps=("http.keepalive.persistent",),
    ),
}
