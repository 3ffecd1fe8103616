"""Independent scenarios of one target, run at once so that their bounded waits overlap.

A check that waits out a bound (a server that hangs in an error case) costs the
whole bound; a module of such checks costs the sum.  A :class:`Batch` starts
every independent scenario of a module together, once per target, each on an
event loop of its own in a thread of its own (each check runs on its own loop,
which ends with the check), so that no scenario's blocking step can hold up
another's clock; each check then awaits its own scenario's result and judges it
as before.  Same requests, same bounds: only the waiting overlaps.

A module declares its scenarios with :func:`scenarios`; as soon as a target's
server is up, the batches of every module that has checks selected for it start
(:func:`start_batches`), so a module's bounded waits overlap with all the checks
that run before it, not only with each other.  A check gets its scenario's
outcome with :func:`scenario`, which starts the batch itself if nothing has.

A check that is itself one independent scenario (it waits out a window to prove
that something does not happen, or moves megabytes) is marked :func:`ahead`
instead of being split in two: the whole check runs in the target's *ahead*
batch as soon as the server is up, with a probe of its own, and at its turn
the check replays what happened (its evidence, and the exception that is its
outcome) from :func:`replay_ahead`.  Same code, same requests, same bounds.

The target's :class:`~conformance._probe.ServerUnderTest` owns its batches and
waits for them before it stops, so no scenario outlives the server it talks to.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import pytest

from conformance._boots import BACKGROUND, EARLY, LEAD, URGENT, boot_priority, hurry
from conformance.plugin import AHEAD_MARKER


if TYPE_CHECKING:
    from conformance._probe import Probe, ServerUnderTest


__all__ = [
    "AHEAD_MARKER",
    "STANDALONE",
    "Batch",
    "Scenario",
    "ahead",
    "replay_ahead",
    "scenario",
    "scenarios",
    "start_ahead",
    "start_batches",
]

_AHEAD_BATCH = "ahead"

F = TypeVar("F", bound=Callable[..., Any])

#: One independent scenario: what it sends, through a probe; returns what came back (or raises).
Scenario = Callable[["Probe"], Awaitable[Any]]
ScenarioTable = Callable[[], Mapping[str, Scenario]]

#: The scenario tables of the suite modules, by module name.
_TABLES: dict[str, ScenarioTable] = {}
#: The scenarios of each module whose instances boot first (conformance/_boots.py).
_LEADS: dict[str, frozenset[str]] = {}
#: The scenarios of each module whose instances queue before the others'.
_EARLY: dict[str, frozenset[str]] = {}
#: The modules whose checks use only the instances their own scenarios start.
STANDALONE: set[str] = set()


class Batch:
    """Scenarios started together in a thread of their own; each result is a future."""

    def __init__(
        self,
        jobs: Mapping[str, Callable[[], Awaitable[Any]]],
        log_offsets: Mapping[int, int],
        boot_levels: Mapping[str, int] | None = None,
        probes: Mapping[str, Probe] | None = None,
    ) -> None:
        #: Each scenario's own probe: what it sent becomes the judging check's (reproducers).
        self._probes = dict(probes or {})
        #: Where each instance's log stood when the batch started (evidence for the checks).
        self.log_offsets = dict(log_offsets)
        #: Each scenario's urgency for the instances it boots (default: a check waits for it).
        self._levels = dict(boot_levels or {})
        self._futures: dict[str, concurrent.futures.Future[Any]] = {
            name: concurrent.futures.Future() for name in jobs
        }
        # A loop per scenario, each in its own thread: a scenario that blocks its loop
        # (a synchronous wait on the side channel, a check run ahead as it runs in
        # turn) delays itself only, never the timing of the scenarios beside it.
        self._threads = [
            threading.Thread(
                target=anyio.run, args=(self._one, name, job), name="asgi-batch", daemon=True
            )
            for name, job in jobs.items()
        ]
        for thread in self._threads:
            thread.start()

    async def _one(self, name: str, job: Callable[[], Awaitable[Any]]) -> None:
        future = self._futures[name]
        try:
            with boot_priority(self._levels.get(name, URGENT), self._owner(name)):
                future.set_result(await job())
        except Exception as exc:
            future.set_exception(exc)

    def _owner(self, name: str) -> str:
        return f"{id(self)}:{name}"

    def has(self, name: str) -> bool:
        return name in self._futures

    async def result(self, name: str, probe: Probe) -> Any:
        """Scenario ``name``'s result (or its exception), with the probe's log evidence reaching back to the batch's start."""
        future = self._futures[name]
        if not future.done():
            hurry(owner=self._owner(name))  # a check waits for it now
        try:
            return await anyio.to_thread.run_sync(future.result)
        finally:
            if name in self._probes:
                probe.sent.extend(self._probes[name].sent)
                probe.rids.extend(self._probes[name].rids)
            for instance in probe.server.instances():
                if instance.pid is not None:
                    since = self.log_offsets.get(instance.pid, 0)
                    probe.log_offsets[instance.pid] = min(
                        probe.log_offsets.get(instance.pid, since), since
                    )

    async def settled(self) -> None:
        """Wait until every scenario has ended."""
        await anyio.to_thread.run_sync(self.join)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()


def scenarios(
    module: str,
    *,
    lead: Iterable[str] = (),
    early: Iterable[str] = (),
    standalone: bool = False,
) -> Callable[[ScenarioTable], ScenarioTable]:
    """Declare ``module``'s independent scenarios (a function returning them by name).

    ``lead`` names the scenarios with the longest watches: their instances boot
    before every other background instance, so that the column's other work
    passes while they watch instead of after.  ``early`` names those with a long
    way to go once their instance is up: they queue before the short ones.
    ``standalone`` says that the module's checks use no instance of the target but
    those their scenarios start: once only such checks are left, the target's
    shared instances stop (:meth:`~conformance._probe.ServerUnderTest.retire`).
    """

    def register(table: ScenarioTable) -> ScenarioTable:
        _TABLES[module] = table
        _LEADS[module] = frozenset(lead)
        _EARLY[module] = frozenset(early)
        if standalone:
            STANDALONE.add(module)
        return table

    return register


def _log_offsets(server: ServerUnderTest) -> dict[int, int]:
    """Where each running instance's log stands now: a batch's evidence starts there."""
    return {i.pid: i.log_size() for i in server.instances() if i.pid is not None}


def _starter(server: ServerUnderTest, module: str, only: str | None = None) -> Callable[[], Batch]:
    def start() -> Batch:
        from conformance._probe import Probe

        offsets = _log_offsets(server)
        table = _TABLES[module]()
        if only is not None:
            # A check asked for this scenario alone and waits for it.
            probe = Probe(server)
            return Batch({only: partial(table[only], probe)}, offsets, probes={only: probe})
        lead, early = _LEADS.get(module, frozenset()), _EARLY.get(module, frozenset())
        levels = {
            name: LEAD if name in lead else EARLY if name in early else BACKGROUND for name in table
        }
        probes = {name: Probe(server) for name in table}
        jobs = {name: partial(run, probes[name]) for name, run in table.items()}
        return Batch(jobs, offsets, levels, probes)

    return start


def start_batches(server: ServerUnderTest, modules: Iterable[str]) -> None:
    """Start the batches of ``modules`` (those that declared scenarios) for ``server``'s target.

    Only for modules whose every check is selected: a run of a few checks (``-k``, a
    mutant's column) starts just the scenarios its checks ask for, when they ask.
    """
    # Modules with long watches first: their instances queue for a boot first too.
    for module in sorted(modules, key=lambda m: not _LEADS.get(m)):
        if module in _TABLES:
            server.batch(module, _starter(server, module))


async def scenario(probe: Probe, module: str, name: str) -> Any:
    """What scenario ``name`` of ``module`` returned (or raised), for the check that judges it.

    From the module's batch if it was started with the server, else from a batch of
    this scenario alone (shared by every check that asks for it).
    """
    server = probe.server
    batch = server.started_batch(module) or server.batch(
        f"{module}::{name}", _starter(server, module, only=name)
    )
    return await batch.result(name, probe)


# -- checks that run ahead -----------------------------------------------------------------


def ahead(check: F) -> F:
    """Mark ``check`` (``async def test_x(asgi)``) to run ahead, beside every other check.

    Only for a check that shares nothing with the others: it uses its own
    connections and request ids, waits only on its own observations, and
    judges nothing from server-wide state.
    """
    marked: F = getattr(pytest.mark, AHEAD_MARKER)(check)
    return marked


@dataclass(frozen=True)
class _Ran:
    """What a check that ran ahead left: its probe (evidence) and its outcome."""

    probe: Probe
    error: BaseException | None


async def _run_ahead(check: Callable[..., Awaitable[None]], server: ServerUnderTest) -> _Ran:
    from conformance._probe import Probe

    probe = Probe(server)
    try:
        await check(asgi=probe)
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        return _Ran(probe, exc)
    return _Ran(probe, None)


def start_ahead(
    server: ServerUnderTest, checks: Mapping[str, Callable[..., Awaitable[None]]]
) -> None:
    """Start ``checks`` (node id -> check function) in the target's ahead batch."""
    if not checks:
        return

    def start() -> Batch:
        jobs = {node: partial(_run_ahead, check, server) for node, check in checks.items()}
        offsets = _log_offsets(server)
        return Batch(jobs, offsets, dict.fromkeys(jobs, EARLY))

    server.batch(_AHEAD_BATCH, start)


async def replay_ahead(node: str, probe: Probe) -> bool:
    """At its turn, replay check ``node`` that ran ahead into ``probe``; False if it did not run ahead."""
    batch = probe.server.started_batch(_AHEAD_BATCH)
    if batch is None or not batch.has(node):
        return False
    ran: _Ran = await batch.result(node, probe)
    probe.notes.extend(ran.probe.notes)
    probe.exchanges.extend(ran.probe.exchanges)
    probe.sent.extend(ran.probe.sent)
    probe.rids.extend(ran.probe.rids)
    for pid, offset in ran.probe.log_offsets.items():
        probe.log_offsets[pid] = min(probe.log_offsets.get(pid, offset), offset)
    if ran.error is not None:
        raise ran.error
    return True
