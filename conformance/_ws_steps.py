"""Building WebSocket probe scripts on the test side (the app side is conformance/apps/websocket.py).

A check writes what the WebSocket app does as a list of steps, exactly like an
HTTP script (:mod:`conformance._steps`, whose ``receive``, ``send``, ``wait_flag``,
``notify`` and ``fail`` steps work here too)::

    script = [ws.connect(), ws.accept(subprotocol="b"), ws.receive(), ws.close(4001, "bye")]
    session = await asgi.websocket(script, subprotocols=["a", "b"])

and reads the app's timeline back with :meth:`WebSocketSession.timeline`
(:func:`result` picks one step's outcome; :func:`spec_version` reads the claim the
scope makes, by which the rows added in later spec versions are judged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance._steps import Step, fail, notify, receive, send, wait_flag
from conformance.apps.websocket import describe, digest, text_pattern


__all__ = [
    "accept",
    "await_disconnect",
    "close",
    "connect",
    "deny",
    "describe",
    "digest",
    "echo",
    "fail",
    "notify",
    "receive",
    "receive_many",
    "result",
    "send",
    "send_burst",
    "send_bytes",
    "send_pattern",
    "send_text",
    "spec_version",
    "text_pattern",
    "wait_flag",
]


def connect(timeout: float | None = None) -> Step:
    """Receive the first event (websocket.connect, if the server is right)."""
    return receive(timeout)


def accept(
    subprotocol: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> Step:
    message: dict[str, Any] = {"type": "websocket.accept"}
    if subprotocol is not None:
        message["subprotocol"] = subprotocol
    if headers is not None:
        message["headers"] = [(bytes(k), bytes(v)) for k, v in headers]
    return send(message | extra)


def close(code: int | None = None, reason: str | None = None) -> Step:
    message: dict[str, Any] = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    if reason is not None:
        message["reason"] = reason
    return send(message)


def send_text(text: str, *, propagate: bool = False) -> Step:
    return send({"type": "websocket.send", "text": text}, propagate=propagate)


def send_bytes(data: bytes, *, propagate: bool = False) -> Step:
    return send({"type": "websocket.send", "bytes": data}, propagate=propagate)


def send_pattern(size: int, kind: str) -> Step:
    """One message of ``size`` pattern bytes (``kind`` "bytes") or characters ("text")."""
    return {"op": "send_pattern", "size": size, "kind": kind}


def send_burst(count: int, prefix: str = "") -> Step:
    """``count`` text messages "{prefix}0", "{prefix}1", ... sent back to back."""
    return {"op": "send_burst", "count": count, "prefix": prefix}


def receive_many(count: int, timeout: float) -> Step:
    """Up to ``count`` events within ``timeout`` (large payloads as digests)."""
    return {"op": "receive_many", "count": count, "timeout": timeout}


def await_disconnect(timeout: float) -> Step:
    """Receive until websocket.disconnect; the timeline holds the event (code, reason)."""
    return {"op": "ws_await_disconnect", "timeout": timeout}


def echo(timeout: float) -> Step:
    """Echo every message back as it came until the client leaves (or ``timeout``)."""
    return {"op": "echo", "timeout": timeout}


def deny(status: int, headers: Sequence[tuple[bytes, bytes]], body: Sequence[bytes]) -> list[Step]:
    """The denial response extension: websocket.http.response.start, then one body message
    per item of ``body`` (docs/extensions.rst "Websocket Denial Response")."""
    out = [
        send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(bytes(k), bytes(v)) for k, v in headers],
            }
        )
    ]
    for index, chunk in enumerate(body):
        more = index < len(body) - 1
        out.append(send({"type": "websocket.http.response.body", "body": chunk, "more_body": more}))
    return out


def result(timeline: list[dict[str, Any]], index: int) -> Any:
    """What step ``index`` returned, or why there is nothing (it raised, or was never reached)."""
    if index >= len(timeline):
        last = timeline[-1] if timeline else {}
        return f"<not reached: stopped at step {last.get('i')} ({last.get('op')}) {last.get('error', '')}>"
    entry = timeline[index]
    return entry.get("result") if entry.get("ok", False) else f"<raised {entry.get('error')}>"


def spec_version(scope: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """The spec_version a WebSocket scope claims, as given and as numbers; absent means "2.0"
    (www.rst "Websocket Connection Scope")."""
    versions = scope.get("asgi")
    claimed = versions.get("spec_version", "2.0") if isinstance(versions, dict) else "2.0"
    try:
        return str(claimed), tuple(int(part) for part in str(claimed).split("."))
    except ValueError:
        return str(claimed), (2, 0)
