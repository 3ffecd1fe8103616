"""HTTP/1.1 through httpx, for requests an ordinary client would send.

httpx is imported on first use: it costs a tenth of a second, and a run whose
checks never ask for this transport should not pay it at start-up.
"""

from __future__ import annotations

from conformance.clients._base import ConnectionClosed, Request, Response, ServerTimeout


__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Each request on a fresh httpx client: no pooling state leaks between checks."""

    name = "httpx"

    def __init__(self, host: str, port: int) -> None:
        self.base = f"http://{host}:{port}"

    async def request(self, request: Request, *, timeout: float) -> Response:
        import httpx

        url = self.base + request.target.decode("latin-1")
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                reply = await client.request(
                    request.method.decode("ascii"),
                    url,
                    headers=list(request.headers),
                    content=request.body or None,
                )
        except httpx.TimeoutException as exc:
            raise ServerTimeout(f"httpx: no response within {timeout:.1f}s ({exc!r})") from None
        except httpx.TransportError as exc:
            raise ConnectionClosed(f"httpx: {exc!r}") from None
        return Response(
            status=reply.status_code,
            headers=list(reply.headers.raw),
            body=reply.content,
            http_version=reply.http_version.removeprefix("HTTP/"),
            reason=reply.reason_phrase.encode("latin-1"),
        )
