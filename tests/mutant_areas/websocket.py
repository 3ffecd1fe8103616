"""Mutants of the WebSocket area (www.rst "WebSocket" sections; docs/extensions.rst
"Websocket Denial Response").

Each middleware sits between uvicorn and the probe app and breaks one rule on
``websocket`` scopes only, the way a careless server would: a scope key changed,
an event renamed or reshaped, a message lost, reordered or cut, a close code or
reason lost, a disconnect never told.  Rules a middleware cannot reach (the
server answers pings itself, negotiates compression) are broken inside uvicorn,
through ``uvicorn_options``: ``ws`` names a protocol class of this module, or
``ws_per_message_deflate`` turns compression off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

from tests.mutants import ASGIApp, Message, Mutant, Receive, Scope, Send


__all__ = ["KNOWN_FINDINGS", "MUTANTS", "DenialKeepsOpenProtocol", "NoPongProtocol"]

Middleware = Callable[[ASGIApp], ASGIApp]
MIB = 1024 * 1024


def _websocket_only(middleware: Middleware) -> Middleware:
    """Apply ``middleware`` to WebSocket scopes only (HTTP and lifespan pass untouched)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        mutated = middleware(app)

        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            await (mutated if scope.get("type") == "websocket" else app)(scope, receive, send)

        return mutant

    wrap.__doc__ = middleware.__doc__
    return wrap


def on_scope(change: Callable[[Scope], None]) -> Middleware:
    """A middleware applying ``change`` to a copy of every WebSocket scope."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            scope = dict(scope)
            change(scope)
            await app(scope, receive, send)

        return mutant

    middleware.__doc__ = change.__doc__
    return _websocket_only(middleware)


def on_events(
    incoming: Callable[[Message], Message | None] | None = None,
    outgoing: Callable[[Message], Message | None] | None = None,
    doc: str = "",
) -> Middleware:
    """A middleware rewriting what receive() returns and what the app sends (None: dropped)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            async def mutated_receive() -> Message:
                while True:
                    message = await receive()
                    changed = incoming(message) if incoming else message
                    if changed is not None:
                        return changed

            async def mutated_send(message: Message) -> None:
                changed = outgoing(message) if outgoing else message
                if changed is not None:
                    await send(changed)

            await app(scope, mutated_receive, mutated_send)

        return mutant

    middleware.__doc__ = doc or (incoming or outgoing).__doc__
    return _websocket_only(middleware)


async def _forever() -> None:
    await asyncio.Event().wait()


# -- the scope (www.rst "Websocket Connection Scope") --------------------------------------------


def scope_type(scope: Scope) -> None:
    """scope['type'] is "websockets" (www.rst "Websocket Connection Scope": "websocket")."""
    scope["type"] = "websockets"


def asgi_version_missing(scope: Scope) -> None:
    """scope['asgi'] has no 'version' (www.rst "Websocket Connection Scope": asgi["version"])."""
    scope["asgi"] = {k: v for k, v in scope["asgi"].items() if k != "version"}


def spec_version_float(scope: Scope) -> None:
    """asgi['spec_version'] is the float 2.4 (www.rst "Websocket Connection Scope": a str)."""
    scope["asgi"] = {**scope["asgi"], "spec_version": 2.4}


def http_version_prefixed(scope: Scope) -> None:
    """http_version is "HTTP/1.1" (www.rst "Websocket Connection Scope": "1.1" or "2")."""
    scope["http_version"] = "HTTP/1.1"


def scheme_empty(scope: Scope) -> None:
    """scheme is "" (www.rst "Websocket Connection Scope": optional, but must not be empty)."""
    scope["scheme"] = ""


def path_not_decoded(scope: Scope) -> None:
    """path keeps its percent-escapes (www.rst "Websocket Connection Scope": decoded)."""
    raw = scope.get("raw_path")
    scope["path"] = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]


def raw_path_with_query(scope: Scope) -> None:
    """raw_path includes the query (www.rst "Websocket Connection Scope": excluding the query)."""
    if scope.get("query_string") and isinstance(scope.get("raw_path"), bytes):
        scope["raw_path"] = scope["raw_path"] + b"?" + scope["query_string"]


def query_string_decoded(scope: Scope) -> None:
    """query_string is percent-decoded (www.rst "Websocket Connection Scope": percent-encoded)."""
    from urllib.parse import unquote_to_bytes

    scope["query_string"] = unquote_to_bytes(scope.get("query_string") or b"")


def root_path_by_default(scope: Scope) -> None:
    """root_path is "/default" though none is configured (www.rst: optional, default "")."""
    scope["root_path"] = "/default"


def headers_merged(scope: Scope) -> None:
    """Repeated fields are joined into one (www.rst "Websocket Connection Scope": duplicates preserved)."""
    merged: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        merged[name] = merged[name] + b", " + value if name in merged else value
    scope["headers"] = list(merged.items())


def headers_reversed(scope: Scope) -> None:
    """The header list is reversed (www.rst "Websocket Connection Scope": order should be preserved)."""
    scope["headers"] = list(scope["headers"])[::-1]


def header_names_uppercased(scope: Scope) -> None:
    """Header names are upper-cased (www.rst "Websocket Connection Scope": should be lowercased)."""
    scope["headers"] = [(name.upper(), value) for name, value in scope["headers"]]


def client_port_str(scope: Scope) -> None:
    """client's port is a str (www.rst "Websocket Connection Scope": [host, port], port an int)."""
    host, port = scope["client"]
    scope["client"] = (host, str(port))


def server_port_wrong(scope: Scope) -> None:
    """server names a port nobody listens on (www.rst "Websocket Connection Scope": the listening port)."""
    host, port = scope["server"]
    scope["server"] = (host, port + 1)


def subprotocols_reversed(scope: Scope) -> None:
    """subprotocols are in reverse order (www.rst "Websocket Connection Scope": as advertised)."""
    scope["subprotocols"] = list(scope.get("subprotocols") or [])[::-1]


def extensions_list(scope: Scope) -> None:
    """extensions is a list of names (asgi.rst "Extensions": a dict of dicts)."""
    scope["extensions"] = list(scope.get("extensions") or {}) or ["websocket.http.response"]


def claims_2_5(scope: Scope) -> None:
    scope["asgi"] = {**scope["asgi"], "spec_version": "2.5"}


def claims_2_3(scope: Scope) -> None:
    scope["asgi"] = {**scope["asgi"], "spec_version": "2.3"}


# -- the handshake (www.rst "Connect", "Accept", "Close") ----------------------------------------


def connect_renamed(message: Message) -> Message:
    """The first event is "websocket.connecting" (www.rst "Connect - receive event": "websocket.connect")."""
    if message.get("type") == "websocket.connect":
        return {"type": "websocket.connecting"}
    return message


@_websocket_only
def accept_early(app: ASGIApp) -> ASGIApp:
    """The 101 goes out as soon as the client connects, before the app answers (www.rst
    "Connect - receive event": not complete the handshake until it gets a reply)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def mutated_receive() -> Message:
            nonlocal accepted
            message = await receive()
            if message.get("type") == "websocket.connect" and not accepted:
                accepted = True
                await send({"type": "websocket.accept"})
            return message

        async def mutated_send(message: Message) -> None:
            if message.get("type") != "websocket.accept":
                await send(message)

        await app(scope, mutated_receive, mutated_send)

    return mutant


def subprotocol_dropped(message: Message) -> Message:
    """The app's chosen subprotocol is dropped from the 101 (www.rst "Accept - send event")."""
    if message.get("type") == "websocket.accept":
        return {k: v for k, v in message.items() if k != "subprotocol"}
    return message


@_websocket_only
def subprotocol_forced(app: ASGIApp) -> ASGIApp:
    """An accept without a subprotocol selects the client's first one (www.rst "Accept -
    send event": subprotocol defaults to None)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        offered = list(scope.get("subprotocols") or [])

        async def mutated_send(message: Message) -> None:
            if message.get("type") == "websocket.accept" and offered:
                message = {**message, "subprotocol": message.get("subprotocol") or offered[0]}
            await send(message)

        await app(scope, receive, mutated_send)

    return mutant


def accept_headers_dropped(message: Message) -> Message:
    """The headers of websocket.accept never reach the 101 (www.rst "Accept - send event", 2.1)."""
    if message.get("type") == "websocket.accept":
        return {k: v for k, v in message.items() if k != "headers"}
    return message


@_websocket_only
def close_before_accept_accepted(app: ASGIApp) -> ASGIApp:
    """A close before accept completes the handshake, then closes (www.rst "Close - send
    event": HTTP 403, and not complete the handshake)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def mutated_send(message: Message) -> None:
            nonlocal accepted
            kind = message.get("type")
            if kind == "websocket.close" and not accepted:
                await send({"type": "websocket.accept"})
            accepted = accepted or kind in ("websocket.accept", "websocket.close")
            await send(message)

        await app(scope, receive, mutated_send)

    return mutant


@_websocket_only
def data_before_accept(app: ASGIApp) -> ASGIApp:
    """A message reaches the app before it accepted (www.rst "Connect - receive event": the
    socket passes websocket.receive only after the app's accept)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        accepted, calls = False, 0

        async def early_receive() -> Message:
            nonlocal calls
            calls += 1
            if calls == 2 and not accepted:
                return {"type": "websocket.receive", "text": "early"}
            return await receive()

        async def watched(message: Message) -> None:
            nonlocal accepted
            accepted = accepted or message.get("type") == "websocket.accept"
            await send(message)

        await app(scope, early_receive, watched)

    return mutant


@_websocket_only
def exit_before_accept_held(app: ASGIApp) -> ASGIApp:
    """An app that returns without answering websocket.connect leaves the handshake pending
    for ever (asgi.rst "Error Handling": the connection of a finished instance is ended)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        answered = False

        async def watched(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)

        await app(scope, receive, watched)
        if not answered:
            await _forever()

    return mutant


def denial_refused(message: Message) -> Message | None:
    """The denial response is replaced by a plain close (HTTP 403) though the extension is
    advertised (docs/extensions.rst "Websocket Denial Response")."""
    if message.get("type") == "websocket.http.response.start":
        return {"type": "websocket.close"}
    if message.get("type") == "websocket.http.response.body":
        return None
    return message


class DenialKeepsOpenProtocol(WSProtocol):
    """uvicorn's wsproto WebSocket protocol, except that the connection stays open after the
    last body of a denial response, until the client ends it."""

    async def send(self, message: Any) -> None:
        last = message.get("type") == "websocket.http.response.body" and not message.get(
            "more_body", False
        )
        if last:  # from here on, neither send() nor the end of the app closes it
            self.transport = _Unclosable(self.transport)  # type: ignore[assignment]
        await super().send(message)


class _Unclosable:
    """A transport whose close() does nothing; everything else is the real one's."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def denial_keeps_open(app: ASGIApp) -> ASGIApp:
    """The connection stays open after the denial response (docs/extensions.rst "Websocket
    Denial Response": the server should send it and then close the connection); broken
    inside uvicorn by ``ws=DenialKeepsOpenProtocol``."""
    return app


# -- messages (www.rst "Receive - receive event", "Send - send event") ---------------------------


def _is_data(message: Message) -> bool:
    return message.get("type") in ("websocket.receive", "websocket.send")


def text_as_bytes(message: Message) -> Message:
    """Text messages reach the app as UTF-8 bytes (www.rst "Receive - receive event")."""
    if message.get("type") == "websocket.receive" and message.get("text") is not None:
        return {"type": "websocket.receive", "bytes": message["text"].encode("utf-8")}
    return message


def bytes_as_text(message: Message) -> Message:
    """Binary messages reach the app as latin-1 text (www.rst "Receive - receive event")."""
    if message.get("type") == "websocket.receive" and message.get("bytes") is not None:
        return {"type": "websocket.receive", "text": message["bytes"].decode("latin-1")}
    return message


def both_keys(message: Message) -> Message:
    """websocket.receive sets both keys, the unused one empty (www.rst "Receive - receive
    event": exactly one of bytes or text is non-None)."""
    if message.get("type") == "websocket.receive":
        text, data = message.get("text"), message.get("bytes")
        return {"type": "websocket.receive", "text": text or "", "bytes": data or b""}
    return message


def sent_by_key_presence(message: Message) -> Message:
    """A send carrying a ``bytes`` key goes out as binary, even when it is None
    (www.rst "Send - send event": the key that is not None is the message)."""
    if message.get("type") == "websocket.send" and "bytes" in message:
        return {"type": "websocket.send", "bytes": message["bytes"] or b""}
    return message


def sent_text_as_bytes(message: Message) -> Message:
    """The app's text messages go out as binary (www.rst "Send - send event")."""
    if message.get("type") == "websocket.send" and message.get("text") is not None:
        return {"type": "websocket.send", "bytes": message["text"].encode("utf-8")}
    return message


def sent_bytes_as_text(message: Message) -> Message:
    """The app's binary messages go out as latin-1 text (www.rst "Send - send event")."""
    if message.get("type") == "websocket.send" and message.get("bytes") is not None:
        return {"type": "websocket.send", "text": message["bytes"].decode("latin-1")}
    return message


def empty_dropped(message: Message) -> Message | None:
    """Empty messages are dropped, both ways (www.rst "Receive"/"Send": "" and b"" are payloads)."""
    if _is_data(message):
        payload = message.get("text") if message.get("text") is not None else message.get("bytes")
        if payload is not None and len(payload) == 0:
            return None
    return message


def _mangle(text: Any) -> Any:
    return text.encode("utf-8").decode("latin-1") if isinstance(text, str) else text


def utf8_mangled(message: Message) -> Message:
    """Text is re-read as latin-1 both ways, so non-ASCII turns to mojibake (asgi.rst
    "Strings and Unicode"; www.rst "Receive - receive event")."""
    if _is_data(message) and message.get("text") is not None:
        return {**message, "text": _mangle(message["text"])}
    return message


def large_truncated(message: Message) -> Message:
    """Messages over 1 MiB are cut to 1 MiB, both ways (www.rst "Receive"/"Send": whole messages)."""
    if _is_data(message):
        for key in ("text", "bytes"):
            value = message.get(key)
            if value is not None and len(value) > MIB:
                return {**message, key: value[:MIB]}
    return message


@_websocket_only
def large_split(app: ASGIApp) -> ASGIApp:
    """Messages of 64 KiB or more reach the app as two events (www.rst "WebSocket": servers
    should deliver complete messages to the application)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        pending: list[Message] = []

        async def mutated_receive() -> Message:
            if pending:
                return pending.pop()
            message = await receive()
            for key in ("text", "bytes"):
                value = message.get(key)
                received = message.get("type") == "websocket.receive"
                if received and value is not None and len(value) >= 64 * 1024:
                    half = len(value) // 2
                    pending.append({"type": "websocket.receive", key: value[half:]})
                    return {"type": "websocket.receive", key: value[:half]}
            return message

        await app(scope, mutated_receive, send)

    return mutant


@_websocket_only
def sends_swapped(app: ASGIApp) -> ASGIApp:
    """Consecutive text messages of the app go out pairwise swapped (www.rst "Send - send
    event"; a WebSocket is one ordered stream).  A message held back goes out at the app's
    next send or receive, so a lone message is only late, not lost."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def flushing_receive() -> Message:
            while held:
                await send(held.pop())
            return await receive()

        async def mutated_send(message: Message) -> None:
            is_text = message.get("type") == "websocket.send" and message.get("text") is not None
            if is_text and not held:
                held.append(message)
                return
            if is_text:
                await send(message)
            while held:
                await send(held.pop())
            if not is_text:
                await send(message)

        await app(scope, flushing_receive, mutated_send)

    return mutant


@_websocket_only
def deflate_corrupts(app: ASGIApp) -> ASGIApp:
    """Where the client offered permessage-deflate, text reaches the app reversed (www.rst
    "WebSocket": compression is the server's business, messages stay exact)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        offered = any(name == b"sec-websocket-extensions" for name, _ in scope["headers"])

        async def mutated_receive() -> Message:
            message = await receive()
            if offered and message.get("type") == "websocket.receive" and message.get("text"):
                return {"type": "websocket.receive", "text": message["text"][::-1]}
            return message

        await app(scope, mutated_receive, send)

    return mutant


class NoPongProtocol(WSProtocol):
    """uvicorn's wsproto WebSocket protocol, except that it never answers a ping."""

    def handle_ping(self, event: Any) -> None:
        return None


def no_pong(app: ASGIApp) -> ASGIApp:
    """Client pings go unanswered (www.rst "WebSocket": servers should handle PING/PONG
    themselves); broken inside uvicorn by ``ws=NoPongProtocol``."""
    return app


def no_deflate(app: ASGIApp) -> ASGIApp:
    """permessage-deflate is never negotiated (www.rst "WebSocket"; recorded): uvicorn's
    ``ws_per_message_deflate=False``."""
    return app


# -- closing (www.rst "Close - send event", "Disconnect - receive event") ------------------------


def close_code_1000(message: Message) -> Message:
    """Every close goes out with code 1000, whatever the app said (www.rst "Close - send event")."""
    if message.get("type") == "websocket.close" and "code" in message:
        return {**message, "code": 1000}
    return message


def close_default_1001(message: Message) -> Message:
    """A close without a code goes out as 1001 (www.rst "Close - send event": 1000 if none)."""
    if message.get("type") == "websocket.close" and message.get("code") is None:
        return {**message, "code": 1001}
    return message


def close_reason_dropped(message: Message) -> Message:
    """The close reason never reaches the client (www.rst "Close - send event", 2.3)."""
    if message.get("type") == "websocket.close":
        return {k: v for k, v in message.items() if k != "reason"}
    return message


def disconnect_code_1000(message: Message) -> Message:
    """Every websocket.disconnect says code 1000 (www.rst "Disconnect - receive event": the
    WebSocket close code)."""
    if message.get("type") == "websocket.disconnect":
        return {**message, "code": 1000}
    return message


def abnormal_as_normal(message: Message) -> Message:
    """A connection dropped without a close frame is reported as code 1000, a normal closure
    (www.rst "Disconnect - receive event": the code is as per the WebSocket spec, 1006).

    Served by hypercorn, which reports 1006 there (uvicorn says 1005: a known finding)."""
    if message.get("type") == "websocket.disconnect" and message.get("code") == 1006:
        return {**message, "code": 1000}
    return message


@_websocket_only
def disconnect_never(app: ASGIApp) -> ASGIApp:
    """receive() never returns websocket.disconnect (www.rst "Disconnect - receive event")."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        async def mutated_receive() -> Message:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                await _forever()
            return message

        await app(scope, mutated_receive, send)

    return mutant


@_websocket_only
def disconnect_reason_dropped(app: ASGIApp) -> ASGIApp:
    """The scope claims spec_version 2.5 but websocket.disconnect has no reason (www.rst
    "Disconnect - receive event", 2.5)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        claims_2_5(scope)

        async def mutated_receive() -> Message:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                return {k: v for k, v in message.items() if k != "reason"}
            return message

        await app(scope, mutated_receive, send)

    return mutant


def _after_disconnect(
    fail: Callable[[], BaseException] | None, claim: Callable[[Scope], None] | None
) -> Middleware:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if claim is not None:
                scope = dict(scope)
                claim(scope)
            gone = False

            async def watched() -> Message:
                nonlocal gone
                message = await receive()
                gone = gone or message.get("type") == "websocket.disconnect"
                return message

            async def mutated_send(message: Message) -> None:
                if not gone:
                    await send(message)
                elif fail is not None:
                    raise fail()

            await app(scope, watched, mutated_send)

        return mutant

    return _websocket_only(middleware)


class ClientGone(OSError):
    """What a careful 2.4 server raises from send() once the client has left."""


def send_quiet_under_2_4(app: ASGIApp) -> ASGIApp:
    """The scope claims 2.4 but send() after websocket.disconnect returns quietly (www.rst
    "Disconnected Client - send exception": from 2.4 it should raise an OSError)."""
    return _after_disconnect(None, None)(app)


def send_raises_under_2_3(app: ASGIApp) -> ASGIApp:
    """The scope claims 2.3 but send() after websocket.disconnect raises (asgi.rst "Error
    Handling": before 2.4 it should act as a no-op)."""
    return _after_disconnect(lambda: ClientGone("the client went away"), claims_2_3)(app)


@_websocket_only
def app_error_hangs(app: ASGIApp) -> ASGIApp:
    """An app that raises after accepting leaves its socket open for ever (www.rst
    "Websocket Connection Scope": if the application dies the socket should be closed)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            await _forever()

    return mutant


@_websocket_only
def app_error_closes_1000(app: ASGIApp) -> ASGIApp:
    """An app that raises after accepting has its socket closed with 1000, a normal closure
    (asgi.rst "Error Handling"; recorded)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            await send({"type": "websocket.close", "code": 1000})

    return mutant


@_websocket_only
def app_return_held(app: ASGIApp) -> ASGIApp:
    """An app that returns after accepting without closing keeps its socket open (www.rst
    "Websocket Connection Scope": the socket should be closed)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        closed = False

        async def watched(message: Message) -> None:
            nonlocal closed
            closed = closed or message.get("type") == "websocket.close"
            await send(message)

        await app(scope, receive, watched)
        if not closed:
            await _forever()

    return mutant


# -- the table ----------------------------------------------------------------------------------

S = "websocket.scope."
H = "websocket.handshake."
M = "websocket.message."
C = "websocket.close."

MUTANTS: dict[str, Mutant] = {
    "ws-scope-type": Mutant(on_scope(scope_type), (S + "type",)),
    "ws-asgi-version-missing": Mutant(
        on_scope(asgi_version_missing), (S + "asgi-version",), keeps=(S + "type",)
    ),
    "ws-spec-version-float": Mutant(
        on_scope(spec_version_float), (S + "spec-version",), keeps=(S + "asgi-version",)
    ),
    "ws-http-version-prefixed": Mutant(on_scope(http_version_prefixed), (S + "http-version",)),
    "ws-scheme-empty": Mutant(on_scope(scheme_empty), (S + "scheme",)),
    "ws-path-not-decoded": Mutant(
        on_scope(path_not_decoded), (S + "path",), keeps=(S + "raw-path",)
    ),
    "ws-raw-path-with-query": Mutant(
        on_scope(raw_path_with_query), (S + "raw-path",), keeps=(S + "path",)
    ),
    "ws-query-string-decoded": Mutant(on_scope(query_string_decoded), (S + "query-string",)),
    "ws-root-path-by-default": Mutant(on_scope(root_path_by_default), (S + "root-path",)),
    "ws-headers-merged": Mutant(
        on_scope(headers_merged), (S + "headers",), keeps=(S + "headers-name-case",)
    ),
    "ws-headers-reversed": Mutant(
        on_scope(headers_reversed), (S + "headers-order",), keeps=(S + "headers-name-case",)
    ),
    "ws-header-names-uppercased": Mutant(
        on_scope(header_names_uppercased), (S + "headers-name-case",), keeps=(S + "headers",)
    ),
    "ws-client-port-str": Mutant(on_scope(client_port_str), (S + "client",), keeps=(S + "server",)),
    "ws-server-port-wrong": Mutant(
        on_scope(server_port_wrong), (S + "server",), keeps=(S + "client",)
    ),
    "ws-subprotocols-reversed": Mutant(
        on_scope(subprotocols_reversed), (S + "subprotocols",), keeps=(H + "subprotocol",)
    ),
    "ws-extensions-list": Mutant(on_scope(extensions_list), (S + "extensions",)),
    "ws-connect-renamed": Mutant(
        on_events(incoming=connect_renamed), (H + "connect-first",), keeps=(H + "accept",)
    ),
    "ws-accept-early": Mutant(accept_early, (H + "awaits-app",), keeps=(H + "connect-first",)),
    "ws-subprotocol-dropped": Mutant(
        on_events(outgoing=subprotocol_dropped), (H + "subprotocol",), keeps=(H + "accept",)
    ),
    "ws-subprotocol-forced": Mutant(
        subprotocol_forced, (H + "accept",), keeps=(H + "subprotocol",)
    ),
    "ws-accept-headers-dropped": Mutant(
        on_events(outgoing=accept_headers_dropped),
        (H + "accept-headers",),
        keeps=(H + "accept",),
    ),
    "ws-close-before-accept-accepted": Mutant(
        close_before_accept_accepted, (H + "close-403",), keeps=(C + "code",)
    ),
    "ws-data-before-accept": Mutant(
        data_before_accept,
        (H + "no-receive-before-accept",),
        keeps=(H + "accept",),
    ),
    "ws-exit-before-accept-held": Mutant(
        exit_before_accept_held, (H + "app-exit-before-accept",), keeps=(H + "close-403",)
    ),
    "ws-denial-refused": Mutant(
        on_events(outgoing=denial_refused),
        ("ext.websocket.denial-response",),
        keeps=(H + "close-403",),
    ),
    "ws-denial-keeps-open": Mutant(
        denial_keeps_open,
        ("ext.websocket.denial-closes",),
        keeps=("ext.websocket.denial-response",),
        uvicorn_options=(("ws", "tests.mutant_areas.websocket:DenialKeepsOpenProtocol"),),
    ),
    "ws-text-as-bytes": Mutant(
        on_events(incoming=text_as_bytes), (M + "receive-text",), keeps=(M + "receive-bytes",)
    ),
    "ws-bytes-as-text": Mutant(
        on_events(incoming=bytes_as_text), (M + "receive-bytes",), keeps=(M + "receive-text",)
    ),
    "ws-both-keys": Mutant(
        on_events(incoming=both_keys),
        (M + "receive-exactly-one",),
        keeps=(M + "receive-text", M + "receive-bytes"),
    ),
    "ws-sent-by-key-presence": Mutant(
        on_events(outgoing=sent_by_key_presence),
        (M + "send-both-keys",),
        keeps=(M + "send-text", M + "send-bytes"),
    ),
    "ws-sent-text-as-bytes": Mutant(
        on_events(outgoing=sent_text_as_bytes), (M + "send-text",), keeps=(M + "send-bytes",)
    ),
    "ws-sent-bytes-as-text": Mutant(
        on_events(outgoing=sent_bytes_as_text), (M + "send-bytes",), keeps=(M + "send-text",)
    ),
    "ws-empty-dropped": Mutant(
        on_events(empty_dropped, empty_dropped, doc=empty_dropped.__doc__ or ""),
        (M + "empty",),
        keeps=(M + "receive-text", M + "send-text"),
    ),
    "ws-utf8-mangled": Mutant(
        on_events(utf8_mangled, utf8_mangled, doc=utf8_mangled.__doc__ or ""),
        (M + "utf8",),
        keeps=(M + "receive-text", M + "send-text"),
    ),
    "ws-large-truncated": Mutant(
        on_events(large_truncated, large_truncated, doc=large_truncated.__doc__ or ""),
        (M + "large-receive", M + "large-send"),
        keeps=(M + "fragmented",),
    ),
    "ws-large-split": Mutant(
        large_split, (M + "fragmented", M + "large-receive"), keeps=(M + "receive-text",)
    ),
    "ws-sends-swapped": Mutant(sends_swapped, (M + "order",), keeps=(M + "send-text",)),
    "ws-no-pong": Mutant(
        no_pong,
        (M + "ping",),
        keeps=(M + "receive-text",),
        uvicorn_options=(("ws", "tests.mutant_areas.websocket:NoPongProtocol"),),
    ),
    "ws-no-deflate": Mutant(
        no_deflate,
        (M + "deflate",),
        keeps=(M + "deflate-exact",),
        uvicorn_options=(("ws_per_message_deflate", False),),
    ),
    "ws-deflate-corrupts": Mutant(
        deflate_corrupts, (M + "deflate-exact",), keeps=(M + "receive-text",)
    ),
    "ws-close-code-1000": Mutant(
        on_events(outgoing=close_code_1000), (C + "code",), keeps=(C + "default-code",)
    ),
    "ws-close-default-1001": Mutant(
        on_events(outgoing=close_default_1001), (C + "default-code",), keeps=(C + "code",)
    ),
    "ws-close-reason-dropped": Mutant(
        on_events(outgoing=close_reason_dropped), (C + "reason",), keeps=(C + "code",)
    ),
    "ws-disconnect-code-1000": Mutant(
        on_events(incoming=disconnect_code_1000),
        (C + "client-code", C + "no-code-1005"),
        keeps=(C + "abrupt",),
    ),
    "ws-abnormal-as-normal": Mutant(
        on_events(incoming=abnormal_as_normal),
        (C + "abrupt-1006",),
        keeps=(C + "abrupt",),
        server="hypercorn",
    ),
    "ws-disconnect-never": Mutant(
        disconnect_never,
        (C + "client-code", C + "abrupt", C + "after-server-close"),
        keeps=(C + "code",),
    ),
    "ws-disconnect-reason-dropped": Mutant(
        disconnect_reason_dropped, (C + "client-reason",), keeps=(C + "client-code",)
    ),
    "ws-send-quiet-under-2.4": Mutant(
        send_quiet_under_2_4, (C + "send-after-disconnect",), keeps=(C + "client-code",)
    ),
    "ws-send-raises-under-2.3": Mutant(
        send_raises_under_2_3, (C + "send-after-disconnect",), keeps=(C + "client-code",)
    ),
    "ws-app-error-hangs": Mutant(
        app_error_hangs, (C + "app-error", C + "app-error-code"), keeps=(C + "app-return",)
    ),
    "ws-app-error-closes-1000": Mutant(
        app_error_closes_1000, (C + "app-error-code",), keeps=(C + "app-error",)
    ),
    "ws-app-return-held": Mutant(app_return_held, (C + "app-return",), keeps=(C + "app-error",)),
}

#: Genuine findings of the plain servers under the runner (see tests/test_mutants.py).
#: uvicorn 0.54 picks its websockets-sansio implementation when websockets is installed
#: (protocols/websockets/auto.py); its connection_lost reports code 1005, not 1006, for a
#: connection dropped without a close frame (websockets_sansio_impl.py).
#: hypercorn 0.18 (protocol/ws_stream.py) turns a client close frame into StreamClosed and
#: reports code 1006 (ABNORMAL_CLOSURE) while its state is still CONNECTED, whatever the
#: client sent: 4003 and an empty close frame both arrive as 1006.
KNOWN_FINDINGS: dict[str, dict[str, str]] = {
    "uvicorn": {C + "abrupt-1006": "fail"},
    "hypercorn": {C + "client-code": "fail", C + "no-code-1005": "warn"},
}
