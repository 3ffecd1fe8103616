"""What a check needs to have happened before it can judge its own sentence.

When a server breaks a rule early in an exchange, every later check of that
exchange would fail too, for the same behaviour.  A check whose premise did not
hold raises :class:`conformance._verdicts.NotJudged`, naming the row that judges
the premise: one behaviour is blamed once, by the row whose sentence forbids it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance._verdicts import NotJudged
from conformance.clients import ClientError


if TYPE_CHECKING:
    from conformance._probe import LiveExchange

__all__ = ["BODY_SEQUENCE", "after_the_request", "no_request_after_the_body", "read_streamed"]

#: The row that judges an http.request arriving after the one with more_body False.
BODY_SEQUENCE = "http.request.more-body-sequence"


def _is_request(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") == "http.request"


def no_request_after_the_body(outcome: Any) -> None:
    """``outcome``, what a receive() after the whole body gave, is not one more http.request.

    www.rst "Request - receive event": the body ends with more_body False; a server
    that sends another http.request after it has told the app nothing about what it
    does next (wait, or http.disconnect), which is what the calling check judges.
    """
    if _is_request(outcome):
        raise NotJudged(
            f"receive() gave one more http.request after the body had ended ({outcome!r})",
            BODY_SEQUENCE,
        )


def after_the_request(events: list[Any]) -> list[Any]:
    """The events receive() gave after the request's own http.request events."""
    return [event for event in events[1:] if not _is_request(event)]


async def read_streamed(live: LiveExchange, chunk: bytes, *, timeout: float) -> bytes:
    """Read until ``chunk``, which the app streamed before it waits, has arrived.

    For checks that begin once such a chunk is in (the client then leaves, another
    request comes): when it never comes they learn nothing, and it is
    ``http.streaming.flush-per-chunk`` that judges a server holding chunks back.
    """
    try:
        return await live.read_until(chunk, timeout=timeout)
    except ClientError as exc:
        raise NotJudged(
            f"the streamed chunk {chunk!r} never reached the client ({exc})",
            "http.streaming.flush-per-chunk",
        ) from None
