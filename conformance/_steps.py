"""Building probe scripts on the test side (the app side is :mod:`conformance.apps._script`).

A check writes what the app must do as a list of steps::

    script = [steps.read_body(), steps.start(200), steps.body(b"a", more=True), steps.body(b"b")]
    exchange = await asgi.send(script=script)

and reads the app's timeline back with :meth:`Exchange.timeline`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from conformance.apps._encoding import encode
from conformance.apps._script import pattern


__all__ = [
    "await_disconnect",
    "body",
    "digest_body",
    "encode_script",
    "fail",
    "mark",
    "notify",
    "pattern",
    "read_body",
    "receive",
    "send",
    "start",
    "stream",
    "wait_flag",
    "zerocopysend",
]

Step = dict[str, Any]
Headers = Sequence[tuple[bytes, bytes]]


def receive(timeout: float | None = None) -> Step:
    return {"op": "receive"} | ({"timeout": timeout} if timeout is not None else {})


def digest_body(timeout: float | None = None, *, report: str | None = None) -> Step:
    """Receive the whole body; the timeline gets per-event sizes and types and a SHA-256.

    ``report`` (a request id) also emits the first events at once, as ``body-event``
    observations under that id.
    """
    step: Step = {"op": "digest_body"} | ({"timeout": timeout} if timeout is not None else {})
    return step | ({"report": report} if report is not None else {})


def read_body(timeout: float | None = None) -> Step:
    return {"op": "read_body"} | ({"timeout": timeout} if timeout is not None else {})


def await_disconnect(timeout: float) -> Step:
    return {"op": "await_disconnect", "timeout": timeout}


def send(message: dict[str, Any], *, propagate: bool = False, carry_on: bool = False) -> Step:
    """Send ``message`` exactly as given (it may be invalid on purpose).

    If ``send()`` raises, the script stops there, unless ``propagate`` (the error
    leaves the app) or ``carry_on`` (the app catches it and runs the next step).
    """
    step: Step = {"op": "send", "message": message, "propagate": propagate}
    return step | ({"carry_on": True} if carry_on else {})


def start(status: int = 200, headers: Headers = (), **extra: Any) -> Step:
    message: dict[str, Any] = {"type": "http.response.start", "status": status}
    message["headers"] = [(bytes(k), bytes(v)) for k, v in headers]
    message.update(extra)
    return send(message)


def body(data: bytes = b"", *, more: bool = False, propagate: bool = False) -> Step:
    return send(
        {"type": "http.response.body", "body": data, "more_body": more}, propagate=propagate
    )


def stream(size: int, chunk: int, *, final: bool = True, progress: int = 0) -> Step:
    """``size`` pattern bytes in ``chunk``-sized body messages (see :func:`pattern`).

    With ``progress`` the app reports (kind ``progress``, ``sent``) each time another
    ``progress`` bytes have been sent, so the test sees how far its send() calls got.
    """
    step: Step = {"op": "stream", "size": size, "chunk": chunk, "final": final}
    if progress:
        step["progress"] = progress
    return step


def wait_flag(flag: str, timeout: float) -> Step:
    return {"op": "wait_flag", "flag": flag, "timeout": timeout}


def zerocopysend(path: str, *, seek: int | None = None, **extra: Any) -> Step:
    """Open ``path`` in the app, send it as ``http.response.zerocopysend`` (``extra``: offset,
    count, more_body), then close it: extensions.rst "Zero Copy Send" needs a real file object."""
    step: Step = {"op": "zerocopysend", "path": path, "extra": extra}
    return step | ({"seek": seek} if seek is not None else {})


def mark(name: str) -> Step:
    return {"op": "mark", "name": name}


def notify(name: str) -> Step:
    """Report ``name`` to the test at once (a ``notify`` observation), not only in the timeline."""
    return {"op": "notify", "name": name}


def fail(message: str = "the probe app raised on purpose") -> Step:
    return {"op": "raise", "message": message}


def encode_script(steps: Sequence[Step]) -> str:
    return base64.b64encode(json.dumps(encode(list(steps))).encode()).decode("ascii")
