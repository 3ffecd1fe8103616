"""Streaming responses (www.rst "Response Body - send event", "Disconnect - receive event").

"Protocol servers must flush any data passed to them into the send buffer before
returning from a send call": a chunk the app has sent is on its way before the app
sends the next.  These checks prove it by ordering, never by timing: the app waits
on a side-channel flag that the client sets only once it has *read* the chunk.  A
server that holds chunks back never lets the client read it, and the bounded wait
runs out.  For the large stream, the client stops reading after the first bytes: a server
that passes chunks on makes the app wait, one that holds them lets it finish.
"""

from __future__ import annotations

import hashlib
import time
from functools import partial

from conformance import _steps as steps
from conformance import requirement
from conformance._batch import ahead
from conformance._probe import LiveExchange, Probe, expect
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance.clients import ClientError
from conformance.suite._premises import no_request_after_the_body


@requirement("http.streaming.flush-per-chunk")
async def test_each_chunk_reaches_the_client_before_the_next_is_sent(asgi: Probe) -> None:
    """The client reads chunk A while the app waits for it before sending chunk B."""
    token = asgi.new_rid()
    a, b = f"<chunk-A-{token}>".encode(), f"<chunk-B-{token}>".encode()
    script = [
        steps.read_body(),
        steps.start(200),
        steps.body(a, more=True),
        steps.wait_flag(f"got-A-{token}", units(3)),
        steps.body(b, more=True),
        steps.wait_flag(f"got-B-{token}", units(3)),
        steps.body(b""),
    ]
    live = await asgi.begin(script=script, timeout=units(3))
    async with live:
        try:
            await live.read_until(a, timeout=units(3))
            asgi.server.channel.set_flag(f"got-A-{token}")
            await live.read_until(b, timeout=units(3))
            asgi.server.channel.set_flag(f"got-B-{token}")
            response = await live.read_response(timeout=units(3))
        except ClientError as exc:
            expect(
                False,
                sent="body A (more_body), then the app waits until the client has read A",
                expected="A to reach the client while the app waits",
                observed=f"the chunk never arrived: {exc}",
            )
            return
    expect(
        response.body == a + b,
        sent="bodies A and B (more_body), then an empty final body",
        expected="the body A + B",
        observed=f"body {response.body[:100]!r}",
    )
    asgi.observe(f"each chunk was read before the next was sent (rid {live.rid})")


@requirement("http.streaming.receive-while-streaming")
@ahead
async def test_receive_while_streaming_waits_until_the_client_leaves(asgi: Probe) -> None:
    """Mid-stream, receive() returns nothing while the client stays, http.disconnect once it leaves."""
    token = asgi.new_rid()
    a, b = f"<A-{token}>".encode(), f"<B-{token}>".encode()
    script = [
        steps.read_body(),
        steps.start(200),
        steps.body(a, more=True),
        steps.receive(timeout=units(0.25)),
        steps.body(b, more=True),
        steps.wait_flag(f"left-{token}", units(3)),
        steps.receive(timeout=units(3)),
    ]
    live = await asgi.begin(script=script, timeout=units(3))
    unread = ""
    async with live:
        try:
            await live.read_until(b, timeout=units(3))
        except ClientError as exc:
            unread = f"; B never reached the client: {exc}"
    # The client has left (closed its connection): now the app may see http.disconnect.
    asgi.server.channel.set_flag(f"left-{token}")
    timeline = await live.timeline()
    during = timeline[3].get("result") if len(timeline) > 3 else "never called"
    after = timeline[6].get("result") if len(timeline) > 6 else "never called"
    errors = [f"step {e['i']}: {e.get('error')}" for e in timeline if not e.get("ok")]
    no_request_after_the_body(during)
    expect(
        during == "timeout",
        sent="receive() mid-stream, client still connected and reading",
        expected="receive() to wait (no event)",
        observed=f"receive() returned {during!r}; errors {errors}{unread}",
    )
    got = after.get("type") if isinstance(after, dict) else after
    expect(
        got == "http.disconnect",
        sent="receive() after the client closed the connection mid-stream",
        expected="http.disconnect",
        observed=f"{after!r}; errors {errors}{unread}",
    )


CHUNK = 64 << 10
#: The app reports its progress this often (body bytes sent).
PROGRESS = 256 << 10


def _large(asgi: Probe) -> int:
    """The stream's size: twice what may pass while the client reads nothing.

    Over TCP, kernel buffers on either side hold a few MiB, so 32 MiB; HTTP/2 and
    HTTP/3 flow-control windows (64 KiB to 1 MiB) hold far less, so 8 MiB, which
    spares the column's other checks the CPU that framing 32 MiB in pure Python takes
    (the h2 and aioquic clients share one process with them).
    """
    return 32 << 20 if asgi.wire == "http/1.1" else 8 << 20


#: How long the app's progress may stand still before its send() counts as waiting.
STALL_UNITS = 1.0


async def _progress_while_unread(live: LiveExchange, held: int) -> int:
    """How far the app's sends got while the client read nothing: until they stood still
    for STALL_UNITS, or reached ``held`` (what no buffer on the way holds).

    Judged by progress, not by the clock: a server that holds the stream in memory
    lets the app on however busy the machine is (slowly, perhaps, but on), and one
    that passes chunks on stops it where the buffers are full.
    """
    channel, rid = live.channel, live.rid

    def beyond(sent: int) -> list[Observation]:
        """The app's progress reports past ``sent`` bytes."""
        return [
            r
            for r in channel.records(rid)
            if r.get("kind") == "progress" and int(r.get("sent", 0)) > sent
        ]

    seen, deadline = 0, time.monotonic() + units(20)
    while seen < held and time.monotonic() < deadline:
        later = await channel.until(partial(beyond, seen), timeout=units(STALL_UNITS))
        if not later:
            break  # it stood still: send() waits for the client
        seen = max(int(r["sent"]) for r in later)
    return seen


@requirement("http.streaming.large-not-buffered")
@ahead
async def test_large_stream_reaches_the_client_while_the_app_sends(asgi: Probe) -> None:
    """While the client stops reading after the first bytes, the app cannot finish a large stream.

    Proven by ordering, not by a race: between the app and a client that reads no
    more there is room for a few MiB (TCP buffers; on HTTP/2 the 64 KiB flow-control
    window), so a server that passes chunks on makes the app's ``send()`` wait, and
    only one that holds the stream in memory lets the app finish.  Then the client
    reads the rest, which must be intact.
    """
    large = _large(asgi)
    script = [
        steps.read_body(),
        steps.start(200),
        steps.stream(large, CHUNK, final=False, progress=PROGRESS),
        steps.body(b""),
    ]
    live = await asgi.begin(script=script, timeout=units(3))
    async with live:
        try:
            await live.read_until(steps.pattern(0, 64), timeout=units(5))
            # The client reads nothing more: a stream that goes on far past every buffer
            # between the app and the client is held in the server's memory.
            held = await _progress_while_unread(live, large // 2) >= large // 2
            response = await live.read_response(timeout=units(10))
        except ClientError as exc:
            expect(
                False, sent=f"a {large >> 20} MiB stream", expected="the stream", observed=str(exc)
            )
            return
    expect(
        hashlib.sha256(response.body).digest() == hashlib.sha256(steps.pattern(0, large)).digest(),
        sent=f"{large >> 20} MiB in {CHUNK >> 10} KiB body messages",
        expected=f"{large} bytes intact",
        observed=f"{len(response.body)} bytes (content differs or truncated)",
    )
    expect(
        not held,
        sent=f"{large >> 20} MiB in {CHUNK >> 10} KiB body messages to a client that read the "
        "first bytes and then nothing",
        expected="the app's send() to wait for the client",
        observed="the app sent the whole stream while the client read nothing: the server "
        "held it in memory",
    )
    asgi.observe(
        f"the app's send() waited for the client before {large >> 21} MiB had gone out, "
        "then the stream completed"
    )
