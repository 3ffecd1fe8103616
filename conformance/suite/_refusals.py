"""Requests the spec does not oblige a server to accept, and why (www.rst "HTTP").

A server that answers one of these with an error status before calling the app
has refused it, which the spec allows: the check that sent it learnt nothing
about its rule, and its cell says so (:class:`conformance._verdicts.Refused`)
instead of blaming the server.  Pass the reason as ``may_refuse``.
"""

from __future__ import annotations


__all__ = ["HTTP10_REFUSABLE"]

#: ASGI describes what an HTTP/1.0 request's scope holds, not that one must be served.
HTTP10_REFUSABLE = (
    "a server may refuse an HTTP version it does not serve (RFC 9110 §15.6.6, 505), "
    "and ASGI does not oblige it to serve HTTP/1.0"
)
