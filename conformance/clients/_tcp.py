"""Opening a connection to the server: TCP, then TLS when the column says so.

Every client opens its connection here, so a TLS handshake that fails (the
server resets it, answers garbage, or never finishes it) is one named
:class:`TLSHandshakeFailed` on every wire instead of whichever exception the
TLS layer happened to raise.  A TCP connect that fails stays an ``OSError``
(readiness retries on it: the server may not be listening yet).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.streams.tls

from conformance.clients._base import ConnectionClosed


__all__ = ["TLSHandshakeFailed", "TLSInfo", "alpn_of", "connect", "tls_info"]

#: TLS versions by the names ``ssl`` gives them, as the numbers of the TLS specifications.
_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class TLSHandshakeFailed(ConnectionClosed):
    """The TCP connection was made, the TLS handshake on it was not."""


@dataclass(frozen=True)
class TLSInfo:
    """What the client saw of the TLS connection: what the ``tls`` extension must report."""

    #: ``0x0304`` for TLS 1.3 (tls.rst ``tls_version``).
    version: int | None
    #: The IANA number of the suite, ``0x1301`` for TLS_AES_128_GCM_SHA256 (``cipher_suite``).
    cipher_suite: int | None
    cipher_name: str
    #: The certificate the server presented, DER (``server_cert`` is its PEM).
    server_cert: bytes | None


def tls_info(stream: anyio.abc.ByteStream) -> TLSInfo | None:
    """The negotiated version, suite and server certificate of a TLS stream (None: cleartext)."""
    ssl_object = stream.extra(anyio.streams.tls.TLSAttribute.ssl_object, None)
    if ssl_object is None:
        return None
    name = (ssl_object.cipher() or ("", "", 0))[0]
    suite = next(
        (c["id"] & 0xFFFF for c in ssl_object.context.get_ciphers() if c["name"] == name), None
    )
    return TLSInfo(
        version=_VERSIONS.get(ssl_object.version() or ""),
        cipher_suite=suite,
        cipher_name=name,
        server_cert=ssl_object.getpeercert(binary_form=True),
    )


async def connect(
    host: str, port: int, *, timeout: float, tls: ssl.SSLContext | None
) -> anyio.abc.ByteStream:
    """A TCP stream to ``host:port``, wrapped in TLS with ``tls``, within ``timeout`` in all.

    Raises TimeoutError when the TCP connect takes longer than the bound, and
    :class:`TLSHandshakeFailed` when the handshake fails or does not finish within it.
    """
    deadline = anyio.current_time() + timeout
    with anyio.fail_after(timeout):
        stream = await anyio.connect_tcp(host, port)
    if tls is None:
        return stream
    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            return await anyio.streams.tls.TLSStream.wrap(
                stream, server_side=False, hostname=host, ssl_context=tls,
                standard_compatible=False,
            )  # fmt: skip
    except TimeoutError:
        await anyio.aclose_forcefully(stream)
        raise TLSHandshakeFailed(
            f"the server took the connection to {host}:{port} but did not complete the TLS "
            f"handshake within {timeout:.1f}s"
        ) from None
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
