"""Running the suite under pytest-xdist: one target's checks on one worker.

xdist's default (``--dist load``) hands checks out one by one, so every worker
ends up with checks of every target and boots every target's main instance,
lifespan instances and scenario batches for itself: with two workers the
four-server run did twice the boots and took longer than the serial run.

A target is the unit of work instead (:class:`TargetScheduling`, xdist's
``loadscope`` with the target as the scope): each worker boots each of its
targets once, the scenarios started with a target overlap with that target's
checks as in a serial run, and the workers take targets as they become free.
The controller folds the workers' reports into the same matrix as a serial run.
A ``--dist`` the user chose is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling


__all__ = ["TargetScheduler", "TargetScheduling", "target_of_node"]


def target_of_node(nodeid: str, targets: Iterable[str]) -> str | None:
    """The target whose parameter id is in ``nodeid``'s brackets (``test_x[uvicorn:h11]``)."""
    _, bracket, params = nodeid.partition("[")
    if not bracket:
        return None
    params = params.removesuffix("]")
    for name in sorted(targets, key=len, reverse=True):
        if params == name or params.startswith(f"{name}-") or params.endswith(f"-{name}"):
            return name
        if f"-{name}-" in params:
            return name
    return None


class TargetScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
    """xdist's scope scheduling, where a check's scope is its target."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        from conformance._fixtures import targets

        self._targets = list(targets(config))

    def _split_scope(self, nodeid: str) -> str:
        return target_of_node(nodeid, self._targets) or super()._split_scope(nodeid)


class TargetScheduler:
    """The plugin object that offers :class:`TargetScheduling` to xdist's controller."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":
            return None
        return TargetScheduling(config, log)
