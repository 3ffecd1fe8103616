"""Independent scenarios of one target, run at once so that their bounded waits overlap.

A check that waits out a bound (a server that hangs in an error case) costs the
whole bound; a module of such checks costs the sum.  A :class:`Batch` starts
every independent scenario of a module together, once per target, on an event
loop of its own in a thread (each check runs on its own loop, which ends with
the check); each check then awaits its own scenario's result and judges it as
before.  Same requests, same bounds: only the waiting overlaps.

A module declares its scenarios with :func:`scenarios`; as soon as a target's
server is up, the batches of every module that has checks selected for it start
(:func:`start_batches`), so a module's bounded waits overlap with all the checks
that run before it, not only with each other.  A check gets its scenario's
outcome with :func:`scenario`, which starts the batch itself if nothing has.

The target's :class:`~conformance._probe.ServerUnderTest` owns its batches and
waits for them before it stops, so no scenario outlives the server it talks to.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread


if TYPE_CHECKING:
    from conformance._probe import Probe, ServerUnderTest


__all__ = ["Batch", "Scenario", "scenario", "scenarios", "start_batches"]

#: One independent scenario: what it sends, through a probe; returns what came back (or raises).
Scenario = Callable[["Probe"], Awaitable[Any]]
ScenarioTable = Callable[[], Mapping[str, Scenario]]

#: The scenario tables of the suite modules, by module name.
_TABLES: dict[str, ScenarioTable] = {}


class Batch:
    """Scenarios started together in a thread of their own; each result is a future."""

    def __init__(
        self, jobs: Mapping[str, Callable[[], Awaitable[Any]]], log_offsets: Mapping[int, int]
    ) -> None:
        #: Where each instance's log stood when the batch started (evidence for the checks).
        self.log_offsets = dict(log_offsets)
        self._futures: dict[str, concurrent.futures.Future[Any]] = {
            name: concurrent.futures.Future() for name in jobs
        }
        self._thread = threading.Thread(
            target=anyio.run, args=(self._run_all, dict(jobs)), name="asgi-batch", daemon=True
        )
        self._thread.start()

    async def _run_all(self, jobs: dict[str, Callable[[], Awaitable[Any]]]) -> None:
        async with anyio.create_task_group() as tasks:
            for name, job in jobs.items():
                tasks.start_soon(self._one, name, job)

    async def _one(self, name: str, job: Callable[[], Awaitable[Any]]) -> None:
        future = self._futures[name]
        try:
            future.set_result(await job())
        except Exception as exc:
            future.set_exception(exc)

    async def result(self, name: str, probe: Probe) -> Any:
        """Scenario ``name``'s result (or its exception), with the probe's log evidence reaching back to the batch's start."""
        try:
            return await anyio.to_thread.run_sync(self._futures[name].result)
        finally:
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
        self._thread.join()


def scenarios(module: str) -> Callable[[ScenarioTable], ScenarioTable]:
    """Declare ``module``'s independent scenarios (a function returning them by name)."""

    def register(table: ScenarioTable) -> ScenarioTable:
        _TABLES[module] = table
        return table

    return register


def _starter(server: ServerUnderTest, module: str, only: str | None = None) -> Callable[[], Batch]:
    def start() -> Batch:
        from conformance._probe import Probe

        probe = Probe(server)
        offsets = {i.pid: i.log_size() for i in server.instances() if i.pid is not None}
        table = _TABLES[module]()
        if only is not None:
            table = {only: table[only]}
        return Batch({name: partial(run, probe) for name, run in table.items()}, offsets)

    return start


def start_batches(server: ServerUnderTest, modules: Iterable[str]) -> None:
    """Start the batches of ``modules`` (those that declared scenarios) for ``server``'s target.

    Only for modules whose every check is selected: a run of a few checks (``-k``, a
    mutant's column) starts just the scenarios its checks ask for, when they ask.
    """
    for module in modules:
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
