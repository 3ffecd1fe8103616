"""HTTP/2 and HTTP/3 as the app sees them (www.rst "HTTP", "HTTP Connection Scope"; RFC 9113, RFC 9114).

Only what exists because several streams share one connection, or because the
protocol makes a request malformed, is here: every other HTTP check runs on h2 and h3
columns from its own module.  HTTP/3 keeps HTTP/2's message rules (RFC 9114 4.1.2,
4.2, 4.3 follow RFC 9113 8.1-8.3), so each check is written once and judges the
requirement of its column's protocol (``h2.reset.disconnect`` on an h2 column,
``h3.reset.disconnect`` on an h3 one).  The clients (h2, aioquic) send a field block
exactly as a check writes it (``raw=``), and every frame is in the connection's
transcript, which a failure quotes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from conformance import _steps as steps
from conformance import _ws_steps as ws_steps
from conformance import requirement
from conformance._batch import Scenario, ahead, scenario, scenarios
from conformance._launcher import LaunchConfig
from conformance._probe import Probe, expect
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance._verdicts import Unsupported
from conformance.clients import ClientError, Request, open_connection
from conformance.clients._multiplexed import ENABLE_CONNECT_PROTOCOL


if TYPE_CHECKING:
    # h2 and aioquic are optional dependencies (the http2 and http3 extras): a run
    # without such columns never imports them.
    from conformance.clients.http2 import HTTP2Connection, HTTP2Stream
    from conformance.clients.http3 import HTTP3Connection, HTTP3Stream

    Connection = HTTP2Connection | HTTP3Connection
    Stream = HTTP2Stream | HTTP3Stream


Fields = list[tuple[bytes, bytes]]


async def _connection(asgi: Probe, config: LaunchConfig | None = None) -> Connection:
    """A connection of the column's multiplexed protocol (the catalogue limits these rows to h2, h3)."""
    connection = await asgi.open(config, timeout=units(3))
    assert connection.protocol in ("h2", "h3"), connection.protocol
    return connection  # type: ignore[return-value]


async def _http2(asgi: Probe) -> HTTP2Connection:
    """An HTTP/2 connection, for the one row HTTP/3 has no twin of here (server push)."""
    from conformance.clients.http2 import HTTP2Connection

    connection = await _connection(asgi)
    assert isinstance(connection, HTTP2Connection), connection.protocol
    return connection


def _version(asgi: Probe) -> str:
    """The http_version of the column's protocol: "2" for HTTP/2, "3" for HTTP/3."""
    return "3" if asgi.target.wire == "h3" else "2"


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


@requirement("h2.scope.http-version", "h3.scope.http-version")
async def test_http_version_is_2(asgi: Probe) -> None:
    """An HTTP/2 request gives http_version "2", an HTTP/3 request "3"."""
    scope, version = await asgi.scope_of(), _version(asgi)
    observed = scope.get("http_version")
    expect(
        observed == version,
        sent=f"GET / over HTTP/{version}",
        expected=repr(version),
        observed=repr(observed),
    )


async def _scope_for(asgi: Probe, fields: Fields) -> dict[str, Any]:
    """The scope the app saw for a request whose field block is exactly ``fields``."""
    rid = asgi.new_rid()
    probe = asgi.probe_headers(rid, "echo")
    async with await _connection(asgi) as connection:
        stream = await connection.start(Request(), raw=[*fields, *probe])
        await stream.read_response(timeout=units(3))
    calls = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(3), 1)
    sent = f"GET / over HTTP/{_version(asgi)}"
    expect(bool(calls), sent=sent, expected="the app called", observed="no call")
    scope: dict[str, Any] = calls[0]["scope"]
    return scope


@requirement("h2.scope.authority-as-host", "h3.scope.authority-as-host")
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


@requirement("h2.scope.authority-one-host", "h3.scope.authority-one-host")
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


async def _calls_reported(asgi: Probe, answered: list[str]) -> list[str]:
    """Those of the ``answered`` requests whose app call reached the side channel.

    An answered request's call report is already on its way, but it travels on the
    side channel, not on the connection that brought the answer: on a busy machine the
    answer can be read first.  Waiting (bounded) for the reports of requests the server
    answered proves nothing negative, so the wait costs nothing when all is well.
    """
    channel = asgi.server.channel

    def calls() -> list[Observation]:
        return [r for rid in answered for r in channel.records(rid) if r.get("kind") == "call"]

    found = await channel.until(
        calls, lambda got: {r["rid"] for r in got} >= set(answered), units(3)
    )
    return sorted({str(r["rid"]) for r in found})


@requirement("h2.streams.separate-scopes", "h3.streams.separate-scopes")
@ahead
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

        async def read(rid: str, stream: Stream) -> None:
            try:
                bodies[rid] = (await stream.read_response(timeout=wait + units(3))).body
            except ClientError as exc:
                bodies[rid] = str(exc)

        async with anyio.create_task_group() as tasks:
            for rid, stream in zip(rids, streams, strict=True):
                tasks.start_soon(read, rid, stream)
    peaks = [int(b) if isinstance(b, bytes) and b.isdigit() else 0 for b in bodies.values()]
    called = await _calls_reported(
        asgi, [rid for rid in rids if isinstance(bodies.get(rid), bytes)]
    )
    expect(
        min(peaks, default=0) >= STREAMS and len(called) == STREAMS,
        sent=f"{STREAMS} GETs on {STREAMS} streams of one connection, each app waiting for the others",
        expected=f"{STREAMS} app calls inside together, each answered on its own stream",
        observed=f"answers {[b if isinstance(b, str) else b.decode() for b in bodies.values()]}",
    )


@requirement("h2.streams.interleaved", "h3.streams.interleaved")
@ahead
async def test_two_streamed_responses_interleave(asgi: Probe) -> None:
    """Stream A's chunk is read while stream B's app waits for it, and then the other way round."""
    token = asgi.new_rid()

    def script(me: str, other: str) -> list[dict[str, Any]]:
        return [
            steps.read_body(),
            steps.start(200),
            steps.body(f"<{me}-1-{token}>".encode(), more=True),
            # Longer than the client's read bound below, so that a server serving the
            # streams one after the other never gets B's chunk out in time by A's giving up.
            steps.wait_flag(f"read-{other}-{token}", units(6)),
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


def _own(asgi: Probe, what: str) -> LaunchConfig | None:
    """An instance of its own for ``what``, on an HTTP/3 column; the main one elsewhere.

    One UDP socket and one endpoint carry every QUIC connection of a server, so a
    stream event the server mishandles can take HTTP/3 down for every later check
    (hypercorn's endpoint stops answering after a reset or a request body that ends
    oddly, while its process and TCP listener live on).  Such requests go to an
    instance of their own, and the damage is the finding of their own row
    (``h3.reset.listener-survives``), never an error of the next check.
    """
    return LaunchConfig(own=what) if asgi.wire == "h3" else None


#: What the client's stream resets get an instance of their own for.
RESETS = "the client's stream resets"


async def _reset_one_of_two(asgi: Probe) -> tuple[Any, bytes | str, str]:
    """Two long polls on one connection; reset the first.

    What its app got, what the second got, and what a new connection to the same
    server got afterwards ("" when it was served).
    """
    reset_script = [
        steps.read_body(units(2)),
        steps.notify("waiting"),
        steps.await_disconnect(units(2)),
    ]
    release = f"release-{asgi.new_rid()}"
    sibling_script = [
        steps.read_body(units(2)),
        steps.notify("waiting"),
        steps.wait_flag(release, units(5)),
        steps.start(200, [(b"content-length", b"7")]),
        steps.body(b"sibling"),
    ]
    first_rid = asgi.new_rid()
    channel = asgi.server.channel
    async with await _connection(asgi, _own(asgi, RESETS)) as connection:
        first = await connection.start(
            Request(headers=asgi.probe_headers(first_rid, "script", {
                "script": steps.encode_script(reset_script)
            }))
        )  # fmt: skip
        sibling_rid = asgi.new_rid()
        sibling = await connection.start(
            Request(headers=asgi.probe_headers(sibling_rid, "script", {
                "script": steps.encode_script(sibling_script)
            }))
        )  # fmt: skip
        # Both apps are in flight before the reset: the sibling is one the reset could harm.
        for rid in (first_rid, sibling_rid):
            await anyio.to_thread.run_sync(channel.wait_for, rid, "notify", units(3), 1)
        await first.reset()
        found = await anyio.to_thread.run_sync(channel.wait_for, first_rid, "script", units(4), 1)
        channel.set_flag(release)
        try:
            other: bytes | str = (await sibling.read_response(timeout=units(3))).body
        except ClientError as exc:
            other = str(exc)
    timeline = found[0]["timeline"] if found else []
    heard = timeline[2].get("result") if len(timeline) > 2 else "the app never reported"
    return heard, other, await _served_afresh(asgi, _own(asgi, RESETS))


async def _served_afresh(asgi: Probe, config: LaunchConfig | None) -> str:
    """Whether a new connection to the instance for ``config`` is served: "" if so, else why.

    Asked of the column's listener directly, so that a dead one is this row's
    observation rather than the next check's error (conformance/_probe.py).
    """
    server = await anyio.to_thread.run_sync(asgi.instance, config)
    try:
        async with await open_connection(
            asgi.wire,
            server.host,
            server.port_for(asgi.wire),
            timeout=units(3),
            tls=server.client_tls(),
        ) as connection:
            request = Request(headers=asgi.probe_headers(asgi.new_rid(), "echo"))
            status = (await connection.exchange(request, timeout=units(3))).status
    except (ClientError, OSError) as exc:
        return str(exc)[:300]
    return "" if status == 200 else f"status {status}"


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    """One reset serves both of its rows; the malformed requests' bounds overlap (conformance/_batch.py)."""
    found: dict[str, Scenario] = {"reset": _reset_one_of_two}
    for name in MALFORMED:
        found[f"malformed {name}"] = functools.partial(_refusal, name=name)
    return found


@requirement("h2.reset.disconnect")
async def test_reset_gives_the_app_disconnect(asgi: Probe) -> None:
    """RST_STREAM (CANCEL) on a long poll: its app's receive() returns http.disconnect."""
    heard, _, _ = await scenario(asgi, __name__, "reset")
    expect(
        isinstance(heard, dict) and heard.get("disconnected") is True,
        sent="RST_STREAM on a stream whose app waits in receive(), the connection kept open",
        expected=f"http.disconnect within {units(2):.1f}s",
        observed=f"receive() gave {heard!r}",
    )


@requirement("h2.reset.siblings-continue")
async def test_reset_leaves_the_other_streams(asgi: Probe) -> None:
    """After one stream is reset, another stream of the connection still gets its response."""
    _, other, _ = await scenario(asgi, __name__, "reset")
    expect(
        other == b"sibling",
        sent="RST_STREAM on one stream, then the other stream's app answers",
        expected="b'sibling' on the other stream",
        observed=repr(other),
    )


@requirement("h2.reset.listener-survives")
async def test_resets_leave_the_listener_serving(asgi: Probe) -> None:
    """After a client reset streams, a new connection to the same server is still served."""
    _, _, afresh = await scenario(asgi, __name__, "reset")
    expect(
        not afresh,
        sent="RST_STREAM on one of two streams, both apps in flight; then a new connection, GET /",
        expected="200 on the new connection",
        observed=afresh,
    )


# -- the response -----------------------------------------------------------------------------

#: Fields an HTTP/1 app sends that make an HTTP/2 or HTTP/3 message malformed (RFC 9113 8.2.2,
#: RFC 9114 4.2).
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


#: Malformed field blocks (RFC 9113 8.1.1): what each sends, and how it is built from the
#: column's pseudo-header fields and the probe's fields.
MALFORMED: dict[str, tuple[str, Callable[[Fields, Fields], Fields]]] = {
    "connection-field": (
        "GET / with a connection: keep-alive field",
        lambda pseudo, probe: [*pseudo, *probe, (b"connection", b"keep-alive")],
    ),
    "uppercase-name": (
        "GET / with an upper-case field name X-Upper",
        lambda pseudo, probe: [*pseudo, *probe, (b"X-Upper", b"1")],
    ),
    "pseudo-after-regular": (
        "GET with :path after the regular fields",
        lambda pseudo, probe: [*pseudo[:3], *probe, (b":path", b"/")],
    ),
    "te-not-trailers": (
        "GET / with te: gzip",
        lambda pseudo, probe: [*pseudo, *probe, (b"te", b"gzip")],
    ),
    "duplicate-pseudo": (
        "GET with two :path fields",
        lambda pseudo, probe: [*pseudo, (b":path", b"/other"), *probe],
    ),
    "response-pseudo": (
        "GET with a :status pseudo-header",
        lambda pseudo, probe: [*pseudo, (b":status", b"200"), *probe],
    ),
    "empty-path": (
        "GET with an empty :path",
        lambda pseudo, probe: [*pseudo[:3], (b":path", b""), *probe],
    ),
}


async def _refusal(asgi: Probe, name: str) -> tuple[bool, str]:
    """Send malformed field block ``name``: whether the app was called, and what came back.

    A scenario (conformance/_batch.py): a server that leaves the stream open makes
    the client wait out its bound, and the seven bounds overlap.
    """
    rid = asgi.new_rid()
    _, build = MALFORMED[name]
    async with await _connection(asgi) as connection:
        try:
            stream = await connection.start(
                Request(), raw=build(_pseudo(asgi), asgi.probe_headers(rid, "echo"))
            )
            answer = f"status {(await stream.read_response(timeout=units(3))).status}"
        except ClientError as exc:
            answer = str(exc)[:160]
    calls = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(0.5), 1)
    return bool(calls), answer


async def _malformed(asgi: Probe, name: str) -> None:
    """The app must not be called: a reset, a GOAWAY or a 4xx are all a refusal."""
    called, answer = await scenario(asgi, __name__, f"malformed {name}")
    expect(
        not called,
        sent=MALFORMED[name][0],
        expected="the stream reset or refused; the app never called",
        observed=f"the app was called with it ({answer})",
    )
    asgi.observe(f"refused: {answer}")


@requirement("h2.malformed.connection-field", "h3.malformed.connection-field")
async def test_connection_field_is_refused(asgi: Probe) -> None:
    """A request carrying connection: keep-alive is malformed: the app is never called."""
    await _malformed(asgi, "connection-field")


@requirement("h2.malformed.uppercase-name", "h3.malformed.uppercase-name")
async def test_uppercase_field_name_is_refused(asgi: Probe) -> None:
    """A request with the field name X-Upper is malformed: the app is never called."""
    await _malformed(asgi, "uppercase-name")


@requirement("h2.malformed.pseudo-after-regular", "h3.malformed.pseudo-after-regular")
async def test_pseudo_after_regular_is_refused(asgi: Probe) -> None:
    """A request with :path after a regular field is malformed: the app is never called."""
    await _malformed(asgi, "pseudo-after-regular")


@requirement("h2.malformed.content-length-mismatch", "h3.malformed.content-length-mismatch")
@ahead
async def test_short_body_is_never_complete(asgi: Probe) -> None:
    """content-length 10 and 5 bytes of DATA, then END_STREAM: the app never gets it as whole.

    The short body comes once the app is running, so it is the app that must not take it
    for a whole one (a server may also wait for the body before calling the app).
    """

    async def drive(stream: Stream) -> None:
        await stream.send_body(b"12345", end=True)

    events = await _body_events(asgi, asgi.new_rid(), "short body", drive)
    expect(
        not _complete(events),
        sent="POST, content-length: 10, 5 bytes of DATA and END_STREAM",
        expected="no http.request with more_body False (the body never arrived whole)",
        observed=f"the app got {events!r}",
    )
    asgi.observe(f"the app got {events!r}" if events else "the app was never given the request")


@requirement("h2.malformed.te-not-trailers", "h3.malformed.te-not-trailers")
async def test_te_other_than_trailers_is_refused(asgi: Probe) -> None:
    """A request with te: gzip is malformed: the app is never called."""
    await _malformed(asgi, "te-not-trailers")


@requirement("h2.malformed.duplicate-pseudo", "h3.malformed.duplicate-pseudo")
async def test_duplicate_path_is_refused(asgi: Probe) -> None:
    """A request with :path / and :path /other is malformed: the app is never called."""
    await _malformed(asgi, "duplicate-pseudo")


@requirement("h2.malformed.response-pseudo", "h3.malformed.response-pseudo")
async def test_status_in_a_request_is_refused(asgi: Probe) -> None:
    """A request carrying :status 200 is malformed: the app is never called."""
    await _malformed(asgi, "response-pseudo")


@requirement("h2.malformed.empty-path", "h3.malformed.empty-path")
async def test_empty_path_is_refused(asgi: Probe) -> None:
    """A GET with :path "" is malformed: the app is never called."""
    await _malformed(asgi, "empty-path")


async def _body_events(
    asgi: Probe,
    rid: str,
    what: str,
    drive: Callable[[Stream], Any],
) -> list[Any]:
    """POST 10 announced bytes whose stream ``drive`` ends its own way; the app's events.

    Only the app's events matter, so the client does not wait for a response: it keeps
    the connection open while the app's report is awaited (one bound, not two).
    """
    script = [steps.read_body(units(2))]
    probe = asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)})
    async with await _connection(
        asgi, _own(asgi, f"a request body that ends early ({what})")
    ) as connection:
        fields = [(b":method", b"POST"), *_pseudo(asgi)[1:], *probe, (b"content-length", b"10")]
        try:
            stream = await connection.start(Request(), end=False, raw=fields)
            await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(1), 1)
            await drive(stream)
        except ClientError:
            pass
        found = await anyio.to_thread.run_sync(
            asgi.server.channel.wait_for, rid, "script", units(3), 1
        )
    events: list[Any] = (found[0]["timeline"][0].get("result") or []) if found else []
    return events


def _complete(events: list[Any]) -> list[Any]:
    return [
        e for e in events
        if isinstance(e, dict) and e.get("type") == "http.request" and not e.get("more_body")
    ]  # fmt: skip


@requirement("h2.malformed.pseudo-in-trailers")
@ahead
async def test_pseudo_header_in_trailers_is_never_complete(asgi: Probe) -> None:
    """10 body bytes, then trailers with :path: the app never gets the request as complete."""

    async def drive(stream: Stream) -> None:
        await stream.send_body(b"0123456789")
        await stream.send_trailers([(b":path", b"/late"), (b"x-t", b"1")])

    events = await _body_events(asgi, asgi.new_rid(), "pseudo trailers", drive)
    expect(
        not _complete(events),
        sent="POST, content-length: 10, the 10 bytes, then trailers holding :path",
        expected="no http.request with more_body False (the request is malformed)",
        observed=f"the app got {events!r}",
    )


@requirement("h2.reset.mid-upload")
@ahead
async def test_reset_mid_upload_gives_disconnect(asgi: Probe) -> None:
    """5 of 10 announced body bytes, then RST_STREAM: http.disconnect, never more_body False."""

    async def drive(stream: Stream) -> None:
        await stream.send_body(b"01234")
        await stream.reset()

    events = await _body_events(asgi, asgi.new_rid(), "reset", drive)
    if not events:
        asgi.observe("the app was never given the request (the server waits for the whole body)")
        return
    last = events[-1]
    expect(
        not _complete(events) and isinstance(last, dict) and last.get("type") == "http.disconnect",
        sent="POST, content-length: 10, 5 bytes, then RST_STREAM (CANCEL)",
        expected="http.disconnect, and no http.request with more_body False",
        observed=f"the app got {events!r}",
    )


#: Streams opened at once by the many-streams check (fewer if the server allows fewer).
MANY = 32


@requirement("h2.streams.many")
@ahead
async def test_many_concurrent_streams_are_all_answered(asgi: Probe) -> None:
    """32 GETs at once on one connection (or as many as the server allows): all answered."""
    async with await _connection(asgi) as connection:
        await connection.exchange(
            Request(headers=asgi.probe_headers(asgi.new_rid(), "echo")), timeout=units(3)
        )
        allowed = connection.max_concurrent_streams
        count = min(MANY, MANY if allowed is None else allowed)
        streams = [
            await connection.start(Request(headers=asgi.probe_headers(asgi.new_rid(), "echo")))
            for _ in range(count)
        ]
        answers: list[str] = []

        async def read(stream: Stream) -> None:
            try:
                answers.append(str((await stream.read_response(timeout=units(5))).status))
            except ClientError as exc:
                answers.append(type(exc).__name__)

        async with anyio.create_task_group() as tasks:
            for stream in streams:
                tasks.start_soon(read, stream)
    wrong = [a for a in answers if a != "200"]
    expect(
        not wrong,
        sent=f"{count} GETs at once on one connection (the server allows {allowed})",
        expected="200 on every stream",
        observed=f"{len(wrong)} not 200: {sorted(set(wrong))}",
    )


@requirement("h2.cookie.crumbs", "h3.cookie.crumbs")
async def test_how_cookie_crumbs_arrive(asgi: Probe) -> None:
    """Records whether cookie: a=1 and cookie: b=2 arrive separate or joined."""
    scope = await _scope_for(asgi, [*_pseudo(asgi), (b"cookie", b"a=1"), (b"cookie", b"b=2")])
    cookies = _values(scope, b"cookie")
    if cookies == [b"a=1; b=2"]:
        asgi.observe("joined with '; ' (RFC 9113 8.2.3)")
    elif sorted(cookies) == [b"a=1", b"b=2"]:
        asgi.observe("kept as two fields")
    else:
        asgi.observe(f"arrived as {cookies!r}")


@requirement("h2.request.trailers", "h3.request.trailers")
@ahead
async def test_what_request_trailers_become(asgi: Probe) -> None:
    """Records what the app gets of a body followed by trailer fields; the body must be intact."""
    rid = asgi.new_rid()
    script = [steps.digest_body(units(2)), steps.start(200), steps.body(b"ok")]
    probe = asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)})
    async with await _connection(asgi, _own(asgi, "request trailers")) as connection:
        fields = [(b":method", b"POST"), *_pseudo(asgi)[1:], *probe, (b"te", b"trailers")]
        stream = await connection.start(Request(), end=False, raw=fields)
        await stream.send_body(BODY)
        await stream.send_trailers([(b"x-checksum", b"abc")])
        try:
            status = f"status {(await stream.read_response(timeout=units(3))).status}"
        except ClientError as exc:
            status = str(exc)[:100]
    found = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "script", units(3), 1)
    digest = found[0]["timeline"][0].get("result") if found else None
    intact = isinstance(digest, dict) and digest.get("sha256") == hashlib.sha256(BODY).hexdigest()
    expect(
        intact,
        sent=f"POST with body {BODY!r} and trailers x-checksum: abc",
        expected="the body alone, intact",
        observed=f"the app's body: {digest!r}; {status}",
    )
    calls = [r for r in asgi.server.channel.records(rid) if r.get("kind") == "call"]
    in_scope = bool(calls) and any(k == b"x-checksum" for k, _ in _pairs(calls[0]["scope"]))
    asgi.observe(
        f"body intact; the trailer {'is in the scope headers' if in_scope else 'is not given'}"
    )


#: The body of the request-trailers check.
BODY = b"the-body"


def _pairs(scope: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(h[0], h[1]) for h in scope.get("headers", [])]


@requirement("h2.push.promise")
@ahead
async def test_push_sends_a_promise_and_serves_it(asgi: Probe) -> None:
    """http.response.push of /pushed: a PUSH_PROMISE with our :authority, then a new app call's 200."""
    scope = await asgi.scope_of()
    if "http.response.push" not in (scope.get("extensions") or {}):
        raise Unsupported("the scope does not advertise http.response.push")
    pushed_rid = asgi.new_rid()
    push_headers = [[b"x-probe", b"echo"], [b"x-probe-rid", pushed_rid.encode()]]
    script = [
        steps.read_body(),
        steps.start(200, [(b"content-length", b"2")]),
        steps.send({"type": "http.response.push", "path": "/pushed", "headers": push_headers}),
        steps.body(b"ok"),
    ]
    rid = asgi.new_rid()
    probe = asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)})
    async with await _http2(asgi) as connection:
        stream = await connection.start(Request(), raw=[*_pseudo(asgi, b"push.test"), *probe])
        response = await stream.read_response(timeout=units(3))
        promises = list(connection.pushes)
        fields = {k: v for k, v in (promises[0].headers or [])} if promises else {}
        status: int | str = "no pushed response"
        if promises:
            try:
                status = (
                    await connection.pushed(promises[0]).read_response(timeout=units(3))
                ).status
            except ClientError as exc:
                status = str(exc)[:100]
    called = await anyio.to_thread.run_sync(
        asgi.server.channel.wait_for, pushed_rid, "call", units(2), 1
    )
    expect(
        bool(promises)
        and fields.get(b":path") == b"/pushed"
        and fields.get(b":authority") == b"push.test"
        and status == 200
        and bool(called),
        sent="start(200), http.response.push of /pushed, body 'ok', to a client that allows push",
        expected="a PUSH_PROMISE for /pushed with :authority push.test, and a 200 served by a new app call",
        observed=f"response {response.status}; promises {[dict(p.headers or []) for p in promises]!r}; "
        f"pushed response {status}; pushed app called: {bool(called)}",
    )


# -- WebSocket over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) -------------------------------------


async def _websocket_stream(
    asgi: Probe, connection: Connection, script: list[dict[str, Any]]
) -> tuple[str, Stream, int | str]:
    """Open a WebSocket on a stream by extended CONNECT; its rid, the stream, the status (or why not).

    Unsupported when the server's SETTINGS do not offer extended CONNECT.
    """
    await connection.exchange(
        Request(headers=asgi.probe_headers(asgi.new_rid(), "echo")), timeout=units(3)
    )
    if connection.remote_settings.get(ENABLE_CONNECT_PROTOCOL) != 1:
        raise Unsupported(
            "the server's SETTINGS do not offer extended CONNECT (RFC 8441, RFC 9220)"
        )
    rid = asgi.new_rid()
    probe = asgi.probe_headers(rid, "websocket", {"script": steps.encode_script(script)})
    fields = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        *_pseudo(asgi)[1:],
        (b"sec-websocket-version", b"13"),
        *probe,
    ]
    stream = await connection.start(Request(method=b"CONNECT"), end=False, raw=fields)
    try:
        status: int | str = await stream.read_head(timeout=units(3))
    except ClientError as exc:
        status = str(exc)[:200]
    return rid, stream, status


@requirement("h2.websocket.extended-connect", "h3.websocket.extended-connect")
@ahead
async def test_extended_connect_is_accepted_where_advertised(asgi: Probe) -> None:
    """With ENABLE_CONNECT_PROTOCOL in its SETTINGS, a WebSocket CONNECT the app accepts gets 200."""
    async with await _connection(asgi) as connection:
        _, _, status = await _websocket_stream(
            asgi, connection, [ws_steps.connect(), ws_steps.accept(), ws_steps.close()]
        )
    expect(
        status == 200,
        sent="CONNECT :protocol websocket to an app that accepts, after SETTINGS offered it",
        expected="200 on the stream",
        observed=f"{status}",
    )


@requirement("h2.websocket.scope", "h3.websocket.scope")
@ahead
async def test_websocket_over_h2_scope_says_http_2(asgi: Probe) -> None:
    """A WebSocket over HTTP/2 (HTTP/3) has a "websocket" scope with http_version "2" ("3")."""
    async with await _connection(asgi) as connection:
        rid, _, status = await _websocket_stream(
            asgi, connection, [ws_steps.connect(), ws_steps.accept(), ws_steps.close()]
        )
    calls = await anyio.to_thread.run_sync(asgi.server.channel.wait_for, rid, "call", units(2), 1)
    scope = calls[0]["scope"] if calls else {}
    got = (scope.get("type"), scope.get("http_version"))
    expect(
        got == ("websocket", _version(asgi)),
        sent="CONNECT :protocol websocket",
        expected=f"a websocket scope with http_version {_version(asgi)!r}",
        observed=f"{got} (the stream got {status})" if calls else f"no app call ({status})",
    )


@requirement("h2.websocket.echo", "h3.websocket.echo")
@ahead
async def test_websocket_over_h2_carries_messages(asgi: Probe) -> None:
    """A text message on the CONNECT stream reaches the app, and its echo comes back."""
    from wsproto.connection import Connection as Frames
    from wsproto.connection import ConnectionType
    from wsproto.events import TextMessage

    script = [ws_steps.connect(), ws_steps.accept(), ws_steps.echo(units(2))]
    got: list[str] = []
    async with await _connection(asgi) as connection:
        _, stream, status = await _websocket_stream(asgi, connection, script)
        if status != 200:
            expect(False, sent="CONNECT :protocol websocket", expected="200", observed=f"{status}")
        frames = Frames(ConnectionType.CLIENT)
        await stream.send_body(frames.send(TextMessage(data="over-multiplexed")))
        seen = 0
        try:
            while not got:
                total = await stream.read_bytes(seen + 1, timeout=units(3))
                frames.receive_data(stream.received_body()[seen:total])
                seen = total
                got += [e.data for e in frames.events() if isinstance(e, TextMessage)]
        except ClientError as exc:
            got.append(f"<{str(exc)[:120]}>")
    expect(
        got == ["over-multiplexed"],
        sent="a text message 'over-multiplexed' on the WebSocket stream",
        expected="the echo 'over-multiplexed'",
        observed=repr(got),
    )
