"""Server boots in the background, one per core at a time, the most urgent first.

A column starts a dozen instances beside its main one (lifespan scenarios, the
isolated and survivor instances of the disconnect and app-error scenarios).
Booting a server is CPU work (an interpreter, the server's imports, the app's),
so twelve boots started at once on two cores do not finish sooner than twelve
in a row: each takes the whole span, the one on the critical path included
(the lifespan watch of four units can only start once its instance answers),
and the checks of the pytest process, which need a core too, crawl meanwhile.

So background boots pass a gate of one slot per core, in order of urgency and
then of arrival (one per core, not one per spare core: the pytest process mostly
waits on the server, and on this machine a single slot left a core idle while
the queue of a slow-booting server grew):

* ``URGENT``: a check is waiting for the instance (the main one, a root-path
  instance a check asked for).  It never queues: the check's thread is idle
  while it waits, so the boot takes that core rather than a slot.
* ``LEAD``: a scenario with the column's longest watch ahead of it, declared by
  its module (``scenarios(module, lead=...)``).  It does not queue either, and
  the queue waits until the lead boots are done, so that their watches start as
  soon as possible and the rest of the column's work fits inside them; a module
  names one or two such scenarios, not every slow one.
* ``EARLY``: a scenario with a long way to go once its instance is up (the
  lifespan lifecycle, which holds startup and shutdown back for units), declared
  with ``scenarios(module, early=...)``, and the side instances of checks that
  run ahead (each such check is a whole exchange, often with a bound to wait
  out, on the instance it boots): it queues before the short ones.
* ``BACKGROUND``: every other scenario's instance.  When a check comes to wait for an instance whose boot
  is still queued, the boot goes at once (:func:`hurry`).

The gate only orders boots; it never changes what a check sends or how long
it waits for an answer (a readiness bound starts once the slot is held), so a
verdict cannot depend on it.  A slot is held until the instance answers, fails
to start, or is stopped; for an instance that is watched while it starts
(a lifespan startup that is held back or fails), until its app has been called.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
from collections.abc import Iterator
from contextvars import ContextVar

from conformance._timing import units


__all__ = ["BACKGROUND", "EARLY", "LEAD", "URGENT", "BootSlot", "acquire", "boot_priority", "hurry"]

URGENT, LEAD, EARLY, BACKGROUND = 0, 1, 2, 3
#: The longest a boot queues, in time units, before it goes without a slot.
QUEUE_BOUND = 30

_priority: ContextVar[int] = ContextVar("asgi_conformance_boot_priority", default=URGENT)
#: Who the boots of this context are for (a scenario or a check run ahead), so that a check
#: that comes to wait for that one can hurry them.
_owner: ContextVar[str] = ContextVar("asgi_conformance_boot_owner", default="")
_lead: ContextVar[_Lead | None] = ContextVar("asgi_conformance_boot_lead", default=None)


@contextlib.contextmanager
def boot_priority(level: int, owner: str = "") -> Iterator[None]:
    """Boots started in this context (and the threads it hands work to) have urgency ``level``.

    A ``LEAD`` context holds the queue back from its start until its first
    instance is up (or it ends), so that the boots queued meanwhile by other
    scenarios cannot get ahead of it while it is still on its way to the gate.
    """
    lead = _Lead(_gate) if level == LEAD else None
    tokens = (_priority.set(level), _owner.set(owner), _lead.set(lead))
    try:
        yield
    finally:
        if lead is not None:
            lead.done()
        _priority.reset(tokens[0])
        _owner.reset(tokens[1])
        _lead.reset(tokens[2])


def _slots() -> int:
    """One per core, shared among xdist's workers (each has a gate of its own)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        workers = 1
    return max(1, cores // max(1, workers))


class BootSlot:
    """A held place in the gate (or a lead's boot); :meth:`release` is idempotent."""

    def __init__(self, gate: _Gate | None, *, lead: _Lead | None = None) -> None:
        self._gate = gate
        self._lead = lead

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.give_back()
        if self._lead is not None:
            self._lead.done()


class _Lead:
    """A lead scenario on its way to its first instance: the queue waits for it."""

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate
        self._done = False
        gate.lead_started()

    def done(self) -> None:
        if not self._done:
            self._done = True
            self._gate.lead_done()


class _Ticket:
    __slots__ = ("hurried", "key", "owner")

    def __init__(self, key: str, owner: str) -> None:
        self.key = key
        self.owner = owner
        self.hurried = False


class _Gate:
    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[int, int, _Ticket]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        #: Owners and instances a check waits for: their later boots do not queue either
        #: (a check may come to wait before the boot it needs has reached the gate).
        self._hurried: set[str] = set()
        self._hurried_keys: set[str] = set()
        #: Lead boots under way: the queue waits for them (they are the critical path).
        self._leading = 0

    def take(self, level: int, key: str, owner: str) -> BootSlot:
        if level <= URGENT or (owner and owner in self._hurried) or key in self._hurried_keys:
            return BootSlot(None)
        if level <= LEAD:
            return BootSlot(None, lead=_lead.get())
        ticket = _Ticket(key, owner)
        entry = (level, next(self._order), ticket)
        with self._cond:
            heapq.heappush(self._waiting, entry)
            granted = self._cond.wait_for(
                lambda: (
                    ticket.hurried
                    or (self._free > 0 and not self._leading and self._waiting[0] is entry)
                ),
                timeout=units(QUEUE_BOUND),
            )
            self._waiting.remove(entry)
            heapq.heapify(self._waiting)
            self._cond.notify_all()
            if ticket.hurried or not granted:
                # Hurried, or queued past the bound (a slot that was never given back):
                # the gate only orders boots, so it lets this one go rather than hang.
                return BootSlot(None)
            self._free -= 1
        return BootSlot(self)

    def hurry(self, key: str = "", owner: str = "") -> None:
        with self._cond:
            if owner:
                self._hurried.add(owner)
            if key:
                self._hurried_keys.add(key)
            for _, _, ticket in self._waiting:
                if (key and ticket.key == key) or (owner and ticket.owner == owner):
                    ticket.hurried = True
            self._cond.notify_all()

    def give_back(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def lead_started(self) -> None:
        with self._cond:
            self._leading += 1

    def lead_done(self) -> None:
        with self._cond:
            self._leading -= 1
            self._cond.notify_all()


_gate = _Gate(_slots())


def acquire(key: str) -> BootSlot:
    """A slot for booting instance ``key`` at the current context's urgency (waits for its turn)."""
    return _gate.take(_priority.get(), key, _owner.get())


def hurry(key: str = "", owner: str = "") -> None:
    """A check now waits for instance ``key``, or for ``owner``'s work: its queued boots go at once.

    Without this a check would wait behind every background boot queued before
    the one it needs (the instance's start lock is held by the queued boot, or
    the scenario it awaits has not booted yet).
    """
    if _priority.get() <= URGENT:
        _gate.hurry(key, owner)
