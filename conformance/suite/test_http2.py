"""HTTP/2 as the app sees it (www.rst "HTTP", "HTTP Connection Scope"; RFC 9113).

Only what exists because several streams share one connection, or because RFC 9113
makes a request malformed, is here: every other HTTP check runs on h2 columns from
its own module.  The client is the h2 library with its normalisation off, so a
field block goes out exactly as a check writes it (``raw=``), and every frame is
in the connection's transcript, which a failure quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import Scenario, scenario, scenarios
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance.clients import ClientError, Request
from conformance.clients.http2 import HTTP2Connection, HTTP2Stream


Fields = list[tuple[bytes, bytes]]


async def _connection(asgi: Probe) -> HTTP2Connection:
    connection = await asgi.open(timeout=units(3))
    assert isinstance(connection, HTTP2Connection)  # the catalogue limits these rows to h2
    return connection


def _pseudo(asgi: Probe, authority: bytes = b"localhost") -> Fields:
    """The pseudo-header fields of a GET / in the column's scheme."""
    scheme = b"https" if asgi.target.tls else b"http"
    return [
        (b":method", b"GET"),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", b"/"),
    ]


def _values(scope: dict[str, Any], name: bytes) -> list[Any]:
    return [v for k, v in scope.get("headers", []) if isinstance(k, bytes) and k.lower() == name]


# -- the scope --------------------------------------------------------------------------------


@requirement("h2.scope.http-version")
async def test_http_version_is_2(asgi: Probe) -> None:
    """An HTTP/2 request gives http_version "2"."""
    scope = await asgi.scope_of()
    observed = scope.get("http_version")
    expect(observed == "2", sent="GET / over HTTP/2", expected="'2'", observed=repr(observed))


async def _scope_for(asgi: Probe, fields: Fields) -> dict[str, Any]:
    """The scope the app saw for a request whose field block is exactly ``fields``."""
    rid = asgi.new_rid()
    probe = asgi.probe_headers(rid, "echo")
    async with await _connection(asgi) as connection:
        stream = await connection.start(Request(), raw=[*fields, *probe])
        await stream.read_response(timeout=units(3))
    calls = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(3), 1)
    expect(bool(calls), sent="GET / over HTTP/2", expected="the app called", observed="no call")
    scope: dict[str, Any] = calls[0]["scope"]
    return scope


@requirement("h2.scope.authority-as-host")
async def test_authority_is_the_first_host_field(asgi: Probe) -> None:
    """:authority a.test:8443 and no host field: headers start with (host, a.test:8443)."""
    scope = await _scope_for(asgi, _pseudo(asgi, b"a.test:8443"))
    headers = list(scope.get("headers", []))
    first = tuple(headers[0]) if headers else None
    expect(
        first == (b"host", b"a.test:8443"),
        sent=":authority a.test:8443, no host field",
        expected="(b'host', b'a.test:8443') first in headers",
        observed=f"first {first!r}; host fields {_values(scope, b'host')!r}",
    )


@requirement("h2.scope.authority-one-host")
async def test_authority_and_host_give_one_host(asgi: Probe) -> None:
    """:authority a.test and a host field a.test too: exactly one host entry, a.test."""
    scope = await _scope_for(asgi, [*_pseudo(asgi, b"a.test"), (b"host", b"a.test")])
    hosts = _values(scope, b"host")
    expect(
        hosts == [b"a.test"],
        sent=":authority a.test and host: a.test",
        expected="one host field, b'a.test'",
        observed=repr(hosts),
    )


# -- streams ----------------------------------------------------------------------------------

#: Streams opened at once on one connection.
STREAMS = 4


@requirement("h2.streams.separate-scopes")
async def test_concurrent_streams_are_separate_calls(asgi: Probe) -> None:
    """Four streams on one connection are all inside the app at once; each answer is its own."""
    group, wait = asgi.new_rid(), units(3)
    args = {"group": group, "size": str(STREAMS), "wait": f"{wait:.3f}"}
    rids = [asgi.new_rid() for _ in range(STREAMS)]
    bodies: dict[str, bytes | str] = {}
    async with await _connection(asgi) as connection:
        streams = [
            await connection.start(Request(headers=asgi.probe_headers(rid, "rendezvous", args)))
            for rid in rids
        ]

        async def read(rid: str, stream: HTTP2Stream) -> None:
            try:
                bodies[rid] = (await stream.read_response(timeout=wait + units(3))).body
            except ClientError as exc:
                bodies[rid] = str(exc)

        async with anyio.create_task_group() as tasks:
            for rid, stream in zip(rids, streams, strict=True):
                tasks.start_soon(read, rid, stream)
    called = [rid for rid in rids if asgi.server.channel.records(rid)]
    peaks = [int(b) if isinstance(b, bytes) and b.isdigit() else 0 for b in bodies.values()]
    expect(
        min(peaks, default=0) >= STREAMS and len(called) == STREAMS,
        sent=f"{STREAMS} GETs on {STREAMS} streams of one connection, each app waiting for the others",
        expected=f"{STREAMS} app calls inside together, each answered on its own stream",
        observed=f"answers {[b if isinstance(b, str) else b.decode() for b in bodies.values()]}",
    )


@requirement("h2.streams.interleaved")
async def test_two_streamed_responses_interleave(asgi: Probe) -> None:
    """Stream A's chunk is read while stream B's app waits for it, and then the other way round."""
    token = asgi.new_rid()

    def script(me: str, other: str) -> list[dict[str, Any]]:
        return [
            steps.read_body(),
            steps.start(200),
            steps.body(f"<{me}-1-{token}>".encode(), more=True),
            steps.wait_flag(f"read-{other}-{token}", units(3)),
            steps.body(f"<{me}-2-{token}>".encode()),
        ]

    channel = asgi.server.channel
    async with await _connection(asgi) as connection:
        a, b = [
            await connection.start(
                Request(headers=asgi.probe_headers(asgi.new_rid(), "script", {
                    "script": steps.encode_script(script(me, other))
                }))
            )
            for me, other in (("A", "B"), ("B", "A"))
        ]  # fmt: skip
        try:
            await a.read_until(f"<A-1-{token}>".encode(), timeout=units(3))
            channel.set_flag(f"read-A-{token}")
            await b.read_until(f"<B-1-{token}>".encode(), timeout=units(3))
            channel.set_flag(f"read-B-{token}")
            first, second = [await s.read_response(timeout=units(3)) for s in (a, b)]
        except ClientError as exc:
            channel.set_flag(f"read-A-{token}")
            channel.set_flag(f"read-B-{token}")
            expect(
                False,
                sent="two streams, each app sending a chunk, then waiting until the client read "
                "the other's",
                expected="both first chunks on the wire while both apps wait",
                observed=str(exc),
            )
            return
    expect(
        first.body.endswith(f"<A-2-{token}>".encode())
        and second.body.endswith(f"<B-2-{token}>".encode()),
        sent="two interleaved streamed responses",
        expected="both complete, each on its own stream",
        observed=f"A {first.body[:60]!r}, B {second.body[:60]!r}",
    )


# -- resets -----------------------------------------------------------------------------------


async def _reset_one_of_two(asgi: Probe) -> tuple[Any, bytes | str]:
    """Two long polls on one connection; reset the first.  What its app got, what the second got."""
    reset_script = [
        steps.read_body(units(2)),
        steps.notify("waiting"),
        steps.await_disconnect(units(2)),
    ]
    release = f"release-{asgi.new_rid()}"
    sibling_script = [
        steps.read_body(units(2)),
        steps.wait_flag(release, units(5)),
        steps.start(200, [(b"content-length", b"7")]),
        steps.body(b"sibling"),
    ]
    first_rid = asgi.new_rid()
    channel = asgi.server.channel
    async with await _connection(asgi) as connection:
        first = await connection.start(
            Request(headers=asgi.probe_headers(first_rid, "script", {
                "script": steps.encode_script(reset_script)
            }))
        )  # fmt: skip
        sibling = await connection.start(
            Request(headers=asgi.probe_headers(asgi.new_rid(), "script", {
                "script": steps.encode_script(sibling_script)
            }))
        )  # fmt: skip
        await anyio.to_thread.run_sync(channel.wait_for, first_rid, "notify", units(3), 1)
        await first.reset()
        found = await anyio.to_thread.run_sync(channel.wait_for, first_rid, "script", units(4), 1)
        channel.set_flag(release)
        try:
            other: bytes | str = (await sibling.read_response(timeout=units(3))).body
        except ClientError as exc:
            other = str(exc)
    timeline = found[0]["timeline"] if found else []
    heard = timeline[2].get("result") if len(timeline) > 2 else "the app never reported"
    return heard, other


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    """One reset serves both of its rows (conformance/_batch.py)."""
    return {"reset": _reset_one_of_two}


@requirement("h2.reset.disconnect")
async def test_reset_gives_the_app_disconnect(asgi: Probe) -> None:
    """RST_STREAM (CANCEL) on a long poll: its app's receive() returns http.disconnect."""
    heard, _ = await scenario(asgi, __name__, "reset")
    expect(
        isinstance(heard, dict) and heard.get("disconnected") is True,
        sent="RST_STREAM on a stream whose app waits in receive(), the connection kept open",
        expected=f"http.disconnect within {units(2):.1f}s",
        observed=f"receive() gave {heard!r}",
    )


@requirement("h2.reset.siblings-continue")
async def test_reset_leaves_the_other_streams(asgi: Probe) -> None:
    """After one stream is reset, another stream of the connection still gets its response."""
    _, other = await scenario(asgi, __name__, "reset")
    expect(
        other == b"sibling",
        sent="RST_STREAM on one stream, then the other stream's app answers",
        expected="b'sibling' on the other stream",
        observed=repr(other),
    )


# -- the response -----------------------------------------------------------------------------

#: Fields an HTTP/1 app sends that make an HTTP/2 message malformed (RFC 9113 8.2.2).
CONNECTION_FIELDS: Fields = [
    (b"connection", b"keep-alive"),
    (b"keep-alive", b"timeout=5"),
    (b"transfer-encoding", b"chunked"),
]


@requirement("h2.response.no-connection-fields")
async def test_connection_fields_are_not_sent(asgi: Probe) -> None:
    """connection, keep-alive and transfer-encoding from the app never reach the h2 response."""
    exchange = await asgi.send(
        script=[
            steps.read_body(),
            steps.start(200, [(b"x-kept", b"1"), *CONNECTION_FIELDS]),
            steps.body(b"ok"),
        ],
        timeout=units(3),
    )
    response = exchange.response
    leaked = [name for name, _ in response.headers if name.lower() in dict(CONNECTION_FIELDS)]
    expect(
        not leaked and response.body == b"ok" and response.header(b"x-kept") == b"1",
        sent="a start with x-kept: 1, connection, keep-alive and transfer-encoding fields",
        expected="a valid response with x-kept and body 'ok', none of the others",
        observed=f"{response.status}, fields {[n for n, _ in response.headers]}, body "
        f"{response.body[:40]!r}",
    )


# -- malformed requests (RFC 9113 8.1.1): never served ----------------------------------------


async def _malformed(
    asgi: Probe, build: Callable[[Fields], Sequence[tuple[bytes, bytes]]], what: str
) -> None:
    """Send the field block ``build(probe_fields)``; the app must not be called.

    A reset of the stream, a GOAWAY or a 4xx are all a refusal; only the app's
    being called with the request is a failure.
    """
    rid = asgi.new_rid()
    probe = asgi.probe_headers(rid, "echo")
    async with await _connection(asgi) as connection:
        fields = build(probe)
        try:
            stream = await connection.start(Request(), raw=fields)
            answer = f"status {(await stream.read_response(timeout=units(3))).status}"
        except ClientError as exc:
            answer = str(exc)[:160]
    calls = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(0.5), 1)
    expect(
        not calls,
        sent=what,
        expected="the stream reset or refused; the app never called",
        observed=f"the app was called with it ({answer})",
    )
    asgi.observe(f"refused: {answer}")


@requirement("h2.malformed.connection-field")
async def test_connection_field_is_refused(asgi: Probe) -> None:
    """A request carrying connection: keep-alive is malformed: the app is never called."""
    await _malformed(
        asgi,
        lambda probe: [*_pseudo(asgi), *probe, (b"connection", b"keep-alive")],
        "GET / with a connection: keep-alive field",
    )


@requirement("h2.malformed.uppercase-name")
async def test_uppercase_field_name_is_refused(asgi: Probe) -> None:
    """A request with the field name X-Upper is malformed: the app is never called."""
    await _malformed(
        asgi,
        lambda probe: [*_pseudo(asgi), *probe, (b"X-Upper", b"1")],
        "GET / with an upper-case field name X-Upper",
    )


@requirement("h2.malformed.pseudo-after-regular")
async def test_pseudo_after_regular_is_refused(asgi: Probe) -> None:
    """A request with :path after a regular field is malformed: the app is never called."""
    await _malformed(
        asgi,
        lambda probe: [*_pseudo(asgi)[:3], *probe, (b":path", b"/")],
        "GET with :path after the regular fields",
    )


@requirement("h2.malformed.content-length-mismatch")
async def test_short_body_is_never_complete(asgi: Probe) -> None:
    """content-length 10 and 5 bytes of DATA, then END_STREAM: the app never gets it as whole."""
    rid = asgi.new_rid()
    script = [steps.read_body(units(2))]
    probe = asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)})
    async with await _connection(asgi) as connection:
        fields = [(b":method", b"POST"), *_pseudo(asgi)[1:], *probe, (b"content-length", b"10")]
        try:
            stream = await connection.start(Request(), end=False, raw=fields)
            # The short body comes once the app is running, so it is the app that must not
            # take it for a whole one (a server may also wait for the body before calling).
            await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(1), 1)
            await stream.send_body(b"12345", end=True)
            await stream.read_response(timeout=units(3))
        except ClientError:
            pass
    found = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "script", units(3), 1)
    events = found[0]["timeline"][0].get("result") if found else []
    complete = [
        e for e in events or []
        if isinstance(e, dict) and e.get("type") == "http.request" and not e.get("more_body")
    ]  # fmt: skip
    expect(
        not complete,
        sent="POST, content-length: 10, 5 bytes of DATA and END_STREAM",
        expected="no http.request with more_body False (the body never arrived whole)",
        observed=f"the app got {events!r}",
    )
    asgi.observe(f"the app got {events!r}" if found else "the app was never called")
