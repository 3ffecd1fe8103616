"""A failing cell's reproducer (conformance/_reproducer.py): the app does what the probe did,
and the request is what the client sent without the probe's private headers."""

from __future__ import annotations

import ast
import asyncio
from typing import Any

from conformance import _steps as steps
from conformance._reproducer import Sent, app_source, reproducer
from conformance.clients import Request


def _run(source: str, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the reproducer's ``app`` on an HTTP scope; what it sent."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "repro.py", "exec"), namespace)  # our own generated source
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(namespace["app"]({"type": "http"}, receive, send))
    return sent


def test_the_app_sends_what_the_script_said() -> None:
    script = [
        steps.read_body(),
        steps.start(418, [(b"x-bin", b"caf\xe9")]),
        steps.body(b"hel", more=True),
        steps.body(b"lo"),
    ]
    sent = _run(app_source("script", script), [{"type": "http.request", "body": b"x"}])
    assert sent == [step["message"] for step in script[1:]]


def test_a_streamed_body_is_the_probes_pattern() -> None:
    from conformance.apps._script import pattern

    sent = _run(app_source("script", [steps.stream(1000, 300)]), [])
    assert b"".join(m["body"] for m in sent) == pattern(0, 1000)
    assert sent[-1]["more_body"] is False


def test_the_echo_behaviour_reads_the_body_and_answers() -> None:
    sent = _run(app_source("echo", None), [{"type": "http.request", "body": b"abc"}])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_the_request_leaves_out_the_probe_headers() -> None:
    script = [steps.start(200), steps.body(b"ok")]
    request = Request(
        method=b"POST",
        target=b"/a%20b",
        headers=[
            (b"x-probe", b"script"),
            (b"x-probe-rid", b"r1"),
            (b"x-probe-script", steps.encode_script(script).encode()),
            (b"x-kept", b"1"),
        ],
        body=b"abc",
    )
    made = reproducer([Sent("http/1.1", request)], "observed")
    assert made is not None
    sent = ast.literal_eval(made.request)
    assert sent.startswith(b"POST /a%20b HTTP/1.1\r\n")
    assert b"x-kept: 1\r\n" in sent
    assert b"x-probe" not in sent
    assert "http.response.start" in made.app


def test_raw_bytes_give_the_last_script_and_no_probe_lines() -> None:
    script = [steps.start(204), steps.body()]
    raw = (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nx-probe: script\r\n"
        b"x-probe-script: " + steps.encode_script(script).encode() + b"\r\n\r\n"
    )
    made = reproducer([Sent("http/1.1", raw=lambda: raw)], "observed")
    assert made is not None
    assert ast.literal_eval(made.request) == b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert "204" in made.app


def test_an_h2_request_is_shown_as_frames() -> None:
    request = Request(headers=[(b"Host", b"localhost"), (b"x-probe-rid", b"r")], body=b"x")
    made = reproducer([Sent("h2", request)], "observed")
    assert made is not None
    assert made.request.splitlines()[0] == "HEADERS"
    assert ":authority: b'localhost'" in made.request
    assert "x-probe" not in made.request
    assert made.request.splitlines()[-1] == "DATA END_STREAM b'x'"


def test_nothing_sent_gives_no_reproducer() -> None:
    assert reproducer([], "observed") is None


def test_a_lifespan_reproducer_runs_the_apps_lifespan() -> None:
    made = reproducer([Sent("lifespan", lifespan_app="shutdown_fails")], "observed")
    assert made is not None
    assert made.wire == "lifespan"
    namespace: dict[str, Any] = {}
    exec(compile(made.app, "repro.py", "exec"), namespace)
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(namespace["app"]({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]


def test_a_legacy_reproducer_serves_a_double_callable_app() -> None:
    """The check's last word was a legacy app: the reproducer is an ASGI 2 app and a GET."""
    made = reproducer([Sent("http/1.1", Request(target=b"/x")), Sent("http/1.1", legacy=True)], "o")
    assert made is not None
    assert made.request.startswith("b'GET / HTTP/1.1")
    namespace: dict[str, Any] = {}
    exec(compile(made.app, "repro.py", "exec"), namespace)
    instance = namespace["app"]({"type": "http"})  # constructed with the scope alone
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(instance(receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
