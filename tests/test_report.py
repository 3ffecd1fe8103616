"""``python -m conformance.report``: the CI gate on a written matrix, and its Markdown."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import Verdict, catalogue
from conformance._matrix import MatrixBuilder, render_markdown
from conformance.report.__main__ import main


RID = next(iter(catalogue()))


def _write(tmp_path: Path, matrix: dict[str, Any]) -> Path:
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(matrix), encoding="utf-8")
    return path


def _matrix(*cells: tuple[str, Verdict, str]) -> dict[str, Any]:
    builder = MatrixBuilder("1")
    for server, verdict, detail in cells:
        builder.add_server(server, {"name": server, "version": "1", "command": "c"})
        builder.add_result(
            target=server, requirement=RID, verdict=verdict, detail=detail, check="t"
        )
    return builder.build()


def test_a_matrix_without_error_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, _matrix(("uvicorn", Verdict.FAIL, "broken"), ("daphne", Verdict.WARN, "meh"))
    )
    assert main(["check-no-errors", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["uvicorn: 1 fail", "daphne: 1 warn"]
    assert err == ""


def test_an_error_cell_fails_and_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        _matrix(("uvicorn", Verdict.PASS, ""), ("broken", Verdict.ERROR, "did not start\nlog...")),
    )
    assert main(["check-no-errors", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err.splitlines() == ["1 error cell(s):", f"  broken {RID}: did not start"]


def test_a_server_without_any_result_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column with no cell means nothing was judged: never a silent pass."""
    builder = MatrixBuilder("1")
    builder.add_server("idle", {"name": "idle"})
    assert main(["check-no-errors", str(_write(tmp_path, builder.build()))]) == 1
    assert capsys.readouterr().err.splitlines() == ["1 error cell(s):", "  idle: no result"]


def test_a_matrix_without_servers_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-no-errors", str(_write(tmp_path, MatrixBuilder("1").build()))]) == 1
    assert "the matrix has no server" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "{not json", ""])
def test_an_unreadable_matrix_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    path = tmp_path / "matrix.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["check-no-errors", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"cannot read {path}: ")


def test_markdown_prints_the_rendering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = _matrix(("uvicorn", Verdict.PASS, ""))
    assert main(["markdown", str(_write(tmp_path, matrix))]) == 0
    assert capsys.readouterr().out == render_markdown(matrix) + "\n"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    assert "python -m conformance.report" in capsys.readouterr().err


def test_markdown_of_a_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["markdown", str(tmp_path / "missing.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cannot read {tmp_path / 'missing.json'}: ")
    assert len(err.splitlines()) == 1


def test_a_reader_that_stops_early_ends_the_output_quietly(tmp_path: Path) -> None:
    """``markdown ... | head -1``: no BrokenPipeError traceback, exit 0."""
    # Far more than a pipe holds: the writer is still writing when the reader leaves.
    path = _write(tmp_path, _matrix(*[(f"s{n}", Verdict.FAIL, "x" * 2000) for n in range(200)]))
    command = f"{shlex.quote(sys.executable)} -m conformance.report markdown {path} | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )
    assert proc.stdout == "# ASGI conformance matrix\n"
    assert proc.stderr == ""
    assert proc.returncode == 0
