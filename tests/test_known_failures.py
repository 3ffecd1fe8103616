"""``--asgi-known-failures FILE``: accepted failures are expected, stale ones fail the run.

The file is read by :mod:`conformance._known`; its mistakes are one-line usage
errors.  The plugin runs use a mutant (``tests/mutants.py``) whose scope path keeps
the query string, so ``http.scope.path-no-query`` fails and ``http.scope.type``
passes on the same column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from conformance._known import KnownFailure, load_known_failures


REPO = Path(__file__).resolve().parent.parent
MUTANT = "mutant={python} -m tests.mutants path-with-query --host {host} --port {port} {app}"
CHECKS = "test_path_excludes_query or test_scope_type_is_http"
ISSUE = "https://example.org/mutant/issues/7"
KNOWN = f"""\
# What the mutant's author accepts, for now.
["mutant*"]
"http.scope.path-no-query" = {{ reason = "the path keeps its query", issue = "{ISSUE}" }}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the file ------------------------------------------------------------------------------


def test_entries_match_columns_by_glob_and_requirements_exactly(tmp_path: Path) -> None:
    known = load_known_failures(_write(tmp_path, KNOWN))
    [entry] = known.entries
    assert entry == KnownFailure(
        "mutant*", "http.scope.path-no-query", "the path keeps its query", ISSUE
    )
    assert known.lookup("mutant+h2c", "http.scope.path-no-query") == entry
    assert known.lookup("mutant", "http.scope.path-decoded") is None
    assert known.lookup("uvicorn", "http.scope.path-no-query") is None


def test_an_entry_is_stale_where_its_cell_is_met_and_only_there(tmp_path: Path) -> None:
    known = load_known_failures(_write(tmp_path, KNOWN))
    rid = "http.scope.path-no-query"
    results: dict[str, dict[str, dict[str, Any]]] = {
        "mutant": {rid: {"verdict": "pass"}},
        "mutant+h2c": {rid: {"verdict": "fail"}},
        "mutant+https": {rid: {"verdict": "unsupported"}},
        "mutant+h2": {rid: {"verdict": "info"}},
        "uvicorn": {rid: {"verdict": "pass"}},
    }
    stale = [(column, verdict) for column, _, verdict, _ in known.stale(results)]
    assert stale == [("mutant", "pass"), ("mutant+h2", "info")]
    assert known.unused(["uvicorn"]) == list(known.entries)
    assert known.unused(["uvicorn", "mutant+h2c"]) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[x\n", "is not TOML: "),
        ('x = "y"\n', "'x' must be a table of requirement ids"),
        ('[x]\n"no.such.row" = { reason = "r" }\n', "[x] no.such.row: not a requirement id"),
        ('[x]\n"http.scope.type" = "r"\n', '[x] http.scope.type: needs { reason = "..." }'),
        ('[x]\n"http.scope.type" = { issue = "i" }\n', "needs { reason"),
        ('[x]\n"http.scope.type" = { reason = "r", url = "u" }\n', "unknown key(s) url"),
        ('[x]\n"http.scope.type" = { reason = "r", issue = 7 }\n', "issue must be a string"),
    ],
)
def test_a_bad_file_is_a_one_line_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(pytest.UsageError) as excinfo:
        load_known_failures(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_a_missing_file_is_a_one_line_usage_error(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match=r"cannot read .*absent\.toml: No such file"):
        load_known_failures(tmp_path / "absent.toml")


# -- a run ---------------------------------------------------------------------------------


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "-k", CHECKS, f"--asgi-server={MUTANT}", *args,
        timeout=120,
    )  # fmt: skip


def _cells(pytester: pytest.Pytester) -> dict[str, Any]:
    matrix = json.loads((pytester.path / "asgi-report" / "matrix.json").read_text("utf-8"))
    cells: dict[str, Any] = matrix["results"]["mutant"]
    return cells


def test_a_known_failure_is_expected_and_stays_a_fail_in_the_matrix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    unexcused = _run(pytester, monkeypatch)
    assert unexcused.ret == pytest.ExitCode.TESTS_FAILED
    assert _cells(pytester)["http.scope.path-no-query"]["verdict"] == "fail"

    known = _write(pytester.path, KNOWN)
    result = _run(
        pytester, monkeypatch, f"--asgi-known-failures={known.name}", "--junitxml=junit.xml"
    )
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_path_excludes_query[[]mutant[]] KNOWN FAILURE*"])
    cell = _cells(pytester)["http.scope.path-no-query"]
    assert cell["verdict"] == "fail"
    assert cell["known"] == {
        "target": "mutant*",
        "reason": "the path keeps its query",
        "issue": ISSUE,
    }
    markdown = (pytester.path / "asgi-report" / "matrix.md").read_text("utf-8")
    assert "✗ fail (known)" in markdown
    assert f"known failure: the path keeps its query ({ISSUE})" in markdown
    html = (pytester.path / "asgi-report" / "matrix.html").read_text("utf-8")
    assert f'<a href="{ISSUE}">issue</a>' in html
    # The CI dashboard sees the verdict and the reason the author gave.
    testcase = ElementTree.parse(pytester.path / "junit.xml").find(
        ".//testcase[@name='http.scope.path-no-query[mutant]']"
    )
    assert testcase is not None
    properties = {p.get("name"): p.get("value") for p in testcase.iter("property")}
    assert properties["asgi.verdict"] == "fail"
    assert properties["asgi.known"] == "the path keeps its query"
    assert properties["asgi.known-issue"] == ISSUE


def test_a_known_failure_that_passes_now_fails_the_run_as_stale(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = KNOWN + '"http.scope.type" = { reason = "fixed upstream since" }\n'
    text += '\n["granian*"]\n"http.scope.type" = { reason = "another job\'s server" }\n'
    known = _write(pytester.path, text)
    result = _run(pytester, monkeypatch, f"--asgi-known-failures={known}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*stale known failures*",
            f"mutant http.scope.type: pass now; remove it from {known} "
            "(it said: fixed upstream since)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["known failure for no column of this run: [[]granian*[]] http.scope.type"]
    )
    notes = json.loads((pytester.path / "asgi-report" / "matrix.json").read_text("utf-8"))["notes"]
    assert f"stale known failure: mutant http.scope.type is pass now ({known})" in notes


def test_a_bad_known_failures_file_stops_the_run_in_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = _write(pytester.path, '["mutant"]\n"http.scope.typo" = { reason = "r" }\n')
    result = _run(pytester, monkeypatch, f"--asgi-known-failures={known.name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: {known}: [mutant] http.scope.typo: not a requirement id of the catalogue"
    )
    assert not (pytester.path / "asgi-report").exists()
