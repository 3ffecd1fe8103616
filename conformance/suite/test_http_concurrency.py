"""Concurrency: one server process runs many apps at once (asgi.rst "Overview").

ASGI's reason to exist is that one process serves many connections at the same
time.  These checks prove overlap positively, through the side channel: each
request's app waits inside a rendezvous until its whole group is inside too.  A
server that serialises requests never gets more than one of them inside, and the
rendezvous runs out of its bound; nothing depends on a sleep being long enough.
"""

from __future__ import annotations

import anyio

from conformance import requirement
from conformance._batch import ahead
from conformance._probe import Exchange, Probe, expect
from conformance._timing import units
from conformance._verdicts import NotJudged
from conformance.clients import ClientError


GROUP_SIZE = 8


@requirement("http.app.concurrent-requests")
async def test_requests_run_concurrently(asgi: Probe) -> None:
    """Eight requests on eight connections are all inside the app at the same moment."""
    group = asgi.new_rid()
    results: list[Exchange | Exception] = []
    wait = units(3)

    async def one() -> None:
        try:
            results.append(
                await asgi.send(
                    behaviour="rendezvous",
                    args={"group": group, "size": str(GROUP_SIZE), "wait": f"{wait:.3f}"},
                    timeout=units(GROUP_SIZE) + wait,
                )
            )
        except ClientError as exc:
            results.append(exc)

    async with anyio.create_task_group() as tasks:
        for _ in range(GROUP_SIZE):
            tasks.start_soon(one)
    peaks = [int(r.response.body or b"0") for r in results if isinstance(r, Exchange)]
    errors = [str(r) for r in results if not isinstance(r, Exchange)]
    peak = max(peaks, default=0)
    expect(
        peak >= GROUP_SIZE and not errors,
        sent=f"{GROUP_SIZE} requests at once, each app waiting for the others",
        expected=f"{GROUP_SIZE} apps inside together",
        observed=f"at most {peak} inside together" + (f"; errors: {errors[:2]}" if errors else ""),
    )
    asgi.observe(f"{peak} requests were inside the app together")


@requirement("http.app.long-poll-not-blocking")
@ahead
async def test_long_poll_does_not_block_other_requests(asgi: Probe) -> None:
    """While one response is held open, a request on another connection completes."""
    channel = asgi.server.channel
    live = await asgi.begin(behaviour="hold", args={"wait": f"{units(10):.3f}"})
    held = live.rid
    async with live:
        entered = await channel.until(
            lambda: [r for r in channel.records(held) if r.get("kind") == "hold"],
            timeout=units(5),
        )
        expect(
            bool(entered),
            sent="a long-poll request",
            expected="the app to be called",
            observed="no call",
        )
        other = await asgi.send(timeout=units(5))
        gone = [r for r in channel.records(held) if r.get("phase") == "left"]
        still_held = not gone
        if other.response.status == 200 and gone and gone[0].get("disconnected"):
            raise NotJudged(
                "the held app's receive() said http.disconnect while its client was still "
                "connected, so the long poll was over before the second request",
                "http.disconnect.not-premature",
            )
        expect(
            other.response.status == 200 and still_held,
            sent="a second request on another connection while the first is held open",
            expected="a 200 while the long poll is still open",
            observed=f"status {other.response.status}, long poll still open: {still_held}",
        )
    left = await channel.until(
        lambda: [r for r in channel.records(held) if r.get("phase") == "left"],
        timeout=units(5),
    )
    asgi.observe(
        "the held request saw http.disconnect when the client left"
        if left and left[0].get("disconnected")
        else "the held request did not see the client leave in time"
    )
