"""Opening a connection to the server: TCP, then TLS when the column says so.

Every client opens its connection here, so a TLS handshake that fails (the
server resets it, answers garbage, or never finishes it) is one named
:class:`TLSHandshakeFailed` on every wire instead of whichever exception the
TLS layer happened to raise.  A TCP connect that fails stays an ``OSError``
(readiness retries on it: the server may not be listening yet).
"""

from __future__ import annotations

import ssl

import anyio
import anyio.abc
import anyio.streams.tls

from conformance.clients._base import ConnectionClosed


__all__ = ["TLSHandshakeFailed", "alpn_of", "connect"]


class TLSHandshakeFailed(ConnectionClosed):
    """The TCP connection was made, the TLS handshake on it was not."""


async def connect(
    host: str, port: int, *, timeout: float, tls: ssl.SSLContext | None
) -> anyio.abc.ByteStream:
    """A TCP stream to ``host:port``, wrapped in TLS with ``tls``, within ``timeout`` in all.

    Raises TimeoutError when the bound passes (the TCP connect or the handshake).
    """
    with anyio.fail_after(timeout):
        stream = await anyio.connect_tcp(host, port)
        if tls is None:
            return stream
        try:
            return await anyio.streams.tls.TLSStream.wrap(
                stream, server_side=False, hostname=host, ssl_context=tls,
                standard_compatible=False,
            )  # fmt: skip
        except ssl.SSLError as exc:
            await anyio.aclose_forcefully(stream)
            raise TLSHandshakeFailed(
                f"the TLS handshake with {host}:{port} failed ({exc.reason or exc})"
            ) from None
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            await anyio.aclose_forcefully(stream)
            cause = exc.__cause__ or exc
            raise TLSHandshakeFailed(
                f"the server ended the connection to {host}:{port} during the TLS handshake "
                f"({type(cause).__name__})"
            ) from None


def alpn_of(stream: anyio.abc.ByteStream) -> str | None:
    """The protocol the server chose by ALPN (None over cleartext or when it chose none)."""
    return stream.extra(anyio.streams.tls.TLSAttribute.alpn_protocol, None)
