"""The normative sentences of the ASGI specification, read from the shipped copy.

The catalogue cites the spec by a ``quote`` per row; this module finds, in the
reStructuredText of ``catalogue/spec/``, every sentence a server could be held
to, so that the coverage map (:mod:`conformance.coverage`) can show which row
checks each one, and the self-tests can name a sentence nobody looked at.

A sentence is normative when it uses one of the spec's modal words (the texts
write lower-case must/should/may and never cite RFC 2119), or when it is the
definition of a scope key or event key: "``path`` (*Unicode string*) -- ..." is a
rule about what a server sends even without a modal word.  Parsing is docutils'
(paragraph nodes keep their source text, markup included, which is what a
quote copies); only the cut into sentences is ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from conformance._catalogue import SPEC_FILES, spec_text


__all__ = ["Sentence", "normalise", "sentences", "words_of"]

#: The words that make a sentence a rule.  "optional" alone is not one: in a key's
#: definition it says who may leave the key out, and definitions count anyway.
_MODAL = re.compile(r"\b(must|should|shall|may|required|recommended)\b", re.IGNORECASE)
#: A key's definition in a scope or event: ``name`` (*type*) -- meaning.
_DEFINITION = re.compile(r"^``[^`]+`` \(\*[^*]+\*\) -- ")
#: A sentence ends at . ! or ? before a space and a capital, a backquote, or a quote;
#: "e.g." and "i.e." do not end one.
_BOUNDARY = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z`*\"(])")


def normalise(text: str) -> str:
    """Whitespace runs as one space: how a quote is compared with the source."""
    return re.sub(r"\s+", " ", text).strip()


def words_of(text: str) -> frozenset[str]:
    """The modal words ``text`` uses, lower-cased."""
    return frozenset(word.lower() for word in _MODAL.findall(text))


@dataclass(frozen=True)
class Sentence:
    """One rule of the spec: where it is and what it says (source text, markup kept)."""

    spec: str
    section: str
    text: str
    #: True for a key's definition (a bullet of a scope or event), which is one unit.
    definition: bool

    @property
    def words(self) -> frozenset[str]:
        return words_of(self.text)

    @property
    def normative(self) -> bool:
        """Whether the sentence is a rule by its form: a modal word, or a key's definition."""
        return self.definition or bool(self.words)

    def covers(self, quote: str) -> bool:
        """Whether a row quoting ``quote`` checks this sentence (one holds the other)."""
        quote = normalise(quote)
        return bool(quote) and (quote in self.text or self.text in quote)


def _paragraphs(spec: str) -> Iterator[tuple[str, str]]:
    """(section title, paragraph source) for every paragraph of the document."""
    import docutils.core
    import docutils.nodes

    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False}
    tree = docutils.core.publish_doctree(spec_text(spec), settings_overrides=settings)
    # A bullet whose continuation line is indented further parses as a definition list:
    # its first line is then a term, not a paragraph, and is a sentence all the same.
    blocks = (docutils.nodes.paragraph, docutils.nodes.term)
    for paragraph in tree.findall(lambda node: isinstance(node, blocks)):
        assert isinstance(paragraph, docutils.nodes.Element)
        section = paragraph.parent
        while section is not None and not isinstance(section, docutils.nodes.section):
            section = section.parent
        # Before the first section: the document's own title (docutils lifts it out).
        title = section[0].astext() if section is not None else str(tree.get("title", ""))
        yield title, paragraph.rawsource


@cache
def sentences(spec: str) -> tuple[Sentence, ...]:
    """Every sentence of document ``spec`` (a key of ``SPEC_FILES``), in order."""
    if spec not in SPEC_FILES:
        raise KeyError(f"no spec document {spec!r}")
    found: list[Sentence] = []
    for section, source in _paragraphs(spec):
        text = normalise(source)
        if _DEFINITION.match(text):
            found.append(Sentence(spec, section, text, definition=True))
            continue
        parts = (part for part in _BOUNDARY.split(text) if part)
        found.extend(Sentence(spec, section, part, False) for part in parts)
    return tuple(found)
