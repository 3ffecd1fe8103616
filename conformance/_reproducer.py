"""A failing cell's second opinion: the request and a few-line app, without the harness.

A server author who doubts a ``fail`` should be able to see it happen with
nothing of ours running: the bytes the client sent (HTTP/1.1, the WebSocket
handshake) or the frames (HTTP/2), with the probe's private headers taken out,
and an ASGI app that does what the probe app did, step by step.  The app is
written from the probe's own script (``x-probe-script``, :mod:`conformance._steps`),
so it does exactly what the check asked of the probe, and prints what it
receives where the probe would have reported it.

The check's traffic is recorded by :class:`conformance._probe.Probe` as it goes
(:class:`Sent`); :func:`reproducer` reads the last of it when a cell is ``fail``
or ``warn``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance._evidence import PROBE_HEADER_LINE
from conformance.apps._script import parse_script
from conformance.clients import Request


__all__ = ["Reproducer", "Sent", "app_source", "reproducer"]

_SCRIPT_LINE = re.compile(rb"(?im)^x-probe-script:[ \t]*([A-Za-z0-9+/=]+)[ \t]*\r\n")
_BEHAVIOUR_LINE = re.compile(rb"(?im)^x-probe:[ \t]*([a-z0-9_-]+)[ \t]*\r\n")
#: How much of a long request a reproducer keeps (a MiB body is shown by its start).
_KEEP = 4096


@dataclass(frozen=True)
class Sent:
    """One request of a check as it went out: on a wire, as a request or as raw bytes."""

    wire: str
    #: The request as the check built it (probe headers included), if it had one.
    request: Request | None = None
    #: The bytes on the socket, read when the reproducer is made (raw HTTP/1.x, WebSocket).
    raw: Callable[[], bytes] | None = None
    #: What went over a WebSocket after the handshake, as the client's transcript.
    frames: Callable[[], Sequence[str]] | None = None
    #: The requests opened on an HTTP/2 connection of the check's own, read when needed.
    requests: Callable[[], Sequence[Request]] | None = None
    #: A lifespan check's app (an attribute of conformance/apps/lifespan.py).
    lifespan_app: str = ""
    #: A legacy (ASGI 2, double-callable) app was served: the check's last word.
    legacy: bool = False


@dataclass(frozen=True)
class Reproducer:
    """What a server author runs to see a cell's observation for themselves."""

    wire: str
    request: str
    app: str
    observed: str

    def to_json(self) -> dict[str, str]:
        return {
            "wire": self.wire,
            "request": self.request,
            "app": self.app,
            "observed": self.observed,
        }


def _script_of(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, list[Any] | None]:
    behaviour, script = "echo", None
    for name, value in headers:
        if name.lower() == b"x-probe":
            behaviour = value.decode("latin-1")
        elif name.lower() == b"x-probe-script":
            script = _decode_script(value)
    return behaviour, script


def _decode_script(value: bytes) -> list[Any] | None:
    try:
        return parse_script(value)
    except (ValueError, TypeError):
        return None


def _public(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if not n.lower().startswith(b"x-probe")]


def _h2_frames(request: Request) -> str:
    fields = [
        (b":method", request.method),
        (b":scheme", b"http"),
        (b":path", request.target),
        *(
            (b":authority" if n.lower() == b"host" else n.lower(), v)
            for n, v in _public(request.headers)
        ),
    ]
    lines = ["HEADERS" + ("" if request.body else " END_STREAM")]
    lines += [f"  {n.decode('latin-1')}: {v!r}" for n, v in fields]
    if request.body:
        lines.append(f"DATA END_STREAM {request.body[:_KEEP]!r}")
    return "\n".join(lines)


def _from_raw(data: bytes) -> tuple[str, str, list[Any] | None]:
    """The request bytes without probe headers, and the (last) script they carried."""
    scripts = [_decode_script(m.group(1)) for m in _SCRIPT_LINE.finditer(data)]
    behaviours = [m.group(1).decode("latin-1") for m in _BEHAVIOUR_LINE.finditer(data)]
    public = PROBE_HEADER_LINE.sub(b"", data)
    shown = repr(public[:_KEEP]) + (
        f"  # … {len(public)} bytes in all" if len(public) > _KEEP else ""
    )
    return shown, behaviours[-1] if behaviours else "echo", scripts[-1] if scripts else None


def reproducer(sent: Sequence[Sent], observed: str) -> Reproducer | None:
    """The reproducer of a check's last request, or None if it sent nothing we recorded."""
    if not sent:
        return None
    last = sent[-1]
    if last.lifespan_app:
        return _lifespan_reproducer(last.lifespan_app, observed)
    if last.legacy:
        return _legacy_reproducer(last.wire, observed)
    raw = last.raw() if last.raw is not None else b""
    opened = list(last.requests()) if last.requests is not None else []
    if opened:
        last = Sent(last.wire, opened[-1])
    if raw:
        request, behaviour, script = _from_raw(raw)
        if last.frames is not None:
            request += "\nthen: " + " | ".join(last.frames())
    elif last.request is not None:
        behaviour, script = _script_of(last.request.headers)
        public = Request(
            method=last.request.method,
            target=last.request.target,
            headers=_public(last.request.headers),
            body=last.request.body,
            http_version=last.request.http_version,
        )
        if last.wire == "h2":
            request = _h2_frames(public)
        else:
            from conformance.clients.http1 import encode_request

            request = repr(encode_request(public)[:_KEEP])
    else:
        return None
    return Reproducer(last.wire, request, app_source(behaviour, script), observed)


# -- the app ---------------------------------------------------------------------------------


def _receive_until(indent: str, stop: str) -> list[str]:
    return [
        f"{indent}while True:",
        f"{indent}    message = await receive()",
        f'{indent}    print("received:", message)',
        f"{indent}    if {stop}:",
        f"{indent}        break",
    ]


def _step_lines(step: Mapping[str, Any]) -> list[str]:
    op = step.get("op")
    i = "    "
    if op == "receive":
        return [f'{i}print("received:", await receive())']
    if op in ("read_body", "digest_body"):
        stop = 'message["type"] != "http.request" or not message.get("more_body")'
        return _receive_until(i, stop)
    if op == "await_disconnect":
        return _receive_until(i, 'message["type"] == "http.disconnect"')
    if op == "ws_await_disconnect":
        return _receive_until(i, 'message["type"] == "websocket.disconnect"')
    if op == "receive_many":
        count = int(step.get("count", 1))
        return [f"{i}for _ in range({count}):", f'{i}    print("received:", await receive())']
    if op == "send":
        return [f"{i}await send({step.get('message')!r})"]
    if op == "stream":
        size, chunk = int(step.get("size", 0)), max(1, int(step.get("chunk", 1)))
        kind = step.get("type", "http.response.body")
        lines = [
            f"{i}for offset in range(0, {size}, {chunk}):",
            f"{i}    piece = bytes((offset + n) % 251 for n in range(min({chunk}, {size} - offset)))",
            f'{i}    await send({{"type": {kind!r}, "body": piece, "more_body": True}})',
        ]
        if step.get("final", True):
            lines.append(f'{i}await send({{"type": {kind!r}, "body": b"", "more_body": False}})')
        return lines
    if op in ("wait_flag", "sleep"):
        seconds = step.get("timeout", step.get("seconds", 1))
        return [f"{i}await asyncio.sleep({seconds})  # the probe waited for the test here"]
    if op == "raise":
        return [f"{i}raise RuntimeError({str(step.get('message', 'on purpose'))!r})"]
    if op in ("mark", "notify"):
        return [f"{i}# ({op} {step.get('name')!r}: a note for the test)"]
    if op == "echo":
        return [
            f"{i}while True:",
            f"{i}    message = await receive()",
            f'{i}    if message["type"] != "websocket.receive":',
            f"{i}        break",
            f'{i}    await send({{"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")}})',
        ]
    return [f"{i}# the probe's step {dict(step)!r}"]


def app_source(behaviour: str, script: Sequence[Mapping[str, Any]] | None) -> str:
    """A standalone ASGI app doing what the probe did (``behaviour``, ``script``)."""
    lines = [
        "import asyncio",
        "",
        "",
        "async def app(scope, receive, send):",
        '    if scope["type"] == "lifespan":',
        "        return",
        '    print("scope:", scope)',
    ]
    if script is not None:
        for step in script:
            if isinstance(step, Mapping):
                lines.extend(_step_lines(step))
    elif behaviour == "echo":
        lines.extend(
            _receive_until(
                "    ", 'message["type"] != "http.request" or not message.get("more_body")'
            )
        )
        lines += [
            '    await send({"type": "http.response.start", "status": 200, '
            '"headers": [(b"content-length", b"2")]})',
            '    await send({"type": "http.response.body", "body": b"ok"})',
        ]
    else:
        lines.append(f"    # the probe's {behaviour!r} behaviour (conformance/apps/probe.py)")
    return "\n".join(lines) + "\n"


# -- lifespan --------------------------------------------------------------------------------

#: What each lifespan probe does on startup and on shutdown (conformance/apps/lifespan.py).
_LIFESPAN: dict[str, tuple[list[str], list[str]]] = {
    "lifecycle": (
        [
            "await asyncio.sleep(1)  # the probe held startup back",
            "await send({'type': 'lifespan.startup.complete'})",
        ],
        ["await send({'type': 'lifespan.shutdown.complete'})"],
    ),
    "serving": (
        ["await send({'type': 'lifespan.startup.complete'})"],
        ["await send({'type': 'lifespan.shutdown.complete'})"],
    ),
    "startup_fails": (
        [
            "await send({'type': 'lifespan.startup.failed', 'message': 'startup failed on purpose'})",
            "return",
        ],
        [],
    ),
    "startup_fails_silently": (["await send({'type': 'lifespan.startup.failed'})", "return"], []),
    "raises_after_startup": (
        ["raise RuntimeError('raised on purpose after lifespan.startup')"],
        [],
    ),
    "shutdown_fails": (
        ["await send({'type': 'lifespan.startup.complete'})"],
        [
            "await send({'type': 'lifespan.shutdown.failed', 'message': 'shutdown failed on purpose'})"
        ],
    ),
    "shutdown_never": (
        ["await send({'type': 'lifespan.startup.complete'})"],
        ["await asyncio.sleep(3600)  # never answers"],
    ),
}
_LIFESPAN["lifecycle_sigint"] = _LIFESPAN["lifecycle"]


def _lifespan_reproducer(app: str, observed: str) -> Reproducer:
    """Start the server with a lifespan app like the probe's, then stop it as the check did."""
    lines = ["import asyncio", "", "", "async def app(scope, receive, send):"]
    lines += ['    if scope["type"] == "http":']
    lines += ['        await send({"type": "http.response.start", "status": 200, "headers": []})']
    lines += ['        await send({"type": "http.response.body", "body": b"ok"})', "        return"]
    if app == "raises_on_scope":
        lines.append("    raise RuntimeError('raised on purpose on the lifespan scope')")
    else:
        startup, shutdown = _LIFESPAN.get(app, (["# (see conformance/apps/lifespan.py)"], []))
        lines += [
            "    while True:",
            "        message = await receive()",
            '        print("received:", message)',
        ]
        lines.append('        if message["type"] == "lifespan.startup":')
        lines += [f"            {line}" for line in startup]
        lines.append('        elif message["type"] == "lifespan.shutdown":')
        lines += [f"            {line}" for line in shutdown or ["pass"]]
        lines.append("            return")
    request = (
        "start the server with this app (lifespan on), send it a request, then SIGTERM "
        "(SIGINT where the check says so), and watch what it does"
    )
    return Reproducer("lifespan", request, "\n".join(lines) + "\n", observed)


def _legacy_reproducer(wire: str, observed: str) -> Reproducer:
    """Serve a double-callable app (asgi.rst "Legacy Applications") and send it a GET."""
    app = "\n".join(
        [
            "def app(scope):",
            '    print("constructed with:", scope["type"])',
            "",
            "    async def instance(receive, send):",
            '        await send({"type": "http.response.start", "status": 200, "headers": []})',
            '        await send({"type": "http.response.body", "body": b"ok"})',
            "",
            "    return instance",
            "",
        ]
    )
    get = Request(method=b"GET", target=b"/", headers=[(b"host", b"127.0.0.1")])
    if wire == "h2":
        request = _h2_frames(get)
    else:
        from conformance.clients.http1 import encode_request

        request = repr(encode_request(get))
    return Reproducer(wire, request, app, observed)
