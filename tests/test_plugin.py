"""The plugin as a user meets it: inner pytest runs in subprocesses, against real servers.

Each inner run is a separate ``python -m pytest`` process (servers are subprocesses, and
the plugin keeps per-process state), started in an empty directory with the plugin
loaded from its entry point, exactly as ``pytest --asgi-server=uvicorn`` is run by a user.
Only a few checks are selected (``-k``) to keep the runs short; nothing here hard-codes
what a real server does: verdicts are compared between runs, or read from the run.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ElementTree
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import conformance.suite
from conformance import catalogue
from conformance._matrix import counts
from conformance._reporter import EXIT_SERVER_DID_NOT_START


#: A few checks, chosen to produce pass, info, warn and (on some servers) fail cells.
SUBSET = "scope_type or path_is_percent or concurrent or legacy or lowercase or listening"
SERVERS = ("uvicorn", "hypercorn", "daphne", "granian")
#: Upper bound of one inner run, in seconds: generous, a hang fails instead of blocking CI.
RUN_TIMEOUT = 120.0
#: The verbose status word pytest prints for each verdict (the README's outcome column).
STATUS_WORD = {
    "pass": "PASSED",
    "info": "INFO",
    "warn": "WARN",
    "unsupported": "UNSUPPORTED",
    "fail": "FAILED",
    "error": "ERROR",
}
_STATUS_LINE = re.compile(r"^(test_\w+\.py)::(test_\w+)\[(.+?)\] ([A-Z]+)\b")
HEAVY_MODULES = (
    "conformance._launcher",
    "conformance._fixtures",
    "conformance._probe",
    "conformance._reporter",
    "conformance.clients",
    "h11",
    "h2",
    "aioquic",
    "websockets",
    "wsproto",
    "httpx",
    "jinja2",
)
#: Environment of the outer run that must not leak into an inner one.
_OUTER_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OUTER_ENV:
        monkeypatch.delenv(name, raising=False)


def _inner_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    env.update({"PY_COLORS": "0", "PYTHONIOENCODING": "utf-8"})
    return env


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT)


def _literal(pattern: str) -> str:
    """An fnmatch pattern whose brackets are literal (a parametrised node id has some)."""
    return re.sub(r"[\[\]]", lambda m: f"[{m[0]}]", pattern)


def _matrix(directory: Path, report: str = "asgi-report") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / report / "matrix.json").read_text("utf-8"))
    return data


def _verdicts(matrix: dict[str, Any], servers: tuple[str, ...] | None = None) -> dict[str, Any]:
    """server -> requirement -> (cell verdict, sorted (check, verdict) of its checks)."""
    return {
        server: {
            rid: (cell["verdict"], sorted((c["check"], c["verdict"]) for c in cell["checks"]))
            for rid, cell in row.items()
        }
        for server, row in matrix["results"].items()
        if servers is None or server in servers
    }


def _statuses(result: pytest.RunResult) -> dict[tuple[str, str], str]:
    """(check, server) -> the status word of ``-v`` output."""
    found: dict[tuple[str, str], str] = {}
    for line in result.outlines:
        match = _STATUS_LINE.match(line)
        if match:
            found[match[2], match[3]] = match[4]
    return found


def _suite_requirements() -> dict[str, str]:
    """Every check of the packaged suite: function name -> the (first) requirement id it judges."""
    found = {}
    for module in pkgutil.iter_modules(conformance.suite.__path__):
        loaded = importlib.import_module(f"conformance.suite.{module.name}")
        for name, function in vars(loaded).items():
            mark = next(
                (m for m in getattr(function, "pytestmark", []) if m.name == "asgi_requirement"),
                None,
            )
            if name.startswith("test_") and mark is not None:
                found[name] = str(mark.args[0])
    return found


def _suite_checks(wire: str = "http/1.1", tls: bool = False) -> dict[str, str]:
    """Every check of the packaged suite a column of ``wire`` has: function name -> module file.

    A check of a requirement of another protocol (the HTTP/2 rows on a cleartext HTTP/1.1
    column) has no item there at all.
    """
    from conformance._catalogue import requirement

    found = {}
    for info in pkgutil.iter_modules(conformance.suite.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"conformance.suite.{info.name}")
        for name, value in vars(module).items():
            marks = [m for m in getattr(value, "pytestmark", []) if m.name == "asgi_requirement"]
            applies = bool(marks) and any(requirement(r).applies(wire, tls) for r in marks[0].args)
            if name.startswith("test_") and applies:
                found[name] = f"{info.name}.py"
    return found


def _matrix_section(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "ASGI conformance matrix" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("wrote "))
    return lines[start + 1 : end]


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state.split()[1:2]


def _processes_mentioning(token: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline and _alive(int(entry.name)):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {text}")
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, Path]:
    """One clean, serial, verbose run of the subset against the four shipped servers."""
    cwd = tmp_path_factory.mktemp("reference")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-k", SUBSET]
    command += [f"--asgi-server={name}" for name in SERVERS]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=_inner_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=RUN_TIMEOUT,
        check=False,
    )
    result = pytest.RunResult(
        proc.returncode,
        proc.stdout.splitlines(),
        proc.stderr.splitlines(),
        time.monotonic() - started,
    )
    return result, cwd


# -- inert unless asked -------------------------------------------------------------------


def test_plugin_is_inert_without_asgi_server(pytester: pytest.Pytester) -> None:
    """Autoloaded in every run of the environment: a user's own tests see nothing of it."""
    pytester.makepyfile(
        test_user=f"""
        import sys

        HEAVY = {HEAVY_MODULES!r}

        def test_plugin_is_loaded(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("asgi_conformance")

        def test_nothing_heavy_was_imported():
            loaded = [m for m in HEAVY if m in sys.modules]
            assert loaded == []

        def test_a_user_test_runs_normally():
            assert 1 + 1 == 2
        """
    )
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    output = "\n".join(result.outlines + result.errlines)
    assert not any(line.startswith("asgi-conformance ") for line in result.outlines)
    assert "ASGI conformance matrix" not in output
    assert not (pytester.path / "asgi-report").exists()


def test_a_run_exempts_what_collection_built_from_the_garbage_collector(
    pytester: pytest.Pytester,
) -> None:
    """A full collection walks pytest, hypothesis and the suite; pytest ends with several."""
    pytester.makepyfile(
        freeze_report="""
        import gc

        def pytest_sessionfinish(session):
            print(f"frozen objects: {gc.get_freeze_count()}")
        """
    )
    plain = _run(pytester, "-p", "freeze_report", "--co", "-q", "-s")
    suite = _run(pytester, "-p", "freeze_report", "--co", "-q", "-s", "--asgi-server=uvicorn")
    assert any(line == "frozen objects: 0" for line in plain.outlines), plain.outlines[-5:]
    frozen = [line for line in suite.outlines if line.startswith("frozen objects: ")]
    assert frozen, suite.outlines[-5:]
    assert int(frozen[0].split(": ")[1]) > 10_000


def test_an_xdist_controller_exempts_what_the_run_built_from_the_garbage_collector(
    pytester: pytest.Pytester,
) -> None:
    """The controller never collects, yet holds every worker's reports when pytest's cleanup collects."""
    pytester.makepyfile(
        freeze_report="""
        import gc, os

        def pytest_unconfigure(config):
            if not os.environ.get("PYTEST_XDIST_WORKER"):
                print(f"controller frozen objects: {gc.get_freeze_count()}")
        """
    )
    plain = _run(pytester, "-p", "freeze_report", "-n", "1", "--co", "-q", "-s")
    suite = _run(
        pytester, "-p", "freeze_report", "-n", "1", "--co", "-q", "-s", "--asgi-server=uvicorn"
    )
    assert "controller frozen objects: 0" in plain.outlines, plain.outlines[-5:]
    frozen = [line for line in suite.outlines if line.startswith("controller frozen objects: ")]
    assert frozen, suite.outlines[-5:]
    assert int(frozen[0].split(": ")[1]) > 10_000


def test_help_documents_the_options(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "ASGI conformance:",
            "  --asgi-server=SERVER*",
            "  --asgi-report=DIR*",
            "  --asgi-strict*",
            "  --asgi-timeout-factor=FACTOR*",
        ]
    )


# -- usage errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--asgi-server=nope"],
            "ERROR: unknown ASGI server 'nope'; known: daphne, daphne+https, *, uvicorn, uvicorn:h11, *;"
            " or give NAME='COMMAND {host} {port} {app}' or a profile .toml path",
        ),
        (
            ["--asgi-server=x=python -m x --port {port}"],
            "ERROR: --asgi-server x: the command template has no {app} placeholder",
        ),
        (
            ["--asgi-server=x=python -m x --port {port} --when {when} {app}"],
            "ERROR: --asgi-server x: unknown placeholder(s) {when} in the command template;"
            " known: {app}, {fd}, {host}, {port}, {python}",
        ),
        (
            ["--asgi-server=x=python -m x --port {port {app}"],
            "ERROR: --asgi-server x: bad command template '{port': expected '}' before end of string",
        ),
        (
            ["--asgi-server=missing/server.toml"],
            "ERROR: cannot read server profile missing/server.toml: No such file or directory",
        ),
        (
            ["--asgi-server=uvicorn:nope"],
            "ERROR: unknown variant 'uvicorn:nope'; variants of uvicorn: h11, httptools, *",
        ),
        (
            ["--asgi-server=uvicorn", "--asgi-server=uvicorn:*"],
            "ERROR: server selected twice: uvicorn",
        ),
        (
            ["--asgi-server=uvicorn", "--asgi-timeout-factor=0"],
            "ERROR: --asgi-timeout-factor must be positive, not 0.0",
        ),
        (
            ["--asgi-server=uvicorn", "--asgi-level=must-ish"],
            "ERROR: --asgi-level 'must-ish': not a level (one of MUST, SHOULD, MAY, optional, info)",
        ),
    ],
    ids=[
        "unknown-server",
        "no-app",
        "unknown-placeholder",
        "unbalanced-brace",
        "missing-profile",
        "unknown-variant",
        "duplicate",
        "bad-timeout-factor",
        "bad-level",
    ],
)
def test_a_bad_selection_is_a_one_line_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    """Exit status 4 (pytest's usage error), the message alone, no traceback, nothing run."""
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, errors
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output
    assert not (pytester.path / "asgi-report").exists()


# -- collection ---------------------------------------------------------------------------


def test_collect_only_lists_every_packaged_check(pytester: pytest.Pytester) -> None:
    """From an empty directory, no path: the installed suite, one item per check and server."""
    result = _run(pytester, "--co", "-q", "--asgi-server=uvicorn")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["test_http_scope.py::test_path_is_percent_decoded[uvicorn]"])
    listed = [line for line in result.outlines if "::" in line]
    expected = sorted(f"{module}::{name}[uvicorn]" for name, module in _suite_checks().items())
    assert sorted(listed) == expected
    # Listing judges nothing: no report is written (an earlier one would be overwritten).
    assert not (pytester.path / "asgi-report").exists()
    assert "Traceback" not in "\n".join(result.outlines + result.errlines)


def test_each_columns_checks_run_together_with_the_lifespan_checks_last(
    pytester: pytest.Pytester,
) -> None:
    """One column's checks in one run, those on instances of their own (lifespan) last.

    A column split in two keeps its server up across the other column's checks, and a
    check after the lifespan ones keeps the shared instances up until the column's
    end (conformance/_fixtures.py: the retire point).  test_tls has checks that pytest
    groups apart from their column, and it and test_multiplexed sort after test_lifespan.
    """
    columns = ("uvicorn", "hypercorn+h2")
    result = _run(pytester, "--co", "-q", *(f"--asgi-server={c}" for c in columns))
    assert result.ret == 0
    listed = [line for line in result.outlines if "::" in line]
    runs = [
        (column, module == "test_lifespan.py")
        for line in listed
        for module, column in [(line.split("::")[0], line.rpartition("[")[2].rstrip("]"))]
    ]
    order = [key for index, key in enumerate(runs) if index == 0 or runs[index - 1] != key]
    assert order == [(c, lifespan) for c in columns for lifespan in (False, True)]


def test_requirements_are_selected_by_id_glob_and_level(pytester: pytest.Pytester) -> None:
    """``--asgi-only`` and ``--asgi-level`` keep the checks of the rows asked for, no others."""
    result = _run(
        pytester, "--co", "-q", "--asgi-server=uvicorn", "--asgi-only=http.scope.*",
        "--asgi-level=MUST",
    )  # fmt: skip
    assert result.ret == 0
    listed = {line.split("::")[1].split("[")[0] for line in result.outlines if "::" in line}
    expected = {
        name
        for name, rid in _suite_requirements().items()
        if rid.startswith("http.scope.") and catalogue()[rid].level.value == "MUST"
    }
    assert expected
    assert listed == expected
    # --co names the requirements themselves, with level and section.
    rids = {_suite_requirements()[name] for name in expected}
    result.stdout.fnmatch_lines([f"{len(rids)} requirement(s):"])
    for rid in rids:
        result.stdout.fnmatch_lines([f"  {rid} (MUST, *): uvicorn"])


def test_a_run_leaves_no_cache_in_the_users_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body checks draw sizes with hypothesis: its cache goes to the suite's own place."""
    cache = pytester.path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    result = _run(pytester, "-k", "chunked_body_arrives", "--asgi-server=uvicorn")
    assert result.ret == 0
    assert not (pytester.path / ".hypothesis").exists()
    assert (cache / "asgi-conformance" / "hypothesis").is_dir()


def test_junit_names_each_testcase_by_requirement_and_carries_its_verdict(
    pytester: pytest.Pytester,
) -> None:
    result = _run(
        pytester, "-k", "scope_type_is_http or http10_response or path_relation",
        "--asgi-server=uvicorn", "--junitxml=junit.xml",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # uvicorn chunks an HTTP/1.0 response
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ElementTree.parse(pytester.path / "junit.xml").iter("testcase")
    }
    assert cases["http.scope.type[uvicorn]"]["asgi.verdict"] == "pass"
    assert cases["http.scope.type[uvicorn]"]["asgi.level"] == "MUST"
    assert cases["http.scope.type[uvicorn]"]["asgi.spec"] == "www.rst §HTTP Connection Scope"
    assert cases["http.scope.root-path-and-path[uvicorn]"]["asgi.verdict"] == "info"
    assert cases["http.response.http10-framing[uvicorn]"]["asgi.verdict"] == "fail"
    assert set(cases) == {
        "http.scope.type[uvicorn]",
        "http.scope.root-path-and-path[uvicorn]",
        "http.response.http10-framing[uvicorn]",
    }


def test_a_protocol_column_has_the_checks_of_its_wire(pytester: pytest.Pytester) -> None:
    """An h2 column lists the HTTP/2 rows and every shared one, never an HTTP/1 wire check."""
    result = _run(pytester, "--co", "-q", "--asgi-server=hypercorn+h2c")
    assert result.ret == 0
    listed = sorted(line for line in result.outlines if "::" in line)
    checks = _suite_checks("h2", tls=False)
    assert listed == sorted(f"{module}::{name}[hypercorn+h2c]" for name, module in checks.items())
    assert "test_http_version_is_2" in checks
    assert "test_pipelined_requests_are_answered_in_order" not in checks


@pytest.mark.parametrize("form", ["pyargs", "no-autoload"])
def test_the_explicit_forms_collect_the_same_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """``--pyargs conformance.suite`` and ``-p asgi_conformance`` (autoload off), as documented."""
    if form == "pyargs":
        args = ["--pyargs", "conformance.suite"]
    else:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        args = ["-p", "asgi_conformance"]
    result = _run(pytester, "--co", "-q", "--asgi-server=uvicorn", *args)
    assert result.ret == 0
    listed = sorted(line.rsplit("/", 1)[-1] for line in result.outlines if "::" in line)
    expected = sorted(f"{module}::{name}[uvicorn]" for name, module in _suite_checks().items())
    assert listed == expected


# -- a real run ---------------------------------------------------------------------------


def test_every_outcome_is_the_verdict_of_its_cell(
    reference: tuple[pytest.RunResult, Path],
) -> None:
    """The README's table on a real run: each check's pytest status follows its verdict."""
    result, cwd = reference
    matrix = _matrix(cwd)
    statuses = _statuses(result)
    assert {server for _, server in statuses} == set(SERVERS)
    seen = set()
    for server, row in matrix["results"].items():
        for cell in row.values():
            for check in cell["checks"]:
                word = statuses.get((check["check"], server))
                assert word == STATUS_WORD[check["verdict"]], (server, check)
                seen.add((check["check"], server))
    assert seen == set(statuses), "a check ran without a matrix entry"
    failed = any(v == "FAILED" or v == "ERROR" for v in statuses.values())
    assert result.ret == (1 if failed else 0)


def test_matrix_json_has_the_documented_schema(reference: tuple[pytest.RunResult, Path]) -> None:
    _, cwd = reference
    matrix = _matrix(cwd)
    assert matrix["schema_version"] == 1
    assert matrix["suite_version"] == conformance.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", matrix["generated_at"])
    # A -k subset: partial, and the rows it did not judge are listed.
    assert matrix["partial"] is True
    assert matrix["left_out"]
    assert set(matrix["left_out"]).isdisjoint(matrix["checks"])
    assert set(matrix["left_out"]) <= set(catalogue())
    assert list(matrix["servers"]) == list(SERVERS)
    assert list(matrix["results"]) == list(SERVERS)
    for name, info in matrix["servers"].items():
        assert info["name"] == name
        assert info["version"] == metadata.version(name)
        assert info["protocol"] == "http/1.1"
        # The command actually run, with the placeholders filled in.
        assert info["command"].startswith(sys.executable)
        assert "conformance.apps.probe:app" in info["command"]
        assert "{" not in info["command"]
    used = {rid for row in matrix["results"].values() for rid in row}
    assert set(matrix["checks"]) == used
    for rid, entry in matrix["checks"].items():
        assert entry == catalogue()[rid].to_json()
    for row in matrix["results"].values():
        assert list(row) == list(matrix["checks"])  # same rows, in catalogue order
        for cell in row.values():
            assert cell["verdict"] in STATUS_WORD
            assert isinstance(cell["detail"], str)
    markdown = (cwd / "asgi-report" / "matrix.md").read_text(encoding="utf-8")
    assert markdown.startswith("# ASGI conformance matrix")
    assert all(f"| {name} |" in markdown for name in SERVERS)


def test_terminal_shows_the_matrix_within_100_columns(
    reference: tuple[pytest.RunResult, Path],
) -> None:
    result, cwd = reference
    matrix = _matrix(cwd)
    result.stdout.fnmatch_lines(
        [
            "*= ASGI conformance matrix =*",
            "*uvicorn*hypercorn*daphne*granian",
            "legend: ✓ pass, ✗ fail, ! warn, - unsupported, i info, E error",
            *(
                f"{name} {metadata.version(name)}: "
                + ", ".join(f"{n} {v}" for v, n in counts(matrix["results"][name]).items() if n)
                for name in SERVERS
            ),
            # What the matrix counts, against pytest's summary line.
            f"counts: {sum(len(row) for row in matrix['results'].values())} cells (a requirement "
            "on a column: the worst of its checks) from * check results;",
            "pytest counts the checks, with warn as xfailed (W), unsupported as skipped (u), "
            "info as passed (i)",
            f"wrote {cwd / 'asgi-report' / 'matrix.json'}",
            f"wrote {cwd / 'asgi-report' / 'matrix.md'}",
        ]
    )
    section = _matrix_section(result)
    for rid in matrix["checks"]:
        assert any(line.startswith(rid) for line in section), rid
    too_wide = [line for line in section if len(line) > 100]
    assert too_wide == []


def test_check_no_errors_passes_a_clean_matrix(reference: tuple[pytest.RunResult, Path]) -> None:
    """The shipped servers are all judged (whatever they do); the CI gate lets that through."""
    _, cwd = reference
    matrix = _matrix(cwd)
    errors = [
        (server, rid, cell["detail"])
        for server, row in matrix["results"].items()
        for rid, cell in row.items()
        if cell["verdict"] == "error"
    ]
    assert errors == []
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.report", "check-no-errors", "asgi-report/matrix.json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=_inner_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == list(SERVERS)


# -- the user's configuration does not reach the suite ------------------------------------


def test_a_hostile_user_ini_changes_nothing(
    pytester: pytest.Pytester, reference: tuple[pytest.RunResult, Path]
) -> None:
    """Other test naming, strict markers and config, strict xfail, warnings as errors."""
    pytester.makeini(
        """
        [pytest]
        python_files = check_*.py
        python_functions = check_*
        python_classes = Check
        testpaths = elsewhere
        addopts = --strict-markers --strict-config
        xfail_strict = true
        filterwarnings = error
        """
    )
    pytester.makepyfile(check_mine="def check_mine():\n    raise AssertionError('not mine')\n")
    servers = ("uvicorn", "hypercorn")
    result = _run(pytester, "-k", SUBSET, *(f"--asgi-server={s}" for s in servers))
    _, reference_dir = reference
    assert _verdicts(_matrix(pytester.path)) == _verdicts(_matrix(reference_dir), servers)
    assert "check_mine" not in "\n".join(result.outlines)


# -- xdist --------------------------------------------------------------------------------


_WRITE_SPY = """
import os

import conformance._reporter

WHO = os.environ.get("PYTEST_XDIST_WORKER", "controller")
LOG = {log!r}

with open(LOG, "a") as log:
    log.write(f"loaded {{WHO}}\\n")

_real = conformance._reporter.write_matrix


def _spy(matrix, directory):
    with open(LOG, "a") as log:
        log.write(f"wrote {{WHO}}\\n")
    return _real(matrix, directory)


conformance._reporter.write_matrix = _spy
"""


@pytest.mark.parametrize("servers", [("uvicorn",), ("uvicorn", "hypercorn")])
def test_xdist_gives_the_serial_verdicts_and_one_report(
    pytester: pytest.Pytester,
    reference: tuple[pytest.RunResult, Path],
    servers: tuple[str, ...],
) -> None:
    log = pytester.path / "spy.log"
    pytester.makeconftest(_WRITE_SPY.format(log=str(log)))
    result = _run(pytester, "-n", "2", "-k", SUBSET, *(f"--asgi-server={s}" for s in servers))
    _, reference_dir = reference
    assert _verdicts(_matrix(pytester.path)) == _verdicts(_matrix(reference_dir), servers)
    events = log.read_text().splitlines()
    # The spy reached both workers, and only the controller wrote the report, once.
    assert {"loaded controller", "loaded gw0", "loaded gw1"} <= set(events)
    assert [e for e in events if e.startswith("wrote")] == ["wrote controller"]
    assert sum(line.count("ASGI conformance matrix") for line in result.outlines) == 1


# -- servers that misbehave ---------------------------------------------------------------


def test_a_server_that_exits_at_once_errors_only_its_own_column(
    pytester: pytest.Pytester, reference: tuple[pytest.RunResult, Path]
) -> None:
    broken = 'broken={python} -c "import sys; print(\\"boom\\"); sys.exit(3)" {port} {app}'
    result = _run(pytester, "-k", SUBSET, f"--asgi-server={broken}", "--asgi-server=uvicorn")
    assert result.ret == EXIT_SERVER_DID_NOT_START
    assert result.duration < 60
    # One error names why, with the log tail, once; the column's other checks point at it.
    assert result.parseoutcomes()["errors"] == 1
    # pytest's short summary repeats the message in full only where it thinks it runs on CI.
    outside_summary = [line for line in result.outlines if not line.startswith("ERROR ")]
    assert sum("exited with status 3 before it was ready" in line for line in outside_summary) == 2
    result.stdout.fnmatch_lines(
        [
            "*ASGI servers that did not start*",
            "broken: the server exited with status 3 before it was ready",
            "*boom*",
        ]
    )
    matrix = _matrix(pytester.path)
    _, reference_dir = reference
    assert _verdicts(matrix, ("uvicorn",)) == _verdicts(_matrix(reference_dir), ("uvicorn",))
    column = matrix["results"]["broken"]
    assert set(column) == set(matrix["results"]["uvicorn"])
    for rid, cell in column.items():
        assert cell["verdict"] == "error", rid
        assert "the server exited with status 3 before it was ready" in cell["detail"]
        assert "boom" in cell["detail"]
    result.stdout.fnmatch_lines(
        [_literal("ERROR test_http_scope.py::test_scope_type_is_http[broken]*")]
    )
    assert matrix["servers"]["broken"]["version"] == "unknown"
    assert (
        "broken did not start: the server exited with status 3 before it was ready"
        in (matrix["notes"])
    )

    check = subprocess.run(
        [sys.executable, "-m", "conformance.report", "check-no-errors", "asgi-report/matrix.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
        env=_inner_env(),
    )
    assert check.returncode == 1
    problems = check.stderr.splitlines()
    assert problems[0] == f"{len(column)} error cell(s):"
    assert sorted(problems[1:]) == sorted(
        f"  broken {rid}: harness error in setup: broken: the server exited with status 3 "
        "before it was ready"
        for rid in column
    )


def test_a_run_where_no_server_starts_keeps_the_last_report(pytester: pytest.Pytester) -> None:
    """Nothing was judged: the previous matrix is worth more than one of errors alone."""
    report = pytester.path / "asgi-report"
    report.mkdir()
    (report / "matrix.json").write_text('{"kept": true}', encoding="utf-8")
    missing = "missing=no-such-command-anywhere --port {port} {app}"
    result = _run(pytester, "-q", f"--asgi-server={missing}")
    assert result.ret == EXIT_SERVER_DID_NOT_START
    assert len(result.outlines) < 40, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "missing: cannot start 'no-such-command-anywhere': No such file or directory",
            f"no server started, so nothing was judged: {report} was left as it was",
        ]
    )
    assert json.loads((report / "matrix.json").read_text("utf-8")) == {"kept": True}


def test_an_interrupted_run_writes_a_partial_matrix(pytester: pytest.Pytester) -> None:
    """``-x`` stops at the first failure: the matrix is written, and says it is partial."""
    # uvicorn frames an HTTP/1.0 response chunked (a finding of its column): -x stops there.
    result = _run(
        pytester, "-x", "-k", "scope_type_is_http or http10_response", "--asgi-server=uvicorn"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, passed=1)
    matrix = _matrix(pytester.path)
    assert matrix["partial"] is True
    assert matrix["notes"][0] == "the run was interrupted: this matrix is partial"
    assert sorted(matrix["results"]["uvicorn"]) == [
        "http.response.http10-framing",
        "http.scope.type",
    ]
    markdown = (pytester.path / "asgi-report" / "matrix.md").read_text(encoding="utf-8")
    assert "**partial run (interrupted)**" in markdown


_SLEEPER = """
import os, signal, subprocess, sys, time

# Deaf to SIGTERM, with a child that is deaf too: only SIGKILL to the group stops them.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([
    sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    *sys.argv[1:],
])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pids"), "a") as out:
    out.write(f"{os.getpid()} {child.pid}\\n")
time.sleep(60)
"""


def test_a_server_that_never_answers_is_killed_with_its_children(
    pytester: pytest.Pytester,
) -> None:
    token = f"asgi-sleeper-{uuid.uuid4().hex}"
    script = pytester.makepyfile(sleeper=_SLEEPER)
    template = f"sleeper={{python}} {script} {{port}} {{app}} {token}"
    result = _run(
        pytester,
        "-k",
        "scope_type or legacy",
        f"--asgi-server={template}",
        "--asgi-timeout-factor=0.1",
        "--asgi-report=reports/here",
    )
    assert result.ret == EXIT_SERVER_DID_NOT_START
    assert result.duration < 30
    pids = [int(pid) for pid in (pytester.path / "pids").read_text().split()]
    assert len(pids) == 2  # the server started, once, and its child too
    assert [pid for pid in pids if _alive(pid)] == []
    assert _processes_mentioning(token) == []
    # Nothing was judged, so no report is written, here or in the default place.
    assert not (pytester.path / "asgi-report").exists()
    assert not (pytester.path / "reports" / "here").exists()
    result.stdout.fnmatch_lines(
        ["sleeper: the server did not answer a request to the probe app within *"]
    )


# -- strictness ---------------------------------------------------------------------------


_ASGI3_ONLY = """
# uvicorn told that the legacy (double-callable) app is an ASGI 3 app: it cannot serve it,
# so the SHOULD of core.legacy-asgi2 is not met.
name = "asgi3only"
package = "uvicorn"
command = ["{python}", "-m", "uvicorn", "--fd", "{fd}", "--no-access-log", "{app}"]

[options]
asgi2 = ["--interface", "asgi3"]
"""


def test_strict_turns_a_warn_into_a_failure(pytester: pytest.Pytester) -> None:
    profile = pytester.path / "asgi3only.toml"
    profile.write_text(_ASGI3_ONLY, encoding="utf-8")
    args = ("-v", "-k", "legacy", f"--asgi-server={profile}")

    lenient = _run(pytester, *args)
    matrix = _matrix(pytester.path)
    assert matrix["results"]["asgi3only"]["core.legacy-asgi2"]["verdict"] == "warn"
    assert lenient.ret == pytest.ExitCode.OK
    lenient.assert_outcomes(xfailed=1)
    lenient.stdout.fnmatch_lines(
        [_literal("test_legacy_app.py::test_legacy_double_callable_app_is_served[asgi3only] WARN*")]
    )

    strict = _run(pytester, *args, "--asgi-strict")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        [
            "*- ASGI requirement -*",
            "core.legacy-asgi2 (SHOULD, asgi.rst *) https://asgi.readthedocs.io/*",
        ]
    )
    # The matrix records the server's behaviour; strictness is only the CI's policy.
    assert _matrix(pytester.path)["results"]["asgi3only"]["core.legacy-asgi2"]["verdict"] == "warn"
