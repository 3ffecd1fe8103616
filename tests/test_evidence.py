"""A failing cell's evidence is its own: probe headers elided, other checks' errors left out."""

from __future__ import annotations

from conformance._evidence import elide_probe_fields, elide_probe_headers, own_log


def _traceback(rid: str) -> list[str]:
    """What uvicorn logs when the probe app raises on purpose for request ``rid``."""
    return [
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "/x/uvicorn/protocols/http/h11_impl.py", line 410, in run_asgi',
        "    result = await app(self.scope, self.receive, self.send)",
        '  File "/x/conformance/apps/_script.py", line 261, in _run_step',
        "    raise ScriptError(str(step.get('message')))",
        f"conformance.apps._script.ScriptError: the probe app raised on purpose (rid {rid})",
    ]


def test_the_probe_headers_leave_the_wire_evidence() -> None:
    sent = (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nx-probe: script\r\nx-probe-rid: 1-2\r\n"
        b"x-probe-script: W10=\r\naccept: */*\r\n\r\nbody"
    )
    elided = elide_probe_headers(sent)
    assert b"x-probe" not in elided
    assert elided == (
        b"GET / HTTP/1.1\r\nHost: localhost\r\naccept: */*\r\n[probe headers elided]\r\n\r\nbody"
    )
    assert elide_probe_headers(b"GET / HTTP/1.1\r\n\r\n") == b"GET / HTTP/1.1\r\n\r\n"


def test_another_checks_deliberate_error_is_left_out() -> None:
    log = "\n".join(
        [
            'INFO:     127.0.0.1:1 - "GET / HTTP/1.1" 200',
            *_traceback("7-1"),
            "WARNING:  something of this check",
            *_traceback("7-2"),
        ]
    )
    own = own_log(log, ["7-2"])
    assert "(rid 7-1)" not in own
    assert "(rid 7-2)" in own
    assert own.count("Traceback (most recent call last):") == 1
    assert "WARNING:  something of this check" in own
    assert 'INFO:     127.0.0.1:1 - "GET / HTTP/1.1" 200' in own
    assert own.endswith("[1 log entry of other checks elided]")


def test_a_log_without_request_ids_is_kept_whole() -> None:
    log = "\n".join(["starting", *_traceback("1-1")[:-1], "RuntimeError: the server's own"])
    assert own_log(log, []) == log


def test_a_frame_transcript_loses_the_probe_script_and_keeps_the_rest() -> None:
    line = (
        "no complete response on stream 0 within 3.0s; frames: > HEADERS stream 0 FIN: "
        ":method: GET, x-probe: script, x-probe-rid: 1-2, x-probe-script: W3sifiI6ICJk+/aW=…"
        " | < HEADERS stream 0: :status: 200"
    )
    assert elide_probe_fields(line) == (
        "no complete response on stream 0 within 3.0s; frames: > HEADERS stream 0 FIN: "
        ":method: GET, x-probe: script, x-probe-rid: 1-2, x-probe-script: [elided]"
        " | < HEADERS stream 0: :status: 200"
    )
    assert elide_probe_fields("x-probe-scripted: 1") == "x-probe-scripted: 1"
