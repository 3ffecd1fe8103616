"""The request body as the app receives it (www.rst "Request - ``receive`` event").

Every check writes the request itself over a raw socket (exact framing: Content-Length
bodies written in pieces, chunked bodies with the chunk syntax a check chooses) and the
probe app runs a ``digest_body`` step: it receives the body and reports, per
``http.request`` event, the size and the types of ``body`` and ``more_body``, and one
SHA-256 over the whole body.  Bodies of several MiB therefore never travel back; the
test compares hashes.  Sizes and piece boundaries come from hypothesis, derandomized
and few, so the run is deterministic and short (``_examples``, imported by the checks
that use it).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from conformance import ConformanceFailure, requirement
from conformance import _steps as steps
from conformance._batch import Scenario, ahead, scenario, scenarios
from conformance._probe import Exchange, Probe, expect
from conformance._timing import units
from conformance._verdicts import NotJudged
from conformance.clients import ClientError, Request, Response
from conformance.clients.http1 import encode_request


MIB = 1024 * 1024
#: How long the streamed check waits for the first piece of a body: a loopback write and
#: one app step, many times over; a server that buffers whole bodies waits this out.
STREAM_UNITS = 1.0
#: The response every body probe sends once it has the whole body.
OK_HEAD = [(b"content-type", b"text/plain"), (b"content-length", b"2")]


@dataclass
class BodyRun:
    """One request whose body the app digested, and what it saw."""

    rid: str
    description: str
    response: Response
    #: The ``digest_body`` result: events, count, length, sha256, end.
    digest: dict[str, Any]
    #: What a ``receive()`` after the response returned (an event, or "timeout"); None if not asked.
    after: Any


def payload(size: int) -> bytes:
    """``size`` bytes without a period, so a reordered or repeated piece changes the hash."""
    return random.Random(size).randbytes(size)


def split(body: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``body`` cut into consecutive pieces of ``sizes``."""
    offsets = [0, *itertools.accumulate(sizes)]
    return [body[start:end] for start, end in itertools.pairwise(offsets)]


def chunked(pieces: Sequence[bytes], *, trailer: bytes = b"") -> list[bytes]:
    """The chunked framing of ``pieces``, one write per chunk, then the last chunk."""
    frames = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces if piece]
    return [*frames, b"0\r\n" + trailer + b"\r\n"]


async def send_body(
    asgi: Probe,
    description: str,
    *,
    method: bytes = b"POST",
    head: Sequence[tuple[bytes, bytes]] = (),
    writes: Sequence[bytes] = (),
    after: bool = False,
    read_for: float | None = None,
    framed: bool = False,
) -> BodyRun:
    """Send the head, then each of ``writes`` as its own piece of body; the app digests it.

    On every wire the pieces are the body's bytes (a body without a length goes
    chunked on HTTP/1.1, DATA frames on HTTP/2), except with ``framed``: then they
    are raw HTTP/1.1 bytes written as given (the chunk syntax a check chooses).
    ``after`` adds a ``receive()`` once the response is sent: what comes after the
    final body event.  ``read_for`` bounds the app's wait for the body.
    """
    script = [steps.digest_body(units(5) if read_for is None else read_for)]
    script += [steps.start(200, OK_HEAD), steps.body(b"ok")]
    if after:
        script.append(steps.receive(units(1)))
    args = {"script": steps.encode_script(script), "bodies": "omit"}
    if framed:
        rid = asgi.new_rid()
        request = Request(method=method, headers=[*asgi.probe_headers(rid, "script", args), *head])
        async with await asgi.connect() as connection:
            connection.prime(request)
            await connection.send_bytes(encode_request(request) + b"".join(writes))
            response = await connection.read_response()
        exchange = Exchange(rid, request, response, asgi.server.channel)
    else:
        live = await asgi.begin(
            method=method, headers=head, behaviour="script", args=args, end=not writes
        )
        async with live:
            for index, data in enumerate(writes):
                await live.send_body(data, end=index == len(writes) - 1)
            await live.read_response()
        exchange = live.exchange
    asgi.exchanges.append(exchange)
    timeline = await anyio.to_thread.run_sync(exchange.timeline)
    digest = timeline[0].get("result") if timeline and timeline[0].get("ok") else None
    if not isinstance(digest, dict):
        raise ConformanceFailure(
            f"{description}: the probe could not read the body: {timeline[:1]}"
        )
    later = timeline[3].get("result") if after and len(timeline) > 3 else None
    return BodyRun(exchange.rid, description, exchange.response, digest, later)


def length_head(size: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(size).encode())]


CHUNKED_HEAD = [(b"transfer-encoding", b"chunked")]


async def standard_bodies(asgi: Probe, *, after: bool = False) -> list[BodyRun]:
    """A GET, a one-byte body, a 200 KiB body in four writes and a body of unknown length in three.

    The last goes chunked on HTTP/1.1 and as DATA frames without a length on HTTP/2.
    """
    big = payload(200 * 1024)
    quarter = len(big) // 4
    runs = [
        await send_body(asgi, "GET without a body", method=b"GET", after=after, read_for=units(1)),
        await send_body(
            asgi, "POST of 1 byte", head=length_head(1), writes=[b"x"], after=after,
            read_for=units(1),
        ),
        await send_body(
            asgi, "POST of 200 KiB in 4 writes", head=length_head(len(big)),
            writes=[big[i : i + quarter] for i in range(0, len(big), quarter)], after=after,
            read_for=units(1),
        ),
        await send_body(
            asgi, "POST without a length in 3 pieces", writes=[b"abc", payload(70_000), b"z"],
            after=after, read_for=units(1),
        ),
    ]  # fmt: skip
    return runs


def describe_events(digest: dict[str, Any], limit: int = 6) -> str:
    """Events as ``size/body type/more_body type=value``, shortened to ``limit``."""
    rows = digest.get("events", [])
    shown = [f"{size}B body:{body} more_body:{more}={flag}" for size, body, more, flag in rows]
    if len(shown) > limit:
        shown = [*shown[: limit // 2], f"... {len(shown) - limit} more ...", *shown[-limit // 2 :]]
    return f"[{', '.join(shown)}] then {digest.get('end')!r}"


def sequence_problem(digest: dict[str, Any]) -> str:
    """Why the more_body sequence is not True* then False (or missing); "" when it is."""
    rows = digest.get("events", [])
    if digest.get("end") == "timeout":
        return "the last http.request had more_body True and no further event came"
    if digest.get("end") != "final":
        return f"{digest.get('end')} came before an http.request with more_body False"
    if not rows:
        return "no http.request at all"
    early_end = [i for i, row in enumerate(rows[:-1]) if not row[3]]
    if early_end:
        return f"event {early_end[0]} already had more_body False"
    return ""


def type_problem(digest: dict[str, Any]) -> str:
    """Which events carry body or more_body of the wrong type; "" when none."""
    bad = [
        f"event {i}: body {body}, more_body {more}"
        for i, (_, body, more, _) in enumerate(digest.get("events", []))
        if body not in ("bytes", "-") or more not in ("bool", "-")
    ]
    return "; ".join(bad[:3])


def after_problem(after: Any) -> str:
    """An http.request after the final one is a second body; "" for disconnect or nothing."""
    if isinstance(after, dict) and after.get("type") == "http.request":
        return f"then another event {after!r}"
    return ""


def body_problem(run: BodyRun, sent: bytes) -> str:
    """How the digested body differs from ``sent``; "" when it is the same."""
    if run.response.status != 200:
        return f"the server answered {run.response.status} {run.response.body[:200]!r}"
    digest = run.digest
    if digest["sha256"] == hashlib.sha256(sent).hexdigest() and digest["length"] == len(sent):
        return ""
    return (
        f"the app got {digest['length']} bytes (sha256 {digest['sha256'][:16]}…), "
        f"not the {len(sent)} sent (sha256 {hashlib.sha256(sent).hexdigest()[:16]}…); "
        f"events {describe_events(digest)}"
    )


# -- types and sequence ----------------------------------------------------------------------


@requirement("http.request.field-types")
async def test_request_events_have_bytes_body_and_bool_more_body(asgi: Probe) -> None:
    """Every http.request carries body as bytes and more_body as bool, when present."""
    seen: set[tuple[str, str]] = set()
    for run in await standard_bodies(asgi):
        problem = type_problem(run.digest)
        expect(
            not problem,
            sent=run.description,
            expected="body bytes and more_body bool on every http.request",
            observed=problem,
        )
        seen |= {(body, more) for _, body, more, _ in run.digest["events"]}
    asgi.observe("types seen: " + ", ".join(f"body {b} / more_body {m}" for b, m in sorted(seen)))


@requirement("http.request.more-body-sequence")
@ahead
async def test_more_body_is_true_until_the_last_event(asgi: Probe) -> None:
    """more_body is True on every http.request but the last; after it comes only http.disconnect."""
    counts = []
    for run in await standard_bodies(asgi, after=True):
        problem = sequence_problem(run.digest) or after_problem(run.after)
        expect(
            not problem,
            sent=run.description,
            expected="http.request events with more_body True, then one with False or missing, "
            "then nothing but http.disconnect",
            observed=f"{problem}; events {describe_events(run.digest)}",
        )
        counts.append(f"{run.description}: {run.digest['count']} event(s)")
    asgi.observe("; ".join(counts))


@requirement("http.request.empty-body")
@ahead
async def test_request_without_body_gives_one_empty_final_event(asgi: Probe) -> None:
    """A GET, and a POST with Content-Length: 0, each give exactly one empty, final http.request."""
    runs = [
        await send_body(asgi, "GET without a body", method=b"GET", after=True, read_for=units(1)),
        await send_body(
            asgi, "POST with Content-Length: 0", head=length_head(0), after=True, read_for=units(1)
        ),
    ]
    for run in runs:
        rows = run.digest["events"]
        one_empty_final = (
            run.digest["count"] == 1 and rows[0][0] == 0 and rows[0][1] in ("bytes", "-")
        )
        problem = "" if one_empty_final and not rows[0][3] else "not one empty final event"
        problem = problem or sequence_problem(run.digest) or after_problem(run.after)
        expect(
            not problem,
            sent=run.description,
            expected="exactly one http.request, body b'' or missing, more_body False or missing",
            observed=f"{problem}: events {describe_events(run.digest)}",
        )
    asgi.observe("; ".join(f"{run.description}: {describe_events(run.digest)}" for run in runs))


# -- whole bodies, generated -----------------------------------------------------------------


@requirement("http.request.body-complete")
async def test_length_body_arrives_complete_and_in_order(asgi: Probe) -> None:
    """A Content-Length body of up to 4 MiB, written in arbitrary pieces, reaches the app intact."""
    from conformance.suite._examples import length_writes, run_examples

    seen: list[str] = []

    async def check(sizes: list[int]) -> None:
        body = payload(sum(sizes))
        writes = split(body, sizes)
        run = await send_body(
            asgi,
            f"POST of {len(body)} bytes with Content-Length, written as {len(writes)} piece(s)",
            head=length_head(len(body)),
            writes=writes,
        )
        problem = body_problem(run, body)
        expect(not problem, sent=run.description, expected="the same bytes", observed=problem)
        seen.append(f"{len(body)}B in {run.digest['count']} event(s)")

    await anyio.to_thread.run_sync(run_examples, check, length_writes(), [1], [1000, 3 * MIB, 1000])
    asgi.observe("bodies: " + ", ".join(seen))


@requirement("http.request.chunked-decoded")
async def test_chunked_body_arrives_decoded(asgi: Probe) -> None:
    """A chunked body of generated chunk sizes reaches the app as the payload alone."""
    from conformance.suite._examples import chunk_sizes, run_examples

    seen: list[str] = []

    async def check(sizes: list[int]) -> None:
        body = payload(sum(sizes))
        pieces = split(body, sizes)
        run = await send_body(
            asgi,
            f"chunked POST of {len(body)} bytes in {len(pieces)} chunk(s)",
            head=CHUNKED_HEAD,
            writes=chunked(pieces),
            framed=True,
        )
        problem = body_problem(run, body)
        expect(not problem, sent=run.description, expected="the payload alone", observed=problem)
        seen.append(f"{len(body)}B/{len(pieces)} chunks in {run.digest['count']} event(s)")

    await anyio.to_thread.run_sync(run_examples, check, chunk_sizes(), [1], [65536, 1, 1_000_000])
    asgi.observe("bodies: " + ", ".join(seen))


@requirement("http.request.chunked-decoded")
async def test_chunk_syntax_never_reaches_the_app(asgi: Probe) -> None:
    """Upper- and lower-case hex sizes, a chunk extension and a trailer field are all decoded away."""
    pieces = [payload(26), payload(0x1A + 1), b"tail"]
    wire = [
        b"1A\r\n" + pieces[0] + b"\r\n",  # upper-case hex
        b"1b;ext=1\r\n" + pieces[1] + b"\r\n",  # lower-case hex with a chunk extension
        b'4;name="quoted"\r\n' + pieces[2] + b"\r\n",
        b"0\r\nx-trailer: 1\r\n\r\n",  # a trailer field after the last chunk
    ]
    head = [*CHUNKED_HEAD, (b"trailer", b"x-trailer")]
    run = await send_body(
        asgi, "chunked POST with sizes 1A and 1b;ext=1, a quoted extension and a trailer",
        head=head, writes=wire, framed=True,
    )  # fmt: skip
    problem = body_problem(run, b"".join(pieces))
    expect(
        not problem,
        sent=f"{run.description}: {b''.join(wire)[:80]!r}…",
        expected="the 57 payload bytes alone",
        observed=problem,
    )
    asgi.observe(f"decoded; events {describe_events(run.digest)}")


# -- streaming -------------------------------------------------------------------------------


async def _streamed_upload(asgi: Probe) -> tuple[list[dict[str, Any]], Exchange, str]:
    """Send 64 KiB of a 1 MiB body, wait (bounded) for the app to get an event, then the rest.

    A scenario started with the server (conformance/_batch.py): a server that buffers
    the whole body makes it wait out its bound, which then overlaps with other checks.
    Returns the early events, the exchange, and why the rest did not go through ("").
    """
    rid = asgi.new_rid()
    body = payload(MIB)
    script = [
        steps.digest_body(units(5), report=rid),
        steps.start(200, OK_HEAD),
        steps.body(b"ok"),
    ]
    args = {"script": steps.encode_script(script), "bodies": "omit"}
    channel = asgi.server.channel
    live = await asgi.begin(
        method=b"POST", headers=length_head(MIB), behaviour="script", args=args, end=False, rid=rid
    )
    async with live:
        await live.send_body(body[:STREAM_FIRST])
        early = await channel.until(
            lambda: [r for r in channel.records(rid) if r.get("kind") == "body-event"],
            lambda found: any(r.get("more_body") for r in found),
            units(STREAM_UNITS),
        )
        rest = ""
        try:
            await live.send_body(body[STREAM_FIRST:], end=True)
            await live.read_response()
        except ClientError as exc:
            rest = str(exc)
    return early, live.exchange, rest


#: How much of the body is sent before waiting for the app to see some of it.
STREAM_FIRST = 64 * 1024


@scenarios(__name__)
def _scenarios() -> dict[str, Scenario]:
    return {"streamed": _streamed_upload}


@requirement("http.request.streamed")
async def test_body_is_handed_over_while_it_arrives(asgi: Probe) -> None:
    """The first 64 KiB of a 1 MiB body reach the app (more_body True) before the rest is sent."""
    early, exchange, rest = await scenario(asgi, __name__, "streamed")
    asgi.exchanges.append(exchange)
    timeline = exchange.timeline()
    digest = timeline[0].get("result") or {}
    got = [f"{r['size']}B more_body={r['more_body']}" for r in early]
    expect(
        any(r.get("more_body") for r in early),
        sent=f"POST, Content-Length {MIB}: the first {STREAM_FIRST} bytes, then nothing until "
        "the app has them",
        expected="an http.request with more_body True while the rest is unsent",
        observed=f"no such event within {units(STREAM_UNITS):.1f}s (events so far: {got or 'none'})"
        + (f"; then {rest}" if rest else ""),
    )
    if rest:
        raise NotJudged(
            f"the rest of the body did not go through ({rest})", "http.request.body-complete"
        )
    run = BodyRun(exchange.rid, "streamed", exchange.response, digest, None)
    problem = body_problem(run, payload(MIB))
    expect(not problem, sent="the rest of the body", expected="the whole body", observed=problem)
    asgi.observe(
        f"{len(early)} event(s) before the rest was sent ({', '.join(got)}); "
        f"{digest.get('count')} in all"
    )


# -- Expect: 100-continue --------------------------------------------------------------------


@requirement("http.request.expect-continue")
@ahead
async def test_when_100_continue_is_sent(asgi: Probe) -> None:
    """Record whether 100 Continue comes at once, when the app first calls receive(), or never."""
    rid = asgi.new_rid()
    flag = f"read-{rid}"
    body = payload(1000)
    script = [
        steps.wait_flag(flag, units(3)),
        steps.digest_body(units(3)),
        steps.start(200, OK_HEAD),
        steps.body(b"ok"),
    ]
    args = {"script": steps.encode_script(script), "bodies": "omit"}
    head = [*length_head(len(body)), (b"expect", b"100-continue")]
    request = Request(method=b"POST", headers=[*asgi.probe_headers(rid, "script", args), *head])
    channel = asgi.server.channel
    connection = await asgi.connect()
    interim_at: float | None = None
    async with connection:
        connection.prime(request)
        await connection.send_bytes(encode_request(request))
        # The app holds off receive() until the flag: a 100 in this window came unasked.
        for window in (units(0.3), units(1)):
            try:
                await connection.receive_until(b"\r\n\r\n", timeout=window)
                interim_at = time.monotonic()
                break
            except ClientError:
                channel.set_flag(flag)
        channel.set_flag(flag)
        await connection.send_bytes(body)
        response = await connection.read_response()
    exchange = Exchange(rid, request, response, channel)
    asgi.exchanges.append(exchange)
    timeline = exchange.timeline()
    read_at = timeline[1].get("t0") if len(timeline) > 1 else None
    got_100 = any(status == 100 for status, _ in response.informational)
    digest = timeline[1].get("result") if len(timeline) > 1 else None
    intact = isinstance(digest, dict) and digest.get("length") == len(body)
    if not got_100:
        finding = "no 100 Continue: the body was sent after waiting"
    elif interim_at is not None and read_at is not None and interim_at < read_at:
        finding = "100 Continue before the app called receive()"
    else:
        finding = "100 Continue only once the app called receive()"
    asgi.observe(
        f"{finding}; final status {response.status}; body "
        + ("complete" if intact else f"not complete: {digest}")
    )
    expect(
        response.status == 200 and intact,
        sent="POST with Expect: 100-continue, the body after the 100 (or after waiting)",
        expected="a 200 and the whole body in the app",
        observed=f"status {response.status}, digest {digest}",
    )
