"""Probe ASGI applications.

These modules run *inside the server under test*: they import only the standard
library (plus asgiref's typing, for names) so that they start fast under any
server, and they report what they observe through the side channel
(:mod:`conformance.apps._channel`), never through logs.
"""
