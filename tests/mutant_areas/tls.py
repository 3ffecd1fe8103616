"""Mutants of TLS (tls.rst; www.rst "HTTP Connection Scope", "Websocket Connection Scope").

They run over uvicorn serving TLS (the ``https`` column; the runner takes the
session's certificates), except the one that advertises the extension on
cleartext.  uvicorn does not advertise ``tls``, so its control is unsupported on
the extension's rows: a mutant proves each such row by advertising the extension
with one field wrong, which must then fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.mutants import ASGIApp, Mutant, Scope, on_scope


__all__ = ["MUTANTS"]

#: A certificate-shaped string that is no certificate the session made.
NOT_OURS = "-----BEGIN CERTIFICATE-----\nbm90IHRoZSBjZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----\n"


def _advertise(**fields: Any) -> Callable[[Scope], None]:
    """Add a tls extension with every field None or empty, then ``fields``."""

    def change(scope: Scope) -> None:
        tls = {
            "server_cert": None,
            "client_cert_chain": [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
            **fields,
        }
        scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}

    return change


def scheme_http_over_tls(scope: Scope) -> None:
    """scheme is "http" over TLS (www.rst "HTTP Connection Scope": the scheme in use)."""
    scope["scheme"] = "http"


def scheme_ws_over_tls(scope: Scope) -> None:
    """scheme is "ws" over TLS (www.rst "Websocket Connection Scope": the scheme in use)."""
    scope["scheme"] = "ws"


def tls_on_cleartext(scope: Scope) -> None:
    """The tls extension is advertised on a cleartext connection (tls.rst "When to use this
    extension": the server is forbidden from providing it)."""
    _advertise()(scope)


def server_cert_not_ours(scope: Scope) -> None:
    """server_cert is a certificate the server never presented (tls.rst "TLS Connection Scope")."""
    _advertise(server_cert=NOT_OURS)(scope)


def tls_version_wrong(scope: Scope) -> None:
    """tls_version says TLS 1.0, 0x0301, whatever was negotiated (tls.rst "TLS Connection Scope")."""
    _advertise(tls_version=0x0301)(scope)


def cipher_suite_as_name(scope: Scope) -> None:
    """cipher_suite is the suite's name, not its 16-bit number (tls.rst "TLS Connection Scope")."""
    _advertise(cipher_suite="TLS_AES_256_GCM_SHA384")(scope)


def client_chain_invented(scope: Scope) -> None:
    """client_cert_chain holds a certificate the client never sent (tls.rst "TLS Connection
    Scope": empty without a client certificate, else starting with the client's)."""
    _advertise(client_cert_chain=[NOT_OURS], client_cert_name="CN=someone else")(scope)


def unverified_cert_as_verified(scope: Scope) -> None:
    """A client certificate that failed verification is taken, and reported as verified:
    a chain with client_cert_error None (tls.rst "TLS Connection Scope": a non-empty
    string when verification failed).  Its runner trusts the stranger CA as well."""
    _advertise(client_cert_chain=[NOT_OURS], client_cert_name="CN=asgi-conformance client")(scope)


def _tls(
    change: Callable[[Scope], None],
    breaks: tuple[str, ...],
    scope_type: str = "http",
    *,
    trusts_strangers: bool = False,
) -> Mutant:
    middleware: Callable[[ASGIApp], ASGIApp] = on_scope(change, scope_type)
    return Mutant(middleware, breaks, column="https", trusts_strangers=trusts_strangers)


MUTANTS: dict[str, Mutant] = {
    "tls-scheme-http": _tls(scheme_http_over_tls, ("tls.scope.https",)),
    "tls-scheme-ws": _tls(scheme_ws_over_tls, ("tls.scope.wss",), "websocket"),
    "tls-on-cleartext": Mutant(on_scope(tls_on_cleartext), ("tls.extension.cleartext-absent",)),
    "tls-server-cert-wrong": _tls(server_cert_not_ours, ("tls.extension.server-cert",)),
    "tls-version-wrong": _tls(tls_version_wrong, ("tls.extension.tls-version",)),
    "tls-cipher-suite-name": _tls(cipher_suite_as_name, ("tls.extension.cipher-suite",)),
    "tls-client-chain-invented": _tls(
        client_chain_invented, ("tls.extension.no-client-cert", "tls.extension.client-cert")
    ),
    "tls-unverified-cert-accepted": _tls(
        unverified_cert_as_verified, ("tls.extension.client-cert-error",), trusts_strangers=True
    ),
}
