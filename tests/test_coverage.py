"""Every row quotes the spec, its level is the word of its quote, and every normative
sentence of the spec is checked or set aside (conformance/_spec.py, conformance/coverage.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance import Level, catalogue
from conformance._catalogue import spec_text
from conformance._spec import normalise, sentences, words_of
from conformance.coverage import coverage, main, render, set_aside


ROOT = Path(__file__).resolve().parent.parent
COVERAGE = ROOT / "docs" / "coverage.md"
#: A level may rest on an RFC the ASGI text defers to ("the WebSocket spec", HTTP framing).
_RFC = re.compile(r"\bRFC \d{4}\b")


@pytest.mark.parametrize("rid", list(catalogue()))
def test_a_quote_is_the_specs_own_text(rid: str) -> None:
    row = catalogue()[rid]
    if not row.quote:
        assert row.level is Level.INFO or _RFC.search(row.rationale), (
            f"{rid} is {row.level.value} but quotes no sentence and cites no RFC"
        )
        return
    assert normalise(row.quote) in normalise(spec_text(row.spec)), (
        f"{rid}: the quote is not in {row.spec}.rst: {row.quote!r}"
    )


@pytest.mark.parametrize("rid", list(catalogue()))
def test_the_level_is_the_word_of_the_quote(rid: str) -> None:
    """A row is never graded harder than its sentence, and a graded sentence is graded."""
    row = catalogue()[rid]
    words = words_of(row.quote)
    if row.level is Level.MUST and words and not words & {"must", "required", "shall"}:
        assert _RFC.search(row.rationale), (
            f"{rid} is MUST but its sentence only says {sorted(words)}: {row.quote!r}"
        )
    if row.level is Level.INFO and words & {"must", "should", "required"}:
        assert row.ungraded, f"{rid} records a sentence that says {sorted(words)}: say why"
    if row.ungraded:
        assert row.level is Level.INFO, f"{rid} is graded, yet says why it is not"


def test_every_quote_lies_within_one_sentence_or_holds_whole_ones() -> None:
    """The map can place every row: its quote is part of a sentence, or whole sentences,
    of the section the row names (so its link leads a reader to the sentence)."""
    misplaced = [
        row.id
        for row in catalogue().values()
        if row.quote
        and not any(
            s.covers(row.quote) and s.section.lower() == row.section.lower()
            for s in sentences(row.spec)
        )
    ]
    assert misplaced == []


def test_every_normative_sentence_is_checked_or_set_aside() -> None:
    unmapped = [
        f"{e.sentence.spec}: {e.sentence.text[:100]}" for e in coverage() if e.status == "unmapped"
    ]
    assert unmapped == []


def test_every_set_aside_entry_names_a_sentence() -> None:
    """A stale entry (the sentence changed, or a row now quotes it) is removed, not kept."""
    mapped = coverage()
    for entry in set_aside():
        named = [m for m in mapped if entry.names(m.sentence)]
        assert named, f"{entry.spec}: no sentence starts with {entry.starts!r}"
        quoted = [m for m in named if m.rows and not entry.rows]
        assert not quoted, f"{entry.spec}: {entry.starts!r} is quoted by a row; drop the entry"


def test_the_committed_map_is_current() -> None:
    assert COVERAGE.read_text(encoding="utf-8") == render(coverage()), (
        "docs/coverage.md is stale: python -m conformance.coverage -o docs/coverage.md"
    )


def test_a_sentence_the_catalogue_lost_is_unmapped() -> None:
    """Without the row that quotes it, a sentence shows as unmapped (the check can fail)."""
    rows = dict(catalogue())
    quoted = rows.pop("lifespan.shutdown.complete-then-exit").quote
    others = [r for r in rows.values() if r.quote and normalise(r.quote) in quoted]
    for row in others:
        rows.pop(row.id)
    lost = [e for e in coverage(rows) if quoted in e.sentence.text]
    assert lost
    assert all(e.status == "unmapped" for e in lost)


def test_check_mode_names_a_stale_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "coverage.md"
    stale.write_text("old\n", encoding="utf-8")
    assert main(["--check", "-o", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert main(["-o", str(stale)]) == 0
    assert main(["--check", "-o", str(stale)]) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[sentence]]\nspec = 'www'\nstarts = 'x'\n", "needs exactly"),
        (
            "[[sentence]]\nspec = 'nope'\nstarts = 'a long enough start of it'\nreason = 'r'\n",
            "unknown spec",
        ),
        ("[[sentence]]\nspec = 'www'\nstarts = 'short'\nreason = 'r'\n", r"24\+ characters"),
        (
            "[[also]]\nspec = 'www'\nstarts = 'a long enough start of it'\nreason = 'r'\nrows = ['no.such']\n",
            "rows must name",
        ),
        ("[[other]]\n", "unknown tables"),
    ],
)
def test_a_broken_set_aside_file_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        set_aside(text)


def test_no_sentence_waits_for_a_row() -> None:
    """A ``[[gap]]`` of out_of_scope.toml is a sentence still waiting for its row and
    mutant: the coverage is complete only when there is none."""
    gaps = [f"{e.sentence.spec}: {e.sentence.text[:80]}" for e in coverage() if e.status == "gap"]
    assert gaps == []
