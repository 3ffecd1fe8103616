"""The HTTP connection scope (www.rst "HTTP Connection Scope"), on every wire.

Each check sends a request whose fields it controls exactly (the raw HTTP/1.1
client writes them as given; the HTTP/2 client sends them unnormalised, mapping
only ``Host`` onto ``:authority``) and judges the scope the probe app reports
through the side channel.
"""

from __future__ import annotations

from typing import Any

from conformance import requirement
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance._verdicts import ConformanceFailure
from conformance.apps._encoding import Foreign, ForeignDict
from conformance.suite._refusals import HTTP10_REFUSABLE
from conformance.suite._versions import VERSION, judge_spec_version


#: Keys the spec defines for the HTTP scope (www.rst, tls.rst and lifespan state).
SPEC_KEYS = frozenset(
    {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state", "extensions",
    }
)  # fmt: skip
REQUIRED_KEYS = ("type", "asgi", "http_version", "method", "path", "query_string", "headers")


def _pairs(headers: Any) -> list[tuple[Any, Any]]:
    """The header list as (name, value) pairs, without judging types."""
    return [(pair[0], pair[1]) for pair in headers]


def _values(scope: dict[str, Any], name: bytes) -> list[Any]:
    return [v for k, v in _pairs(scope["headers"]) if isinstance(k, bytes) and k.lower() == name]


@requirement("http.scope.type")
async def test_scope_type_is_http(asgi: Probe) -> None:
    """An HTTP request reaches the app with scope['type'] == "http"."""
    scope = await asgi.scope_of()
    observed = scope.get("type")
    expect(observed == "http", sent="GET /", expected="'http'", observed=repr(observed))


@requirement("http.scope.dict")
async def test_scope_is_dict_with_str_keys(asgi: Probe) -> None:
    """The scope and its nested asgi dict are dicts whose keys are all str."""
    scope = await asgi.scope_of()
    expect(isinstance(scope, dict), sent="GET /", expected="a dict", observed=type(scope).__name__)
    bad = [repr(k) for k in scope if not isinstance(k, str)]
    asgi_dict = scope.get("asgi")
    if isinstance(asgi_dict, dict):
        bad += [f"asgi[{k!r}]" for k in asgi_dict if not isinstance(k, str)]
    expect(not bad, sent="GET /", expected="only str keys", observed=f"non-str keys {bad}")
    if isinstance(scope, ForeignDict):
        asgi.observe(f"the scope is a dict subclass, {scope.type_name}")


@requirement("http.scope.required-keys")
async def test_scope_has_every_required_key(asgi: Probe) -> None:
    """type, asgi, http_version, method, path, query_string and headers are present."""
    scope = await asgi.scope_of()
    missing = [key for key in REQUIRED_KEYS if key not in scope]
    expect(
        not missing,
        sent="GET /",
        expected=f"keys {list(REQUIRED_KEYS)}",
        observed=f"missing {missing}",
    )
    asgi.observe(f"keys: {sorted(scope, key=str)}")


@requirement("http.scope.asgi-version")
async def test_scope_asgi_version_is_str(asgi: Probe) -> None:
    """scope['asgi'] is a dict with a 'version' str such as "3.0"."""
    scope = await asgi.scope_of()
    versions = scope.get("asgi")
    expect(
        isinstance(versions, dict),
        sent="GET /",
        expected="scope['asgi'] a dict",
        observed=repr(versions),
    )
    version = versions.get("version") if isinstance(versions, dict) else None
    expect(
        isinstance(version, str) and bool(VERSION.match(version)),
        sent="GET /",
        expected="asgi['version'] a str like '3.0'",
        observed=repr(version),
    )
    asgi.observe(f"asgi={versions!r}")


@requirement("http.scope.asgi-version-3")
async def test_single_callable_app_is_told_version_3(asgi: Probe) -> None:
    """A single-callable app is told asgi.version "3.0"."""
    scope = await asgi.scope_of()
    version = (scope.get("asgi") or {}).get("version")
    expect(
        version == "3.0", sent="GET / to an ASGI 3 app", expected="'3.0'", observed=repr(version)
    )


@requirement("http.scope.spec-version")
async def test_spec_version_is_a_version_string(asgi: Probe) -> None:
    """asgi['spec_version'], if present, is a str "N.N"; absent means "2.0"."""
    scope = await asgi.scope_of()
    versions = scope.get("asgi") or {}
    judge_spec_version(asgi, versions, sent="GET /", like="2.3")


@requirement("http.scope.http-version-1.1")
async def test_http_version_is_1_1_for_http11(asgi: Probe) -> None:
    """An HTTP/1.1 request line gives http_version "1.1"."""
    scope = await asgi.scope_of(http_version="1.1")
    observed = scope.get("http_version")
    expect(observed == "1.1", sent="GET / HTTP/1.1", expected="'1.1'", observed=repr(observed))


@requirement("http.scope.http-version-1.0")
async def test_http_version_is_1_0_for_http10(asgi: Probe) -> None:
    """An HTTP/1.0 request line gives http_version "1.0"."""
    scope = await asgi.scope_of(http_version="1.0", may_refuse=HTTP10_REFUSABLE)
    observed = scope.get("http_version")
    expect(observed == "1.0", sent="GET / HTTP/1.0", expected="'1.0'", observed=repr(observed))


STANDARD_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS")


@requirement("http.scope.method")
async def test_standard_methods_arrive_unchanged(asgi: Probe) -> None:
    """GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS arrive as the same upper-case str."""
    wrong = []
    for method in STANDARD_METHODS:
        scope = await asgi.scope_of(method=method)
        if scope.get("method") != method.decode():
            wrong.append(f"{method.decode()} -> {scope.get('method')!r}")
    expect(
        not wrong, sent="each standard method", expected="the same str", observed="; ".join(wrong)
    )


@requirement("http.scope.method-extension")
async def test_extension_methods_arrive_unchanged(asgi: Probe) -> None:
    """Extension methods (PROPFIND, PURGE) arrive unchanged."""
    wrong = []
    for method in (b"PROPFIND", b"PURGE"):
        exchange = await asgi.send(method=method)
        scope = exchange.app_scope()
        if scope.get("method") != method.decode():
            wrong.append(f"{method.decode()} -> {scope.get('method')!r}")
    expect(not wrong, sent="PROPFIND and PURGE", expected="the same str", observed="; ".join(wrong))


@requirement("http.scope.method-lowercase")
async def test_lowercase_method_is_recorded(asgi: Probe) -> None:
    """Records what a lower-case method on the wire becomes (the spec and HTTP disagree)."""
    exchange = await asgi.send(method=b"get")
    calls = exchange.observations("call", timeout=0 if exchange.response.status >= 400 else None)
    if calls:
        asgi.observe(f"'get' reached the app as {calls[0]['scope'].get('method')!r}")
    else:
        asgi.observe(f"'get' was refused with status {exchange.response.status}")


@requirement("http.scope.scheme-nonempty")
async def test_scheme_is_not_empty(asgi: Probe) -> None:
    """scheme, when present, is a non-empty str."""
    scope = await asgi.scope_of()
    if "scheme" not in scope:
        asgi.observe("scheme absent (means 'http')")
        return
    scheme = scope["scheme"]
    expect(
        isinstance(scheme, str) and scheme != "",
        sent="GET /",
        expected="a non-empty str",
        observed=repr(scheme),
    )


@requirement("http.scope.scheme-value")
async def test_scheme_is_http_on_cleartext(asgi: Probe) -> None:
    """On a cleartext connection scheme is "http" (or absent, which means "http")."""
    scope = await asgi.scope_of()
    scheme = scope.get("scheme", "http")
    expect(scheme == "http", sent="GET / on cleartext", expected="'http'", observed=repr(scheme))


PATH_VECTORS: tuple[tuple[bytes, str], ...] = (
    (b"/a%20b", "/a b"),
    (b"/%25", "/%"),
    (b"/x%3Fy", "/x?y"),
    (b"/plain/path", "/plain/path"),
)


@requirement("http.scope.path-decoded")
async def test_path_is_percent_decoded(asgi: Probe) -> None:
    """path has every percent-escape decoded (/a%20b is '/a b', /%25 is '/%')."""
    wrong = []
    for raw, decoded in PATH_VECTORS:
        scope = await asgi.scope_of(target=raw)
        if scope.get("path") != decoded:
            wrong.append(f"{raw.decode()} -> {scope.get('path')!r} (expected {decoded!r})")
    expect(
        not wrong, sent="targets with escapes", expected="decoded paths", observed="; ".join(wrong)
    )


@requirement("http.scope.path-utf8")
async def test_path_escapes_are_decoded_as_utf8(asgi: Probe) -> None:
    """/caf%C3%A9 gives '/café' and /%E2%82%AC gives '/€': the decoded bytes are UTF-8."""
    wrong = []
    for raw, decoded in ((b"/caf%C3%A9", "/café"), (b"/%E2%82%AC", "/€")):
        scope = await asgi.scope_of(target=raw)
        if scope.get("path") != decoded:
            wrong.append(f"{raw.decode()} -> {scope.get('path')!r} (expected {decoded!r})")
    expect(not wrong, sent="UTF-8 escapes", expected="UTF-8 decoding", observed="; ".join(wrong))


@requirement("http.scope.path-encoded-slash")
async def test_encoded_slash_is_recorded(asgi: Probe) -> None:
    """Records what /a%2Fb becomes: '/a/b' by the letter of the spec, or kept as '/a%2Fb'."""
    scope = await asgi.scope_of(target=b"/a%2Fb")
    asgi.observe(f"/a%2Fb -> path {scope.get('path')!r}")


@requirement("http.scope.path-no-query")
async def test_path_excludes_query(asgi: Probe) -> None:
    """path never includes the query string or the '?'."""
    wrong = []
    for raw in (b"/p?x=1", b"/p?", b"/p?x=/y"):
        scope = await asgi.scope_of(target=raw)
        if scope.get("path") != "/p":
            wrong.append(f"{raw.decode()} -> {scope.get('path')!r}")
    expect(not wrong, sent="/p with queries", expected="path '/p'", observed="; ".join(wrong))


RAW_PATH_VECTORS: tuple[tuple[bytes, bytes], ...] = (
    (b"/a%20b/caf%C3%A9?q=%20", b"/a%20b/caf%C3%A9"),
    (b"/a%2Fb", b"/a%2Fb"),
    (b"/x?y", b"/x"),
)


@requirement("http.scope.raw-path")
async def test_raw_path_is_the_bytes_received(asgi: Probe) -> None:
    """raw_path, when given, is the path bytes exactly as sent, without the query."""
    wrong = []
    for target, expected in RAW_PATH_VECTORS:
        scope = await asgi.scope_of(target=target)
        raw = scope.get("raw_path")
        if raw is None:
            asgi.observe("raw_path not provided")
            return
        if raw != expected:
            wrong.append(f"{target!r} -> {raw!r} (expected {expected!r})")
    expect(not wrong, sent="targets with escapes", expected="raw bytes", observed="; ".join(wrong))


@requirement("http.scope.raw-path-provided")
async def test_raw_path_is_provided(asgi: Probe) -> None:
    """raw_path is present and not None (optional: unsupported otherwise)."""
    from conformance._verdicts import Unsupported

    scope = await asgi.scope_of(target=b"/a%20b")
    if scope.get("raw_path") is None:
        raise Unsupported("the server does not provide raw_path (the spec allows this)")
    asgi.observe(f"raw_path {scope['raw_path']!r}")


QUERY_VECTORS: tuple[tuple[bytes, bytes], ...] = (
    (b"/q?a=%20&b=c+d&e&f=%2F", b"a=%20&b=c+d&e&f=%2F"),
    (b"/q?x=1?y=2", b"x=1?y=2"),
    (b"/q?caf%C3%A9=%E2%82%AC", b"caf%C3%A9=%E2%82%AC"),
)


@requirement("http.scope.query-string")
async def test_query_string_is_raw_bytes(asgi: Probe) -> None:
    """query_string is the bytes after the first '?', still percent-encoded, '+' untouched."""
    wrong = []
    for target, expected in QUERY_VECTORS:
        scope = await asgi.scope_of(target=target)
        if scope.get("query_string") != expected:
            wrong.append(f"{target!r} -> {scope.get('query_string')!r} (expected {expected!r})")
    expect(not wrong, sent="queries with escapes", expected="raw bytes", observed="; ".join(wrong))


@requirement("http.scope.query-string-empty")
async def test_query_string_is_empty_bytes_without_query(asgi: Probe) -> None:
    """Without a query (or with a bare '?') query_string is b""."""
    wrong = []
    for target in (b"/p", b"/p?"):
        scope = await asgi.scope_of(target=target)
        if "query_string" not in scope or scope["query_string"] != b"":
            wrong.append(f"{target!r} -> {scope.get('query_string', '<missing>')!r}")
    expect(not wrong, sent="/p and /p?", expected="b''", observed="; ".join(wrong))


@requirement("http.scope.headers-type")
async def test_headers_are_pairs_of_bytes(asgi: Probe) -> None:
    """headers is an iterable of [name, value] pairs, both bytes."""
    scope = await asgi.scope_of(headers=[(b"x-one", b"1")])
    headers = scope.get("headers")
    if isinstance(headers, (bytes, str, dict)) or not isinstance(headers, (list, tuple, Foreign)):
        raise ConformanceFailure(f"sent GET /; expected an iterable of pairs; observed {headers!r}")
    bad = []
    for pair in headers:
        if not (
            isinstance(pair, (list, tuple, Foreign))
            and len(pair) == 2
            and isinstance(pair[0], bytes)
            and isinstance(pair[1], bytes)
        ):
            bad.append(repr(pair))
    expect(
        not bad,
        sent="GET / with x-one: 1",
        expected="(bytes, bytes) pairs",
        observed=", ".join(bad[:5]),
    )
    asgi.observe(f"headers container {type(headers).__name__}, pairs {type(headers[0]).__name__}")


@requirement("http.scope.headers-exact-values")
async def test_header_values_are_exact_bytes(asgi: Probe) -> None:
    """Values arrive byte for byte: obs-text, inner spaces, commas and empty values kept."""
    sent = [
        (b"x-latin", b"caf\xe9"),
        (b"x-list", b"a, b,c"),
        (b"x-spaces", b"a  b"),
        (b"x-empty", b""),
    ]
    scope = await asgi.scope_of(headers=sent)
    wrong = []
    for name, value in sent:
        got = _values(scope, name)
        if got != [value]:
            wrong.append(f"{name.decode()}: sent {value!r}, got {got!r}")
    expect(
        not wrong,
        sent="headers with unusual values",
        expected="the exact bytes",
        observed="; ".join(wrong),
    )


@requirement("http.scope.headers-duplicates")
async def test_duplicate_headers_stay_separate(asgi: Probe) -> None:
    """x-dup: 1 and x-dup: 2 give two entries, as do two cookie lines.

    Over HTTP/2 and HTTP/3 the cookie lines may also arrive joined by "; ": RFC 9113
    section 8.2.3 and RFC 9114 section 4.2.1 ask exactly that of a server handing them
    to an application.
    """
    scope = await asgi.scope_of(
        headers=[(b"x-dup", b"1"), (b"x-dup", b"2"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    )
    dup, cookie = _values(scope, b"x-dup"), _values(scope, b"cookie")
    cookies_ok = sorted(cookie) == [b"a=1", b"b=2"]
    joinable = {"h2": "RFC 9113 8.2.3", "h3": "RFC 9114 4.2.1"}.get(asgi.wire)
    if joinable:
        cookies_ok = cookies_ok or cookie == [b"a=1; b=2"]
    expect(
        sorted(dup) == [b"1", b"2"] and cookies_ok,
        sent="x-dup: 1, x-dup: 2, cookie: a=1, cookie: b=2",
        expected="four separate entries"
        + (f" (or the cookies joined, {joinable})" if joinable else ""),
        observed=f"x-dup {dup!r}, cookie {cookie!r}",
    )


@requirement("http.scope.headers-value-order")
async def test_values_of_one_name_keep_their_order(asgi: Probe) -> None:
    """x-a: 1, x-b: 2, x-a: 3 gives the x-a values in the order [1, 3]."""
    scope = await asgi.scope_of(
        headers=[(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3"), (b"x-a", b"0")]
    )
    got = _values(scope, b"x-a")
    expect(
        got == [b"1", b"3", b"0"],
        sent="x-a: 1, x-b: 2, x-a: 3, x-a: 0",
        expected="x-a values [1, 3, 0]",
        observed=repr(got),
    )
    names = [
        k
        for k, _ in _pairs(scope["headers"])
        if isinstance(k, bytes) and k.lower() in (b"x-a", b"x-b")
    ]
    asgi.observe(f"whole-list order {[n.decode('latin-1') for n in names]}")


@requirement("http.scope.headers-name-case")
async def test_header_names_are_lowercased_or_kept(asgi: Probe) -> None:
    """X-Mixed-Case arrives as x-mixed-case (or, best effort, as sent)."""
    scope = await asgi.scope_of(headers=[(b"X-Mixed-Case", b"v")])
    names = [
        k
        for k, _ in _pairs(scope["headers"])
        if isinstance(k, bytes) and k.lower() == b"x-mixed-case"
    ]
    expect(
        bool(names) and all(n in (b"x-mixed-case", b"X-Mixed-Case") for n in names),
        sent="X-Mixed-Case: v",
        expected="b'x-mixed-case' (or b'X-Mixed-Case')",
        observed=repr(names),
    )
    asgi.observe(f"name arrived as {names[0]!r}")


@requirement("http.scope.headers-no-pseudo")
async def test_no_pseudo_headers(asgi: Probe) -> None:
    """No header name starts with ':' (pseudo-headers are removed)."""
    scope = await asgi.scope_of(headers=[(b"x-one", b"1")])
    pseudo = [k for k, _ in _pairs(scope["headers"]) if isinstance(k, bytes) and k.startswith(b":")]
    expect(not pseudo, sent="GET / over HTTP/1.1", expected="no ':' names", observed=repr(pseudo))


@requirement("http.scope.headers-complete")
async def test_every_request_field_is_passed_on(asgi: Probe) -> None:
    """host, content-length, content-type and user-agent all reach the app.

    Connection and TE are hop-by-hop (RFC 9110 sections 7.6.1, 10.1.4): a server built
    on a proxy (Envoy) consumes them, as an intermediary must, so whether they reach the
    app is recorded, not judged.  HTTP/2 has no ``Connection`` field (RFC 9113 section
    8.2.2); ``Host`` goes as ``:authority``, which the server gives the app as ``host``.
    """
    end_to_end = [
        (b"Host", b"example.test"),
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"3"),
        (b"User-Agent", b"asgi-conformance"),
    ]
    hop_by_hop = [(b"Connection", b"keep-alive"), (b"TE", b"trailers")]
    if asgi.wire == "h2":
        hop_by_hop = [(b"TE", b"trailers")]
    scope = await asgi.scope_of(method=b"POST", headers=[*end_to_end, *hop_by_hop], body=b"abc")
    missing = [name.decode() for name, _ in end_to_end if not _values(scope, name.lower())]
    expect(
        not missing,
        sent=f"{len(end_to_end)} end-to-end fields",
        expected="all of them",
        observed=f"missing {missing}",
    )
    kept = [name.decode() for name, _ in hop_by_hop if _values(scope, name.lower())]
    asgi.observe(f"hop-by-hop fields passed on: {kept}")


@requirement("http.scope.client")
async def test_client_is_the_peer_address(asgi: Probe) -> None:
    """client, when present, is [host, port] of our socket: str address, int port."""
    async with await asgi.begin() as live:
        await live.read_response()
        ours = live.connection.local_address
    rid = live.rid
    calls = asgi.server.channel.wait_for(rid, "call", units(5))
    expect(bool(calls), sent="GET /", expected="the app to be called", observed="no call")
    client = calls[0]["scope"].get("client")
    if client is None:
        asgi.observe("client not provided")
        return
    ok = (
        len(client) == 2
        and isinstance(client[0], str)
        and type(client[1]) is int
        and (client[0], client[1]) == (ours[0], ours[1])
    )
    expect(
        ok,
        sent=f"GET / from {ours[0]}:{ours[1]}",
        expected=f"[{ours[0]!r}, {ours[1]}]",
        observed=repr(client),
    )


@requirement("http.scope.server")
async def test_server_is_the_listening_address(asgi: Probe) -> None:
    """server, when present, is [host, port] of the listening socket: str and int."""
    server = asgi.instance()
    port = server.port_for(asgi.wire)  # HTTP/3 listens on its UDP socket
    scope = await asgi.scope_of()
    value = scope.get("server")
    if value is None:
        asgi.observe("server not provided")
        return
    ok = (
        len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
        and (value[0], value[1]) == (server.host, port)
    )
    expect(
        ok,
        sent=f"GET / to {server.host}:{port}",
        expected=f"[{server.host!r}, {port}]",
        observed=repr(value),
    )


@requirement("http.scope.extensions")
async def test_extensions_maps_names_to_dicts(asgi: Probe) -> None:
    """extensions, when present, is a dict of str names to dicts."""
    scope = await asgi.scope_of()
    if "extensions" not in scope or scope["extensions"] is None:
        asgi.observe("extensions " + ("None" if "extensions" in scope else "absent"))
        return
    extensions = scope["extensions"]
    expect(isinstance(extensions, dict), sent="GET /", expected="a dict", observed=repr(extensions))
    bad = {k: v for k, v in extensions.items() if not isinstance(k, str) or not isinstance(v, dict)}
    expect(not bad, sent="GET /", expected="str names mapped to dicts", observed=repr(bad))


@requirement("http.scope.extensions-advertised")
async def test_advertised_extensions_are_recorded(asgi: Probe) -> None:
    """Records the extension names the server advertises on an HTTP/1.1 request."""
    scope = await asgi.scope_of()
    extensions = scope.get("extensions")
    names = sorted(extensions) if isinstance(extensions, dict) else []
    asgi.observe("advertises " + (", ".join(names) if names else "no extensions"))


@requirement("http.scope.extra-keys")
async def test_extra_scope_keys_are_recorded(asgi: Probe) -> None:
    """Records keys outside the spec's list that the server adds to the scope."""
    scope = await asgi.scope_of()
    extra = sorted(str(key) for key in set(scope) - SPEC_KEYS)
    asgi.observe("extra keys: " + (", ".join(extra) if extra else "none"))


@requirement("http.scope.fresh-per-request")
async def test_scope_changes_do_not_leak_to_next_request(asgi: Probe) -> None:
    """An app that mutates its scope does not change the next request's scope on the same connection."""
    from conformance.clients import Request

    second = asgi.new_rid()
    async with await asgi.begin(behaviour="mutate") as live:
        await live.read_response()
        follow_up = Request(headers=asgi.probe_headers(second, "echo"))
        await live.connection.exchange(follow_up, timeout=units(5))
    calls = asgi.server.channel.wait_for(second, "call", units(5))
    expect(
        bool(calls), sent="two requests on one connection", expected="two app calls", observed="one"
    )
    scope = calls[0]["scope"]
    leaked = [k for k in scope if k == "x_probe_leak"]
    leaked += [repr(k) for k, _ in _pairs(scope["headers"]) if k == b"x-probe-leak"]
    expect(
        not leaked,
        sent="request 1 sets scope['x_probe_leak'] and appends a header; "
        "request 2 on the same connection",
        expected="a fresh scope for request 2",
        observed=f"leaked {leaked}",
    )
