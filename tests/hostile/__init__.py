"""Hostile servers: tiny real programs that misbehave the way broken servers do.

:mod:`tests.hostile.server` is one program with a *kind* per way of being hostile;
``tests/test_hostile.py`` runs the real suite against each through a command
template and proves that the harness ends in bounded time, names the cause, and
leaves no process behind.
"""
