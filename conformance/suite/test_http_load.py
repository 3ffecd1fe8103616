"""Load beyond one request at a time (asgi.rst "Overview").

ASGI's reason to exist is that one process serves many connections at once.
``test_http_concurrency`` proves apps overlap; these checks go further: a
response held mid-stream, and a crowd of idle keep-alive connections, must not
stop anybody else being served.  Ordering comes from what the client has
*read* and from side-channel flags the test sets, never from a sleep.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio

from conformance import _steps as steps
from conformance import requirement
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance.clients import ClientError, Request
from conformance.suite._premises import read_streamed


#: Idle keep-alive connections held open while a new one is served.
IDLE_CONNECTIONS = 50


@requirement("http.load.streaming-not-blocking")
async def test_held_stream_does_not_delay_another_stream(asgi: Probe) -> None:
    """While one response is held mid-stream, another connection's streamed response completes."""
    held = asgi.new_rid()
    release = f"release-{held}"
    script = [
        steps.read_body(units(2)),
        steps.start(200),
        steps.body(b"held-first-", more=True),
        steps.wait_flag(release, units(5)),
        steps.body(b"held-last"),
    ]
    live = await asgi.begin(script=script, timeout=units(3), rid=held)
    async with live:
        await read_streamed(live, b"held-first-", timeout=units(3))
        other = [
            steps.read_body(units(2)),
            steps.start(200),
            steps.body(b"other-one-", more=True),
            steps.body(b"other-two"),
        ]
        try:
            exchange = await asgi.send(script=other, timeout=units(2))
            observed = f"{exchange.response.status} {exchange.response.body!r}"
            ok = exchange.response.body == b"other-one-other-two"
        except ClientError as exc:
            observed, ok = str(exc), False
        finally:
            asgi.server.channel.set_flag(release)
        expect(
            ok,
            sent="a streamed GET on a second connection while the first response is held mid-stream",
            expected="the second response complete while the first is still held",
            observed=observed,
        )
        first = await live.read_response(timeout=units(3))
    expect(
        first.body == b"held-first-held-last",
        sent="the flag releasing the held response",
        expected="it completes too",
        observed=repr(first.body[:100]),
    )


@requirement("http.load.idle-connections")
async def test_idle_keep_alive_connections_do_not_stop_a_new_one(asgi: Probe) -> None:
    """With fifty idle keep-alive connections open, a new connection is served."""
    statuses: list[str] = []

    async with AsyncExitStack() as stack:

        async def idle() -> None:
            try:
                connection = await asgi.open(timeout=units(3))
                await stack.enter_async_context(connection)
                response = await connection.exchange(
                    Request(headers=asgi.probe_headers(asgi.new_rid(), "echo")), timeout=units(5)
                )
                statuses.append(str(response.status))
            except (ClientError, OSError, TimeoutError) as exc:
                statuses.append(type(exc).__name__)

        async with anyio.create_task_group() as tasks:
            for _ in range(IDLE_CONNECTIONS):
                tasks.start_soon(idle)
        refused = [s for s in statuses if s != "200"]
        try:
            fresh = await asgi.send(timeout=units(3))
            observed = str(fresh.response.status)
        except ClientError as exc:
            observed = str(exc)
    expect(
        not refused and observed == "200",
        sent=f"{IDLE_CONNECTIONS} keep-alive connections, one request each, left open; then a new one",
        expected="200 on all of them",
        observed=f"new connection: {observed}; the others: {len(refused)} not 200 "
        f"({sorted(set(refused))})",
    )
    asgi.observe(f"{IDLE_CONNECTIONS} idle connections open, a new one served")
