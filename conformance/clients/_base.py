"""What every transport takes and gives back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from conformance._verdicts import ConformanceFailure


__all__ = [
    "ClientError",
    "ConnectionClosed",
    "MalformedResponse",
    "Request",
    "Response",
    "ServerTimeout",
    "Transport",
]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Request:
    """A request as the check wants it on the wire.

    ``target`` and header bytes are sent as given, not normalised: that is how a
    check probes what a server does with unusual but legal input.
    """

    method: bytes = b"GET"
    target: bytes = b"/"
    headers: Headers = ()
    body: bytes = b""
    http_version: str = "1.1"


@dataclass(frozen=True)
class Response:
    """A response as the client parsed it, with the bytes exchanged as evidence."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str
    reason: bytes = b""
    sent: bytes = b""
    received: bytes = field(default=b"", repr=False)
    #: Informational (1xx) responses that came before this one: (status, headers) each.
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    #: Trailer fields after a chunked body (empty when there were none).
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class ClientError(ConformanceFailure):
    """The server did not give a usable answer; the message carries the wire evidence."""


class ServerTimeout(ClientError):
    """No complete answer within the bound (suite time units, scaled)."""


class ConnectionClosed(ClientError):
    """The server closed the connection before a complete response."""


class MalformedResponse(ClientError):
    """The response bytes are not valid HTTP (h11 refused them)."""


class Transport(Protocol):
    """One way of carrying a request to the server."""

    name: str

    async def request(self, request: Request, *, timeout: float) -> Response: ...
