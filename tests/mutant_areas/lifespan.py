"""Mutants of lifespan (lifespan.rst) and of the ``state`` key (www.rst "HTTP Connection Scope").

Each middleware sits between uvicorn (clean on every lifespan row) and the probe
app, and now sees the ``lifespan`` scope too.  It breaks one rule the way a careless
server would: a scope with a bytes key, without asgi.version or with a www.rst
spec_version; startup sent twice, or reported complete while the app is still
starting; a failed startup taken for a complete one; failure messages dropped;
shutdown reported complete before the app finished, or given up on; state dropped,
shared without a copy, deep-copied or added to.  What a middleware cannot reach
(the order of draining and lifespan.shutdown, how long a request may run on, the
lifespan mode) is broken through ``uvicorn_options`` or a ``uvicorn.Server``
subclass.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tests.mutants import ASGIApp, Message, Middleware, Mutant, Receive, Scope, Send, on_scope


T = TypeVar("T")


__all__ = ["MUTANTS"]


def _on_lifespan_scope(change: Callable[[Scope], None]) -> Middleware:
    """A middleware that applies ``change`` to a copy of the lifespan scope."""
    return on_scope(change, "lifespan")


# -- the scope (lifespan.rst "Scope") -----------------------------------------------------------


def bytes_key(scope: Scope) -> None:
    """The lifespan scope has a bytes key (lifespan.rst "Scope": a dict of str keys)."""
    scope[b"type"] = b"lifespan"


def asgi_version_missing(scope: Scope) -> None:
    """The lifespan scope's asgi dict has no "version" (lifespan.rst "Scope": asgi["version"])."""
    scope["asgi"] = {k: v for k, v in scope["asgi"].items() if k != "version"}


def spec_version_www(scope: Scope) -> None:
    """The lifespan scope's spec_version is a www.rst number, "2.3" (lifespan.rst "Scope")."""
    scope["asgi"] = {**scope["asgi"], "spec_version": "2.3"}


def state_dropped(scope: Scope) -> None:
    """The lifespan scope offers no state (lifespan.rst "Lifespan State": optional)."""
    scope.pop("state", None)


# -- startup (lifespan.rst "Startup - receive event", "Startup Complete - send event") -------


async def _coroutine(awaitable: Awaitable[T]) -> T:
    """``awaitable`` as a coroutine (what run_coroutine_threadsafe and asyncio.run take)."""
    return await awaitable


def lifespan_elsewhere(app: ASGIApp) -> ASGIApp:
    """The lifespan runs on an event loop of its own thread, not the one serving requests
    (lifespan.rst "Scope": lifespans are executed once per event loop processing requests)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        serving = asyncio.get_running_loop()

        async def bridged_receive() -> Message:
            future = asyncio.run_coroutine_threadsafe(_coroutine(receive()), serving)
            return await asyncio.wrap_future(future)

        async def bridged_send(message: Message) -> None:
            future = asyncio.run_coroutine_threadsafe(_coroutine(send(message)), serving)
            await asyncio.wrap_future(future)

        def elsewhere() -> None:
            asyncio.run(_coroutine(app(scope, bridged_receive, bridged_send)))

        await asyncio.to_thread(elsewhere)

    return mutant


def startup_twice(app: ASGIApp) -> ASGIApp:
    """lifespan.startup is delivered twice (lifespan.rst "Startup - receive event": once)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        first: list[Message] = []
        completes = 0

        async def twice() -> Message:
            if len(first) == 1:
                return first.pop()  # the same startup again
            message = await receive()
            if message.get("type") == "lifespan.startup" and not completes:
                first.append(dict(message))
            return message

        async def once(message: Message) -> None:
            nonlocal completes
            if message.get("type") == "lifespan.startup.complete":
                completes += 1
                if completes > 1:
                    return  # the server hears one complete
            await send(message)

        await app(scope, twice, once)

    return mutant


def _completes_early(phase: str, rule: str) -> Middleware:
    """A middleware that answers ``lifespan.<phase>`` with ``<phase>.complete`` itself, at once,
    and drops the app's own ``complete``; ``rule`` is the rule it breaks (its docstring)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "lifespan":
                await app(scope, receive, send)
                return

            async def early() -> Message:
                message = await receive()
                if message.get("type") == f"lifespan.{phase}":
                    await send({"type": f"lifespan.{phase}.complete"})
                return message

            async def drop_complete(message: Message) -> None:
                if message.get("type") != f"lifespan.{phase}.complete":
                    await send(message)

            await app(scope, early, drop_complete)

        return mutant

    middleware.__doc__ = rule
    return middleware


startup_complete_early = _completes_early(
    "startup",
    """The server is told startup is complete as soon as it is sent, while the app is still
    starting (lifespan.rst "Startup Complete - send event": wait for the app's message).""",
)


def _rewrite_sent(rewrite: Callable[[Message], Message | None], doc: str | None) -> Middleware:
    """A middleware that passes every lifespan event the app sends through ``rewrite``
    (None: the server never hears of it)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "lifespan":
                await app(scope, receive, send)
                return

            async def rewritten(message: Message) -> None:
                changed = rewrite(dict(message))
                if changed is not None:
                    await send(changed)

            await app(scope, receive, rewritten)

        return mutant

    middleware.__doc__ = doc
    return middleware


def _failed_as_complete(message: Message) -> Message:
    if message.get("type") == "lifespan.startup.failed":
        return {"type": "lifespan.startup.complete"}
    return message


def _messages_dropped(message: Message) -> Message:
    if str(message.get("type", "")).endswith(".failed"):
        message.pop("message", None)
    return message


def _silent_failure_swallowed(message: Message) -> Message | None:
    if message.get("type") == "lifespan.startup.failed" and "message" not in message:
        return None
    return message


failed_as_complete = _rewrite_sent(
    _failed_as_complete,
    """lifespan.startup.failed reaches the server as startup.complete, so it serves
    (lifespan.rst "Startup Failed - send event": log the message and exit).""",
)
messages_dropped = _rewrite_sent(
    _messages_dropped,
    """The message of startup.failed and shutdown.failed never reaches the server
    (lifespan.rst "Startup Failed", "Shutdown Failed": log/print the message provided).""",
)
silent_failure_swallowed = _rewrite_sent(
    _silent_failure_swallowed,
    """A lifespan.startup.failed without a message is lost, so the server waits for ever
    (lifespan.rst "Startup Failed - send event": message is optional, default "").""",
)


# -- shutdown (lifespan.rst "Shutdown - receive event", "Shutdown Complete", "Shutdown Failed") --


shutdown_complete_early = _completes_early(
    "shutdown",
    """The server hears shutdown.complete as soon as it sends lifespan.shutdown, and exits
    while the app is still cleaning up (lifespan.rst "Shutdown Complete - send event").""",
)


def shutdown_failed_ignored(app: ASGIApp) -> ASGIApp:
    """lifespan.shutdown.failed is lost and the lifespan call never ends, so the server
    waits for ever (lifespan.rst "Shutdown Failed - send event": then terminate)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        failed = asyncio.Event()

        async def ignore(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.failed":
                failed.set()
                return
            await send(message)

        await app(scope, receive, ignore)
        if failed.is_set():
            await asyncio.Event().wait()  # until the process is killed

    return mutant


def shutdown_given_up(app: ASGIApp) -> ASGIApp:
    """The server gives up on the app's shutdown after 1.5 units and completes it itself
    (lifespan.rst "Shutdown Complete - send event": the server waits; its limit is recorded)."""
    from conformance._timing import units

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        done = asyncio.Event()

        async def give_up() -> None:
            try:
                await asyncio.wait_for(done.wait(), units(1.5))
            except asyncio.TimeoutError:
                done.set()
                await send({"type": "lifespan.shutdown.complete"})

        async def watched() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                asyncio.get_running_loop().create_task(give_up())
            return message

        async def once(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                if done.is_set():
                    return
                done.set()
            await send(message)

        await app(scope, watched, once)

    return mutant


def shutdown_first_server(config: Any) -> Any:
    """A uvicorn.Server that sends lifespan.shutdown before it drains the connections
    (built when the mutant serves: importing this table must not import uvicorn)."""
    import uvicorn

    class ShutdownFirst(uvicorn.Server):
        """lifespan.shutdown goes out before the in-flight requests end (lifespan.rst
        "Shutdown - receive event": only once all connections are closed)."""

        async def shutdown(self, sockets: Any = None) -> None:
            await self.lifespan.shutdown()

            async def already() -> None:
                return None

            self.lifespan.shutdown = already
            await super().shutdown(sockets)

    return ShutdownFirst(config)


def shutdown_first(app: ASGIApp) -> ASGIApp:
    """lifespan.shutdown is sent before the in-flight requests end (lifespan.rst "Shutdown -
    receive event": sent once the server has closed all active connections).

    The order is the server's own: this row's ``uvicorn_server`` is a ``uvicorn.Server``
    whose shutdown sends lifespan.shutdown first; the app is untouched.
    """
    return app


def request_cut_off(app: ASGIApp) -> ASGIApp:
    """An in-flight request is cancelled at once when the server is told to stop
    (lifespan.rst "Shutdown - receive event": how long it may run on is recorded).

    uvicorn's own setting does it: this row's ``timeout_graceful_shutdown`` is 0.
    """
    return app


def lifespan_fatal(app: ASGIApp) -> ASGIApp:
    """An app that raises on the lifespan scope stops the server (lifespan.rst "Scope": the
    server must continue without lifespan).

    uvicorn's own ``lifespan="on"`` does it (this row's ``uvicorn_options``).
    """
    return app


# -- state (lifespan.rst "Lifespan State"; www.rst "HTTP Connection Scope") ------------------


def _on_connection_state(
    change: Callable[[Scope, dict[str, Any]], None], kinds: tuple[str, ...], doc: str | None
) -> Middleware:
    """A middleware that sees the lifespan namespace and changes the state of ``kinds`` scopes."""

    def middleware(app: ASGIApp) -> ASGIApp:
        lifespan: dict[str, Any] = {}

        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") == "lifespan" and isinstance(scope.get("state"), dict):
                lifespan["state"] = scope["state"]
            elif scope.get("type") in kinds:
                scope = dict(scope)
                change(scope, lifespan)
            await app(scope, receive, send)

        return mutant

    middleware.__doc__ = doc
    return middleware


def _drop(scope: Scope, lifespan: dict[str, Any]) -> None:
    scope.pop("state", None)


def _shared(scope: Scope, lifespan: dict[str, Any]) -> None:
    if "state" in lifespan:
        scope["state"] = lifespan["state"]


def _deep(scope: Scope, lifespan: dict[str, Any]) -> None:
    if isinstance(scope.get("state"), dict):
        scope["state"] = copy.deepcopy(scope["state"])


def _key_added(scope: Scope, lifespan: dict[str, Any]) -> None:
    if isinstance(scope.get("state"), dict):
        scope["state"] = {**scope["state"], "server_request_count": 1}


BOTH = ("http", "websocket")
http_state_dropped = _on_connection_state(
    _drop,
    ("http",),
    """HTTP scopes carry no state (www.rst "HTTP Connection Scope": a copy of the lifespan namespace).""",
)
websocket_state_dropped = _on_connection_state(
    _drop,
    ("websocket",),
    """WebSocket scopes carry no state (www.rst "WebSocket Connection Scope": state).""",
)
state_shared = _on_connection_state(
    _shared,
    BOTH,
    """Every request gets the lifespan namespace itself, not a copy, so added keys leak
    (lifespan.rst "Lifespan State": a shallow copy for each request).""",
)
state_deep_copied = _on_connection_state(
    _deep,
    BOTH,
    """Every request gets a deep copy of the namespace: new objects, mutations lost
    (lifespan.rst "Lifespan State": a shallow copy).""",
)
state_key_added = _on_connection_state(
    _key_added,
    BOTH,
    """The server adds a key of its own to each request's state (lifespan.rst "Lifespan
    State": the server does not interact with it other than to copy it).""",
)


# -- the table -------------------------------------------------------------------------------

MUTANTS: Mapping[str, Mutant] = {
    "lifespan-scope-bytes-key": Mutant(
        _on_lifespan_scope(bytes_key),
        ("lifespan.scope.type",),
        keeps=("lifespan.scope.asgi-version",),
    ),
    "lifespan-asgi-version-missing": Mutant(
        _on_lifespan_scope(asgi_version_missing),
        ("lifespan.scope.asgi-version",),
        keeps=("lifespan.scope.type",),
    ),
    "lifespan-spec-version-www": Mutant(
        _on_lifespan_scope(spec_version_www),
        ("lifespan.scope.spec-version",),
        keeps=("lifespan.scope.asgi-version",),
    ),
    "lifespan-elsewhere": Mutant(
        lifespan_elsewhere,
        ("lifespan.startup.once-per-loop",),
        keeps=("lifespan.startup.first-event",),
    ),
    "lifespan-startup-twice": Mutant(
        startup_twice, ("lifespan.startup.first-event",), keeps=("lifespan.scope.type",)
    ),
    "lifespan-startup-complete-early": Mutant(
        startup_complete_early,
        ("lifespan.startup.before-requests", "lifespan.startup.early-requests"),
        keeps=("lifespan.startup.first-event",),
    ),
    "lifespan-failed-as-complete": Mutant(
        failed_as_complete,
        (
            "lifespan.startup-failed.not-served",
            "lifespan.startup-failed.exit",
            "lifespan.startup-failed.message",
            "lifespan.startup-failed.no-message",
        ),
        keeps=("lifespan.startup.before-requests",),
    ),
    "lifespan-messages-dropped": Mutant(
        messages_dropped,
        ("lifespan.startup-failed.message", "lifespan.shutdown-failed.message"),
        keeps=("lifespan.startup-failed.exit", "lifespan.shutdown-failed.exit"),
    ),
    "lifespan-silent-failure-swallowed": Mutant(
        silent_failure_swallowed,
        ("lifespan.startup-failed.no-message",),
        keeps=("lifespan.startup-failed.exit", "lifespan.startup-failed.not-served"),
    ),
    "lifespan-error-fatal": Mutant(
        lifespan_fatal,
        ("lifespan.error.on-scope", "lifespan.error.after-startup", "lifespan.error.output"),
        keeps=("lifespan.startup-failed.exit",),
        uvicorn_options=(("lifespan", "on"),),
    ),
    "lifespan-shutdown-first": Mutant(
        shutdown_first,
        ("lifespan.shutdown.after-requests",),
        keeps=("lifespan.shutdown.complete-then-exit",),
        uvicorn_server=shutdown_first_server,
    ),
    "lifespan-request-cut-off": Mutant(
        request_cut_off,
        ("lifespan.shutdown.request-wait",),
        keeps=("lifespan.shutdown.complete-then-exit",),
        uvicorn_options=(("timeout_graceful_shutdown", 0),),
    ),
    "lifespan-shutdown-complete-early": Mutant(
        shutdown_complete_early,
        ("lifespan.shutdown.complete-then-exit",),
        keeps=("lifespan.shutdown.after-requests",),
    ),
    "lifespan-shutdown-failed-ignored": Mutant(
        shutdown_failed_ignored,
        ("lifespan.shutdown-failed.exit", "lifespan.shutdown-failed.message"),
        keeps=("lifespan.startup-failed.exit",),
    ),
    "lifespan-shutdown-given-up": Mutant(
        shutdown_given_up,
        ("lifespan.shutdown.no-answer",),
        keeps=("lifespan.shutdown.complete-then-exit",),
    ),
    "lifespan-no-state": Mutant(
        _on_lifespan_scope(state_dropped),
        ("lifespan.state.offered",),
        removes=("lifespan.state.offered",),
        keeps=("lifespan.scope.type",),
    ),
    "lifespan-http-state-dropped": Mutant(
        http_state_dropped, ("lifespan.state.http",), keeps=("lifespan.state.websocket",)
    ),
    "lifespan-websocket-state-dropped": Mutant(
        websocket_state_dropped, ("lifespan.state.websocket",), keeps=("lifespan.state.http",)
    ),
    "lifespan-state-shared": Mutant(
        state_shared,
        ("lifespan.state.isolated", "lifespan.state.untouched"),
        keeps=("lifespan.state.shallow",),
    ),
    "lifespan-state-deep-copied": Mutant(
        state_deep_copied,
        ("lifespan.state.shallow",),
        keeps=("lifespan.state.isolated", "lifespan.state.http"),
    ),
    "lifespan-state-key-added": Mutant(
        state_key_added, ("lifespan.state.untouched",), keeps=("lifespan.state.http",)
    ),
}
