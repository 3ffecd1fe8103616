"""Clients that drive the server under test, behind one transport seam.

Checks ask for "a request over transport T" (:class:`Transport`) and never speak a
wire protocol themselves, so that the same check can later run over HTTP/2 and
HTTP/3.  HTTP/1.x has two implementations: a raw-socket client that writes exact
bytes and keeps the transcript as evidence (parsed by h11), and httpx for requests
a normal client would send.
"""

from conformance.clients._base import (
    ClientError,
    ConnectionClosed,
    MalformedResponse,
    Request,
    Response,
    ServerTimeout,
    Transport,
)
from conformance.clients.http1 import HTTP1Transport, RawHTTP1Connection
from conformance.clients.httpx_client import HttpxTransport
from conformance.clients.websocket import Closed, Handshake, RawWebSocket, Received


__all__ = [
    "ClientError",
    "Closed",
    "ConnectionClosed",
    "HTTP1Transport",
    "Handshake",
    "HttpxTransport",
    "MalformedResponse",
    "RawHTTP1Connection",
    "RawWebSocket",
    "Received",
    "Request",
    "Response",
    "ServerTimeout",
    "Transport",
    "transport",
]


def transport(name: str, host: str, port: int) -> Transport:
    """The transport registered under ``name`` (``http/1.1`` raw, ``httpx``)."""
    if name in ("http/1.1", "http/1.0", "raw"):
        return HTTP1Transport(host, port)
    if name == "httpx":
        return HttpxTransport(host, port)
    raise ValueError(f"unknown transport {name!r}")
