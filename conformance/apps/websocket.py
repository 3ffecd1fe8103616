"""The WebSocket probe: the main probe app's behaviour for ``websocket`` scopes.

The test scripts it exactly as it scripts the HTTP probe: the upgrade request
carries ``x-probe-rid`` (the request id) and ``x-probe-script`` (the steps, see
:mod:`conformance._ws_steps`) among its headers, since the path, the query string
and the subprotocols are themselves under test.  Without a script the app accepts
and echoes every message until the client leaves.

What it sees reaches the test through the side channel, keyed by the request id:

``call``
    the scope exactly as received (types kept) and the time.
``script``
    the timeline: every step, when it ran, what it returned or which exception it
    raised (``send()`` outcomes included).
``done``
    every event ``receive()`` returned, with times; payloads over a KiB as size and
    SHA-256 (several-MiB messages are compared by digest, never echoed).

The app never judges: it observes, the test judges (www.rst "WebSocket").
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from conformance.apps._channel import emit
from conformance.apps._encoding import encode
from conformance.apps._script import _run_step, parse_script, pattern, run_script


__all__ = ["describe", "digest", "serve", "text_pattern"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Payloads longer than this are reported by size and digest.
INLINE_LIMIT = 1024
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789-é€😀"


def text_pattern(size: int) -> str:
    """Deterministic text of ``size`` characters, one- to four-byte UTF-8 sequences mixed."""
    cycle = _LETTERS * (size // len(_LETTERS) + 1)
    return cycle[:size]


def digest(value: str | bytes) -> str:
    """How a large payload is reported: its type, length and SHA-256 (of UTF-8, for text)."""
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return f"<{type(value).__name__} len={len(value)} sha256={hashlib.sha256(raw).hexdigest()}>"


def describe(message: Any) -> Any:
    """A received event as reported: payloads longer than :data:`INLINE_LIMIT` as digests."""
    if not isinstance(message, MutableMapping):
        return message
    noted: dict[Any, Any] = {}
    for key, value in message.items():
        large = isinstance(value, (str, bytes)) and len(value) > INLINE_LIMIT
        noted[key] = digest(value) if large else value
    return noted


def _header_args(scope: Scope) -> dict[bytes, bytes]:
    from conformance.apps.probe import _header_map

    return _header_map(scope)


class _Recorder:
    """Notes every event receive() returns (with its time) for the ``done`` report."""

    def __init__(self, rid: str, receive: Receive) -> None:
        self.rid = rid
        self._receive = receive
        self.events: list[dict[str, Any]] = []

    async def receive(self) -> Message:
        message = await self._receive()
        self.events.append({"t": time.monotonic(), "event": encode(describe(message))})
        return message

    def done(self) -> None:
        emit({"rid": self.rid, "kind": "done", "t": time.monotonic(), "events": self.events})


async def _receive_within(receive: Receive, timeout: float) -> Message | None:
    try:
        return await asyncio.wait_for(receive(), timeout)
    except asyncio.TimeoutError:
        return None


async def _run_ws_step(step: dict[str, Any], receive: Receive, send: Send, wait: float) -> Any:
    """One step of a WebSocket script; steps both protocols share go to :mod:`._script`."""
    op = step.get("op")
    timeout = float(step.get("timeout", wait))
    if op == "receive":
        message = await _receive_within(receive, timeout)
        return "timeout" if message is None else describe(dict(message))
    if op == "receive_many":
        # Up to ``count`` events, compactly: for bursts, order is the point.
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        for _ in range(int(step["count"])):
            message = await _receive_within(receive, max(0.0, deadline - time.monotonic()))
            if message is None:
                got.append("timeout")
                break
            got.append(describe(dict(message)))
            if message.get("type") == "websocket.disconnect":
                break
        return got
    if op == "ws_await_disconnect":
        deadline = time.monotonic() + timeout
        seen: list[Any] = []
        while True:
            message = await _receive_within(receive, max(0.0, deadline - time.monotonic()))
            if message is None:
                return {"disconnected": False, "seen": seen}
            if message.get("type") == "websocket.disconnect":
                return {"disconnected": True, "event": dict(message), "seen": seen}
            seen.append(describe(dict(message)))
    if op == "send_pattern":
        size, kind = int(step["size"]), step.get("kind", "bytes")
        payload: dict[str, Any] = (
            {"text": text_pattern(size)} if kind == "text" else {"bytes": pattern(0, size)}
        )
        await send({"type": "websocket.send", **payload})
        return digest(payload.get("text", payload.get("bytes", b"")))
    if op == "send_burst":
        for index in range(int(step["count"])):
            await send({"type": "websocket.send", "text": f"{step.get('prefix', '')}{index}"})
        return int(step["count"])
    if op == "echo":
        # Echo every message back as it came, until the client leaves (or the bound).
        deadline = time.monotonic() + timeout
        count = 0
        while True:
            message = await _receive_within(receive, max(0.0, deadline - time.monotonic()))
            if message is None:
                return {"echoed": count, "end": "timeout"}
            if message.get("type") != "websocket.receive":
                return {"echoed": count, "end": describe(dict(message))}
            text, data = message.get("text"), message.get("bytes")
            reply = {"text": text} if text is not None else {"bytes": data}
            await send({"type": "websocket.send", **reply})
            count += 1
    return await _run_step(step, receive, send, wait)


#: The default script: accept, then echo until the client leaves.
_DEFAULT: list[dict[str, Any]] = [
    {"op": "receive"},
    {"op": "send", "message": {"type": "websocket.accept"}},
    {"op": "echo"},
]


async def serve(scope: Scope, receive: Receive, send: Send, style: str, called_at: float) -> None:
    """Handle one ``websocket`` scope for the probe app (called from probe.py)."""
    args = _header_args(scope)
    rid = args.get(b"x-probe-rid", b"").decode("latin-1")
    try:
        wait = max(0.0, float(args.get(b"x-probe-wait", b"5")))
    except ValueError:
        wait = 5.0
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
    raw = args.get(b"x-probe-script")
    script: list[dict[str, Any]] = parse_script(raw) if raw else [dict(s) for s in _DEFAULT]
    recorder = _Recorder(rid, receive)
    try:
        await run_script(script, recorder.receive, send, rid, wait, run_step=_run_ws_step)
    finally:
        recorder.done()
