"""``asgi-conformance`` (``conformance/cli/``): merge, diff, badge, html, and its errors.

Matrices are built with the real MatrixBuilder and written to disk; the commands are
run through ``main`` as a user runs them, and their exit status and output asserted.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conformance import Level, Verdict, catalogue
from conformance import _catalogue as catalogue_module
from conformance._catalogue import catalogue_digest
from conformance._matrix import MatrixBuilder, render_markdown
from conformance.cli import main
from conformance.cli._badge import COLOURS, select_columns, text_width
from conformance.cli._diff import RANK, Change
from conformance.report.__main__ import main as report_main
from conformance.report._html import render_html


def _ids(level: Level) -> list[str]:
    return [rid for rid, req in catalogue().items() if req.level is level]


MUST = _ids(Level.MUST)
SHOULD = _ids(Level.SHOULD)
OPTIONAL = _ids(Level.OPTIONAL)
INFO = _ids(Level.INFO)
SVG = "{http://www.w3.org/2000/svg}"


def _build(
    cells: Mapping[str, Mapping[str, Verdict]], *, suite_version: str = "1.0.0"
) -> dict[str, Any]:
    builder = MatrixBuilder(suite_version)
    for server, row in cells.items():
        builder.add_server(server, {"name": server, "version": "1", "command": "serve"})
        for rid, verdict in row.items():
            detail = "" if verdict is Verdict.PASS else f"{verdict.value} seen"
            builder.add_result(
                target=server, requirement=rid, verdict=verdict, detail=detail, check="test_x"
            )
    return builder.build()


def _write(path: Path, matrix: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(matrix), encoding="utf-8")
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


# -- the catalogue digest -----------------------------------------------------------------


def test_a_built_matrix_carries_the_catalogue_digest() -> None:
    digest = _build({"uvicorn": {MUST[0]: Verdict.PASS}})["catalogue"]
    assert digest == catalogue_digest()
    assert len(digest) == 16
    int(digest, 16)


def test_the_digest_follows_what_rows_mean_not_their_prose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A changed quote or level changes the digest; a reworded title does not."""
    compute = catalogue_digest.__wrapped__
    original = dict(catalogue())
    rid = MUST[0]

    def digest_with(**changes: Any) -> str:
        changed = dict(original)
        changed[rid] = dataclasses.replace(original[rid], **changes)
        monkeypatch.setattr(catalogue_module, "catalogue", lambda: changed)
        return str(compute())

    assert digest_with() == catalogue_digest()
    assert digest_with(title="reworded") == catalogue_digest()
    assert digest_with(quote="another sentence") != catalogue_digest()
    assert digest_with(level=Level.SHOULD) != catalogue_digest()


# -- merge --------------------------------------------------------------------------------


def test_merge_of_two_runs_has_both_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path / "a.json", _build({"uvicorn": {MUST[3]: Verdict.PASS}}))
    b = _write(
        tmp_path / "b.json",
        _build(
            {
                "hypercorn": {
                    "zz.unknown": Verdict.INFO,
                    MUST[3]: Verdict.FAIL,
                    MUST[1]: Verdict.PASS,
                }
            }
        ),
    )
    out = tmp_path / "merged" / "deeper"
    assert main(["merge", str(a), str(b), "-o", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out / name}" for name in ("matrix.json", "matrix.md", "matrix.html")
    ]
    merged = json.loads((out / "matrix.json").read_text(encoding="utf-8"))
    assert list(merged["servers"]) == list(merged["results"]) == ["uvicorn", "hypercorn"]
    assert merged["results"]["uvicorn"][MUST[3]]["verdict"] == "pass"
    assert merged["results"]["hypercorn"][MUST[3]]["verdict"] == "fail"
    # The union of the rows, in catalogue order; the row the catalogue does not know last.
    assert list(merged["checks"]) == [MUST[1], MUST[3]]
    assert list(merged["results"]["hypercorn"]) == [MUST[1], MUST[3], "zz.unknown"]
    assert merged["merged_from"] == [str(a), str(b)]
    assert merged["suite_version"] == "1.0.0"
    assert merged["catalogue"] == catalogue_digest()
    assert merged["partial"] is False
    generated = datetime.datetime.fromisoformat(merged["generated_at"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - generated).total_seconds() < 60
    assert "| uvicorn | 1 |" in (out / "matrix.md").read_text(encoding="utf-8")
    assert "hypercorn" in (out / "matrix.html").read_text(encoding="utf-8")


def test_merge_keeps_partial_notes_and_left_out_of_any_input(tmp_path: Path) -> None:
    first = _build({"uvicorn": {MUST[0]: Verdict.PASS}})
    first.update(partial=True, notes=["only in a", "in both"], left_out=[MUST[5]])
    second = _build({"daphne": {MUST[0]: Verdict.PASS}})
    second.update(notes=["in both", "only in b"], left_out=[MUST[4], MUST[5]])
    a, b = _write(tmp_path / "a.json", first), _write(tmp_path / "b.json", second)
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "out")]) == 0
    merged = json.loads((tmp_path / "out" / "matrix.json").read_text(encoding="utf-8"))
    assert merged["partial"] is True
    assert merged["notes"] == ["only in a", "in both", "only in b"]
    assert merged["left_out"] == [MUST[4], MUST[5]]


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], first: Any, second: Any) -> str:
    a, b = _write(tmp_path / "a.json", first), _write(tmp_path / "b.json", second)
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    return _one_line_error(capsys)


def test_merge_refuses_runs_of_different_suite_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(
        tmp_path,
        capsys,
        _build({"uvicorn": {MUST[0]: Verdict.PASS}}, suite_version="1.0.0"),
        _build({"daphne": {MUST[0]: Verdict.PASS}}, suite_version="1.1.0"),
    )
    assert err == (
        f"cannot merge {tmp_path / 'a.json'} and {tmp_path / 'b.json'}: "
        "suite versions differ (1.0.0 vs 1.1.0)"
    )


def test_merge_refuses_runs_of_different_catalogues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _build({"daphne": {MUST[0]: Verdict.PASS}})
    other["catalogue"] = "0123456789abcdef"
    err = _refused(tmp_path, capsys, _build({"uvicorn": {MUST[0]: Verdict.PASS}}), other)
    assert err.startswith(f"cannot merge {tmp_path / 'a.json'} and {tmp_path / 'b.json'}: ")
    assert f"different catalogues ({catalogue_digest()} vs 0123456789abcdef)" in err


def test_merge_refuses_the_same_column_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(
        tmp_path,
        capsys,
        _build({"uvicorn": {MUST[0]: Verdict.PASS}}),
        _build({"daphne": {MUST[0]: Verdict.PASS}, "uvicorn": {MUST[1]: Verdict.PASS}}),
    )
    assert err == (
        f"cannot merge {tmp_path / 'a.json'} and {tmp_path / 'b.json'}: "
        "both have the column 'uvicorn'"
    )


def test_merge_refuses_a_matrix_older_than_the_catalogue_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _build({"daphne": {MUST[0]: Verdict.PASS}})
    del old["catalogue"]
    err = _refused(tmp_path, capsys, _build({"uvicorn": {MUST[0]: Verdict.PASS}}), old)
    assert err.startswith(f"cannot merge {tmp_path / 'b.json'}: it has no 'catalogue' digest")


def test_merge_needs_two_matrices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.json", _build({"uvicorn": {MUST[0]: Verdict.PASS}}))
    assert main(["merge", str(a), "-o", str(tmp_path / "out")]) == 2
    assert "at least two" in _one_line_error(capsys)


# -- diff ---------------------------------------------------------------------------------


def _diff(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
) -> tuple[int, list[str]]:
    a, b = _write(tmp_path / "old.json", old), _write(tmp_path / "new.json", new)
    status = main(["diff", str(a), str(b)])
    out, err = capsys.readouterr()
    assert err == ""
    return status, out.splitlines()


def test_diff_of_a_cell_that_got_worse_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _build({"uvicorn": {MUST[0]: Verdict.PASS, MUST[1]: Verdict.PASS}})
    new = _build({"uvicorn": {MUST[0]: Verdict.FAIL, MUST[1]: Verdict.PASS}})
    assert _diff(tmp_path, capsys, old, new) == (
        1,
        [f"uvicorn {MUST[0]}: pass → fail (worse)", "1 cell changed, 1 worse"],
    )


def test_diff_of_a_cell_that_got_better_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _build({"uvicorn": {MUST[0]: Verdict.FAIL}, "daphne": {SHOULD[0]: Verdict.WARN}})
    new = _build({"uvicorn": {MUST[0]: Verdict.PASS}, "daphne": {SHOULD[0]: Verdict.WARN}})
    assert _diff(tmp_path, capsys, old, new) == (
        0,
        [f"uvicorn {MUST[0]}: fail → pass (better)", "1 cell changed, 0 worse"],
    )


def test_diff_of_the_same_verdicts_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = _build({"uvicorn": {MUST[0]: Verdict.FAIL, SHOULD[0]: Verdict.WARN}})
    assert _diff(tmp_path, capsys, matrix, matrix) == (0, ["0 cells changed, 0 worse"])


@pytest.mark.parametrize(
    ("old", "new", "worse"),
    [
        ("pass", "warn", True),
        ("info", "warn", True),
        ("warn", "fail", True),
        ("pass", "error", True),
        ("unsupported", "fail", True),
        ("fail", "error", False),
        ("error", "fail", False),
        ("pass", "unsupported", False),
        ("unsupported", "info", False),
        ("fail", "warn", False),
    ],
)
def test_worse_is_a_move_to_a_higher_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, worse: bool
) -> None:
    assert set(RANK) == {verdict.value for verdict in Verdict}
    assert Change("s", "r", old, new).worse is worse
    status, lines = _diff(
        tmp_path,
        capsys,
        _build({"uvicorn": {MUST[0]: Verdict(old)}}),
        _build({"uvicorn": {MUST[0]: Verdict(new)}}),
    )
    assert status == (1 if worse else 0)
    assert lines[-1] == f"1 cell changed, {1 if worse else 0} worse"


def test_a_cell_no_longer_judged_is_listed_but_not_worse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A subset run (NEW left the row out) is not a regression."""
    old = _build({"uvicorn": {MUST[0]: Verdict.PASS, MUST[1]: Verdict.FAIL}})
    new = _build({"uvicorn": {MUST[0]: Verdict.PASS}})
    new["left_out"] = [MUST[1]]
    assert _diff(tmp_path, capsys, old, new) == (
        0,
        [f"uvicorn {MUST[1]}: fail → no longer judged", "1 cell changed, 0 worse"],
    )


def test_diff_lists_columns_and_rows_that_came_and_went(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _build(
        {
            "uvicorn": {MUST[0]: Verdict.PASS, MUST[2]: Verdict.PASS},
            "daphne": {MUST[0]: Verdict.FAIL},
        },
        suite_version="1.0.0",
    )
    new = _build(
        {
            "uvicorn": {MUST[0]: Verdict.PASS, MUST[1]: Verdict.FAIL},
            "granian": {MUST[0]: Verdict.FAIL},
        },
        suite_version="1.1.0",
    )
    # New rows and columns are not regressions: what they judge was not judged before.
    assert _diff(tmp_path, capsys, old, new) == (
        0,
        [
            "suite version: 1.0.0 → 1.1.0",
            "column added: granian",
            "column removed: daphne",
            f"row added: {MUST[1]}",
            f"row removed: {MUST[2]}",
            "0 cells changed, 0 worse",
        ],
    )


# -- badge --------------------------------------------------------------------------------


def _badge(tmp_path: Path, matrix: Mapping[str, Any], target: str) -> tuple[ET.Element, str, str]:
    """The badge's parsed SVG, its message and its colour (the message panel's fill)."""
    path = _write(tmp_path / "matrix.json", matrix)
    svg = tmp_path / "out" / "badge.svg"
    assert main(["badge", str(path), target, "-o", str(svg)]) == 0
    root = ET.fromstring(svg.read_text(encoding="utf-8"))
    texts = [text.text or "" for text in root.iter(f"{SVG}text")]
    fills = [rect.get("fill") or "" for rect in root.iter(f"{SVG}rect")]
    assert texts[:2] == ["ASGI", "ASGI"]
    # The panels, then the gloss over both.
    return root, texts[2], fills[2]


@pytest.mark.parametrize(
    ("row", "message", "colour"),
    [
        (
            {MUST[0]: Verdict.PASS, SHOULD[0]: Verdict.PASS, INFO[0]: Verdict.INFO},
            "MUST 1/1",
            "green",
        ),
        ({MUST[0]: Verdict.PASS, SHOULD[0]: Verdict.WARN}, "MUST 1/1", "yellow"),
        (
            {MUST[0]: Verdict.FAIL, MUST[1]: Verdict.PASS, SHOULD[0]: Verdict.WARN},
            "MUST 1/2",
            "red",
        ),
        ({MUST[0]: Verdict.PASS, SHOULD[0]: Verdict.ERROR}, "MUST 1/1, 1 error", "grey"),
        ({MUST[0]: Verdict.FAIL, MUST[1]: Verdict.ERROR}, "MUST 0/1, 1 error", "red"),
        ({MUST[0]: Verdict.UNSUPPORTED, INFO[0]: Verdict.INFO}, "not judged", "grey"),
    ],
)
def test_the_badge_scores_and_colours_by_must_failures(
    tmp_path: Path, row: Mapping[str, Verdict], message: str, colour: str
) -> None:
    _, shown, fill = _badge(tmp_path, _build({"uvicorn": row}), "uvicorn")
    assert (shown, fill) == (message, COLOURS[colour])


def test_the_badge_counts_rows_over_all_columns_of_a_server(tmp_path: Path) -> None:
    """A row fails when any column fails it; unsupported rows are out of the count;
    an optional-feature row the server offers counts as a MUST."""
    matrix = _build(
        {
            "hypercorn": {MUST[0]: Verdict.PASS, MUST[1]: Verdict.PASS, OPTIONAL[0]: Verdict.PASS},
            "hypercorn+h2": {MUST[0]: Verdict.FAIL, MUST[2]: Verdict.UNSUPPORTED},
            "hypercorn:trio+h2c": {MUST[3]: Verdict.PASS},
            "hypercornish": {MUST[4]: Verdict.FAIL},
        }
    )
    assert select_columns(matrix, "hypercorn") == [
        "hypercorn",
        "hypercorn+h2",
        "hypercorn:trio+h2c",
    ]
    assert select_columns(matrix, "hypercorn+h2") == ["hypercorn+h2"]
    assert _badge(tmp_path, matrix, "hypercorn")[1:] == ("MUST 3/4", COLOURS["red"])
    assert _badge(tmp_path, matrix, "hypercorn:trio")[1:] == ("MUST 1/1", COLOURS["green"])


def test_an_unknown_target_lists_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path / "m.json",
        _build({"uvicorn": {MUST[0]: Verdict.PASS}, "two\nlines": {MUST[0]: Verdict.PASS}}),
    )
    assert main(["badge", str(path), "uvi", "-o", str(tmp_path / "b.svg")]) == 2
    # Still one line when a column's name has a line break in it.
    assert _one_line_error(capsys) == (
        f"unknown target 'uvi' in {path}; known columns: uvicorn, two lines"
    )
    assert not (tmp_path / "b.svg").exists()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("<script>alert(\"x\")</script> & 'q'", "<script>alert(\"x\")</script> & 'q'"),
        # What XML cannot hold even escaped is replaced, or the SVG would not parse.
        ("evil\x00\x1b[31m\ud800\ufffe", "evil\ufffd\ufffd[31m\ufffd\ufffd"),
    ],
)
def test_a_hostile_server_name_is_escaped_and_the_svg_parses(
    tmp_path: Path, name: str, shown: str
) -> None:
    root, message, _ = _badge(tmp_path, _build({name: {MUST[0]: Verdict.PASS}}), name)
    text = (tmp_path / "out" / "badge.svg").read_text(encoding="utf-8")
    assert "<script" not in text
    assert message == "MUST 1/1"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == f"ASGI conformance of {shown}: MUST 1/1"


def test_the_badge_is_as_wide_as_its_text(tmp_path: Path) -> None:
    assert text_width("MUST 100/100") > text_width("MUST 1/1") > text_width("ill")
    assert text_width("WM") > text_width("il")
    root, _, _ = _badge(tmp_path, _build({"uvicorn": {MUST[0]: Verdict.PASS}}), "uvicorn")
    clip, label, message, gloss = [int(r.get("width") or 0) for r in root.iter(f"{SVG}rect")]
    assert int(root.get("width") or 0) == clip == gloss == label + message
    assert label == round(text_width("ASGI")) + 12


# -- html, markdown, check-no-errors --------------------------------------------------------


def test_html_writes_only_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = _build({"uvicorn": {MUST[0]: Verdict.FAIL}})
    out = tmp_path / "site" / "conformance"
    assert main(["html", str(_write(tmp_path / "m.json", matrix)), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out / 'matrix.html'}\n"
    assert [p.name for p in out.iterdir()] == ["matrix.html"]
    assert (out / "matrix.html").read_text(encoding="utf-8") == render_html(matrix)


def test_the_report_commands_are_the_same_in_both_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = _build({"uvicorn": {MUST[0]: Verdict.PASS}, "broken": {MUST[0]: Verdict.ERROR}})
    path = str(_write(tmp_path / "m.json", matrix))
    assert main(["markdown", path]) == report_main(["markdown", path]) == 0
    assert capsys.readouterr().out == (render_markdown(matrix) + "\n") * 2
    assert main(["check-no-errors", path]) == report_main(["check-no-errors", path]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["uvicorn: 1 pass", "broken: 1 error"] * 2
    assert err.splitlines() == ["1 error cell(s):", f"  broken {MUST[0]}: error seen"] * 2


# -- errors -------------------------------------------------------------------------------


BAD_INPUTS: dict[str, str | None] = {
    "missing": None,
    "not json": "{not json",
    "empty": "",
    "a list": "[]",
    "no results": '{"schema_version": 1}',
    "not a verdict": json.dumps(
        {**_build({"s": {MUST[0]: Verdict.PASS}}), "results": {"s": {MUST[0]: {"verdict": "ok"}}}}
    ),
}


@pytest.mark.parametrize("content", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["diff", "{bad}", "{good}"], 2),
        (["diff", "{good}", "{bad}"], 2),
        (["merge", "{good}", "{bad}", "-o", "{out}"], 2),
        (["badge", "{bad}", "s", "-o", "{out}/b.svg"], 2),
        (["html", "{bad}", "-o", "{out}"], 2),
        # The two older commands keep the status they always had (tests/test_report.py).
        (["check-no-errors", "{bad}"], 1),
        (["markdown", "{bad}"], 1),
    ],
)
def test_an_unusable_input_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    status: int,
    content: str | None,
) -> None:
    bad, good = tmp_path / "bad.json", _write(tmp_path / "good.json", _build({}))
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    argv = [arg.format(bad=bad, good=good, out=tmp_path / "out") for arg in command]
    assert main(argv) == status
    assert _one_line_error(capsys).startswith(f"cannot read {bad}: ")
    assert not (tmp_path / "out").exists()


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["diff", "only-one.json"])
    assert excinfo.value.code == 2
    assert _one_line_error(capsys) == (
        "asgi-conformance diff: the following arguments are required: NEW "
        "(see asgi-conformance diff --help)"
    )


def test_python_dash_m_conformance_runs_the_tool(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.json", _build({"uvicorn": {MUST[0]: Verdict.PASS}}))
    new = _write(tmp_path / "new.json", _build({"uvicorn": {MUST[0]: Verdict.WARN}}))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "conformance", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    worse = run("diff", str(old), str(new))
    assert (worse.returncode, worse.stderr) == (1, "")
    assert worse.stdout.splitlines() == [
        f"uvicorn {MUST[0]}: pass → warn (worse)",
        "1 cell changed, 1 worse",
    ]
    missing = run("diff", str(tmp_path / "missing.json"), str(new))
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr == f"cannot read {tmp_path / 'missing.json'}: No such file or directory\n"
