"""A check whose premise failed blames nothing and names the row that judges the premise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import conformance
from conformance._catalogue import catalogue
from conformance._verdicts import NotJudged
from conformance.suite._premises import BODY_SEQUENCE, after_the_request, no_request_after_the_body


PACKAGE = Path(conformance.__file__).parent


def _named_rows() -> list[tuple[str, str]]:
    """(where, row id) for every ``NotJudged(missing, judged_by)`` in the package."""
    found: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "NotJudged"):
                continue
            where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
            row = node.args[1] if len(node.args) > 1 else None
            if isinstance(row, ast.Constant):
                found.append((where, str(row.value)))
            elif isinstance(row, ast.Name):
                found.append((where, str(constants.get(row.id, f"<unresolved {row.id}>"))))
            else:
                found.append((where, "<not a literal>"))
    return found


def test_every_premise_names_a_row_of_the_catalogue() -> None:
    """A "not judged" cell points the reader at a row that exists and is judged."""
    named = _named_rows()
    assert len(named) >= 8, named  # the suite's premises, found by the walk
    unknown = [(where, row) for where, row in named if row not in catalogue()]
    assert unknown == []


def test_one_more_request_after_the_body_is_the_body_sequence_rows_business() -> None:
    extra = {"type": "http.request", "body": b"", "more_body": False}
    with pytest.raises(NotJudged) as raised:
        no_request_after_the_body(extra)
    assert raised.value.judged_by == BODY_SEQUENCE
    assert "not judged" in str(raised.value)
    # What the calling check judges itself passes through untouched.
    no_request_after_the_body("timeout")
    no_request_after_the_body({"type": "http.disconnect"})


def test_after_the_request_skips_the_request_events_only() -> None:
    request = {"type": "http.request", "body": b"", "more_body": False}
    disconnect = {"type": "http.disconnect"}
    assert after_the_request([request, request, disconnect]) == [disconnect]
    assert after_the_request([request]) == []
    assert after_the_request([request, "odd", disconnect]) == ["odd", disconnect]
