"""h2, trustme and aioquic are optional: an HTTP/1.1 run needs none, a column that does says so.

The inner runs block the libraries in the pytest process (a ``None`` in ``sys.modules``
makes their import fail, as in an environment without them); the servers, separate
processes, are untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from conformance._extras import missing_for
from conformance._profiles import resolve_targets


BLOCKER = """
import sys
for name in ("h2", "trustme", "aioquic"):
    sys.modules[name] = None
"""
OPTIONAL = ("h2", "trustme", "aioquic")


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    pytester.makepyfile(without_extras=BLOCKER)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "without_extras", *args, timeout=120
    )


def test_the_package_declares_them_as_extras() -> None:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())[
        "project"
    ]
    names = {dep.split(">")[0].split(";")[0].strip() for dep in project["dependencies"]}
    assert not names & set(OPTIONAL)
    extras = project["optional-dependencies"]
    for module, extra in (("h2", "http2"), ("trustme", "tls"), ("aioquic", "http3")):
        assert any(dep.startswith(module) for dep in extras[extra])
        assert any(dep.startswith(module) for dep in extras["all"])


def test_an_http11_run_needs_none_of_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(
        pytester,
        monkeypatch,
        "-k",
        "scope_type or path_is_percent or http2",
        "--asgi-server=uvicorn",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    matrix = json.loads((pytester.path / "asgi-report" / "matrix.json").read_text("utf-8"))
    cells = matrix["results"]["uvicorn"]
    assert cells["http.scope.type"]["verdict"] == "pass"
    assert cells["http.scope.path-decoded"]["verdict"] == "pass"


def test_a_column_that_needs_one_is_refused_in_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(
        pytester, monkeypatch, "--asgi-server=hypercorn+h2c", "--asgi-server=granian+https"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: hypercorn+h2c needs h2; granian+https needs trustme: "
        "pip install 'asgi-conformance[http2,tls]'"
    )
    assert not (pytester.path / "asgi-report").exists()


def test_with_them_installed_nothing_is_missing() -> None:
    assert missing_for(resolve_targets(["hypercorn+*", "granian+*"])) == ""


def test_missing_libraries_are_named_per_column(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("h2", "trustme", "aioquic"):
        monkeypatch.setitem(sys.modules, module, None)
    message = missing_for(resolve_targets(["hypercorn+*"]))
    assert message == (
        "hypercorn+https, hypercorn+h2 and hypercorn+h3 need trustme; "
        "hypercorn+h2 and hypercorn+h2c need h2; hypercorn+h3 needs aioquic: "
        "pip install 'asgi-conformance[tls,http2,http3]'"
    )
    assert missing_for(resolve_targets(["hypercorn"])) == ""


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The premise of the inner runs: with the blocker loaded, importing h2 fails."""
    import subprocess

    code = BLOCKER + "\ntry:\n    import h2\nexcept ImportError:\n    print('blocked')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "blocked"
