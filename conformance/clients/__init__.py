"""Clients that drive the server under test, behind one transport seam.

Checks ask for "a request over transport T" (:class:`Transport`) or "a connection
in the column's protocol" (:func:`open_connection`, a :class:`Connection` whose
requests are :class:`Stream` objects) and never speak a wire protocol
themselves, so that the same check runs over HTTP/1.1, HTTP/2 and HTTP/3.

* HTTP/1.x: a raw-socket client that writes exact bytes and keeps the transcript
  as evidence, parsed by h11 (conformance/clients/http1.py); httpx for requests a
  normal client would send.
* HTTP/2: the ``h2`` library with its outbound normalisation off
  (conformance/clients/http2.py), over TCP (prior knowledge) or TLS (ALPN).
* HTTP/3: ``aioquic`` over QUIC on UDP (conformance/clients/http3.py), always TLS:
  the server's certificate is checked against ``cafile``, or else the CA
  certificates loaded into the ``tls`` context the other wires are given.

Each optional library is imported only when its wire is asked for.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from conformance.clients._base import (
    ClientError,
    Connection,
    ConnectionClosed,
    MalformedMessage,
    MalformedResponse,
    Request,
    Response,
    ServerTimeout,
    Stream,
    Transport,
    Unreachable,
)
from conformance.clients.http1 import HTTP1Transport, RawHTTP1Connection
from conformance.clients.httpx_client import HttpxTransport
from conformance.clients.websocket import Closed, Handshake, RawWebSocket, Received


__all__ = [
    "ClientError",
    "Closed",
    "Connection",
    "ConnectionClosed",
    "HTTP1Transport",
    "Handshake",
    "HttpxTransport",
    "MalformedMessage",
    "MalformedResponse",
    "RawHTTP1Connection",
    "RawWebSocket",
    "Received",
    "Request",
    "Response",
    "ServerTimeout",
    "Stream",
    "Transport",
    "Unreachable",
    "open_connection",
    "transport",
]

#: The ALPN protocol id a TLS client offers for each wire (RFC 7301; h3: RFC 9114 3.1).
ALPN = {"http/1.1": "http/1.1", "h2": "h2", "h3": "h3"}


def transport(
    name: str,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    cafile: Path | None = None,
) -> Transport:
    """The transport registered under ``name`` (``http/1.1`` raw, ``h2``, ``h3``, ``httpx``).

    ``cafile`` is read by ``h3`` alone (the CA its QUIC handshake trusts, instead of
    ``tls``'s); the TCP wires take their trust from ``tls``.
    """
    if name in ("http/1.1", "http/1.0", "raw"):
        return HTTP1Transport(host, port, tls)
    if name == "h2":
        from conformance.clients.http2 import HTTP2Transport

        return HTTP2Transport(host, port, tls)
    if name == "h3":
        from conformance.clients.http3 import HTTP3Transport

        return HTTP3Transport(host, port, tls, cafile=cafile)
    if name == "httpx":
        return HttpxTransport(host, port)
    raise ValueError(f"unknown transport {name!r}")


async def open_connection(
    wire: str,
    host: str,
    port: int,
    *,
    timeout: float,
    tls: ssl.SSLContext | None = None,
    cafile: Path | None = None,
) -> Connection:
    """A connection speaking ``wire`` (``http/1.1``, ``h2`` or ``h3``), over TLS with ``tls``.

    ``h3`` is always TLS (QUIC, RFC 9001), on the UDP ``port``: it trusts ``cafile``, or
    else the CA certificates loaded into ``tls`` (a context cannot hand over a client
    certificate: mutual TLS over HTTP/3 goes through ``HTTP3Connection.open(cert_chain=)``).
    The TCP wires ignore ``cafile``.
    """
    if wire == "h3":
        from conformance.clients.http3 import HTTP3Connection

        return await HTTP3Connection.open(host, port, timeout=timeout, tls=tls, cafile=cafile)
    if wire == "h2":
        from conformance.clients.http2 import HTTP2Connection

        return await HTTP2Connection.open(host, port, timeout=timeout, tls=tls)
    if wire == "http/1.1":
        return await RawHTTP1Connection.open(host, port, timeout=timeout, tls=tls)
    raise ValueError(f"unknown wire protocol {wire!r}")
