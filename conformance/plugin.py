"""The pytest plugin (entry point ``pytest11: asgi_conformance``).

Pytest loads this module in every run of the environment, so it must stay inert
and cheap unless ``--asgi-server`` is given: it imports only the standard
library and pytest at module level, and registers the fixtures and the matrix
reporter only when the suite is active.

With ``--asgi-server`` and no paths, the packaged suite directory is added to the
arguments and collected by :class:`SuiteDirectory`, which ignores the user's
``python_files``/``python_functions`` so the suite runs from any directory.
"""

from __future__ import annotations

import functools
import gc
import inspect
import os
import shlex
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest


if TYPE_CHECKING:
    from conformance._selection import Selection

SERVER_OPTION = "--asgi-server"
REPORT_OPTION = "--asgi-report"
STRICT_OPTION = "--asgi-strict"
TIMEOUT_OPTION = "--asgi-timeout-factor"
ONLY_OPTION = "--asgi-only"
LEVEL_OPTION = "--asgi-level"
KNOWN_FAILURES_OPTION = "--asgi-known-failures"
URL_OPTION = "--asgi-url"
CHANNEL_OPTION = "--asgi-channel"
#: Where a remote target's probe app reports, unless --asgi-channel says otherwise.
DEFAULT_CHANNEL = "127.0.0.1:8765"
_SELECTION: pytest.StashKey[Selection] = pytest.StashKey()

SUITE_DIR = Path(__file__).resolve().parent / "suite"
MARKER = "asgi_requirement"
AHEAD_MARKER = "asgi_ahead"
PROPERTY_PREFIX = "asgi."


def _asked_for_in(argv: list[str]) -> bool:
    """Whether ``argv`` (or ``PYTEST_ADDOPTS``) names ``--asgi-server``: a peek, not the parse."""
    try:
        extra = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    except ValueError:
        extra = []
    return any(a == SERVER_OPTION or a.startswith(SERVER_OPTION + "=") for a in argv + extra)


if _asked_for_in(sys.argv[1:]):
    # Pytest imports (and rewrites) the other plugins of the environment before any hook
    # runs; where bytecode may not be written, that is a third of a second compiled from
    # source in every run.  Choosing the cache now serves the plugins loaded after this
    # one; pytest_load_initial_conftests does it (idempotently) for a run started otherwise.
    from conformance._bytecode import cache_bytecode

    cache_bytecode()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asgi", "ASGI conformance")
    group.addoption(
        SERVER_OPTION,
        action="append",
        default=[],
        metavar="SERVER",
        help=(
            "run the ASGI conformance suite against SERVER: a known profile (uvicorn, "
            "uvicorn:h11, uvicorn:* for all variants), a profile .toml path, or "
            "NAME='COMMAND ... {host} {port} {app}'. Repeat for a side-by-side matrix."
        ),
    )
    group.addoption(
        URL_OPTION,
        action="append",
        default=[],
        metavar="URL",
        help=(
            "judge the probe app (conformance.apps.probe:app) served at http://HOST:PORT by a "
            "server the suite does not start ([NAME=]URL); checks that need to start or "
            "signal a server are unsupported there. Repeatable"
        ),
    )
    group.addoption(
        CHANNEL_OPTION,
        default=DEFAULT_CHANNEL,
        metavar="HOST:PORT",
        help=(
            "where a remote target's probe app reports what it saw: serve it with "
            f"ASGI_CONFORMANCE_CHANNEL=tcp://HOST:PORT (default {DEFAULT_CHANNEL})"
        ),
    )
    group.addoption(
        REPORT_OPTION,
        default="asgi-report",
        metavar="DIR",
        help="directory for matrix.json, matrix.md and matrix.html (default: ./asgi-report)",
    )
    group.addoption(
        STRICT_OPTION,
        action="store_true",
        default=False,
        help="treat SHOULD/MAY misses (warn) as failures",
    )
    group.addoption(
        ONLY_OPTION,
        action="append",
        default=[],
        metavar="GLOB",
        help="judge only the requirements whose id matches GLOB ('http.scope.*'); repeatable",
    )
    group.addoption(
        LEVEL_OPTION,
        action="append",
        default=[],
        metavar="LEVEL",
        help="judge only the requirements of LEVEL (MUST, SHOULD, MAY, optional, info); repeatable",
    )
    group.addoption(
        KNOWN_FAILURES_OPTION,
        default=None,
        metavar="FILE",
        help=(
            "a TOML file of accepted failures per column (reason, issue link): they are "
            "expected failures, and one that passes again fails the run as stale"
        ),
    )
    group.addoption(
        TIMEOUT_OPTION,
        type=float,
        default=None,
        metavar="FACTOR",
        help="multiply every timeout of the suite by FACTOR (slow machines; default 1)",
    )


def _active(config: pytest.Config) -> bool:
    return bool(config.getoption(SERVER_OPTION, default=None)) or bool(
        config.getoption(URL_OPTION, default=None)
    )


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    namespace = early_config.known_args_namespace
    servers = getattr(namespace, "asgi_server", None) or []
    urls = getattr(namespace, "asgi_url", None) or []
    if not servers and not urls:
        return
    from conformance._profiles import (
        ProfileError,
        channel_address,
        resolve_remote,
        resolve_targets,
    )

    try:
        chosen = resolve_targets(servers) + [resolve_remote(url) for url in urls]
        channel_address(getattr(namespace, "asgi_channel", None) or DEFAULT_CHANNEL)
        names = [target.name for target in chosen]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ProfileError(f"server selected twice: {', '.join(twice)}")
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    from conformance._extras import missing_for

    missing = missing_for(chosen)
    if missing:
        raise pytest.UsageError(missing)
    if not getattr(namespace, "file_or_dir", None):
        args.append(str(SUITE_DIR))
    from conformance._bytecode import cache_bytecode, keep_hypothesis_home

    cache_bytecode()
    keep_hypothesis_home()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*requirement_ids): the catalogue requirement an ASGI conformance check judges "
        "(one per protocol)",
    )
    config.addinivalue_line(
        "markers",
        f"{AHEAD_MARKER}: an independent ASGI conformance check, run beside the others",
    )
    if not _active(config):
        return
    from conformance import _fixtures
    from conformance._timing import set_factor

    factor = config.getoption(TIMEOUT_OPTION)
    if factor is not None:
        if factor <= 0:
            raise pytest.UsageError(f"{TIMEOUT_OPTION} must be positive, not {factor}")
        set_factor(factor)
    from conformance._selection import Selection

    # A bad selection is a usage error before anything runs (or any report is written).
    config.stash[_SELECTION] = Selection.from_options(
        config.getoption(ONLY_OPTION), config.getoption(LEVEL_OPTION)
    )
    known_file = config.getoption(KNOWN_FAILURES_OPTION)
    if known_file:
        from conformance._known import KNOWN, load_known_failures

        path = Path(known_file)
        config.stash[KNOWN] = load_known_failures(
            path if path.is_absolute() else config.invocation_params.dir / path
        )
    config.pluginmanager.register(_fixtures, "asgi_conformance_fixtures")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        from conformance._xdist import TargetScheduler

        config.pluginmanager.register(TargetScheduler(), "asgi_conformance_xdist")
    if not hasattr(config, "workerinput"):
        from conformance._reporter import MatrixReporter

        config.pluginmanager.register(MatrixReporter(config), "asgi_conformance_reporter")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempt what collection built (pytest, hypothesis, the suite) from the garbage collector.

    Nothing of it is garbage, yet every full collection walks it all, and pytest
    ends each session with several (``gc_collect_harder``): on this suite's heap
    that was half a second per pytest process, per xdist worker.  Objects made
    by the checks are collected as usual.
    """
    if _active(session.config):
        gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Exempt what the run built (reports, evidence) from the garbage collector too.

    Pytest's last cleanup collects several times over; on an xdist controller, which
    never collects (so never froze), that walked every worker's reports: a tenth of a
    second after the last check.  The process ends right after.
    """
    if _active(session.config):
        gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _active(config):
        from conformance._launcher import reap_all

        reap_all()


# -- collection ---------------------------------------------------------------------------


class SuiteModule(pytest.Module):
    """A suite module: its checks are named ``test_*`` whatever the user's ini says."""

    def funcnamefilter(self, name: str) -> bool:
        return name.startswith("test_")

    def classnamefilter(self, name: str) -> bool:
        return name.startswith("Test")


#: Suite modules in reading order (the rest follow by name).  Modules whose checks mostly
#: await scenarios started with the server (conformance/_batch.py) come late in their area,
#: so those scenarios' bounded waits pass while the other checks run.
MODULE_ORDER = (
    "test_http_scope",
    "test_http_root_path",
    "test_legacy_app",
    "test_http_concurrency",
    "test_http_request_body",
    "test_http_keepalive",
    "test_http_response",
    "test_http_streaming",
    "test_http_load",
    "test_http_disconnect",
    "test_http_app_errors",
    "test_ext_http",
    "test_websocket_scope",
    "test_websocket_handshake",
    "test_websocket_messages",
    "test_websocket_close",
    "test_ext_websocket",
    "test_lifespan",
)


def _module_order(path: Path) -> tuple[int, str]:
    known = path.stem in MODULE_ORDER
    return (MODULE_ORDER.index(path.stem) if known else len(MODULE_ORDER), path.stem)


class SuiteDirectory(pytest.Directory):
    """The packaged suite, collected independently of ``python_files``, in reading order."""

    def collect(self) -> Generator[pytest.Item | pytest.Collector, None, None]:
        for path in sorted(self.path.glob("test_*.py"), key=_module_order):
            yield SuiteModule.from_parent(self, path=path)


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path == SUITE_DIR:
        return SuiteDirectory.from_parent(parent, path=path)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "asgi_server" not in metafunc.fixturenames:
        return
    if not _active(metafunc.config):
        return
    # Resolved once per session (profile files read and validated once), not per check.
    from conformance._fixtures import applicable_targets

    names = applicable_targets(metafunc.config, metafunc.definition)
    metafunc.parametrize(
        "asgi_server",
        [pytest.param(name, id=name) for name in names],
        indirect=True,
        scope="session",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the checks no selected column has (an HTTP/1-only row when only h2 columns run).

    Their requirement has no cell there: not a skip, not a verdict, not in ``--co``.
    """
    if not _active(config):
        return
    from conformance._fixtures import judged_requirement

    selection = config.stash[_SELECTION]
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        uses = "asgi_server" in getattr(item, "fixturenames", ())
        rid = judged_requirement(item)
        if (uses and (spec is None or not isinstance(spec.params.get("asgi_server"), str))) or (
            rid is not None and not selection.wants(rid)
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is not None and _active(item.config):
        from conformance._outcomes import short_verdict_failures

        short_verdict_failures(item)


# -- running ------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` checks with anyio, without asking the user for an async plugin."""
    if pyfuncitem.get_closest_marker(MARKER) is None:
        return None
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    import anyio

    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    if pyfuncitem.get_closest_marker(AHEAD_MARKER) is not None:
        anyio.run(_replayed_or_run, pyfuncitem.nodeid, function, kwargs)
    else:
        anyio.run(functools.partial(function, **kwargs))
    return True


async def _replayed_or_run(node: str, function: Any, kwargs: dict[str, Any]) -> None:
    """A check that ran ahead (conformance/_batch.py) replays its outcome; else it runs now."""
    from conformance._batch import replay_ahead
    from conformance._probe import Probe

    probe = kwargs.get("asgi")
    if isinstance(probe, Probe) and await replay_ahead(node, probe):
        return
    await function(**kwargs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    marker = item.get_closest_marker(MARKER)
    if marker is None or not _active(item.config):
        return report
    from conformance._outcomes import judge_report

    judge_report(item, call, report, strict=bool(item.config.getoption(STRICT_OPTION)))
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    verdict = _property(report, "verdict")
    if verdict is None or report.when != "call":
        return None
    if _property(report, "known") is not None and report.skipped:
        return "xfailed", "K", "KNOWN FAILURE"
    if verdict == "warn" and report.skipped:
        return "xfailed", "W", "WARN"
    if verdict == "info" and report.passed:
        return "passed", "i", "INFO"
    if verdict == "unsupported":
        return "skipped", "u", "UNSUPPORTED"
    return None


def _property(report: pytest.TestReport, key: str) -> Any:
    for name, value in getattr(report, "user_properties", ()):
        if name == PROPERTY_PREFIX + key:
            return value
    return None


def pytest_report_collectionfinish(
    config: pytest.Config, items: Sequence[pytest.Item]
) -> list[str] | None:
    """With ``--co``: the requirements the run would judge, by id, level and columns."""
    if not (_active(config) and config.option.collectonly):
        return None
    from conformance._catalogue import requirement
    from conformance._fixtures import judged_requirement

    columns: dict[str, list[str]] = {}
    for item in items:
        rid = judged_requirement(item)
        spec = getattr(item, "callspec", None)
        if rid is None or spec is None:
            continue
        found = columns.setdefault(rid, [])
        target = str(spec.params.get("asgi_server"))
        if target not in found:
            found.append(target)
    lines = [f"{len(columns)} requirement(s):"]
    for rid, found in columns.items():
        req = requirement(rid)
        lines.append(f"  {rid} ({req.level.value}, {req.citation}): {', '.join(found)}")
    return lines


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _active(config):
        return None
    from conformance import __version__
    from conformance._profiles import resolve_targets
    from conformance._timing import timeout_factor

    lines = [f"asgi-conformance {__version__} (timeout factor {timeout_factor():g})"]
    for target in resolve_targets(config.getoption(SERVER_OPTION)):
        lines.append(f"  {target.name}: {target.profile.version()}  ({target.profile.source})")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    return lines
