"""What the HTTP/2 and HTTP/3 clients share: one stream's response as far as it has
arrived, and the ways a check reads it (conformance/clients/http2.py, http3.py).

Both protocols carry many requests on one connection, each stream's frames in the
connection's transcript from where the stream began; only how the bytes arrive
differs (h2 over a TCP stream read on demand, aioquic's datagram endpoint), so the
connection implements one ``_read`` and the stream's readers are written once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from conformance.clients._base import Request, Response


__all__ = ["ENABLE_CONNECT_PROTOCOL", "MultiplexedStream", "PartialResponse", "Tunnelling"]

#: SETTINGS_ENABLE_CONNECT_PROTOCOL: 0x8 in HTTP/2 (RFC 8441 section 3) and in HTTP/3 (RFC 9220
#: section 3); 1 offers extended CONNECT, the way to a WebSocket on a stream.
ENABLE_CONNECT_PROTOCOL = 0x8


@dataclass
class PartialResponse:
    """The response of one stream as far as it has arrived."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    #: Where the stream's frames start in the connection's transcript.
    start: int = 0


class _Reads(Protocol):
    transcript: list[str]

    async def _read(
        self,
        stream: Any,
        timeout: float,
        until: bytes | None = None,
        size: int | None = None,
        head: bool = False,
    ) -> None: ...


class Tunnelling(Protocol):
    """A connection that may carry a WebSocket on a stream (RFC 8441, RFC 9220): HTTP/2 or HTTP/3."""

    #: ``h2`` or ``h3``.
    protocol: str
    scheme: bytes
    local_address: tuple[str, int]

    async def settings(self, *, timeout: float) -> dict[int, int] | None: ...

    async def start(
        self, request: Request, *, end: bool = True, raw: list[tuple[bytes, bytes]] | None = None
    ) -> MultiplexedStream[Any, Any]: ...

    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Reads)
P = TypeVar("P", bound=PartialResponse)


class MultiplexedStream(Generic[C, P]):
    """One request/response exchange on a connection of many (an HTTP/2 or HTTP/3 stream)."""

    #: The ``http_version`` of a response read from this kind of stream.
    http_version: ClassVar[str]

    def __init__(
        self, connection: C, stream_id: int, sent: list[tuple[bytes, bytes]], partial: P
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.request_headers = sent
        self._partial = partial

    def head_status(self) -> int | None:
        return self._partial.status or None

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        """Send more of the request body (a tunnel's data), ending the stream if ``end``."""
        raise NotImplementedError

    async def reset(self) -> None:
        """Abandon the stream (RST_STREAM; RESET_STREAM and STOP_SENDING)."""
        raise NotImplementedError

    def head_fields(self) -> list[tuple[bytes, bytes]]:
        """The fields of the final response head received so far (none before it)."""
        return list(self._partial.headers)

    def informational(self) -> list[tuple[int, list[tuple[bytes, bytes]]]]:
        """The informational (1xx) responses received so far, in order."""
        return list(self._partial.informational)

    def body_since(self, offset: int) -> bytes:
        """The body bytes that arrived after the first ``offset`` (a tunnel's new data)."""
        return bytes(self._partial.body[offset:])

    def received_body(self) -> bytes:
        """The response body bytes that arrived so far (a tunnel's data, for RFC 8441 streams)."""
        return bytes(self._partial.body)

    def received(self) -> bytes:
        frames = "\n".join(self.connection.transcript[self._partial.start :]).encode()
        return frames + b"\n" + bytes(self._partial.body)

    async def read_until(self, marker: bytes, *, timeout: float) -> bytes:
        """Read until ``marker`` is in the body; the body so far (the response stays readable)."""
        await self.connection._read(self, timeout, until=marker)
        return bytes(self._partial.body)

    async def read_head(self, *, timeout: float) -> int:
        """Read until the final response head has arrived (the stream may stay open); its status.

        For a stream that becomes a tunnel: the 200 to an extended CONNECT (RFC 8441).
        """
        await self.connection._read(self, timeout, head=True)
        return self._partial.status

    async def read_bytes(self, count: int, *, timeout: float) -> int:
        """Read until ``count`` body bytes have arrived; how many there are."""
        await self.connection._read(self, timeout, size=count)
        return len(self._partial.body)

    async def read_response(self, *, timeout: float) -> Response:
        """The whole response: informational ones, final head, body and trailers."""
        await self.connection._read(self, timeout)
        partial = self._partial
        transcript = self.connection.transcript
        return Response(
            status=partial.status,
            headers=partial.headers,
            body=bytes(partial.body),
            http_version=self.http_version,
            sent="\n".join(transcript[: partial.start]).encode(),
            received="\n".join(transcript[partial.start :]).encode(),
            informational=partial.informational,
            trailers=partial.trailers,
        )
