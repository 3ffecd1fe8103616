"""A pytest plugin (``-p _breakdown_plugin``) that records where one conformance run spends its time.

Loaded only by ``benchmarks/breakdown.py``.  It wraps, for the length of the run, the
few places the time can go: the launcher's starts and stops of server instances,
the side channel's bounded waits (those that ran out their bound prove a negative;
the others are round trips), each scenario and each check run ahead (from start to
outcome, in their batch's thread), and pytest's own phases.  Times are sums of durations:
work that overlaps (a batch of scenarios in its thread, instances started at once)
counts in full in its own row, and the wall time says what the overlap left.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Generator
from typing import Any

import pytest


OUTPUT_VARIABLE = "ASGI_CONFORMANCE_BREAKDOWN"

_sums: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)
_marks: dict[str, float] = {}


def _add(key: str, seconds: float) -> None:
    _sums[key] += seconds
    _counts[key] += 1


def _timed(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a ServerProcess method), its time added under ``kind: APP``."""

    def wrapper(process: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return function(process, *args, **kwargs)
        finally:
            app = str(process.config.app).rpartition(":")[2]
            extra = " (root path)" if process.config.root_path else ""
            _add(f"{kind}: {app}{extra}", time.monotonic() - began)

    return wrapper


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _marks["configured"] = time.monotonic()
    from conformance import _launcher, _sidechannel

    process = _launcher.ServerProcess
    process.start = _timed("boot", process.start)  # type: ignore[method-assign]
    process.wait_ready = _timed("boot", process.wait_ready)  # type: ignore[method-assign]
    process.stop = _timed("stop", process.stop)  # type: ignore[method-assign]

    from conformance import _batch

    batch = _batch.Batch
    one = batch._one

    async def timed_one(self: Any, name: str, job: Any) -> None:
        began = time.monotonic()
        try:
            await one(self, name, job)
        finally:
            short = name.rpartition("::")[2].partition("[")[0]
            _add(f"scenario: {short}", time.monotonic() - began)

    batch._one = timed_one  # type: ignore[method-assign]

    from conformance import _probe

    server = _probe.ServerUnderTest
    retire = server.retire

    def counted_retire(self: Any, *args: Any, **kwargs: Any) -> None:
        _add("retired early (shared instances)", 0.0)
        retire(self, *args, **kwargs)

    server.retire = counted_retire  # type: ignore[method-assign]

    channel = _sidechannel.SideChannel
    original = channel.wait_until

    def wait_until(self: Any, collect: Any, done: Any, timeout: float) -> Any:
        began = time.monotonic()
        found = original(self, collect, done, timeout)
        kind = "side channel: round trips" if done(found) else "side channel: waits that ran out"
        _add(kind, time.monotonic() - began)
        return found

    channel.wait_until = wait_until  # type: ignore[method-assign]


def pytest_collection_modifyitems() -> None:
    _marks["collected"] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, Any]:
    began = time.monotonic()
    try:
        return (yield)
    finally:
        module = getattr(getattr(item, "module", None), "__name__", "?").rpartition(".")[2]
        _add(f"checks: {module}", time.monotonic() - began)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get(OUTPUT_VARIABLE)
    if not path:
        return
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {
        "marks": {**_marks, "unconfigured": time.monotonic()},
        "sums": dict(_sums),
        "counts": dict(_counts),
        "cpu": {
            "pytest": me.ru_utime + me.ru_stime,
            "servers": children.ru_utime + children.ru_stime,
        },
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(record, file)
