"""The HTTP response (www.rst "Response Start - send event", "Response Body - send event").

Each check has the scripted probe send an exact sequence of response messages
and parses what reaches the client with h11, strictly: status, header bytes,
framing and body.  Framing is the server's job (www.rst "HTTP Connection Scope":
"Servers are responsible for handling inbound and outbound chunked transfer
encodings"), so the app never frames anything itself; where the spec leaves the
framing to the server the choice is recorded, not graded.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from typing import Any

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import Scenario, scenario, scenarios
from conformance._probe import Exchange, Probe, expect
from conformance._timing import units
from conformance.clients import ClientError, Request, Response
from conformance.suite._refusals import HTTP10_REFUSABLE


Headers = list[tuple[bytes, bytes]]


def _errors(timeline: Sequence[dict[str, Any]]) -> list[str]:
    """The steps whose send or receive raised, as "step i (op): error"."""
    return [f"step {e['i']} ({e['op']}): {e.get('error')}" for e in timeline if not e.get("ok")]


def _values(response: Response, name: bytes) -> list[bytes]:
    return [value for key, value in response.headers if key.lower() == name]


def _framing(response: Response) -> str:
    """How the response was delimited, from its header fields."""
    if _values(response, b"transfer-encoding"):
        return "transfer-encoding: " + b", ".join(_values(response, b"transfer-encoding")).decode()
    if _values(response, b"content-length"):
        return "content-length"
    return "close-delimited"


async def _respond(asgi: Probe, *messages: dict[str, Any], **kwargs: Any) -> Exchange:
    """The probe reads the request body, then runs ``messages`` (script steps)."""
    return await asgi.send(script=[steps.read_body(), *messages], **kwargs)


# -- status and header fields ----------------------------------------------------------------

STATUSES = (200, 201, 404, 418, 500, 599)


@requirement("http.response.status")
async def test_client_gets_the_status_the_app_sent(asgi: Probe) -> None:
    """The status of http.response.start is the status on the wire, unknown codes included."""
    wrong, reasons = [], []
    for status in STATUSES:
        exchange = await _respond(
            asgi, steps.start(status, [(b"content-length", b"2")]), steps.body(b"ok")
        )
        response = exchange.response
        reasons.append(f"{response.status} {response.reason.decode('latin-1')!r}")
        if response.status != status or response.body != b"ok":
            wrong.append(f"{status} -> {response.status} {response.body[:50]!r}")
    expect(
        not wrong,
        sent=f"http.response.start with status {', '.join(map(str, STATUSES))}",
        expected="the same status and body 'ok' on the wire",
        observed="; ".join(wrong),
    )
    asgi.observe("reason phrases: " + ", ".join(reasons))


EXACT_HEADERS: Headers = [
    (b"x-bin", b"caf\xe9"),  # obs-text: latin-1, not UTF-8
    (b"x-spaces", b"a  b"),  # inner whitespace kept
    (b"x-tab", b"a\tb"),
    (b"x-token", b"!#$%&'*+-.^_`|~"),
]


@requirement("http.response.headers-exact")
async def test_response_headers_reach_the_client_byte_exact(asgi: Probe) -> None:
    """Values (obs-text, inner spaces, tabs) reach the client as the app's bytes, under its names.

    HTTP field names are case-insensitive (RFC 9110 section 5.1), so a name re-cased on
    the HTTP/1.1 wire is the same field: its case is the next row's observation.
    """
    exchange = await _respond(
        asgi, steps.start(200, [*EXACT_HEADERS, (b"content-length", b"2")]), steps.body(b"ok")
    )
    received = [(name.lower(), value) for name, value in exchange.response.headers]
    missing = [f"{n!r}: {v!r}" for n, v in EXACT_HEADERS if (n, v) not in received]
    sent_names = {n for n, _ in EXACT_HEADERS}
    expect(
        not missing,
        sent=f"headers {EXACT_HEADERS!r}",
        expected="each field with exactly these value bytes",
        observed=f"missing {missing}; the client got "
        f"{[f'{n!r}: {v!r}' for n, v in received if n in sent_names]}",
    )


@requirement("http.response.header-name-case")
async def test_response_header_names_keep_the_apps_case(asgi: Probe) -> None:
    """Records whether the lower-case names the app sent are lower-case on the HTTP/1.1 wire."""
    exchange = await _respond(
        asgi, steps.start(200, [*EXACT_HEADERS, (b"content-length", b"2")]), steps.body(b"ok")
    )
    sent_names = {n for n, _ in EXACT_HEADERS}
    names = [n for n, _ in exchange.response.headers if n.lower() in sent_names]
    recased = [n.decode("latin-1") for n in names if n not in sent_names]
    asgi.observe(
        f"names re-cased on the wire: {recased}" if recased else "names as the app sent them"
    )


DUPLICATES: Headers = [
    (b"set-cookie", b"a=1; Path=/"),
    (b"x-d", b"1"),
    (b"set-cookie", b"b=2, c=3"),
    (b"x-d", b"2"),
]


@requirement("http.response.headers-duplicates")
async def test_repeated_response_fields_stay_separate(asgi: Probe) -> None:
    """Two set-cookie and two x-d fields reach the client as four fields, in order."""
    exchange = await _respond(
        asgi, steps.start(200, [*DUPLICATES, (b"content-length", b"2")]), steps.body(b"ok")
    )
    response = exchange.response
    cookies, xd = _values(response, b"set-cookie"), _values(response, b"x-d")
    expect(
        cookies == [b"a=1; Path=/", b"b=2, c=3"] and xd == [b"1", b"2"],
        sent=f"headers {DUPLICATES!r}",
        expected="set-cookie ['a=1; Path=/', 'b=2, c=3'] and x-d ['1', '2'], separate and in order",
        observed=f"set-cookie {cookies!r}, x-d {xd!r}",
    )


ORDERED: Headers = [(b"x-o", b"1"), (b"x-p", b"2"), (b"x-o", b"3"), (b"x-q", b"4")]


@requirement("http.response.headers-order")
async def test_response_fields_keep_the_apps_order(asgi: Probe) -> None:
    """x-o, x-p, x-o, x-q go out in that relative order (server fields may sit between)."""
    exchange = await _respond(
        asgi, steps.start(200, [*ORDERED, (b"content-length", b"2")]), steps.body(b"ok")
    )
    names = {n for n, _ in ORDERED}
    got = [(n.lower(), v) for n, v in exchange.response.headers if n.lower() in names]
    expect(
        got == ORDERED,
        sent=f"headers {ORDERED!r}",
        expected="the four fields in that order",
        observed=repr(got),
    )


# -- message defaults ------------------------------------------------------------------------


@requirement("http.response.start-defaults")
async def test_start_without_headers_or_trailers_is_valid(asgi: Probe) -> None:
    """{"type": "http.response.start", "status": 200} alone starts a normal response."""
    exchange = await _respond(
        asgi,
        steps.send({"type": "http.response.start", "status": 200}),
        steps.body(b"ok"),
        timeout=units(3),
    )
    response, errors = exchange.response, _errors(exchange.timeline())
    expect(
        response.status == 200 and response.body == b"ok" and not errors,
        sent="a start message with neither headers nor trailers, then body 'ok'",
        expected="a complete 200 'ok', no send error",
        observed=f"{response.status} {response.body[:50]!r}; errors {errors}",
    )


@requirement("http.response.body-defaults")
async def test_body_without_keys_is_empty_and_final(asgi: Probe) -> None:
    """A body message without more_body is final; without body it is empty."""
    bare = await _respond(
        asgi, steps.start(200), steps.send({"type": "http.response.body"}), timeout=units(3)
    )
    only_body = await _respond(
        asgi,
        steps.start(200),
        steps.send({"type": "http.response.body", "body": b"x"}),
        timeout=units(3),
    )
    expect(
        bare.response.body == b"" and only_body.response.body == b"x",
        sent="{'type': 'http.response.body'} and {'type': 'http.response.body', 'body': b'x'}",
        expected="two complete responses, bodies '' and 'x'",
        observed=f"{bare.response.body[:50]!r} and {only_body.response.body[:50]!r}",
    )


def _fibonacci_sizes(limit: int) -> list[int]:
    sizes, a, b = [], 1, 2
    while a <= limit:
        sizes.append(a)
        a, b = b, a + b
    return sizes


#: 1 B up to 1 MiB: 30 Fibonacci sizes, one full MiB, one byte.
CHUNK_SIZES = (*_fibonacci_sizes(1 << 20), 1 << 20, 1)


@requirement("http.response.body-concat")
async def test_body_chunks_arrive_concatenated_in_order(asgi: Probe) -> None:
    """32 body messages from 1 B to 1 MiB reach the client as their in-order concatenation."""
    script = [steps.stream(size, size, final=False) for size in CHUNK_SIZES]
    exchange = await _respond(asgi, steps.start(200), *script, steps.body(), timeout=units(10))
    expected = b"".join(steps.pattern(0, size) for size in CHUNK_SIZES)
    body = exchange.response.body
    expect(
        hashlib.sha256(body).digest() == hashlib.sha256(expected).digest(),
        sent=f"{len(CHUNK_SIZES)} body messages, {len(expected)} bytes in all",
        expected=f"{len(expected)} bytes with sha256 {hashlib.sha256(expected).hexdigest()[:16]}",
        observed=f"{len(body)} bytes with sha256 {hashlib.sha256(body).hexdigest()[:16]}",
    )


@requirement("http.response.empty-chunk-not-end")
async def test_empty_chunk_with_more_body_does_not_end_the_response(asgi: Probe) -> None:
    """body 'a' (more), body '' (more), body 'b' gives the client the complete body 'ab'."""
    exchange = await _respond(
        asgi,
        steps.start(200),
        steps.body(b"a", more=True),
        steps.body(b"", more=True),
        steps.body(b"b"),
        timeout=units(3),
    )
    errors = _errors(exchange.timeline())
    expect(
        exchange.response.body == b"ab" and not errors,
        sent="body 'a' (more_body), body '' (more_body), body 'b'",
        expected="the body 'ab' and no send error",
        observed=f"body {exchange.response.body[:50]!r}; errors {errors}",
    )


@requirement("http.response.complete-on-final")
async def test_final_body_completes_the_response_before_the_app_returns(asgi: Probe) -> None:
    """After more_body False the client has the whole response while the app still runs."""
    flag = f"complete-{asgi.new_rid()}"
    exchange = await _respond(
        asgi,
        steps.start(200),
        steps.body(b"done"),
        steps.wait_flag(flag, units(3)),
        timeout=units(6),
    )
    # The client has read the complete (chunked) response: let the app return now.
    asgi.server.channel.set_flag(flag)
    waited = exchange.timeline()[-1]
    expect(
        exchange.response.body == b"done" and waited.get("result") is True,
        sent="a final body (no Content-Length), then the app waits for the client's word",
        expected="the client to read the whole response while the app waits",
        observed=(
            "the response completed only after the app stopped waiting (it returned)"
            if waited.get("result") is not True
            else f"body {exchange.response.body[:50]!r}"
        ),
    )


# -- framing: the server's job ---------------------------------------------------------------


@requirement("http.response.content-length-honoured")
async def test_apps_content_length_frames_the_response(asgi: Probe) -> None:
    """With the app's Content-Length: 11 the response is 11 plain bytes, not chunked."""
    exchange = await _respond(
        asgi,
        steps.start(200, [(b"content-length", b"11")]),
        steps.body(b"hello ", more=True),
        steps.body(b"world"),
    )
    response = exchange.response
    expect(
        _values(response, b"content-length") == [b"11"]
        and not _values(response, b"transfer-encoding")
        and response.body == b"hello world",
        sent="content-length: 11, then bodies 'hello ' and 'world'",
        expected="content-length: 11, no transfer-encoding, body 'hello world'",
        observed=(
            f"content-length {_values(response, b'content-length')}, transfer-encoding "
            f"{_values(response, b'transfer-encoding')}, body {response.body[:50]!r}"
        ),
    )


@requirement("http.response.framing-without-length")
async def test_framing_chosen_without_content_length(asgi: Probe) -> None:
    """Record how a streamed HTTP/1.1 response without Content-Length is framed."""
    exchange = await _respond(
        asgi, steps.start(200), steps.body(b"hel", more=True), steps.body(b"lo")
    )
    response = exchange.response
    expect(
        response.body == b"hello",
        sent="bodies 'hel' (more_body) and 'lo', no Content-Length",
        expected="body 'hello'",
        observed=f"body {response.body[:50]!r}",
    )
    asgi.observe(f"HTTP/1.1 framing: {_framing(response)}")


@requirement("http.response.http10-framing")
async def test_http10_response_is_not_chunked(asgi: Probe) -> None:
    """An HTTP/1.0 client gets a close-delimited (or length-framed) body, never chunks."""
    exchange = await _respond(
        asgi,
        steps.start(200),
        steps.body(b"hel", more=True),
        steps.body(b"lo"),
        http_version="1.0",
        may_refuse=HTTP10_REFUSABLE,
    )
    exchange.refused()
    response = exchange.response
    expect(
        not _values(response, b"transfer-encoding") and response.body == b"hello",
        sent="GET HTTP/1.0; bodies 'hel' (more_body) and 'lo', no Content-Length",
        expected="no transfer-encoding and the body 'hello'",
        observed=f"{_framing(response)}, body {response.body[:50]!r}",
    )
    asgi.observe(f"HTTP/1.0 framing: {_framing(response)}")


async def _then_clean_follow_up(
    asgi: Probe, first: Request, what: str
) -> tuple[Response, list[str]]:
    """Send ``first`` and then a plain request on the same connection; both must parse.

    Over HTTP/1.1 a body the server should not have sent sits in front of the
    second response, where h11 reads it as a broken status line; over HTTP/2 it
    arrives as DATA on the first stream.  Either way it shows.
    """
    follow = Request(headers=asgi.probe_headers(asgi.new_rid(), "echo"))
    async with await asgi.open(timeout=units(3)) as conn:
        try:
            response = await conn.exchange(first, timeout=units(3))
            second = await conn.exchange(follow, timeout=units(3))
        except ClientError as exc:
            raise type(exc)(f"{what}, then a second request on the connection: {exc}") from None
    problems = [] if second.status == 200 else [f"the follow-up got {second.status}"]
    if response.body:
        problems.append(f"body bytes {response.body[:40]!r}")
    return response, problems


@requirement("http.response.head-no-body")
async def test_head_response_has_no_body(asgi: Probe) -> None:
    """For HEAD the app's body (Content-Length: 5, 'hello') never reaches the wire."""
    rid = asgi.new_rid()
    script = [
        steps.read_body(),
        steps.start(200, [(b"content-length", b"5")]),
        steps.body(b"hello"),
    ]
    head = Request(
        method=b"HEAD",
        headers=asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)}),
    )
    response, problems = await _then_clean_follow_up(
        asgi, head, "HEAD answered with content-length: 5 and body 'hello'"
    )
    expect(
        not problems and response.status == 200,
        sent="HEAD; the app sends content-length: 5 and 'hello'; then GET on the same connection",
        expected="a bodiless 200, then a clean response to the GET",
        observed="; ".join(problems) or f"status {response.status}",
    )
    asgi.observe(f"content-length kept for HEAD: {_values(response, b'content-length')}")


@requirement("http.response.no-body-status")
async def test_204_and_304_have_no_body_or_chunks(asgi: Probe) -> None:
    """204 and 304 (no Content-Length) end with their head: no chunk terminator follows."""
    wrong = []
    for status in (204, 304):
        rid = asgi.new_rid()
        script = [steps.read_body(), steps.start(status), steps.body(b"")]
        first = Request(
            headers=asgi.probe_headers(rid, "script", {"script": steps.encode_script(script)})
        )
        response, problems = await _then_clean_follow_up(
            asgi, first, f"a {status} without Content-Length"
        )
        if status == 204 and _values(response, b"transfer-encoding"):
            # RFC 9112 §6.1: "A server MUST NOT send a Transfer-Encoding header field in any
            # response with a status code of 1xx (Informational) or 204 (No Content)."
            problems.append(
                f"204 carries transfer-encoding {_values(response, b'transfer-encoding')}"
            )
        wrong += [f"{status}: {p}" for p in problems]
    expect(
        not wrong,
        sent="204 and 304 responses with an empty final body, each followed by a GET",
        expected="no body bytes and no transfer-encoding on 204; clean follow-ups",
        observed="; ".join(wrong),
    )


#: An app's own transfer-encoding, alone or next to a content-length.
TE_CASES: dict[str, Headers] = {
    "transfer-encoding: chunked": [(b"transfer-encoding", b"chunked")],
    "content-length: 5 and transfer-encoding: chunked": [
        (b"content-length", b"5"),
        (b"transfer-encoding", b"chunked"),
    ],
}


@requirement("http.response.transfer-encoding-ignored")
async def test_apps_transfer_encoding_does_not_break_framing(asgi: Probe) -> None:
    """An app's transfer-encoding: chunked (alone, or next to content-length) leaves one coherent framing."""
    wrong, seen = [], []
    for label in TE_CASES:
        try:
            exchange: Exchange = await scenario(asgi, __name__, f"te: {label}")
        except ClientError as exc:
            wrong.append(f"{label}: {exc}")
            continue
        asgi.exchanges.append(exchange)
        response = exchange.response
        te, cl = _values(response, b"transfer-encoding"), _values(response, b"content-length")
        seen.append(f"{label} -> {_framing(response)}")
        if response.body != b"hello":
            wrong.append(f"{label}: body {response.body[:50]!r}")
        if len(te) > 1 or (te and cl):
            # RFC 9112 §6.2: "A sender MUST NOT send a Content-Length header field in any
            # message that contains a Transfer-Encoding header field."
            wrong.append(
                f"{label}: the response carries transfer-encoding {te} and content-length {cl}"
            )
    expect(
        not wrong,
        sent="plain (unchunked) bodies 'hel' + 'lo' under an app-supplied transfer-encoding",
        expected="body 'hello' in one framing: one transfer-encoding at most, never with content-length",
        observed="; ".join(wrong),
    )
    asgi.observe("; ".join(seen))


GZIPPED = gzip.compress(b"hello " * 100, mtime=0)


@requirement("http.response.content-encoding-untouched")
async def test_content_encoding_is_left_to_the_app(asgi: Probe) -> None:
    """gzip bytes with content-encoding: gzip arrive as sent; a plain body is not compressed."""
    accept = [(b"accept-encoding", b"gzip, deflate, br")]
    encoded = await _respond(
        asgi,
        steps.start(200, [(b"content-encoding", b"gzip")]),
        steps.body(GZIPPED),
        headers=accept,
    )
    plain = await _respond(
        asgi,
        steps.start(200, [(b"content-type", b"text/plain")]),
        steps.body(b"hello " * 1000),
        headers=accept,
    )
    problems = []
    if _values(encoded.response, b"content-encoding") != [b"gzip"]:
        problems.append(f"content-encoding {_values(encoded.response, b'content-encoding')}")
    if encoded.response.body != GZIPPED:
        problems.append(f"the gzip body changed ({len(encoded.response.body)} bytes)")
    if _values(plain.response, b"content-encoding") or plain.response.body != b"hello " * 1000:
        problems.append(
            f"a plain body came back with content-encoding "
            f"{_values(plain.response, b'content-encoding')}, {len(plain.response.body)} bytes"
        )
    expect(
        not problems,
        sent="accept-encoding: gzip; an app gzip body with content-encoding: gzip, and a plain body",
        expected="both bodies and their content-encoding exactly as the app sent them",
        observed="; ".join(problems),
    )


# -- what the server adds, and what the spec leaves open -------------------------------------


@requirement("http.response.server-headers")
async def test_fields_the_server_adds(asgi: Probe) -> None:
    """Record the header fields the server adds to a response the app framed itself."""
    app_headers: Headers = [(b"content-length", b"2"), (b"x-app", b"1")]
    exchange = await _respond(asgi, steps.start(200, app_headers), steps.body(b"ok"))
    added = [
        (n.lower(), v) for n, v in exchange.response.headers if (n.lower(), v) not in app_headers
    ]
    # Dates change from run to run: record that the field is there, not its value.
    shown = [
        n.decode() if n == b"date" else f"{n.decode()}: {v.decode('latin-1')}" for n, v in added
    ]
    asgi.observe("the server adds " + (", ".join(shown) if shown else "nothing"))


@requirement("http.response.informational-from-app")
async def test_informational_status_from_the_app(asgi: Probe) -> None:
    """Record what the client sees when the app sends start(103) and then start(200)."""
    try:
        exchange: Exchange = await scenario(asgi, __name__, "informational")
    except ClientError as exc:
        asgi.observe(
            f"start(103) then start(200): the client got no usable response ({type(exc).__name__})"
        )
        return
    asgi.exchanges.append(exchange)
    response = exchange.response
    errors = _errors(exchange.timeline())
    asgi.observe(
        f"start(103) then start(200): informational {[s for s, _ in response.informational]}, "
        f"final {response.status} {response.body[:20]!r}"
        + (f"; {errors[0]}" if errors else "; no send error")
    )


def _responding(*messages: dict[str, Any]) -> Scenario:
    """A scenario of :func:`_respond` that gives a server one unit to finish the response
    once the app has sent all of it: servers that hang on it wait that unit out.

    The unit proves a hang, so it starts when the app's last send() has returned (its
    script report), not when the request went out: on a busy machine the request and
    the app call can take longer than that between them, which is no hang.  An app
    whose send() never returns is given two units from its call.
    """

    async def run(asgi: Probe) -> Exchange:
        live = await asgi.begin(script=[steps.read_body(), *messages])
        async with live:
            if await live.observations("call", units(5)):
                await live.observations("script", units(2))
            await live.read_response(timeout=units(1))
        return live.exchange

    return run


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    """The exchanges some servers leave hanging, started with the server (conformance/_batch.py)."""
    table: dict[str, Scenario] = {
        f"te: {label}": _responding(
            steps.start(200, headers), steps.body(b"hel", more=True), steps.body(b"lo")
        )
        for label, headers in TE_CASES.items()
    }
    table["informational"] = _responding(
        steps.start(103, [(b"link", b"</a.css>; rel=preload")]),
        steps.start(200, [(b"content-length", b"2")]),
        steps.body(b"ok"),
    )
    return table
