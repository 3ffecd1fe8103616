"""Several requests on one HTTP/1.x connection: keep-alive, pipelining, closing.

www.rst "HTTP Connection Scope": a connection scope lasts one request "even if the
underlying socket is still open and serving multiple requests".  The ASGI text leaves the
connection itself to HTTP, so the rules about persistence, pipelining and ``Connection:
close`` are RFC 9112's, which an ASGI server implements for its apps.  Each check keeps
one raw socket, writes exact requests and judges the responses with h11 and what each
app call reported through the side channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import anyio

from conformance import ConformanceFailure, Unsupported, requirement
from conformance import _steps as steps
from conformance._batch import ahead
from conformance._probe import Probe, expect, refusal
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance.clients import ClientError, RawHTTP1Connection, Request, Response
from conformance.clients.http1 import encode_request
from conformance.suite._refusals import HTTP10_REFUSABLE


def _closes(response: Response) -> bool:
    """Whether the response announces that the server will close the connection."""
    value = response.header(b"connection") or b""
    return b"close" in value.lower()


def _answer(rid: str) -> list[dict[str, Any]]:
    """A script that digests the body and answers with the request id."""
    head = [(b"content-type", b"text/plain"), (b"content-length", str(len(rid)).encode())]
    return [steps.digest_body(units(3)), steps.start(200, head), steps.body(rid.encode())]


def _request(
    asgi: Probe,
    rid: str,
    script: Sequence[dict[str, Any]],
    *,
    method: bytes = b"GET",
    target: bytes = b"/",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    http_version: str = "1.1",
) -> Request:
    args = {"script": steps.encode_script(script), "bodies": "omit"}
    return Request(
        method=method,
        target=target,
        headers=[*asgi.probe_headers(rid, "script", args), *headers],
        body=body,
        http_version=http_version,
    )


def _calls(asgi: Probe, rid: str) -> list[Observation]:
    """The app calls recorded so far for ``rid`` (wait for a later record of it first)."""
    return [r for r in asgi.server.channel.records(rid) if r.get("kind") == "call"]


def _digest(asgi: Probe, rid: str) -> dict[str, Any]:
    """The digest_body result of the script run under ``rid`` ({} if it never reported)."""
    found = asgi.server.channel.wait_for(rid, "script", units(5))
    timeline = found[0]["timeline"] if found else []
    result = timeline[0].get("result") if timeline else None
    return result if isinstance(result, dict) else {}


async def _open(asgi: Probe) -> RawHTTP1Connection:
    return await asgi.connect()


# -- persistence -----------------------------------------------------------------------------


@requirement("http.keepalive.persistent")
async def test_connection_stays_open_for_several_requests(asgi: Probe) -> None:
    """Three HTTP/1.1 requests in turn on one connection are all answered on it."""
    connection = await _open(asgi)
    statuses: list[int] = []
    async with connection:
        for index in range(3):
            rid = asgi.new_rid()
            try:
                response = await connection.exchange(_request(asgi, rid, _answer(rid)))
            except ClientError as exc:
                raise ConformanceFailure(
                    f"request {index + 1} of 3 on one connection got no answer: {exc}"
                ) from None
            statuses.append(response.status)
            closing = response.header(b"connection")
            expect(
                not _closes(response) and not connection.closed_by_peer,
                sent=f"request {index + 1} of 3 on one HTTP/1.1 connection, no Connection header",
                expected="the connection kept open",
                observed=f"Connection: {closing!r} on response {index + 1}"
                if _closes(response)
                else "the server closed the connection",
            )
    asgi.observe(f"3 requests answered on one connection: {statuses}")


@requirement("http.keepalive.one-call-per-request")
async def test_each_request_on_a_connection_is_its_own_call(asgi: Probe) -> None:
    """Three requests on one connection are three app calls, each with its own scope and body."""
    plan = [
        (b"GET", b"/ka/1", [], b""),
        (b"POST", b"/ka/2", [(b"content-length", b"3")], b"two"),
        (b"POST", b"/ka/3", [(b"transfer-encoding", b"chunked")], b"5\r\nthree\r\n0\r\n\r\n"),
    ]
    bodies = [b"", b"two", b"three"]
    rids = [asgi.new_rid() for _ in plan]
    connection = await _open(asgi)
    async with connection:
        for index, ((method, target, headers, wire), rid) in enumerate(
            zip(plan, rids, strict=True)
        ):
            request = _request(
                asgi, rid, _answer(rid), method=method, target=target, headers=headers, body=wire
            )
            response = await connection.exchange(request)
            expect(
                response.status == 200 and response.body == rid.encode(),
                sent=f"request {index + 1} ({method.decode()} {target.decode()}) on one connection",
                expected=f"a 200 from its own app call, answering {rid!r}",
                observed=f"{response.status} {response.body[:100]!r}",
            )
            if index < len(plan) - 1 and (_closes(response) or connection.closed_by_peer):
                raise Unsupported(
                    f"the server closed the connection after request {index + 1}: "
                    "no later request on it to judge"
                )
    for index, rid in enumerate(rids):
        digest = _digest(asgi, rid)  # waits for the script's report, which follows the call's
        calls = _calls(asgi, rid)
        scope = calls[0]["scope"] if calls else {}
        wanted = hashlib.sha256(bodies[index]).hexdigest()
        own = (
            len(calls) == 1
            and scope.get("path") == plan[index][1].decode()
            and digest.get("sha256") == wanted
            and digest.get("end") == "final"
        )
        expect(
            own,
            sent=f"request {index + 1} ({plan[index][1].decode()}, body {bodies[index]!r})",
            expected="one app call with that path and exactly that body",
            observed=f"{len(calls)} call(s), path {scope.get('path')!r}, body of "
            f"{digest.get('length')} bytes ending {digest.get('end')!r}"
            f"{'' if digest.get('sha256') == wanted else ' (not the one sent)'}",
        )
    asgi.observe("3 requests, 3 calls, each with its own path and body")


# -- pipelining ------------------------------------------------------------------------------


@requirement("http.keepalive.pipelined-in-order")
@ahead
async def test_pipelined_requests_are_answered_in_order(asgi: Probe) -> None:
    """Two requests written at once are answered first-then-second, even if the first is slower."""
    first, second = asgi.new_rid(), asgi.new_rid()
    flag = f"answer-{first}"
    # The first app waits until the test lets it answer: a server that runs the second
    # request meanwhile has its answer ready first and must still hold it back.
    slow = [steps.wait_flag(flag, units(3)), *_answer(first)]
    requests = [
        _request(asgi, first, slow, target=b"/pipelined/1"),
        _request(asgi, second, _answer(second), target=b"/pipelined/2"),
    ]
    channel = asgi.server.channel
    connection = await _open(asgi)
    responses: list[Response] = []
    async with connection:
        connection.prime(requests[0])
        await connection.send_bytes(b"".join(encode_request(r) for r in requests))
        entered = channel.wait_for(first, "call", units(3))
        expect(
            bool(entered),
            sent="two pipelined GETs",
            expected="the first app call",
            observed="none",
        )
        # Bounded: a server that runs pipelined requests one at a time never calls the
        # second app while the first waits, so this window only measures overlap.
        overlap = bool(channel.wait_for(second, "call", units(0.3)))
        if overlap:
            channel.wait_for(second, "script", units(3))  # its answer is ready
        channel.set_flag(flag)
        responses.append(await connection.read_response())
        if _closes(responses[0]) or connection.closed_by_peer:
            raise Unsupported(
                "the server closed the connection after the first response "
                f"(Connection: {responses[0].header(b'connection')!r}): nothing to order"
            )
        connection.prime(requests[1])
        responses.append(await connection.read_response())
    got = [r.body.decode("latin-1") for r in responses]
    expect(
        got == [first, second],
        sent=f"GET /pipelined/1 ({first}, answered late) and GET /pipelined/2 ({second}) in one write",
        expected=f"responses for {[first, second]} in that order",
        observed=f"responses for {got}",
    )
    asgi.observe(
        "the second app ran while the first was still running (concurrent); answers in order"
        if overlap
        else "the second app was called only after the first answered (one at a time)"
    )


# -- closing ---------------------------------------------------------------------------------


async def _answered_then_closed(
    asgi: Probe, rid: str, request: Request, sent: str, may_refuse: str = ""
) -> str:
    """Send ``request``, read its response, and wait for the server to close the socket."""
    connection = await _open(asgi)
    async with connection:
        response = await connection.exchange(request)
        await anyio.to_thread.run_sync(
            refusal, asgi.server.channel, rid, request, response.status, may_refuse
        )
        expect(
            response.status == 200,
            sent=sent,
            expected="a 200",
            observed=f"{response.status} {response.body[:100]!r}",
        )
        extra = await connection.wait_closed(timeout=units(1))
    expect(
        extra is not None,
        sent=sent,
        expected="the server to close the connection after the response",
        observed=f"still open {units(1):.1f}s after the response",
    )
    return f"closed after the response (its Connection: {response.header(b'connection')!r})" + (
        f"; {len(extra)} bytes after it" if extra else ""
    )


@requirement("http.keepalive.client-close")
async def test_server_closes_after_connection_close(asgi: Probe) -> None:
    """After answering a request with Connection: close the server closes the connection."""
    rid = asgi.new_rid()
    request = _request(asgi, rid, _answer(rid), headers=[(b"connection", b"close")])
    asgi.observe(await _answered_then_closed(asgi, rid, request, "GET with Connection: close"))


@requirement("http.keepalive.http10-close")
async def test_server_closes_an_http10_connection(asgi: Probe) -> None:
    """After answering an HTTP/1.0 request without keep-alive the server closes the connection."""
    rid = asgi.new_rid()
    request = _request(asgi, rid, _answer(rid), http_version="1.0")
    sent = "GET HTTP/1.0, no Connection header"
    asgi.observe(await _answered_then_closed(asgi, rid, request, sent, HTTP10_REFUSABLE))


# -- a body the app leaves unread ------------------------------------------------------------


@requirement("http.request.unread-body")
async def test_unread_body_does_not_reach_the_next_request(asgi: Probe) -> None:
    """After an app answers without reading a 96 KiB body, the next request on the socket is clean."""
    first, second = asgi.new_rid(), asgi.new_rid()
    unread = bytes(range(256)) * 384  # 96 KiB: more than a server buffers before pausing
    head = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    ignore = [steps.start(200, head), steps.body(b"ok")]
    request = _request(
        asgi, first, ignore, method=b"POST", target=b"/unread", body=b"",
        headers=[(b"content-length", str(len(unread)).encode())],
    )  # fmt: skip
    follow = b"second-body"
    next_request = _request(
        asgi, second, _answer(second), method=b"POST", target=b"/second", body=follow
    )
    write_errors: list[str] = []
    connection = await _open(asgi)
    async with connection:
        connection.prime(request)
        await connection.send_bytes(encode_request(request))

        async def send_unread() -> None:
            try:
                await connection.send_bytes(unread)
            except ClientError as exc:
                write_errors.append(type(exc).__name__)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send_unread)
            response = await connection.read_response()
        expect(
            response.status == 200 and response.body == b"ok",
            sent=f"POST /unread with a {len(unread)}-byte body the app never reads",
            expected="its 200 'ok'",
            observed=f"{response.status} {response.body[:100]!r}",
        )
        if _closes(response) or write_errors:
            asgi.observe(
                "the server closed the connection instead of draining the body"
                f" (Connection: {response.header(b'connection')!r}; write: {write_errors or 'ok'})"
            )
            return
        try:
            answer = await connection.exchange(next_request)
        except ClientError as exc:
            if connection.closed_by_peer:
                asgi.observe("the server closed the connection after the response, unannounced")
                return
            raise ConformanceFailure(
                f"the request after the unread body got no clean answer: {exc}"
            ) from None
    digest = _digest(asgi, second)  # waits for the script's report, which follows the call's
    calls = _calls(asgi, second)
    own_body = digest.get("sha256") == hashlib.sha256(follow).hexdigest()
    clean = (
        answer.status == 200
        and answer.body == second.encode()
        and len(calls) == 1
        and calls[0]["scope"].get("path") == "/second"
        and own_body
    )
    expect(
        clean,
        sent=f"POST /second with body {follow!r} on the same connection",
        expected=f"a 200 from its own app call, which reads exactly {follow!r}",
        observed=f"{answer.status} {answer.body[:100]!r}; {len(calls)} call(s); the app read "
        f"{digest.get('length')} bytes" + ("" if own_body else " (not the body sent)"),
    )
    asgi.observe("the unread body was discarded; the next request was served on the same socket")
