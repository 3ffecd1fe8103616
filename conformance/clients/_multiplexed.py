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

from conformance.clients._base import Response


__all__ = ["MultiplexedStream", "PartialResponse"]


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
