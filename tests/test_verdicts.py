"""The verdict table of ``conformance._verdicts``: what a check raised, at which level."""

from __future__ import annotations

import pytest

from conformance import ConformanceFailure, HarnessError, Level, Unsupported, Verdict
from conformance._verdicts import SEVERITY, NotJudged, Refused, verdict_for


class _SpecificFailure(ConformanceFailure):
    """A subclass must be judged like its base."""


#: The table in the module docstring, row by row: raised -> (MUST, optional, SHOULD, MAY, info).
TABLE: list[tuple[type[BaseException] | None, tuple[str, str, str, str, str]]] = [
    (None, ("pass", "pass", "pass", "pass", "info")),
    (ConformanceFailure, ("fail", "fail", "warn", "warn", "info")),
    (_SpecificFailure, ("fail", "fail", "warn", "warn", "info")),
    (Unsupported, ("unsupported",) * 5),
    (Refused, ("unsupported",) * 5),
    (NotJudged, ("unsupported",) * 5),
    (HarnessError, ("error",) * 5),
    (AssertionError, ("error",) * 5),
    (KeyError, ("error",) * 5),
    (TimeoutError, ("error",) * 5),
]
LEVELS = (Level.MUST, Level.OPTIONAL, Level.SHOULD, Level.MAY, Level.INFO)


@pytest.mark.parametrize(
    ("raised", "level", "expected"),
    [
        (raised, level, expected)
        for raised, row in TABLE
        for level, expected in zip(LEVELS, row, strict=True)
    ],
)
def test_verdict_for_follows_the_table(
    raised: type[BaseException] | None, level: Level, expected: str
) -> None:
    """Every cell of the documented table, including a bug of ours (any other exception)."""
    assert verdict_for(level, raised) is Verdict(expected)


def test_every_level_is_in_the_table() -> None:
    """A new level must be added to the table (and to this test) on purpose."""
    assert set(LEVELS) == set(Level)


def test_severity_orders_best_to_worst() -> None:
    """The worst verdict stands for a cell: error > fail > warn > unsupported > info > pass."""
    assert sorted(Verdict, key=lambda v: v.severity) == [
        Verdict.PASS,
        Verdict.INFO,
        Verdict.UNSUPPORTED,
        Verdict.WARN,
        Verdict.FAIL,
        Verdict.ERROR,
    ]
    assert set(SEVERITY) == set(Verdict)
    assert len(set(SEVERITY.values())) == len(SEVERITY)


def test_verdict_and_level_values_are_the_matrix_spelling() -> None:
    """matrix.json stores the enum values: they are part of its schema."""
    assert [v.value for v in Verdict] == ["pass", "info", "unsupported", "warn", "fail", "error"]
    assert [v.value for v in Level] == ["MUST", "SHOULD", "MAY", "optional", "info"]


def test_harness_errors_are_not_conformance_failures() -> None:
    """A harness problem must never be reported as the server breaking the spec."""
    assert not issubclass(HarnessError, ConformanceFailure)
    assert not issubclass(Unsupported, ConformanceFailure)
    assert not issubclass(ConformanceFailure, (HarnessError, Unsupported))
