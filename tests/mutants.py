"""Mutant servers: a real server wrapped in a middleware that breaks exactly one rule.

A check that no server can fail proves nothing.  Each mutant here is a real server
(uvicorn, run programmatically) in front of the probe app, with one tiny ASGI
middleware between them that breaks one rule of the spec the way a careless
server would.  ``tests/test_mutants.py`` runs the real checks through the real
plugin against every mutant and proves that each requirement a mutant claims to
break gets a worse verdict there than on the unmodified server.

Run one by hand (``{app}`` is an import string, as the launcher passes it)::

    PYTHONPATH=/path/to/checkout python -m tests.mutants path-with-query \\
        --host 127.0.0.1 --port 8000 conformance.apps.probe:app

``none`` is the unmodified runner: the control every mutant is compared with.
A double-callable app (``conformance.apps.probe:LegacyApp``) is served through
asgiref's compatibility adapter, as asgi.rst "Legacy Applications" suggests,
except by the ``no-legacy`` mutant, which refuses it.

Loaded as a pytest plugin (``-p tests.mutants``) this module also narrows a
mutant's column to the rows it claims to break, plus a few neighbouring rows it
claims to keep (evidence that a check fails for the right reason): the other
rows would only measure the unmodified server again, and some mutants (a changed
scope type, a global lock) make every other check wait out its timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_to_bytes

from conformance._timing import units


if TYPE_CHECKING:
    import pytest


__all__ = [
    "CONTROL",
    "MUTANTS",
    "PREFIX",
    "Mutant",
    "control_of",
    "main",
    "mutant_target",
    "target_name",
]

Scope = dict[Any, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Receive, Send], Awaitable[None]]
Middleware = Callable[[ASGIApp], ASGIApp]

#: The graceful shutdown timeout of the runner, in suite time units.  It bounds how long a
#: stuck mutant takes to stop, and must leave room for the request that
#: ``lifespan.shutdown.after-requests`` holds in flight for ``HOLD`` units after the signal:
#: at one absolute second it cut that request off on a busy machine, and uvicorn then sent
#: lifespan.shutdown before the cancelled request had ended (a control that failed the row).
GRACEFUL_UNITS = 2.0

#: The matrix column of a mutant is ``mutant-NAME``; the controls are ``control-SERVER``.
PREFIX = "mutant-"
CONTROL = "none"
SERVERS = ("uvicorn", "hypercorn")


@dataclass(frozen=True)
class Mutant:
    """One row of the table: the middleware, and the requirement ids it must break."""

    middleware: Middleware
    #: Catalogue ids whose verdict must be worse here than on the unmodified server.
    breaks: tuple[str, ...]
    #: ``optional`` rows among ``breaks`` whose feature the mutant removes: ``unsupported``.
    removes: tuple[str, ...] = ()
    #: Neighbouring rows that must keep the unmodified server's verdict: the checks of
    #: ``breaks`` fail for the right reason, not because anything odd trips them.
    keeps: tuple[str, ...] = ()
    #: The real server underneath (hypercorn where uvicorn hides the difference).
    server: str = "uvicorn"
    #: Serve double-callable (ASGI 2) apps through asgiref's adapter.
    legacy: bool = True
    #: Extra ``uvicorn.Config`` settings, for rules a middleware cannot break (it never
    #: sees connections): ``(("limit_concurrency", 10),)`` refuses the eleventh.
    uvicorn_options: tuple[tuple[str, Any], ...] = ()
    #: A ``uvicorn.Server`` subclass to run instead, for rules only the server's own
    #: shutdown sequence can break (the order of draining and lifespan.shutdown).
    uvicorn_server: Callable[[Any], Any] | None = None
    #: The protocol column it is judged on (``h2c``: hypercorn's HTTP/2 with prior
    #: knowledge), None for cleartext HTTP/1.1.
    column: str | None = None
    #: Turn off the h2 library's header validation and normalisation in the server, for
    #: rules a middleware cannot break (malformed requests let in, fields let out).
    lenient_h2: bool = False
    #: The same for aioquic's HTTP/3 (hypercorn's ``h3`` column): requests are not validated.
    lenient_h3: bool = False
    #: Trust the session's stranger CA too when asked for client certificates, for the
    #: rule about a certificate that fails verification (a middleware never sees the
    #: handshake): the server then takes what it should have rejected.
    trusts_strangers: bool = False

    @property
    def rule(self) -> str:
        """The rule it breaks and where the spec states it: the middleware's docstring."""
        return inspect.getdoc(self.middleware) or ""


def target_name(mutant: str, server: str = "uvicorn", column: str | None = None) -> str:
    """The matrix column: ``mutant-NAME``, or ``control-SERVER`` for the unmodified runner;
    ``+COLUMN`` for a protocol column (``control-hypercorn+h2c``)."""
    base = f"control-{server}" if mutant == CONTROL else PREFIX + mutant
    return f"{base}+{column}" if column else base


def mutant_target(name: str) -> str:
    """The matrix column of mutant ``name``, on its own protocol column."""
    return target_name(name, column=MUTANTS[name].column)


def control_of(name: str) -> str:
    """The control column mutant ``name`` is compared with: same server, same protocol."""
    mutant = MUTANTS[name]
    return target_name(CONTROL, mutant.server, mutant.column)


# -- the two shapes most mutants take ------------------------------------------------------


def on_scope(change: Callable[[Scope], None], scope_type: str = "http") -> Middleware:
    """A middleware that applies ``change`` to a copy of every scope of ``scope_type`` (only)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") == scope_type:
                scope = dict(scope)
                change(scope)
            await app(scope, receive, send)

        return mutant

    middleware.__doc__ = change.__doc__
    return middleware


Headers = list[tuple[Any, Any]]


def on_headers(change: Callable[[Headers], Headers]) -> Middleware:
    """A middleware that replaces the header list of every HTTP scope with ``change(list)``."""

    def apply(scope: Scope) -> None:
        scope["headers"] = change([(name, value) for name, value in scope["headers"]])

    apply.__doc__ = change.__doc__
    return on_scope(apply)


def _raw_path(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    return raw if isinstance(raw, bytes) else scope["path"].encode("utf-8")


# -- the scope itself (www.rst "HTTP Connection Scope", asgi.rst "Applications") ------------


def scope_type_changed(scope: Scope) -> None:
    """scope['type'] is "https", not "http" (www.rst "HTTP Connection Scope": type is "http")."""
    scope["type"] = "https"


def non_str_key(scope: Scope) -> None:
    """A bytes key in the scope (asgi.rst "Applications": the scope is a dict of str keys)."""
    scope[b"path"] = _raw_path(scope)


def query_string_dropped(scope: Scope) -> None:
    """The required query_string key is missing (www.rst "HTTP Connection Scope": no default)."""
    del scope["query_string"]


def asgi_version_missing(scope: Scope) -> None:
    """scope['asgi'] has no 'version' (asgi.rst "Applications": asgi["version"] is required)."""
    scope["asgi"] = {k: v for k, v in scope["asgi"].items() if k != "version"}


def asgi_version_float(scope: Scope) -> None:
    """asgi['version'] is the float 3.0, not a str (asgi.rst "Applications")."""
    scope["asgi"] = {**scope["asgi"], "version": 3.0}


def asgi_version_2(scope: Scope) -> None:
    """A single-callable app is told asgi.version "2.0" (asgi.rst "Applications": it names the convention)."""
    scope["asgi"] = {**scope["asgi"], "version": "2.0"}


def spec_version_float(scope: Scope) -> None:
    """asgi['spec_version'] is the float 2.3, not a str like "2.3" (www.rst "HTTP Connection Scope")."""
    scope["asgi"] = {**scope["asgi"], "spec_version": 2.3}


def http_10_as_11(scope: Scope) -> None:
    """An HTTP/1.0 request is reported as "1.1" (www.rst: http_version names the protocol spoken)."""
    if scope["http_version"] == "1.0":
        scope["http_version"] = "1.1"


def http_version_prefixed(scope: Scope) -> None:
    """http_version is "HTTP/1.1", not one of "1.0", "1.1", "2" (www.rst "HTTP Connection Scope")."""
    scope["http_version"] = "HTTP/" + scope["http_version"]


def method_lowercased(scope: Scope) -> None:
    """The method is lower-cased (www.rst "HTTP Connection Scope": the method name, uppercased).

    Served by hypercorn: uvicorn's default parser answers 400 to a lower-case method
    before any app runs, so over uvicorn the http.scope.method-lowercase row could
    never change; hypercorn upper-cases it and calls the app.
    """
    scope["method"] = scope["method"].lower()


def extension_method_replaced(scope: Scope) -> None:
    """A non-standard method (PROPFIND, PURGE) reaches the app as "GET" (www.rst: the method name)."""
    if scope["method"] not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        scope["method"] = "GET"


def scheme_empty(scope: Scope) -> None:
    """scheme is "" (www.rst "HTTP Connection Scope": optional, but must not be empty)."""
    scope["scheme"] = ""


def scheme_https(scope: Scope) -> None:
    """scheme is "https" on a cleartext connection (www.rst: the scheme actually in use)."""
    scope["scheme"] = "https"


# -- path, raw_path, query_string, root_path -------------------------------------------------


def path_not_decoded(scope: Scope) -> None:
    """path keeps its percent-escapes (www.rst: path has percent-encoded sequences decoded)."""
    scope["path"] = _raw_path(scope).decode("latin-1")


def path_latin1(scope: Scope) -> None:
    """Decoded path bytes are read as latin-1, not UTF-8 (www.rst: "...and UTF-8 byte sequences decoded")."""
    scope["path"] = unquote_to_bytes(_raw_path(scope)).decode("latin-1")


def encoded_slash_kept(scope: Scope) -> None:
    """%2F stays escaped in path while the rest is decoded (recorded, not graded: www.rst leaves it open)."""
    parts = re.split("%2[Ff]", _raw_path(scope).decode("latin-1"))
    scope["path"] = "%2F".join(unquote(part) for part in parts)


def path_with_query(scope: Scope) -> None:
    """path includes '?' and the query (www.rst: "HTTP request target excluding any query string")."""
    if scope["query_string"]:
        scope["path"] += "?" + scope["query_string"].decode("latin-1")


def raw_path_with_query(scope: Scope) -> None:
    """raw_path includes the query (www.rst: "The original HTTP path component ... excluding any query string")."""
    if scope["query_string"]:
        scope["raw_path"] = _raw_path(scope) + b"?" + scope["query_string"]


def raw_path_dropped(scope: Scope) -> None:
    """raw_path is not provided (www.rst: optional; the server may omit it)."""
    scope.pop("raw_path", None)


def query_string_decoded(scope: Scope) -> None:
    """query_string is percent-decoded (www.rst: "URL portion after the ?, percent-encoded")."""
    scope["query_string"] = unquote_to_bytes(scope["query_string"])


def query_string_none(scope: Scope) -> None:
    """query_string is None when the target has no query (www.rst: a byte string, required)."""
    if not scope["query_string"]:
        scope["query_string"] = None


def root_path_by_default(scope: Scope) -> None:
    """root_path is "/default" though none was configured (www.rst: optional, default "")."""
    if not scope.get("root_path"):
        scope["root_path"] = "/default"


def root_path_ignored(scope: Scope) -> None:
    """The configured root path never reaches the app: root_path is "" (www.rst: the mount point)."""
    scope["root_path"] = ""


def root_path_stripped(scope: Scope) -> None:
    """The configured root path is cut off the front of path (www.rst "WSGI Compatibility", asgiref #424)."""
    root = scope.get("root_path") or ""
    if root and scope["path"].startswith(root):
        scope["path"] = scope["path"][len(root) :]


# -- headers (www.rst "HTTP Connection Scope" and "HTTP") -----------------------------------


def header_values_str(headers: Headers) -> Headers:
    """Header values are str, not bytes (www.rst: an iterable of [name, value] two-item iterables of bytes)."""
    return [(name, value.decode("latin-1")) for name, value in headers]


def header_values_reencoded(headers: Headers) -> Headers:
    """Header values are re-encoded latin-1 -> UTF-8 (www.rst "HTTP": headers are kept exactly as provided)."""
    return [(name, value.decode("latin-1").encode("utf-8")) for name, value in headers]


def header_whitespace_collapsed(headers: Headers) -> Headers:
    """Runs of spaces inside a header value collapse to one (www.rst "HTTP": values kept exactly)."""
    return [(name, b" ".join(value.split())) for name, value in headers]


def headers_merged(headers: Headers) -> Headers:
    """Repeated fields are joined with ", " into one (www.rst: duplicates are preserved as received)."""
    merged: dict[bytes, bytes] = {}
    for name, value in headers:
        merged[name] = merged[name] + b", " + value if name in merged else value
    return list(merged.items())


def headers_reversed(headers: Headers) -> Headers:
    """The header list is reversed (www.rst: "the order of header values must be preserved")."""
    return headers[::-1]


def header_names_uppercased(headers: Headers) -> Headers:
    """Header names are upper-cased (www.rst: names should be lower-cased, or kept as sent)."""
    return [(name.upper(), value) for name, value in headers]


def pseudo_header_added(headers: Headers) -> Headers:
    """An HTTP/2-style ":authority" pseudo-header is added (www.rst: pseudo headers must be removed)."""
    host = [value for name, value in headers if name == b"host"]
    return [(b":authority", host[0] if host else b"localhost"), *headers]


def host_dropped(headers: Headers) -> Headers:
    """The host field never reaches the app (www.rst "HTTP": headers are transported as provided)."""
    return [(name, value) for name, value in headers if name.lower() != b"host"]


# -- client, server, extensions, extra keys --------------------------------------------------


def client_port_str(scope: Scope) -> None:
    """client's port is a str (www.rst: client is [host, port], port an int)."""
    host, port = scope["client"]
    scope["client"] = (host, str(port))


def server_port_wrong(scope: Scope) -> None:
    """server names a port the server does not listen on (www.rst: the listening address)."""
    host, port = scope["server"]
    scope["server"] = (host, port + 1)


def extensions_list(scope: Scope) -> None:
    """extensions is a list of names, not a dict of dicts (asgi.rst "Extensions")."""
    scope["extensions"] = ["http.response.trailers"]


def extension_values_none(scope: Scope) -> None:
    """An extension maps to None, not to a dict of options (asgi.rst "Extensions": "an empty dict")."""
    scope["extensions"] = {**(scope.get("extensions") or {}), "http.response.trailers": None}


def extension_advertised(scope: Scope) -> None:
    """http.response.trailers is advertised though the server has no trailers (asgi.rst "Extensions")."""
    scope["extensions"] = {**(scope.get("extensions") or {}), "http.response.trailers": {}}


def extra_scope_key(scope: Scope) -> None:
    """A server-specific key is added to the scope (www.rst allows it; the matrix records it)."""
    scope["mutant_state"] = {}


# -- middlewares with state ------------------------------------------------------------------


def shared_scope(app: ASGIApp) -> ASGIApp:
    """One scope dict is reused for every request, so an app's changes leak into the next
    (www.rst "HTTP Connection Scope": the scope lasts exactly one request)."""
    shared: Scope = {}

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            shared.update(scope)
            scope = shared
        await app(scope, receive, send)

    return mutant


def global_lock(app: ASGIApp) -> ASGIApp:
    """Requests are served one at a time under a process-wide lock (asgi.rst "Overview":
    ASGI serves many connections concurrently; a held long poll blocks everyone)."""
    lock = asyncio.Lock()

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":  # lifespan lasts as long as the server
            await app(scope, receive, send)
            return
        async with lock:
            await app(scope, receive, send)

    return mutant


def unchanged(app: ASGIApp) -> ASGIApp:
    """Nothing is changed: the runner as a plain server (the control)."""
    return app


def no_legacy(app: ASGIApp) -> ASGIApp:
    """Legacy double-callable (ASGI 2) apps are refused at startup (asgi.rst "Legacy
    Applications": servers are encouraged to support both types).

    The refusal happens before any middleware could run: this row's ``legacy=False``
    makes :func:`single_callable` exit instead of adapting the app; requests to an
    ASGI 3 app are untouched.
    """
    return app


# -- the table -------------------------------------------------------------------------------

SCOPE_MUTANTS: Mapping[str, Mutant] = {
    CONTROL: Mutant(unchanged, ()),
    "scope-type": Mutant(on_scope(scope_type_changed), ("http.scope.type",)),
    "non-str-key": Mutant(
        on_scope(non_str_key),
        ("http.scope.dict", "http.scope.extra-keys"),
        keeps=("http.scope.required-keys",),
    ),
    "no-query-string": Mutant(
        on_scope(query_string_dropped),
        ("http.scope.required-keys", "http.scope.query-string", "http.scope.query-string-empty"),
    ),
    "asgi-version-missing": Mutant(
        on_scope(asgi_version_missing), ("http.scope.asgi-version", "http.scope.asgi-version-3")
    ),
    "asgi-version-float": Mutant(
        on_scope(asgi_version_float), ("http.scope.asgi-version", "http.scope.asgi-version-3")
    ),
    "asgi-version-2": Mutant(
        on_scope(asgi_version_2), ("http.scope.asgi-version-3",), keeps=("http.scope.asgi-version",)
    ),
    "spec-version-float": Mutant(on_scope(spec_version_float), ("http.scope.spec-version",)),
    "http-1.0-as-1.1": Mutant(
        on_scope(http_10_as_11),
        ("http.scope.http-version-1.0",),
        keeps=("http.scope.http-version-1.1",),
    ),
    "http-version-prefixed": Mutant(
        on_scope(http_version_prefixed),
        ("http.scope.http-version-1.1", "http.scope.http-version-1.0"),
    ),
    "method-lowercased": Mutant(
        on_scope(method_lowercased),
        ("http.scope.method", "http.scope.method-extension", "http.scope.method-lowercase"),
        server="hypercorn",
    ),
    "extension-method-replaced": Mutant(
        on_scope(extension_method_replaced),
        ("http.scope.method-extension",),
        keeps=("http.scope.method",),
    ),
    "scheme-empty": Mutant(
        on_scope(scheme_empty), ("http.scope.scheme-nonempty", "http.scope.scheme-value")
    ),
    "scheme-https": Mutant(
        on_scope(scheme_https), ("http.scope.scheme-value",), keeps=("http.scope.scheme-nonempty",)
    ),
    "path-not-decoded": Mutant(
        on_scope(path_not_decoded),
        ("http.scope.path-decoded", "http.scope.path-utf8", "http.scope.path-encoded-slash"),
    ),
    "path-latin1": Mutant(
        on_scope(path_latin1), ("http.scope.path-utf8",), keeps=("http.scope.path-decoded",)
    ),
    "encoded-slash-kept": Mutant(
        on_scope(encoded_slash_kept),
        ("http.scope.path-encoded-slash",),
        keeps=("http.scope.path-decoded", "http.scope.path-utf8"),
    ),
    "path-with-query": Mutant(on_scope(path_with_query), ("http.scope.path-no-query",)),
    "raw-path-with-query": Mutant(on_scope(raw_path_with_query), ("http.scope.raw-path",)),
    "raw-path-dropped": Mutant(
        on_scope(raw_path_dropped),
        ("http.scope.raw-path-provided",),
        removes=("http.scope.raw-path-provided",),
        keeps=("http.scope.raw-path",),
    ),
    "query-string-decoded": Mutant(on_scope(query_string_decoded), ("http.scope.query-string",)),
    "query-string-none": Mutant(
        on_scope(query_string_none),
        ("http.scope.query-string-empty",),
        keeps=("http.scope.query-string",),
    ),
    "root-path-by-default": Mutant(
        on_scope(root_path_by_default),
        ("http.scope.root-path-default",),
        keeps=("http.scope.root-path-configured",),
    ),
    "root-path-ignored": Mutant(
        on_scope(root_path_ignored),
        ("http.scope.root-path-configured", "http.scope.root-path-and-path"),
        keeps=("http.scope.root-path-default",),
    ),
    "root-path-stripped": Mutant(
        on_scope(root_path_stripped),
        ("http.scope.root-path-and-path",),
        keeps=("http.scope.root-path-configured",),
    ),
    "header-values-str": Mutant(
        on_headers(header_values_str),
        ("http.scope.headers-type", "http.scope.headers-exact-values"),
    ),
    "header-values-reencoded": Mutant(
        on_headers(header_values_reencoded),
        ("http.scope.headers-exact-values",),
        keeps=("http.scope.headers-type",),
    ),
    "header-whitespace-collapsed": Mutant(
        on_headers(header_whitespace_collapsed), ("http.scope.headers-exact-values",)
    ),
    "headers-merged": Mutant(
        on_headers(headers_merged),
        ("http.scope.headers-duplicates", "http.scope.headers-value-order"),
    ),
    "headers-reversed": Mutant(
        on_headers(headers_reversed),
        ("http.scope.headers-value-order",),
        keeps=("http.scope.headers-duplicates",),
    ),
    "header-names-uppercased": Mutant(
        on_headers(header_names_uppercased),
        ("http.scope.headers-name-case",),
        keeps=("http.scope.headers-exact-values", "http.scope.headers-complete"),
    ),
    "pseudo-header": Mutant(on_headers(pseudo_header_added), ("http.scope.headers-no-pseudo",)),
    "host-dropped": Mutant(on_headers(host_dropped), ("http.scope.headers-complete",)),
    "client-port-str": Mutant(on_scope(client_port_str), ("http.scope.client",)),
    "server-port-wrong": Mutant(on_scope(server_port_wrong), ("http.scope.server",)),
    "extensions-list": Mutant(on_scope(extensions_list), ("http.scope.extensions",)),
    "extension-values-none": Mutant(
        on_scope(extension_values_none),
        ("http.scope.extensions", "http.scope.extensions-advertised"),
    ),
    "extension-advertised": Mutant(
        on_scope(extension_advertised),
        ("http.scope.extensions-advertised",),
        keeps=("http.scope.extensions",),
    ),
    "extra-scope-key": Mutant(
        on_scope(extra_scope_key), ("http.scope.extra-keys",), keeps=("http.scope.dict",)
    ),
    "shared-scope": Mutant(shared_scope, ("http.scope.fresh-per-request",)),
    "global-lock": Mutant(
        global_lock, ("http.app.concurrent-requests", "http.app.long-poll-not-blocking")
    ),
    "no-legacy": Mutant(no_legacy, ("core.legacy-asgi2",), legacy=False),
}


def _all_mutants() -> dict[str, Mutant]:
    """This module's table plus every area's (``tests/mutant_areas/*.py``, one ``MUTANTS`` each).

    Areas live in their own modules so that each protocol area keeps its mutants
    next to each other; a name may appear only once across all of them.
    """
    import pkgutil

    import tests.mutant_areas as areas

    table = dict(SCOPE_MUTANTS)
    for info in sorted(pkgutil.iter_modules(areas.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"tests.mutant_areas.{info.name}")
        for name, mutant in module.MUTANTS.items():
            if name in table:
                raise ValueError(f"mutant {name!r} of {info.name} is already defined")
            table[name] = mutant
    return table


# Run as ``python -m tests.mutants`` this file is ``__main__``; the area modules import
# ``tests.mutants``, so the table is built only in that canonical module (see the end).
MUTANTS: Mapping[str, Mutant] = _all_mutants() if __name__ != "__main__" else {}


# -- serving ---------------------------------------------------------------------------------


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (dots in the attribute walk into it), as servers do."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected an app as module:attribute, got {spec!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def single_callable(app: Any, mutant: Mutant) -> ASGIApp:
    """The app as ASGI 3: a legacy one through asgiref's adapter, or refused by ``no-legacy``."""
    from asgiref import compatibility

    # asgiref's helpers are unannotated; these are the signatures they document.
    is_double: Callable[[Any], bool] = compatibility.is_double_callable
    adapt: Callable[[Any], ASGIApp] = compatibility.guarantee_single_callable
    if is_double(app) and not mutant.legacy:
        raise SystemExit("mutant no-legacy: refusing a legacy double-callable (ASGI 2) app")
    return adapt(app)


def serve_uvicorn(
    app: ASGIApp,
    host: str,
    port: int,
    root_path: str,
    options: Mapping[str, Any] | None = None,
    server: Callable[[Any], Any] | None = None,
) -> None:
    """uvicorn as its CLI runs it; a short graceful timeout (:data:`GRACEFUL_UNITS`) so a
    stuck mutant stops promptly.

    ``options`` override these settings (``lifespan="on"``); ``server`` replaces
    ``uvicorn.Server`` (a subclass that changes the shutdown sequence).
    """
    import uvicorn

    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "root_path": root_path,
        "lifespan": "auto",
        "log_level": "warning",
        "access_log": False,
        "interface": "asgi3",
        "timeout_graceful_shutdown": units(GRACEFUL_UNITS),
        **dict(options or {}),
    }
    config = uvicorn.Config(app, **settings)
    (server or uvicorn.Server)(config).run()


def lenient_h2() -> None:
    """Make every ``h2`` connection of this process validate and normalise nothing."""
    import h2.config

    original = h2.config.H2Configuration.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.validate_inbound_headers = False
        self.validate_outbound_headers = False
        self.normalize_inbound_headers = False
        self.normalize_outbound_headers = False

    h2.config.H2Configuration.__init__ = init  # type: ignore[method-assign]


def lenient_h3() -> None:
    """Make every HTTP/3 connection of this process take requests as they come: aioquic
    checks neither fields, pseudo-header fields, trailers nor content-length."""
    import aioquic.h3.connection as h3

    def accept(*args: Any, **kwargs: Any) -> None:
        return None

    h3.validate_request_headers = accept
    h3.validate_trailers = accept
    h3.H3Connection._check_content_length = accept  # type: ignore[method-assign]


async def serve_hypercorn(
    app: ASGIApp,
    host: str,
    port: int,
    root_path: str,
    tls: tuple[str, str] | None = None,
    quic_port: int | None = None,
) -> None:
    """hypercorn's asyncio worker, stopped by SIGTERM or SIGINT like its CLI.

    A plain bind serves HTTP/1.1 and HTTP/2 with prior knowledge (the ``h2c`` column);
    with a certificate and a QUIC port, HTTP/3 too (the ``h3`` column).
    """
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    if tls is not None:
        config.certfile, config.keyfile = tls
    if quic_port is not None:
        config.quic_bind = [f"{host}:{quic_port}"]
    config.root_path = root_path
    config.loglevel = "WARNING"
    config.graceful_timeout = units(GRACEFUL_UNITS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    framework: Any = app  # hypercorn's Framework type names its own scope TypedDicts
    await serve(framework, config, shutdown_trigger=stop.wait, mode="asgi")


def trusting_strangers(ca_certs: str) -> str:
    """A CA bundle of ``ca_certs`` and the session's stranger CA, which lies beside it
    (conformance/clients/tls.py writes both into the session's directory)."""
    import tempfile

    given = Path(ca_certs)
    bundle = given.read_bytes() + given.with_name("stranger-ca.pem").read_bytes()
    handle, path = tempfile.mkstemp(suffix=".pem", dir=given.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(bundle)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutants", description="Serve APP through one mutant server."
    )
    parser.add_argument("mutant", choices=sorted(MUTANTS))
    parser.add_argument("app", help="the ASGI app as module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root-path", default="")
    parser.add_argument("--server", choices=SERVERS, help="override the mutant's server")
    parser.add_argument("--certfile", help="serve TLS with this certificate (and --keyfile)")
    parser.add_argument("--keyfile")
    parser.add_argument("--ca-certs", help="ask for an optional client certificate from this CA")
    parser.add_argument("--quic-port", type=int, help="serve HTTP/3 on this UDP port (hypercorn)")
    args = parser.parse_args(argv)
    mutant = MUTANTS[args.mutant]
    app = mutant.middleware(single_callable(load_app(args.app), mutant))
    server = args.server or mutant.server
    if mutant.lenient_h2:
        lenient_h2()
    if mutant.lenient_h3:
        lenient_h3()
    if server == "hypercorn":
        cert = (args.certfile, args.keyfile) if args.certfile else None
        asyncio.run(
            serve_hypercorn(app, args.host, args.port, args.root_path, cert, args.quic_port)
        )
    else:
        tls: dict[str, Any] = {}
        if args.certfile:
            tls = {"ssl_certfile": args.certfile, "ssl_keyfile": args.keyfile}
        if args.ca_certs:
            import ssl

            ca_certs = (
                trusting_strangers(args.ca_certs) if mutant.trusts_strangers else args.ca_certs
            )
            tls |= {"ssl_ca_certs": ca_certs, "ssl_cert_reqs": ssl.CERT_OPTIONAL}
        serve_uvicorn(
            app,
            args.host,
            args.port,
            args.root_path,
            {**tls, **dict(mutant.uvicorn_options)},
            mutant.uvicorn_server,
        )
    return 0


# -- as a pytest plugin (-p tests.mutants) ---------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep a mutant's checks for the rows it breaks or keeps; the controls keep every check.

    Under xdist the plugin keeps each column on one worker (conformance/_xdist.py).
    """
    from conformance._fixtures import judged_requirement

    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    # A control on a protocol column proves only what its mutants claim there.
    column_claims: dict[str, set[str]] = {}
    for name, entry in MUTANTS.items():
        if entry.column:
            column_claims.setdefault(control_of(name), set()).update((*entry.breaks, *entry.keeps))
    for item in items:
        spec = getattr(item, "callspec", None)
        target = str(spec.params.get("asgi_server", "")) if spec is not None else ""
        rid = judged_requirement(item)
        base = target.partition("+")[0]
        mutant = MUTANTS.get(base.removeprefix(PREFIX)) if base.startswith(PREFIX) else None
        if mutant is not None:
            claims: set[str] | None = {*mutant.breaks, *mutant.keeps}
        else:
            claims = column_claims.get(target)
        if claims is not None and rid is not None and rid not in claims:
            dropped.append(item)
            continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


if __name__ == "__main__":
    from tests.mutants import main as canonical_main

    sys.exit(canonical_main())
