"""Fixtures of the suite, registered by the plugin only when ``--asgi-server`` is given.

All are prefixed ``asgi_`` (or are ``asgi`` itself) so they cannot collide with a
user's own fixtures.

A target's server is stopped in the teardown of its *last* check (the next item
is another target's, or there is none), by :func:`pytest_runtest_teardown`, not
when pytest finalises the session fixture: pytest finalises a parametrised
session fixture only when the next parameter is set up, so a server that had to
be killed would be blamed on the first check of the *next* server; and at the
end of an interrupted session a finaliser that raises aborts the session
before the matrix is written.  A stop that needed SIGKILL is therefore a
teardown error of the target's last check, with the server log tail; a stop
left to the end of an interrupted session is only recorded.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from conformance._batch import AHEAD_MARKER, STANDALONE, start_ahead, start_batches
from conformance._launcher import ServerProcess, ServerStartError
from conformance._probe import Probe, ServerUnderTest
from conformance._profiles import Target, channel_address, resolve_remote, resolve_targets
from conformance._registry import MARKER, judged
from conformance._sidechannel import SideChannel
from conformance._verdicts import HarnessError


__all__ = [
    "UNSTARTED",
    "applicable_targets",
    "asgi",
    "asgi_server",
    "asgi_side_channel",
    "judged_requirement",
    "pytest_collection_modifyitems",
    "pytest_runtest_teardown",
    "targets",
]

_TARGETS = pytest.StashKey[dict[str, Target]]()
#: On a check's item: why its target's server never started (the check was not judged).
UNSTARTED = pytest.StashKey[str]()
#: How many times a column's server is started again after dying mid-run.
MAX_RESTARTS = 3


def targets(config: pytest.Config) -> dict[str, Target]:
    """The selected targets by name, resolved once per process."""
    if _TARGETS not in config.stash:
        selected = resolve_targets(config.getoption("--asgi-server"))
        selected += [resolve_remote(url) for url in config.getoption("--asgi-url")]
        config.stash[_TARGETS] = {t.name: t for t in selected}
    return config.stash[_TARGETS]


def applicable_targets(config: pytest.Config, definition: pytest.Item) -> list[str]:
    """The selected targets that have the requirement ``definition`` judges.

    A requirement of one protocol (``protocol = "http/1"``, ``tls = true`` in the
    catalogue) is not parametrised for other columns: its cell there is not
    applicable, and no check of HTTP/1 bytes ever runs on an HTTP/2 column.
    """
    selected = targets(config)
    marker = definition.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        return list(selected)
    return [name for name, t in selected.items() if judged(marker.args, t.wire, t.tls)]


def _applies(function: Any, target: Target) -> bool:
    marker = next((m for m in getattr(function, "pytestmark", ()) if m.name == MARKER), None)
    return marker is None or judged(marker.args, target.wire, target.tls) is not None


def judged_requirement(item: pytest.Item) -> str | None:
    """The requirement id a check's item judges: of its ids, the one its column's wire has."""
    marker = item.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        return None
    if len(marker.args) == 1:
        return str(marker.args[0])
    spec = getattr(item, "callspec", None)
    target = targets(item.config).get(str(spec.params.get("asgi_server"))) if spec else None
    return judged(marker.args, target.wire, target.tls) if target is not None else None


@pytest.fixture(scope="session")
def asgi_side_channel() -> Iterator[SideChannel]:
    channel = SideChannel()
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def asgi_server(
    request: pytest.FixtureRequest,
    asgi_side_channel: SideChannel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerUnderTest]:
    """One target's server, started once for all its checks and always stopped."""
    target = targets(request.config)[request.param]
    log_dir = tmp_path_factory.mktemp("asgi-logs", numbered=True)
    server = ServerUnderTest(
        target,
        asgi_side_channel,
        log_dir,
        channel_address(request.config.getoption("--asgi-channel")),
    )
    try:
        try:
            server.main  # noqa: B018 - starting is the point
        except ServerStartError as exc:
            server.unavailable = str(exc)  # every check of the target says so: see asgi()
        else:
            start_batches(server, _modules_of(request.session, target.name))
            start_ahead(server, _ahead_of(request.session, target.name))
        yield server
    finally:
        # Normally stopped already, by the last check's teardown; here only when the
        # session ends early (Ctrl-C, -x).  Never raise: nothing is left to blame.
        hung = _stop(server)
        if hung:
            _record(request.config, hung)


def _modules_of(session: pytest.Session, target: str) -> list[str]:
    """The suite modules whose every check (that applies to ``target``) is selected for it, in run order."""
    selected: dict[str, set[str]] = {}
    modules: dict[str, Any] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and _target_of(item) == target:
            modules.setdefault(module.__name__, module)
            selected.setdefault(module.__name__, set()).add(getattr(item, "originalname", ""))
    column = targets(session.config)[target]
    return [
        name
        for name, module in modules.items()
        if {f for f, fn in vars(module).items() if f.startswith("test_") and _applies(fn, column)}
        <= selected[name]
    ]


def _ahead_of(session: pytest.Session, target: str) -> dict[str, Any]:
    """The selected checks of ``target`` marked to run ahead: node id -> check function."""
    return {
        item.nodeid: item.obj
        for item in session.items
        if _target_of(item) == target
        and item.get_closest_marker(AHEAD_MARKER) is not None
        and isinstance(item, pytest.Function)
    }


_RETIRE_POINTS = pytest.StashKey[frozenset[str]]()


def _retire_points(session: pytest.Session) -> frozenset[str]:
    """For each target, the check after which only standalone modules' checks are left.

    From there on nothing uses the target's shared instances (conformance/_batch.py),
    so they stop while those checks wait out their scenarios.
    """
    if _RETIRE_POINTS not in session.stash:
        first_of_tail: dict[str, str] = {}
        for item in session.items:
            target = _target_of(item)
            if target is None:
                continue
            if _module_name(item) in STANDALONE:
                first_of_tail.setdefault(target, item.nodeid)
            else:
                first_of_tail.pop(target, None)
        session.stash[_RETIRE_POINTS] = frozenset(first_of_tail.values())
    return session.stash[_RETIRE_POINTS]


def _module_name(item: pytest.Item) -> str | None:
    return getattr(getattr(item, "module", None), "__name__", None)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each target's checks together, and those of ``standalone`` modules last among them.

    pytest groups checks by their session-scoped parameter only as far as its other
    parameters let it (a check parametrised twice can land among another target's),
    and a target whose checks are split keeps its server up across the other's.
    Within a target, its shared instances can stop early only once nothing but checks
    on instances of their own is left (:func:`_retire_points`): a module that sorts
    after the lifespan checks by name would otherwise keep them up to the end, and
    the column would wait for their graceful shutdowns after its longest watch.
    Targets keep the order pytest gave them, checks their order within a target.
    """
    runs: dict[str | None, list[pytest.Item]] = {}
    for item in items:
        runs.setdefault(_target_of(item), []).append(item)
    for target, run in runs.items():
        if target is not None:
            run.sort(key=lambda item: _module_name(item) in STANDALONE)  # stable
    items[:] = [item for run in runs.values() for item in run]


def _stop(server: ServerUnderTest) -> str:
    """Stop every instance; "" if all stopped on SIGTERM, else what was killed, with its log."""
    instances: list[ServerProcess] = server.every_instance()
    server.stop()
    for instance in instances:
        if instance.killed:
            return (
                f"{server.target.name} {instance.stop_report}\n"
                f"--- server log tail ---\n{instance.log_tail(20)}"
            )
    return ""


def _record(config: pytest.Config, message: str) -> None:
    """Say, outside any check, that a server had to be killed: on the terminal and in the matrix."""
    first = message.splitlines()[0]
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"asgi-conformance: {first}")
    reporter = config.pluginmanager.get_plugin("asgi_conformance_reporter")
    builder = getattr(reporter, "builder", None)
    if builder is not None:
        builder.notes.append(first)


def _target_of(item: pytest.Item | None) -> str | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("asgi_server") if callspec is not None else None
    return str(value) if value is not None else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Stop a target's server after its last check; a stop that needed SIGKILL errors that check."""
    try:
        return (yield)
    finally:
        target = _target_of(item)
        server = (getattr(item, "funcargs", None) or {}).get("asgi_server")
        if target is not None and _target_of(nextitem) != target:
            hung = _stop(server) if isinstance(server, ServerUnderTest) else ""
            if hung:
                raise HarnessError(hung)


@pytest.fixture
def asgi(asgi_server: ServerUnderTest, request: pytest.FixtureRequest) -> Probe:
    """The probe session of one check; an error if the server has died since the last one.

    A server that never started errors its target's first check with the reason and
    the log tail, without a traceback; the others are skipped with a line pointing
    there (their matrix cells are ``error`` all the same): one reason, not a flood.
    """
    if asgi_server.unavailable:
        request.node.stash[UNSTARTED] = asgi_server.unavailable
        if not asgi_server.unavailable_told:
            asgi_server.unavailable_told = True
            pytest.fail(asgi_server.unavailable, pytrace=False)
        pytest.skip(
            f"not judged: {asgi_server.target.name} did not start (its first check says why)"
        )
    if request.node.nodeid in _retire_points(request.session):
        asgi_server.retire(STANDALONE)
    crashed = asgi_server.crashed()
    if crashed:
        if asgi_server.restarts >= MAX_RESTARTS:
            raise HarnessError(f"{crashed}\n(not restarted: it crashed {MAX_RESTARTS} times)")
        asgi_server.restart(during=asgi_server.last_check)
    asgi_server.last_check = request.node.name
    return Probe(asgi_server)
