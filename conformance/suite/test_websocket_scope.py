"""The WebSocket connection scope (www.rst "Websocket Connection Scope").

Two upgrade requests carry everything these checks look at, so they are sent
once per target, as scenarios started with the server (:mod:`conformance._batch`):
a *rich* one (an escaped UTF-8 path, a query, repeated and mixed-case fields,
three offered subprotocols) and a *plain* one (``/``, nothing offered).  Each
check judges one key of the scope the probe app reported for them.

``state`` is judged by the lifespan area (its ``lifespan.state.*`` rows cover
WebSocket scopes), and ``wss`` waits for TLS in the suite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from conformance import _ws_steps as ws
from conformance import requirement
from conformance._batch import scenario, scenarios
from conformance._probe import Probe, expect
from conformance._timing import units
from conformance.apps._encoding import Foreign
from conformance.suite._versions import VERSION, judge_spec_version


#: The rich handshake: what was sent, for the checks to compare with.
RAW_PATH = b"/caf%C3%A9/a%20b"
QUERY = b"x=%20&y=c+d&z=%C3%A9"
TARGET = (RAW_PATH + b"?" + QUERY).decode("ascii")
HEADERS = [
    (b"X-Mixed-Case", b"Value  with  spaces"),
    (b"x-dup", b"1"),
    (b"x-order-a", b"a"),
    (b"x-dup", b"2"),
    (b"x-order-b", b"b"),
]
SUBPROTOCOLS = ["chat", "superchat", "v2.json"]
SENT = f"an upgrade GET {TARGET} offering subprotocols {SUBPROTOCOLS}"


@dataclass(frozen=True)
class Seen:
    """The scope the app got for one handshake, and the client's own address."""

    scope: dict[str, Any]
    client_address: tuple[str, int]
    server_address: tuple[str, int]
    #: The fields the handshake itself adds (the upgrade's, or extended CONNECT's).
    handshake_fields: frozenset[bytes]


async def _handshake(asgi: Probe, **request: Any) -> Seen:
    script = [ws.connect(), ws.accept(), ws.close(1000)]
    async with await asgi.websocket(script, timeout=units(3), **request) as session:
        scope = await session.app_scope()
        await session.client.wait_closed(units(2))
    server = asgi.instance()
    address = (server.host, server.port_for(asgi.wire))
    return Seen(scope, session.client.local_address, address, session.client.handshake_fields)


@scenarios(__name__)
def _scenarios() -> dict[str, Callable[[Probe], Awaitable[Any]]]:
    """The two handshakes every check of this module reads."""

    async def rich(asgi: Probe) -> Seen:
        return await _handshake(asgi, target=TARGET, headers=HEADERS, subprotocols=SUBPROTOCOLS)

    async def plain(asgi: Probe) -> Seen:
        return await _handshake(asgi)

    return {"rich": rich, "plain": plain}


async def _rich(asgi: Probe) -> dict[str, Any]:
    seen: Seen = await scenario(asgi, __name__, "rich")
    return seen.scope


async def _plain(asgi: Probe) -> dict[str, Any]:
    seen: Seen = await scenario(asgi, __name__, "plain")
    return seen.scope


def _headers(scope: dict[str, Any]) -> list[Any]:
    headers = scope.get("headers")
    return list(headers) if isinstance(headers, (list, tuple, Foreign)) else []


@requirement("websocket.scope.type")
async def test_upgrade_reaches_the_app_as_type_websocket(asgi: Probe) -> None:
    """An upgrade request reaches the app with scope['type'] == "websocket"."""
    scope = await _plain(asgi)
    observed = scope.get("type")
    expect(
        observed == "websocket",
        sent="an upgrade GET /",
        expected="'websocket'",
        observed=repr(observed),
    )


@requirement("websocket.scope.asgi-version")
async def test_websocket_asgi_version_is_a_version_string(asgi: Probe) -> None:
    """scope['asgi']['version'] is present and a str like "3.0"."""
    versions = (await _plain(asgi)).get("asgi")
    version = versions.get("version") if isinstance(versions, dict) else None
    expect(
        isinstance(version, str) and bool(VERSION.match(version)),
        sent="an upgrade GET /",
        expected="scope['asgi']['version'] a str like '3.0'",
        observed=repr(versions),
    )


@requirement("websocket.scope.spec-version")
async def test_websocket_spec_version_is_a_version_string(asgi: Probe) -> None:
    """scope['asgi']['spec_version'], if present, is a str "N.N"; absent means "2.0"."""
    versions = (await _plain(asgi)).get("asgi") or {}
    judge_spec_version(asgi, versions, sent="an upgrade GET /", like="2.4")


@requirement("websocket.scope.http-version")
async def test_http_version_is_1_1_or_missing(asgi: Probe) -> None:
    """An HTTP/1.1 upgrade gives http_version "1.1" (or none: the default is "1.1")."""
    scope = await _plain(asgi)
    observed = scope.get("http_version", "<missing>")
    expect(
        observed in ("1.1", "<missing>"),
        sent="an upgrade GET / HTTP/1.1",
        expected="'1.1' or no key",
        observed=repr(observed),
    )


@requirement("websocket.scope.scheme")
async def test_scheme_is_ws_on_cleartext(asgi: Probe) -> None:
    """scheme is "ws" (or missing) on a cleartext connection; never empty."""
    scope = await _plain(asgi)
    observed = scope.get("scheme", "<missing>")
    expect(
        observed in ("ws", "<missing>"),
        sent="an upgrade GET / over cleartext TCP",
        expected="'ws' or no key",
        observed=repr(observed),
    )


@requirement("websocket.scope.path")
async def test_path_is_decoded_without_query(asgi: Probe) -> None:
    """The path has percent-escapes and UTF-8 decoded, and no query."""
    observed = (await _rich(asgi)).get("path")
    expect(observed == "/café/a b", sent=SENT, expected="'/café/a b'", observed=repr(observed))


@requirement("websocket.scope.raw-path")
async def test_websocket_raw_path_is_the_bytes_received(asgi: Probe) -> None:
    """raw_path, when present, is the path bytes as sent, without the query."""
    scope = await _rich(asgi)
    if scope.get("raw_path") is None:
        asgi.observe("raw_path not provided")
        return
    observed = scope["raw_path"]
    expect(observed == RAW_PATH, sent=SENT, expected=repr(RAW_PATH), observed=repr(observed))


@requirement("websocket.scope.query-string")
async def test_query_string_is_the_raw_bytes(asgi: Probe) -> None:
    """query_string is the bytes after '?' unchanged, and missing/empty without a query."""
    observed = (await _rich(asgi)).get("query_string")
    expect(observed == QUERY, sent=SENT, expected=repr(QUERY), observed=repr(observed))
    empty = (await _plain(asgi)).get("query_string", b"")
    expect(
        empty in (b"", None),
        sent="an upgrade GET / (no query)",
        expected="b'' (or None, or no key)",
        observed=repr(empty),
    )


@requirement("websocket.scope.root-path")
async def test_websocket_root_path_is_empty_by_default(asgi: Probe) -> None:
    """Without a configured root path, root_path is missing or ""."""
    observed = (await _plain(asgi)).get("root_path", "")
    expect(
        observed == "" and isinstance(observed, str),
        sent="an upgrade GET / (no root path configured)",
        expected="'' or no key",
        observed=repr(observed),
    )


@requirement("websocket.scope.headers")
async def test_headers_are_byte_pairs_as_sent(asgi: Probe) -> None:
    """Every field sent arrives as a (bytes, bytes) pair with its exact value; repeats stay apart."""
    seen: Seen = await scenario(asgi, __name__, "rich")
    headers = _headers(seen.scope)
    bad = [h for h in headers if not (len(h) == 2 and all(type(x) is bytes for x in h))]
    expect(
        bool(headers) and not bad,
        sent=SENT,
        expected="headers as [name, value] pairs of bytes",
        observed=repr(bad[:3] or headers[:3]),
    )
    pairs = [(bytes(n).lower(), bytes(v)) for n, v in headers]
    dups = [v for n, v in pairs if n == b"x-dup"]
    expect(
        dups == [b"1", b"2"],
        sent=SENT + " with x-dup: 1 and x-dup: 2",
        expected="two x-dup entries, b'1' then b'2'",
        observed=f"x-dup values {dups}",
    )
    missing = [(n, v) for n, v in HEADERS if (n.lower(), v) not in pairs]
    ours = [(n, v) for n, v in pairs if not n.startswith(b"x-probe")]
    expect(
        not missing,
        sent=SENT,
        expected=f"every field with its exact value: {HEADERS}",
        observed=f"missing {missing}; the app saw {ours}",
    )
    absent = sorted(seen.handshake_fields - {n for n, _ in pairs})
    expect(
        not absent,
        sent=SENT,
        expected=f"the handshake's own fields too ({b', '.join(sorted(seen.handshake_fields)).decode()})",
        observed=f"missing {absent}",
    )


@requirement("websocket.scope.headers-order")
async def test_headers_keep_the_order_sent(asgi: Probe) -> None:
    """The fields the client sent keep their relative order."""
    names = [bytes(n).lower() for n, _ in _headers(await _rich(asgi))]
    ours = [n.lower() for n, _ in HEADERS]
    seen = [n for n in names if n in ours]
    expect(seen == ours, sent=SENT, expected=repr(ours), observed=repr(seen))


@requirement("websocket.scope.headers-name-case")
async def test_header_names_are_lowercased(asgi: Probe) -> None:
    """A field sent as X-Mixed-Case arrives as x-mixed-case (or X-Mixed-Case)."""
    names = [bytes(n) for n, _ in _headers(await _rich(asgi))]
    found = [n for n in names if n.lower() == b"x-mixed-case"]
    expect(
        bool(found) and found[0] in (b"x-mixed-case", b"X-Mixed-Case"),
        sent=SENT + " with a field X-Mixed-Case",
        expected="b'x-mixed-case' (or b'X-Mixed-Case')",
        observed=repr(found),
    )
    asgi.observe("lower-cased" if found[0] == b"x-mixed-case" else "spelling kept")


@requirement("websocket.scope.client")
async def test_websocket_client_is_the_peer_address(asgi: Probe) -> None:
    """client, when present, is [host, port] of our socket: str address, int port."""
    seen: Seen = await scenario(asgi, __name__, "plain")
    client = seen.scope.get("client")
    if client is None:
        asgi.observe("client not provided")
        return
    ours = seen.client_address
    ok = len(client) == 2 and isinstance(client[0], str) and type(client[1]) is int
    expect(
        ok and (client[0], client[1]) == (ours[0], ours[1]),
        sent=f"an upgrade GET / from {ours[0]}:{ours[1]}",
        expected=f"[{ours[0]!r}, {ours[1]}]",
        observed=repr(client),
    )


@requirement("websocket.scope.server")
async def test_websocket_server_is_the_listening_address(asgi: Probe) -> None:
    """server, when present, is [host, port] of the listening socket: str and int."""
    seen: Seen = await scenario(asgi, __name__, "plain")
    value = seen.scope.get("server")
    if value is None:
        asgi.observe("server not provided")
        return
    host, port = seen.server_address
    ok = len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int
    expect(
        ok and (value[0], value[1]) == (host, port),
        sent=f"an upgrade GET / to {host}:{port}",
        expected=f"[{host!r}, {port}]",
        observed=repr(value),
    )


@requirement("websocket.scope.subprotocols")
async def test_subprotocols_are_the_offered_list_in_order(asgi: Probe) -> None:
    """Offered chat, superchat, v2.json -> subprotocols ["chat", "superchat", "v2.json"]; none -> empty."""
    offered = (await _rich(asgi)).get("subprotocols")
    expect(
        isinstance(offered, (list, tuple)) and list(offered) == SUBPROTOCOLS,
        sent=SENT,
        expected=repr(SUBPROTOCOLS),
        observed=repr(offered),
    )
    none = (await _plain(asgi)).get("subprotocols", [])
    expect(
        isinstance(none, (list, tuple)) and not none,
        sent="an upgrade GET / offering no subprotocol",
        expected="[] or no key",
        observed=repr(none),
    )


@requirement("websocket.scope.extensions")
async def test_extensions_map_names_to_dicts(asgi: Probe) -> None:
    """extensions, if present, is a dict whose values are dicts; the names are recorded."""
    scope = await _plain(asgi)
    if "extensions" not in scope or scope["extensions"] is None:
        asgi.observe("no extensions key")
        return
    extensions = scope["extensions"]
    expect(
        isinstance(extensions, dict) and all(isinstance(v, dict) for v in extensions.values()),
        sent="an upgrade GET /",
        expected="a dict of dicts",
        observed=repr(extensions),
    )
    asgi.observe(f"advertised: {sorted(extensions) or 'none'}")
