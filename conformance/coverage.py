"""The coverage map: every normative sentence of the ASGI spec, and what checks it.

``python -m conformance.coverage -o docs/coverage.md`` writes the map;
``--check`` exits 1 when the file differs from what the catalogue gives, or when
a sentence is neither checked by a row nor set aside.

A sentence is *checked* when a catalogue row quotes it (or a part of it); it is
*out of scope* when ``catalogue/out_of_scope.toml`` says why no server check can
observe it (the app's duty, advice to middleware, history); it is a *gap* when
that file lists it as still wanting a row.  Anything else is *unmapped*, which
the self-tests refuse: a sentence nobody looked at is how a suite misses a rule.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from conformance._catalogue import SPEC_FILES, Requirement, catalogue
from conformance._spec import Sentence, normalise, sentences


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


__all__ = ["Mapped", "SetAside", "coverage", "main", "render", "set_aside"]

#: The shortest start of a sentence an out-of-scope entry may name it by.
_MIN_START = 24


@dataclass(frozen=True)
class SetAside:
    """A sentence no row quotes, and why: out of scope, a gap still to close, or checked
    by rows whose quote is another sentence (``rows``)."""

    spec: str
    starts: str
    reason: str
    gap: bool = False
    rows: tuple[str, ...] = ()
    #: The section, where the same sentence stands in two of them ("" for any).
    section: str = ""

    def names(self, sentence: Sentence) -> bool:
        return (
            sentence.spec == self.spec
            and sentence.text.startswith(self.starts)
            and self.section in ("", sentence.section)
        )


@dataclass(frozen=True)
class Mapped:
    """One sentence of the map and what stands for it."""

    sentence: Sentence
    rows: tuple[Requirement, ...]
    aside: SetAside | None

    @property
    def status(self) -> str:
        if self.rows:
            return "checked"
        if self.aside is None:
            return "unmapped"
        return "gap" if self.aside.gap else "out of scope"


def set_aside(text: str | None = None) -> tuple[SetAside, ...]:
    """The entries of ``catalogue/out_of_scope.toml`` (or of ``text``), validated."""
    if text is None:
        source = resources.files("conformance") / "catalogue" / "out_of_scope.toml"
        text = source.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    unknown = sorted(set(data) - {"sentence", "gap", "also"})
    if unknown:
        raise ValueError(f"out_of_scope.toml: unknown tables {unknown}")
    known = catalogue()
    entries = []
    for table in ("sentence", "gap", "also"):
        fields = {"spec", "starts", "reason", *(("rows",) if table == "also" else ())}
        for entry in data.get(table, []):
            where = f"out_of_scope.toml [[{table}]] {str(entry.get('starts', ''))[:40]!r}"
            if not fields <= set(entry) <= fields | {"section"}:
                raise ValueError(
                    f"{where}: needs exactly {', '.join(sorted(fields))} (and maybe section)"
                )
            if entry["spec"] not in SPEC_FILES:
                raise ValueError(f"{where}: unknown spec document {entry['spec']!r}")
            starts = normalise(entry["starts"])
            if len(starts) < _MIN_START:
                raise ValueError(f"{where}: name the sentence by {_MIN_START}+ characters")
            rows = tuple(entry.get("rows", ()))
            if table == "also" and (not rows or any(rid not in known for rid in rows)):
                raise ValueError(f"{where}: rows must name catalogue requirements: {rows}")
            entries.append(
                SetAside(
                    entry["spec"],
                    starts,
                    entry["reason"],
                    table == "gap",
                    rows,
                    entry.get("section", ""),
                )
            )
    return tuple(entries)


def coverage(
    rows: Mapping[str, Requirement] | None = None, aside: Sequence[SetAside] | None = None
) -> list[Mapped]:
    """Every sentence that is normative by its form or quoted by a row, with its mapping."""
    rows = catalogue() if rows is None else rows
    aside = set_aside() if aside is None else aside
    mapped = []
    for spec in SPEC_FILES:
        for sentence in sentences(spec):
            checking = tuple(
                r
                for r in rows.values()
                if r.spec == spec
                and r.section.lower() == sentence.section.lower()
                and sentence.covers(r.quote)
            )
            if not (checking or sentence.normative):
                continue
            reason = next((a for a in aside if a.names(sentence)), None)
            if reason is not None and reason.rows:
                checking += tuple(
                    rows[rid] for rid in reason.rows if rid in rows and rows[rid] not in checking
                )
            mapped.append(Mapped(sentence, checking, reason))
    return mapped


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(mapped: Sequence[Mapped]) -> str:
    """The Markdown map: a count per status, then each document section by section."""
    counts: dict[str, int] = {}
    for entry in mapped:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    order = ("checked", "out of scope", "gap", "unmapped")
    lines = [
        "# Coverage of the ASGI specification",
        "",
        "Generated by `python -m conformance.coverage -o docs/coverage.md` from the",
        "catalogue's quotes and `conformance/catalogue/out_of_scope.toml`; do not edit.",
        "A sentence is listed when it uses a modal word (must, should, may, required,",
        "recommended), defines a scope or event key, or is quoted by a requirement.",
        "",
        " · ".join(f"{counts.get(status, 0)} {status}" for status in order),
        "",
    ]
    for spec, filename in SPEC_FILES.items():
        lines += [f"## {filename}", ""]
        section = None
        for entry in (e for e in mapped if e.sentence.spec == spec):
            if entry.sentence.section != section:
                section = entry.sentence.section
                lines += [*([""] if lines[-1] else []), f"### {section or '(preamble)'}", ""]
                lines += ["| Sentence | Checked by |", "| --- | --- |"]
            if entry.rows:
                where = ", ".join(f"`{row.id}` ({row.level.value})" for row in entry.rows)
            elif entry.aside is not None:
                where = f"{'gap' if entry.aside.gap else 'out of scope'}: {entry.aside.reason}"
            else:
                where = "**unmapped**"
            lines.append(f"| {_cell(entry.sentence.text)} | {_cell(where)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.coverage", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, help="write the map here (else stdout)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if OUTPUT is stale or a sentence is unmapped"
    )
    args = parser.parse_args(argv)
    try:
        mapped = coverage()
    except ImportError as exc:
        print(
            f"error: the coverage map needs docutils ({exc}): pip install docutils", file=sys.stderr
        )
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(mapped)
    unmapped = [e for e in mapped if e.status == "unmapped"]
    if args.check:
        problems = [f"unmapped: {e.sentence.spec}: {e.sentence.text[:90]}" for e in unmapped]
        if args.output is None or not args.output.exists():
            problems.append(f"{args.output} does not exist")
        elif args.output.read_text(encoding="utf-8") != text:
            problems.append(f"{args.output} is stale: regenerate it")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output}: {len(mapped)} sentences, {len(unmapped)} unmapped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
