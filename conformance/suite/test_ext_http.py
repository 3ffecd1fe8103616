"""The HTTP response extensions (docs/extensions.rst).

asgi.rst "Extensions": a server that implements an extension advertises it in
``scope["extensions"]``, and an app may only use what is advertised.  So each check
first reads the live scope (never the profile): not advertised -> ``unsupported``;
advertised -> the extension's events must do what the text says, or ``fail``.
What a server does with extension events it did *not* advertise is recorded in
``ext.unadvertised-events``, so a server doing the work without saying so shows up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import Scenario, ahead, scenario, scenarios
from conformance._probe import Exchange, Probe, expect
from conformance._timing import units
from conformance._verdicts import Unsupported
from conformance.clients import ClientError


TRAILERS = "http.response.trailers"
PATHSEND = "http.response.pathsend"
ZEROCOPY = "http.response.zerocopysend"
EARLY_HINT = "http.response.early_hint"
DEBUG = "http.response.debug"


async def _advertised(asgi: Probe) -> Mapping[str, Any]:
    """The extensions the server advertises on an HTTP/1.1 request (live, from the scope)."""
    scope = await asgi.scope_of()
    extensions = scope.get("extensions")
    return extensions if isinstance(extensions, dict) else {}


async def _require(asgi: Probe, name: str) -> None:
    advertised = await _advertised(asgi)
    if name not in advertised:
        raise Unsupported(
            f"{name} is not in scope['extensions'] over HTTP/1.1 "
            f"(advertised: {sorted(advertised) or 'none'})"
        )


@contextmanager
def _file(size: int) -> Iterator[tuple[str, bytes]]:
    """A temporary file of ``size`` pattern bytes, by absolute path (the server reads it)."""
    data = steps.pattern(0, size)
    with tempfile.TemporaryDirectory(prefix="asgi-conf-ext-") as folder:
        path = Path(folder, "body.bin").resolve()
        path.write_bytes(data)
        yield str(path), data


def _errors(exchange: Exchange) -> list[str]:
    return [f"step {e['i']}: {e.get('error')}" for e in exchange.timeline() if not e.get("ok")]


def _trailer_script() -> list[dict[str, Any]]:
    return [
        steps.read_body(),
        steps.start(200, [(b"trailer", b"x-checksum")], trailers=True),
        steps.body(b"hel", more=True),
        steps.body(b"lo"),
        steps.send(
            {"type": TRAILERS, "headers": [(b"x-checksum", b"abc")], "more_trailers": False}
        ),
    ]


@requirement("ext.trailers")
@ahead
async def test_trailers_follow_the_chunked_body(asgi: Probe) -> None:
    """With TE: trailers the client gets x-checksum after the body; without it, a complete body."""
    await _require(asgi, TRAILERS)
    with_te = await asgi.send(
        script=_trailer_script(), headers=[(b"te", b"trailers")], timeout=units(3)
    )
    without = await asgi.send(script=_trailer_script(), timeout=units(3))
    got, errors = with_te.response, await anyio.to_thread.run_sync(_errors, with_te)
    expect(
        got.body == b"hello" and got.trailers == [(b"x-checksum", b"abc")] and not errors,
        sent="TE: trailers; start(trailers=True), body 'hello', http.response.trailers x-checksum: abc",
        expected="body 'hello' followed by the trailer field x-checksum: abc",
        observed=f"body {got.body[:50]!r}, trailers {got.trailers!r}, errors {errors}",
    )
    # extensions.rst: "The ASGI server will only send the trailing headers in case the
    # client has sent the TE: trailers header in the request."
    expect(
        without.response.body == b"hello" and not without.response.trailers,
        sent="the same response to a request without TE: trailers",
        expected="a complete body 'hello' and no trailer fields",
        observed=f"body {without.response.body[:50]!r}, trailers {without.response.trailers!r}",
    )


@requirement("ext.pathsend")
async def test_pathsend_sends_the_file(asgi: Probe) -> None:
    """http.response.pathsend with an absolute path sends that file as the whole body."""
    await _require(asgi, PATHSEND)
    with _file((1 << 20) + 7) as (path, data):
        exchange = await asgi.send(
            script=[
                steps.read_body(),
                steps.start(
                    200,
                    [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(len(data)).encode()),
                    ],
                ),
                steps.send({"type": PATHSEND, "path": path}),
            ],
            timeout=units(5),
        )
    body, errors = exchange.response.body, _errors(exchange)
    expect(
        body == data and not errors,
        sent=f"start with content-length {len(data)}, then pathsend of a {len(data)}-byte file",
        expected="the file's bytes as the body",
        observed=f"{len(body)} bytes ({'equal' if body == data else 'different'}); errors {errors}",
    )


@requirement("ext.zerocopysend")
async def test_zerocopysend_sends_the_descriptors_bytes(asgi: Probe) -> None:
    """offset/count select the bytes, a body in between is kept, and the fd stays open."""
    await _require(asgi, ZEROCOPY)
    with _file(300_000) as (path, data):
        expected = data[10:1010] + b"|" + data[5000:]
        exchange = await asgi.send(
            script=[
                steps.read_body(),
                steps.start(200, [(b"content-length", str(len(expected)).encode())]),
                steps.zerocopysend(path, offset=10, count=1000, more_body=True),
                steps.body(b"|", more=True),
                steps.zerocopysend(path, seek=5000),
            ],
            timeout=units(5),
        )
        timeline = exchange.timeline()
    body = exchange.response.body
    closed = [
        e["i"]
        for e in timeline
        if isinstance(e.get("result"), dict) and not e["result"].get("fd_open_after")
    ]
    expect(
        body == expected and not _errors(exchange),
        sent="zerocopysend(offset=10, count=1000, more_body), body '|', zerocopysend from position 5000",
        expected=f"data[10:1010] + '|' + data[5000:] ({len(expected)} bytes)",
        observed=f"{len(body)} bytes ({'equal' if body == expected else 'different'}); errors {_errors(exchange)}",
    )
    # extensions.rst: "ASGI servers are not responsible for closing descriptors."
    expect(
        not closed,
        sent="zerocopysend of an open file",
        expected="the descriptor still open when send() returns",
        observed=f"closed by the server after steps {closed}",
    )


LINKS = [b"</style.css>; rel=preload; as=style", b"</script.js>; rel=preload; as=script"]


@requirement("ext.early-hint")
@ahead
async def test_early_hint_precedes_an_intact_response(asgi: Probe) -> None:
    """A 103 (if sent) carries one Link per link and precedes the intact final response."""
    await _require(asgi, EARLY_HINT)
    exchange = await asgi.send(
        script=[
            steps.read_body(),
            steps.start(200, [(b"content-length", b"2"), (b"x-final", b"1")]),
            steps.send({"type": EARLY_HINT, "links": LINKS}),
            steps.body(b"ok"),
        ],
        timeout=units(3),
    )
    response, errors = exchange.response, _errors(exchange)
    expect(
        response.status == 200 and response.body == b"ok" and response.header(b"x-final") == b"1",
        sent="start(200), early_hint with two links, body 'ok'",
        expected="the final 200 with x-final: 1 and body 'ok'",
        observed=f"{response.status} {response.body[:50]!r}; errors {errors}",
    )
    hints = [headers for status, headers in response.informational if status == 103]
    if not hints:
        # extensions.rst: "The server may decide to ignore this message, for example if
        # the HTTP/1.1 protocol is used and the server has security concerns."
        asgi.observe("the hint was ignored (allowed); no 103 was sent")
        return
    links = [v for n, v in hints[0] if n.lower() == b"link"]
    expect(
        links == LINKS,
        sent=f"early_hint links {LINKS!r}",
        expected="a 103 with one Link field per link, in order",
        observed=f"Link fields {links!r}",
    )
    asgi.observe(f"{len(hints)} 103 response(s) before the final one")


@requirement("ext.debug-not-offered")
async def test_debug_extension_is_not_advertised(asgi: Probe) -> None:
    """http.response.debug, meant for test clients, is not in scope['extensions']."""
    advertised = await _advertised(asgi)
    expect(
        DEBUG not in advertised,
        sent="GET / over HTTP/1.1",
        expected=f"no {DEBUG} in scope['extensions'] (servers should not implement it)",
        observed=f"advertised: {sorted(advertised)}",
    )


async def _try(asgi: Probe, script: list[dict[str, Any]], **kwargs: Any) -> str:
    """What one unadvertised event led to: send() raised, and what the client got."""
    try:
        exchange = await asgi.send(script=[steps.read_body(), *script], timeout=units(1), **kwargs)
    except ClientError as exc:
        return f"client: {type(exc).__name__}"
    response, errors = exchange.response, _errors(exchange)
    raised = errors[0].split(": ", 1)[1][:120] if errors else "nothing raised"
    extra = []
    if response.trailers:
        extra.append(f"trailers {response.trailers!r}")
    if response.informational:
        extra.append(f"informational {[s for s, _ in response.informational]}")
    return f"{raised}; client: {response.status}, {len(response.body)} B" + "".join(
        f", {e}" for e in extra
    )


async def _unadvertised_trials(asgi: Probe) -> list[str]:
    """Send each extension event the scope does not advertise; what each one led to.

    A scenario started with the server (conformance/_batch.py): a server that
    ignores an event leaves its response hanging until the bound.
    """
    advertised = await _advertised(asgi)
    with _file(1000) as (path, data):
        length = [(b"content-length", str(len(data)).encode())]
        trials: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
            TRAILERS: (_trailer_script()[1:], {"headers": [(b"te", b"trailers")]}),
            PATHSEND: (
                [steps.start(200, length), steps.send({"type": PATHSEND, "path": path})],
                {},
            ),
            ZEROCOPY: ([steps.start(200, length), steps.zerocopysend(path)], {}),
            EARLY_HINT: (
                [
                    steps.start(200, [(b"content-length", b"2")]),
                    steps.send({"type": EARLY_HINT, "links": LINKS}),
                    steps.body(b"ok"),
                ],
                {},
            ),
        }
        results: dict[str, str] = {}

        async def trial(name: str, script: list[dict[str, Any]], kwargs: dict[str, Any]) -> None:
            results[name] = await _try(asgi, script, **kwargs)

        # At once: a server that ignores an event leaves its response hanging until the bound.
        async with anyio.create_task_group() as tasks:
            for name, (script, kwargs) in trials.items():
                if name not in advertised:
                    tasks.start_soon(trial, name, script, kwargs)
    return [f"{name}: {results[name]}" for name in trials if name in results]


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    return {"unadvertised": _unadvertised_trials}


@requirement("ext.unadvertised-events")
async def test_what_unadvertised_extension_events_do(asgi: Probe) -> None:
    """Record what sending each unadvertised extension event leads to."""
    seen = await scenario(asgi, __name__, "unadvertised")
    asgi.observe("; ".join(seen) if seen else "every extension event tried is advertised")
