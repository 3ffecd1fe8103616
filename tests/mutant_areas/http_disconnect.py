"""Mutants of disconnects, app errors and load (www.rst "Disconnect", asgi.rst "Error Handling").

Each middleware sits between the server (uvicorn, clean on every row here) and the
probe app and breaks one rule the way a careless server would: a receive() that
never reports the client leaving or reports it too early, a send() that stays
quiet (or raises the wrong thing) once the client is gone, an error page of 200,
a truncated response completed behind the client's back, invalid events patched
up instead of refused, a server that stays broken after one app error, a global
lock around streaming responses, and a cap on open connections.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from tests.mutants import ASGIApp, Message, Mutant, Receive, Scope, Send, unchanged


__all__ = ["MUTANTS"]

Middleware = Callable[[ASGIApp], ASGIApp]


def _http_only(middleware: Middleware) -> Middleware:
    """Apply ``middleware`` to HTTP scopes only (lifespan passes untouched)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        mutated = middleware(app)

        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            await (mutated if scope.get("type") == "http" else app)(scope, receive, send)

        return mutant

    wrap.__doc__ = middleware.__doc__
    return wrap


async def _forever() -> None:
    """Wait until cancelled (the app's own timeout cancels it)."""
    await asyncio.Event().wait()


class ClientGone(OSError):
    """What a careful 2.4 server raises from send() once the client has left."""


# -- receive() and http.disconnect (www.rst "Disconnect - receive event") ---------------------


@_http_only
def disconnect_never(app: ASGIApp) -> ASGIApp:
    """receive() never returns http.disconnect: it waits for ever (www.rst "Disconnect - receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                await _forever()
            return message

        await app(scope, mutated, send)

    return mutant


@_http_only
def disconnect_early(app: ASGIApp) -> ASGIApp:
    """Once the body is read, receive() returns http.disconnect at once, though the client is
    still there (www.rst "Disconnect - receive event": only after the response or a close)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        body_done = False

        async def mutated() -> Message:
            nonlocal body_done
            if body_done:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        await app(scope, mutated, send)

    return mutant


def _rewrite_disconnect(change: Callable[[Message], Message]) -> Middleware:
    """A middleware that replaces every http.disconnect receive() returns with ``change(event)``."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            async def mutated() -> Message:
                message = await receive()
                return change(message) if message.get("type") == "http.disconnect" else message

            await app(scope, mutated, send)

        return mutant

    middleware.__doc__ = change.__doc__
    return _http_only(middleware)


def disconnect_misspelled(message: Message) -> Message:
    """The disconnect event's type is "http.disconnected" (www.rst "Disconnect - receive event")."""
    return {"type": "http.disconnected"}


def disconnect_with_reason(message: Message) -> Message:
    """http.disconnect carries a "reason" key the HTTP spec does not define (www.rst "Disconnect - receive event"; recorded)."""
    return {"type": "http.disconnect", "reason": "the client went away"}


@_http_only
def disconnect_once(app: ASGIApp) -> ASGIApp:
    """http.disconnect is returned once; later receive() calls wait for ever (www.rst
    "Disconnect - receive event": every receive() after the end gets it, asgiref #334)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        told = False

        async def mutated() -> Message:
            nonlocal told
            if told:
                await _forever()
            message = await receive()
            told = message.get("type") == "http.disconnect"
            return message

        await app(scope, mutated, send)

    return mutant


@_http_only
def truncated_body_completed(app: ASGIApp) -> ASGIApp:
    """A client that leaves mid-body is reported as a complete body (more_body False) before
    http.disconnect (www.rst "Request - receive event" and "Disconnect - receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        body_done = False
        pending: list[Message] = []

        async def mutated() -> Message:
            nonlocal body_done
            if pending:
                return pending.pop()
            message = await receive()
            if message.get("type") == "http.request":
                body_done = not message.get("more_body", False)
            elif message.get("type") == "http.disconnect" and not body_done:
                body_done = True
                pending.append(message)
                return {"type": "http.request", "body": b"", "more_body": False}
            return message

        await app(scope, mutated, send)

    return mutant


# -- send() once the client has gone (www.rst "Disconnected Client - send exception") ---------


def _claims_2_4(scope: Scope) -> None:
    scope["asgi"] = {**scope["asgi"], "spec_version": "2.4"}


def _after_leaving(
    fail: Callable[[], BaseException] | None, *, claim_2_4: bool, poison: bool = False
) -> Middleware:
    """send() after the app heard http.disconnect mid-response raises ``fail()`` (or stays
    a no-op), with the scope claiming spec_version 2.4 or not.  With ``poison``, an
    OSError escaping the app leaves every later request answered 503."""
    poisoned = False

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal poisoned
            if poisoned:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"broken"})
                return
            if claim_2_4:
                scope = dict(scope)
                _claims_2_4(scope)
            gone = complete = False

            async def watched() -> Message:
                nonlocal gone
                message = await receive()
                gone = gone or (message.get("type") == "http.disconnect" and not complete)
                return message

            async def mutated(message: Message) -> None:
                nonlocal complete
                if gone and fail is not None:
                    raise fail()
                if message.get("type") == "http.response.body" and not message.get("more_body"):
                    complete = True
                await send(message)

            try:
                await app(scope, watched, mutated)
            except OSError:
                poisoned = poison
                raise

        return mutant

    return _http_only(middleware)


def send_quiet_under_2_4(app: ASGIApp) -> ASGIApp:
    """The scope claims spec_version 2.4 but send() after the client left stays a no-op
    (www.rst "Disconnected Client - send exception": from 2.4 it should raise an OSError)."""
    return _after_leaving(None, claim_2_4=True)(app)


def send_runtime_error_under_2_4(app: ASGIApp) -> ASGIApp:
    """send() after the client left raises RuntimeError, not an OSError subclass, under 2.4
    (www.rst "Disconnected Client - send exception")."""
    return _after_leaving(lambda: RuntimeError("the client went away"), claim_2_4=True)(app)


def send_raises_under_2_3(app: ASGIApp) -> ASGIApp:
    """send() after the client left raises, though the scope says spec_version 2.3 (asgi.rst
    "Error Handling": before 2.4 it should act as a no-op)."""
    return _after_leaving(lambda: ClientGone("the client went away"), claim_2_4=False)(app)


def send_error_poisons(app: ASGIApp) -> ASGIApp:
    """A 2.4 server whose own send-after-close OSError, escaping the app, breaks it: every
    later request gets 503 (www.rst "Disconnected Client": servers must catch it)."""
    return _after_leaving(lambda: ClientGone("the client went away"), claim_2_4=True, poison=True)(
        app
    )


# -- the app raises or returns (asgi.rst "Error Handling") -------------------------------------


@_http_only
def exception_answered_200(app: ASGIApp) -> ASGIApp:
    """An app that raises before responding is answered 200 "ok" (asgi.rst "Error Handling":
    the instance and its connection are terminated, not passed off as a success)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, watched)
        except Exception:
            if started:
                raise
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    return mutant


_LENGTH = re.compile(rb"^\d+$")


@_http_only
def exception_completes_response(app: ASGIApp) -> ASGIApp:
    """An app that raises mid-body has its response completed for it (padded to its
    Content-Length, or a final empty chunk), so the client takes a truncated body for whole
    (asgi.rst "Error Handling": the connection must be terminated)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        started, declared, sent = False, -1, 0

        async def watched(message: Message) -> None:
            nonlocal started, declared, sent
            if message.get("type") == "http.response.start":
                started = True
                for name, value in message.get("headers", []):
                    if bytes(name).lower() == b"content-length" and _LENGTH.match(bytes(value)):
                        declared = int(bytes(value))
            elif message.get("type") == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, watched)
        except Exception:
            if not started:
                raise
            padding = b"\0" * max(0, declared - sent) if declared >= 0 else b""
            await send({"type": "http.response.body", "body": padding, "more_body": False})

    return mutant


@_http_only
def no_response_204(app: ASGIApp) -> ASGIApp:
    """An app that returns without responding is answered 204 (recorded: www.rst "Response
    Start - send event" does not say what a server does then)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        await app(scope, receive, watched)
        if not started:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return mutant


def _bytes(value: Any) -> Any:
    return value.encode("latin-1") if isinstance(value, str) else value


@_http_only
def invalid_events_patched(app: ASGIApp) -> ASGIApp:
    """Invalid events are patched up instead of refused: unknown types and second starts are
    dropped, str statuses, headers and bodies converted, a body before the start gets a 200
    start first (asgi.rst "Error Handling": send() should raise on an invalid event)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def patched(message: Message) -> None:
            nonlocal started
            kind = message.get("type")
            if kind == "http.response.start":
                if started:
                    return
                started = True
                message = {
                    **message,
                    "status": int(message.get("status", 200)),
                    "headers": [(_bytes(n), _bytes(v)) for n, v in message.get("headers", [])],
                }
            elif kind == "http.response.body":
                if not started:
                    started = True
                    await send({"type": "http.response.start", "status": 200, "headers": []})
                message = {**message, "body": _bytes(message.get("body", b""))}
            else:
                return
            await send(message)

        await app(scope, receive, patched)

    return mutant


def poisoned_after_error(app: ASGIApp) -> ASGIApp:
    """After any app error escapes, every later request is answered 503 (asgi.rst "Error
    Handling": an error ends its instance and connection, not the server)."""
    poisoned = False

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal poisoned
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        if poisoned:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"broken"})
            return
        try:
            await app(scope, receive, send)
        except Exception:
            poisoned = True
            raise

    return mutant


# -- load (asgi.rst "Overview") -----------------------------------------------------------------


def streaming_lock(app: ASGIApp) -> ASGIApp:
    """One response at a time: a process-wide lock is held from http.response.start to the
    final body, so a held stream stalls every other response (asgi.rst "Overview")."""
    lock = asyncio.Lock()

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        held = False

        async def locked(message: Message) -> None:
            nonlocal held
            if message.get("type") == "http.response.start" and not held:
                await lock.acquire()
                held = True
            await send(message)
            final = message.get("type") == "http.response.body" and not message.get("more_body")
            if final and held:
                held = False
                lock.release()

        try:
            await app(scope, receive, locked)
        finally:
            if held:
                lock.release()

    return mutant


def connection_limit(app: ASGIApp) -> ASGIApp:
    """uvicorn's limit_concurrency=10: past ten open connections every request gets 503
    (asgi.rst "Overview": a server is for many connections at once)."""
    return unchanged(app)


# -- the table ----------------------------------------------------------------------------------

MUTANTS: dict[str, Mutant] = {
    "disconnect-never": Mutant(
        disconnect_never,
        (
            "http.disconnect.during-body",
            "http.disconnect.long-poll",
            "http.disconnect.streaming",
            "http.disconnect.after-response",
        ),
        keeps=("http.disconnect.not-premature",),
    ),
    "disconnect-early": Mutant(
        disconnect_early,
        ("http.disconnect.not-premature",),
        keeps=("http.disconnect.long-poll", "http.disconnect.after-response"),
    ),
    "disconnect-misspelled": Mutant(
        _rewrite_disconnect(disconnect_misspelled), ("http.disconnect.shape",)
    ),
    "disconnect-with-reason": Mutant(
        _rewrite_disconnect(disconnect_with_reason),
        ("http.disconnect.extra-keys",),
        keeps=("http.disconnect.shape",),
    ),
    "disconnect-once": Mutant(
        disconnect_once, ("http.disconnect.repeats",), keeps=("http.disconnect.after-response",)
    ),
    "truncated-body-completed": Mutant(
        truncated_body_completed,
        ("http.disconnect.during-body",),
        keeps=("http.disconnect.long-poll",),
    ),
    "send-quiet-under-2.4": Mutant(send_quiet_under_2_4, ("http.disconnect.send-after-close",)),
    "send-runtime-error-under-2.4": Mutant(
        send_runtime_error_under_2_4,
        ("http.disconnect.send-after-close",),
        keeps=("http.disconnect.streaming",),
    ),
    "send-raises-under-2.3": Mutant(
        send_raises_under_2_3,
        ("http.disconnect.send-after-close",),
        keeps=("http.disconnect.streaming",),
    ),
    "send-error-poisons": Mutant(
        send_error_poisons,
        ("http.disconnect.send-error-contained",),
        keeps=("http.disconnect.send-after-close",),
    ),
    "exception-answered-200": Mutant(
        exception_answered_200,
        ("http.error.exception-before-start", "http.error.exception-response"),
        keeps=("http.error.exception-mid-body", "http.error.no-response"),
    ),
    "exception-completes-response": Mutant(
        exception_completes_response,
        ("http.error.exception-mid-body",),
        keeps=("http.error.exception-before-start",),
    ),
    "no-response-204": Mutant(
        no_response_204, ("http.error.no-response",), keeps=("http.error.exception-before-start",)
    ),
    "invalid-events-patched": Mutant(
        invalid_events_patched,
        (
            "http.error.invalid-type",
            "http.error.invalid-status",
            "http.error.invalid-header",
            "http.error.invalid-body",
            "http.error.body-before-start",
            "http.error.second-start",
        ),
        keeps=("http.error.exception-before-start",),
    ),
    "poisoned-after-error": Mutant(poisoned_after_error, ("http.error.server-survives",)),
    "streaming-lock": Mutant(
        streaming_lock,
        ("http.load.streaming-not-blocking",),
        keeps=("http.load.idle-connections",),
    ),
    "connection-limit": Mutant(
        connection_limit,
        ("http.load.idle-connections",),
        keeps=("http.load.streaming-not-blocking",),
        uvicorn_options=(("limit_concurrency", 10),),
    ),
}
