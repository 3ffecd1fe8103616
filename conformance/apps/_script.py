"""Scripted probe behaviour: the test composes what the app sends and receives.

Most HTTP semantics checks need an app that does one precise, sometimes wrong,
thing: send a start without headers, stream 100 chunks, raise after the first
body, send a message after the client left.  Rather than one probe route per
case, the test sends a *script*, a list of steps, in the ``x-probe-script``
header (base64 of JSON, bytes tagged by :mod:`._encoding`).  The app runs the
steps in order and reports a *timeline*: for every step, when it started and
ended and whether it raised.  The test judges from the timeline and what its
client saw.

Steps (``op``): ``receive``, ``read_body``, ``await_disconnect``, ``send``
(an ASGI message, sent as given), ``stream`` (a large body in chunks),
``wait_flag`` (until the test sets a flag), ``digest_body`` (the request body as
sizes, types and a SHA-256), ``zerocopysend`` (a file, by path), ``mark``, ``notify`` (tell the test
at once, before the script ends: "the app got this far"), ``sleep``, ``raise``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from conformance.apps._channel import emit, wait_flag
from conformance.apps._encoding import decode


__all__ = ["ScriptError", "pattern", "run_script"]

Message = MutableMapping[str, Any]
#: Runs one step: (step, receive, send, wait) -> the step's result for the timeline.
StepRunner = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]], float],
    Awaitable[Any],
]


class ScriptError(RuntimeError):
    """Raised on purpose by a ``raise`` step."""


_CYCLE = bytes(range(251))


def pattern(offset: int, size: int) -> bytes:
    """Deterministic body bytes: position ``i`` holds ``i % 251`` (a prime, so chunks differ)."""
    start = offset % 251
    # Slicing repeated cycles is ~1000x faster than a generator: 32 MiB streams stay cheap.
    return (_CYCLE * ((start + size) // 251 + 1))[start : start + size]


def parse_script(header: bytes) -> list[dict[str, Any]]:
    steps = decode(json.loads(base64.b64decode(header)))
    if not isinstance(steps, list):
        raise ValueError("a probe script is a list of steps")
    return steps


async def run_script(
    steps: list[dict[str, Any]],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
    rid: str,
    wait: float,
    *,
    run_step: StepRunner | None = None,
) -> None:
    """Run ``steps`` in order and report the timeline; ``run_step`` runs the steps of
    another protocol's probe (conformance/apps/websocket.py), falling back on ours."""
    runner = run_step or _run_step
    timeline: list[dict[str, Any]] = []
    try:
        for index, step in enumerate(steps):
            entry: dict[str, Any] = {"i": index, "op": step.get("op"), "t0": time.monotonic()}
            timeline.append(entry)
            if step.get("op") == "notify":
                # Reported now, not with the timeline: the test waits for it to act.
                emit({"rid": rid, "kind": "notify", "name": step.get("name"), "t": entry["t0"]})
            try:
                step_send = (
                    _reporting(send, rid, int(step["progress"])) if step.get("progress") else send
                )
                entry["result"] = await runner(step, receive, step_send, wait)
                entry["ok"] = True
            except ScriptError as exc:
                entry["ok"] = True
                entry["t1"] = time.monotonic()
                # Named, so that the evidence of another check can leave this one out.
                exc.args = (f"{exc} (rid {rid})",)
                raise
            except Exception as exc:
                entry["ok"] = False
                entry["error"] = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
                entry["is_oserror"] = isinstance(exc, OSError)
                entry["t1"] = time.monotonic()
                if step.get("propagate"):
                    raise
                if step.get("carry_on"):
                    continue  # the app caught it and goes on (to send a fallback response)
                return
            entry["t1"] = time.monotonic()
    finally:
        emit({"rid": rid, "kind": "script", "timeline": _plain(timeline)})


def _fd_open(fd: int) -> bool:
    """Whether ``fd`` is still open (the server must leave closing it to the app)."""
    import os

    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


#: How many events a ``digest_body`` step lists one by one (the totals cover them all).
_DIGEST_EVENTS = 512
#: How many of them it also reports at once, for a test that waits on the first few.
_DIGEST_REPORTS = 16


async def _digest_body(
    receive: Callable[[], Awaitable[Message]], timeout: float, report: Any
) -> dict[str, Any]:
    """Receive the request body and describe it without echoing it (bodies may be MiB).

    Each ``http.request`` becomes ``[size, body type, more_body type, bool(more_body)]``
    (a missing key is ``"-"``); bytes-like bodies feed one SHA-256.  It stops at the first
    event that ends the body by the letter of www.rst "Request": ``more_body`` missing or
    false, or anything but ``http.request``; ``end`` says which, or ``"timeout"``.  With
    ``report`` (a request id) the first events are also emitted at once as ``body-event``
    observations, so a test can wait until the app has a first piece of a body.
    """
    digest = hashlib.sha256()
    events: list[list[Any]] = []
    count = length = 0
    end: Any = "timeout"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(receive(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
        kind = message.get("type")
        if kind != "http.request":
            end = kind if isinstance(kind, str) else repr(kind)
            break
        body = message.get("body", None)
        size = 0
        if isinstance(body, (bytes, bytearray, memoryview)):
            size = len(body)
            digest.update(body)
        more = bool(message.get("more_body", False))
        row = [
            size,
            type(body).__name__ if "body" in message else "-",
            type(message["more_body"]).__name__ if "more_body" in message else "-",
            more,
        ]
        if count < _DIGEST_EVENTS:
            events.append(row)
        if report and count < _DIGEST_REPORTS:
            emit(
                {"rid": str(report), "kind": "body-event", "i": count, "size": size,
                 "more_body": more, "t": time.monotonic()}
            )  # fmt: skip
        count += 1
        length += size
        if not more:
            end = "final"
            break
    return {
        "events": events,
        "count": count,
        "length": length,
        "sha256": digest.hexdigest(),
        "end": end,
    }


def _plain(value: Any) -> Any:
    """Timeline values are already JSON-friendly except received events (bytes)."""
    from conformance.apps._encoding import encode

    return encode(value)


def _reporting(
    send: Callable[[Message], Awaitable[None]], rid: str, every: int
) -> Callable[[Message], Awaitable[None]]:
    """``send``, reporting (kind ``progress``) each time another ``every`` body bytes have
    been sent: how far the app got while the client read, as it happens."""
    sent, due = 0, every

    async def reporting(message: Message) -> None:
        nonlocal sent, due
        await send(message)
        body = message.get("body", b"") if isinstance(message, dict) else b""
        sent += len(body) if isinstance(body, (bytes, bytearray)) else 0
        if sent >= due:
            emit({"rid": rid, "kind": "progress", "sent": sent, "t": time.monotonic()})
            due = sent + every

    return reporting


async def _run_step(
    step: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
    wait: float,
) -> Any:
    op = step.get("op")
    timeout = float(step.get("timeout", wait))
    if op == "receive":
        try:
            return dict(await asyncio.wait_for(receive(), timeout))
        except asyncio.TimeoutError:
            return "timeout"
    if op == "digest_body":
        return await _digest_body(receive, timeout, step.get("report"))
    if op == "read_body":
        events: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                events.append("timeout")
                break
            events.append({"type": message.get("type"), "more_body": message.get("more_body")})
            if message.get("type") != "http.request" or not message.get("more_body", False):
                break
        return events
    if op == "await_disconnect":
        deadline = time.monotonic() + timeout
        seen: list[Any] = []
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return {"disconnected": False, "seen": seen}
            seen.append(message.get("type"))
            if message.get("type") == "http.disconnect":
                return {"disconnected": True, "seen": seen, "t": time.monotonic()}
        return {"disconnected": False, "seen": seen}
    if op == "send":
        await send(step["message"])
        return None
    if op == "stream":
        size, chunk = int(step["size"]), max(1, int(step["chunk"]))
        kind = step.get("type", "http.response.body")
        sent = 0
        while sent < size:
            piece = pattern(sent, min(chunk, size - sent))
            await send({"type": kind, "body": piece, "more_body": True})
            sent += len(piece)
        if step.get("final", True):
            await send({"type": kind, "body": b"", "more_body": False})
        return sent
    if op == "wait_flag":
        return await wait_flag(str(step["flag"]), timeout)
    if op == "zerocopysend":
        # extensions.rst "Zero Copy Send": the message carries an open file object, which
        # cannot travel in a script; the app opens the file, sends, and closes it itself.
        with open(str(step["path"]), "rb") as file:
            if "seek" in step:
                file.seek(int(step["seek"]))
            await send(
                {"type": "http.response.zerocopysend", "file": file, **step.get("extra", {})}
            )
            return {"fd_open_after": _fd_open(file.fileno())}
    if op in ("mark", "notify"):
        return step.get("name")
    if op == "sleep":
        await asyncio.sleep(float(step["seconds"]))
        return None
    if op == "raise":
        raise ScriptError(str(step.get("message", "the probe app raised on purpose")))
    raise ValueError(f"unknown script step {op!r}")
