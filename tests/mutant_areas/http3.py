"""Mutants of HTTP/3 (www.rst "HTTP Connection Scope", "HTTP"; RFC 9114).

Every one runs over hypercorn on the ``h3`` column: QUIC on the UDP port the launcher
gives it, TLS with the session's certificate.  The middlewares are the HTTP/2 ones
where a rule reads the same over both protocols (the checks are the same, each
judging its column's row); the malformed-request rows need a server that lets a
malformed request through, so their mutant turns off the request validation of
aioquic, which hypercorn's HTTP/3 is built on (``lenient_h3``).

Rows whose check hypercorn's own HTTP/3 fails (a reset stream's disconnect, its
siblings, app-sent connection fields) have no twin here yet: a mutant proves a row
only against a control that meets it.
"""

from __future__ import annotations

from tests.mutant_areas.http2 import (
    Middleware,
    host_doubled,
    host_moved_last,
    streams_one_at_a_time,
    trailer_in_headers,
    websocket_messages_dropped,
    websocket_over_h2_as_11,
    websocket_over_h2_refused,
)
from tests.mutants import ASGIApp, Headers, Mutant, Scope, on_headers, on_scope


__all__ = ["MUTANTS"]


def http3_reported_as_2(scope: Scope) -> None:
    """An HTTP/3 request is reported as "2" (www.rst "HTTP Connection Scope", with asgiref #589:
    http_version names the protocol spoken, "3" for HTTP/3)."""
    if scope.get("http_version") == "3":
        scope["http_version"] = "2"


def cookies_joined(headers: Headers) -> Headers:
    """Cookie fields the client sent separately reach the app joined into one (www.rst "HTTP
    Connection Scope": duplicates are preserved as received; RFC 9114 4.2.1 lets a server
    join them with "; ")."""
    crumbs = [value for name, value in headers if name == b"cookie"]
    if len(crumbs) < 2:
        return headers
    kept = [(name, value) for name, value in headers if name != b"cookie"]
    return [*kept, (b"cookie", b"; ".join(crumbs))]


def lenient(app: ASGIApp) -> ASGIApp:
    """Malformed HTTP/3 requests reach the app: aioquic's request validation is off, as in a
    server with a parser of its own (www.rst "HTTP Connection Scope"; RFC 9114 4.1.2, a
    malformed request is a stream error)."""
    return app


def _h3(
    middleware: Middleware,
    breaks: tuple[str, ...],
    keeps: tuple[str, ...] = (),
    *,
    lenient_h3: bool = False,
) -> Mutant:
    return Mutant(
        middleware,
        breaks,
        keeps=keeps,
        server="hypercorn",
        column="h3",
        lenient_h3=lenient_h3,
    )


MUTANTS: dict[str, Mutant] = {
    "h3-version-2": _h3(on_scope(http3_reported_as_2), ("h3.scope.http-version",)),
    "h3-host-last": _h3(
        on_headers(host_moved_last),
        ("h3.scope.authority-as-host",),
        ("h3.scope.authority-one-host",),
    ),
    "h3-host-doubled": _h3(
        on_headers(host_doubled), ("h3.scope.authority-one-host",), ("h3.scope.authority-as-host",)
    ),
    "h3-streams-serialised": _h3(
        streams_one_at_a_time, ("h3.streams.separate-scopes", "h3.streams.interleaved")
    ),
    "h3-malformed-served": _h3(
        lenient,
        (
            "h3.malformed.connection-field",
            "h3.malformed.uppercase-name",
            "h3.malformed.pseudo-after-regular",
            "h3.malformed.te-not-trailers",
            "h3.malformed.duplicate-pseudo",
            "h3.malformed.response-pseudo",
            "h3.malformed.empty-path",
            "h3.malformed.content-length-mismatch",
        ),
        ("h3.scope.http-version",),
        lenient_h3=True,
    ),
    "h3-cookies-split": _h3(on_headers(cookies_joined), ("h3.cookie.crumbs",)),
    "h3-trailer-in-headers": _h3(on_scope(trailer_in_headers), ("h3.request.trailers",)),
    "h3-websocket-refused": _h3(websocket_over_h2_refused, ("h3.websocket.extended-connect",)),
    "h3-websocket-as-11": _h3(
        on_scope(websocket_over_h2_as_11, "websocket"),
        ("h3.websocket.scope",),
        ("h3.websocket.extended-connect",),
    ),
    "h3-websocket-deaf": _h3(
        websocket_messages_dropped, ("h3.websocket.echo",), ("h3.websocket.extended-connect",)
    ),
}
