"""TLS as the app sees it (tls.rst; www.rst "HTTP Connection Scope", "Websocket Connection Scope").

The session's certificates come from trustme (conformance/clients/tls.py); the
client records what it saw of each connection (version, suite, the server's
certificate), and the ``tls`` extension must report the same.  Not advertising
the extension is ``unsupported``, with the reason; so is mutual TLS where the
profile has no option to ask for client certificates.
"""

from __future__ import annotations

import ssl
from typing import Any

from conformance import _ws_steps as ws_steps
from conformance import requirement
from conformance._launcher import LaunchConfig
from conformance._probe import Probe, expect
from conformance._verdicts import ConformanceFailure, Refused, Unsupported
from conformance.clients._base import ConnectionClosed
from conformance.clients._tcp import TLSInfo
from conformance.clients.tls import CLIENT_NAME, ClientCert


#: The instance that asks for an optional client certificate (the profile's client_cert_args).
MUTUAL = LaunchConfig(client_certs=True)


def _der(pem: Any) -> bytes | None:
    """The first certificate of a PEM string, as DER; None if it is not one."""
    if not isinstance(pem, str):
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(
            pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
        )
    except ValueError:
        return None


async def _extension(
    asgi: Probe, *, client_cert: ClientCert = None
) -> tuple[dict[str, Any], TLSInfo]:
    """The tls extension of one request's scope, and what the client saw; unsupported if absent."""
    if client_cert:
        column = asgi.target.column
        if column is None or column.client_cert_args is None:
            raise Unsupported(
                f"{asgi.target.name}'s profile has no option to ask for client certificates"
            )
    live = await asgi.begin(config=MUTUAL if client_cert else None, client_cert=client_cert)
    async with live:
        await live.read_response()
        seen = live.connection.tls
    scope = await live.app_scope()
    extensions = scope.get("extensions") or {}
    if not isinstance(extensions, dict) or "tls" not in extensions:
        names = sorted(extensions) if isinstance(extensions, dict) else repr(extensions)
        raise Unsupported(f"the scope does not advertise the tls extension (extensions: {names})")
    if seen is None:
        raise ConformanceFailure("the client saw no TLS on a TLS column")
    tls = extensions["tls"]
    expect(
        isinstance(tls, dict),
        sent="GET / over TLS",
        expected="extensions['tls'] a dict",
        observed=repr(tls),
    )
    return tls, seen


# -- the scheme ------------------------------------------------------------------------------


@requirement("tls.scope.https")
async def test_scheme_is_https_over_tls(asgi: Probe) -> None:
    """A request over TLS has scheme "https" (a missing scheme means "http")."""
    scope = await asgi.scope_of()
    scheme = scope.get("scheme", "<missing: means 'http'>")
    expect(scheme == "https", sent="GET / over TLS", expected="'https'", observed=repr(scheme))


@requirement("tls.scope.wss")
async def test_scheme_is_wss_over_tls(asgi: Probe) -> None:
    """A WebSocket over TLS has scheme "wss" (a missing scheme means "ws")."""
    async with await asgi.websocket([ws_steps.accept(), ws_steps.close()]) as session:
        scope = await session.app_scope()
    scheme = scope.get("scheme", "<missing: means 'ws'>")
    expect(
        scheme == "wss",
        sent="a WebSocket upgrade over TLS",
        expected="'wss'",
        observed=repr(scheme),
    )


# -- the extension ---------------------------------------------------------------------------


@requirement("tls.extension.cleartext-absent")
async def test_no_tls_extension_on_cleartext(asgi: Probe) -> None:
    """A cleartext request's scope has no tls extension."""
    scope = await asgi.scope_of()
    extensions = scope.get("extensions") or {}
    expect(
        not (isinstance(extensions, dict) and "tls" in extensions),
        sent="GET / on cleartext",
        expected="no 'tls' in scope['extensions']",
        observed=f"extensions['tls'] = {extensions.get('tls')!r}",
    )


@requirement("tls.extension.server-cert")
async def test_server_cert_is_the_presented_certificate(asgi: Probe) -> None:
    """server_cert is present, and None or the PEM of the certificate the client received."""
    tls, seen = await _extension(asgi)
    cert = tls.get("server_cert", "<missing>")
    expect(
        cert is None or _der(cert) == seen.server_cert,
        sent="GET / over TLS",
        expected="server_cert: the PEM of the certificate the server presented, or None",
        observed=repr(cert)[:200],
    )
    asgi.observe("server_cert given" if cert is not None else "server_cert None")


@requirement("tls.extension.tls-version")
async def test_tls_version_is_the_negotiated_one(asgi: Probe) -> None:
    """tls_version is present, and None or the number of the version the client negotiated."""
    tls, seen = await _extension(asgi)
    version = tls.get("tls_version", "<missing>")
    expect(
        version is None or (type(version) is int and version == seen.version),
        sent=f"GET / over TLS (negotiated {seen.version:#06x})"
        if seen.version
        else "GET / over TLS",
        expected=f"tls_version {seen.version:#06x} or None" if seen.version else "an int or None",
        observed=repr(version),
    )


@requirement("tls.extension.cipher-suite")
async def test_cipher_suite_is_the_negotiated_one(asgi: Probe) -> None:
    """cipher_suite is present, and None or the 16-bit number of the suite the client negotiated."""
    tls, seen = await _extension(asgi)
    suite = tls.get("cipher_suite", "<missing>")
    wanted = (
        f"{seen.cipher_suite:#06x} ({seen.cipher_name})" if seen.cipher_suite else seen.cipher_name
    )
    expect(
        suite is None or (type(suite) is int and suite == seen.cipher_suite),
        sent=f"GET / over TLS with {seen.cipher_name}",
        expected=f"cipher_suite {wanted} or None",
        observed=repr(suite),
    )


@requirement("tls.extension.no-client-cert")
async def test_no_client_certificate_is_reported_as_none(asgi: Probe) -> None:
    """Without a client certificate: an empty chain, no name, no error."""
    tls, _ = await _extension(asgi)
    chain = list(tls.get("client_cert_chain") or [])
    name, error = tls.get("client_cert_name"), tls.get("client_cert_error")
    expect(
        not chain and name is None and error is None,
        sent="GET / over TLS without a client certificate",
        expected="client_cert_chain empty, client_cert_name None, client_cert_error None",
        observed=f"chain of {len(chain)}, name {name!r}, error {error!r}",
    )


@requirement("tls.extension.client-cert")
async def test_client_certificate_is_reported(asgi: Probe) -> None:
    """With our client certificate: the chain starts with it, the name is its subject, no error."""
    tls, _ = await _extension(asgi, client_cert="session")
    material = asgi.instance(MUTUAL).tls_material
    assert material is not None  # a TLS column has the session's certificates
    ours = _der(material.client_cert.read_text(encoding="ascii"))
    chain = list(tls.get("client_cert_chain") or [])
    name, error = tls.get("client_cert_name"), tls.get("client_cert_error")
    # A server that cannot see the certificate (TLS ends elsewhere) reports an empty chain.
    first_ok = not chain or _der(chain[0]) == ours
    name_ok = (not chain and name is None) or (
        isinstance(name, str) and f"CN={CLIENT_NAME}" in name
    )
    expect(
        first_ok and name_ok and error is None,
        sent=f"GET / over TLS with a client certificate for CN={CLIENT_NAME}",
        expected="the chain starting with that certificate, its subject as the name, no error",
        observed=f"chain of {len(chain)} (first ours: {bool(chain) and _der(chain[0]) == ours}), "
        f"name {name!r}, error {error!r}",
    )
    asgi.observe(f"client certificate reported: chain of {len(chain)}, name {name!r}")


@requirement("tls.extension.client-cert-error")
async def test_an_unverifiable_client_certificate_is_rejected_or_reported(asgi: Probe) -> None:
    """A client certificate no CA of the server's signed: the connection is rejected, or
    client_cert_error says why; never a chain that looks verified."""
    try:
        tls, _ = await _extension(asgi, client_cert="stranger")
    except ConnectionClosed as closed:
        raise Refused(
            f'the server rejected the connection ({closed}), as tls.rst allows: "most web '
            'server implementations will reject the connection"'
        ) from None
    chain = list(tls.get("client_cert_chain") or [])
    error = tls.get("client_cert_error")
    expect(
        (isinstance(error, str) and error != "") or (error is None and not chain),
        sent=f"GET / over TLS with a certificate for CN={CLIENT_NAME} from a CA the server "
        "was not given",
        expected="the connection rejected, or client_cert_error a non-empty string",
        observed=f"accepted; chain of {len(chain)}, client_cert_error {error!r}",
    )
    asgi.observe(
        f"accepted, client_cert_error {error!r}"
        if error is not None
        else "accepted without reporting the certificate (an empty chain)"
    )
