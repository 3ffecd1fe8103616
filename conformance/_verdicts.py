"""Requirement levels, verdicts and the two error families.

Theory of operation
-------------------
A check observes one requirement of the catalogue and either returns (the server
did what the requirement asks) or raises.  What it raises, combined with the
requirement's *level*, decides the verdict:

====================  =============  ==============  ============
raised                MUST/optional  SHOULD/MAY      info
====================  =============  ==============  ============
nothing               pass           pass            info
ConformanceFailure    fail           warn            info
Unsupported, Refused  unsupported    unsupported     unsupported
HarnessError / bug    error          error           error
====================  =============  ==============  ============

The ASGI texts write lower-case "must"/"should"/"may" and never cite RFC 2119,
so a level is our reading of a sentence; the catalogue keeps the section next to
it as the evidence.  Like h11's Local/RemoteProtocolError split, a problem of the
harness (the server never started, our own bug) is never reported as the server
breaking the spec: it is an ``error`` verdict, rendered apart from failures.
"""

from __future__ import annotations

import enum


__all__ = [
    "ConformanceFailure",
    "HarnessError",
    "Level",
    "Refused",
    "Unsupported",
    "Verdict",
    "verdict_for",
]


class Level(str, enum.Enum):
    """How strongly the spec asks for a behaviour (our reading of its wording)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"
    #: Part of an optional feature or extension: applies only where the server offers it.
    OPTIONAL = "optional"
    #: The spec leaves it to the server; the observation is recorded, never graded.
    INFO = "info"


class Verdict(str, enum.Enum):
    """One matrix cell.  Ordered from best to worst by :data:`SEVERITY`."""

    PASS = "pass"
    INFO = "info"
    UNSUPPORTED = "unsupported"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def severity(self) -> int:
        return SEVERITY[self]


#: When several checks judge the same requirement, the worst verdict stands for it.
SEVERITY: dict[Verdict, int] = {
    Verdict.PASS: 0,
    Verdict.INFO: 1,
    Verdict.UNSUPPORTED: 2,
    Verdict.WARN: 3,
    Verdict.FAIL: 4,
    Verdict.ERROR: 5,
}


class ConformanceFailure(Exception):
    """The server did something the requirement forbids (or failed to do what it asks).

    The message says what was sent, what was expected and what was observed; the
    plugin adds the requirement id and the spec section.
    """


class Unsupported(Exception):
    """The server does not offer the optional feature (or spec_version) a check needs."""


class Refused(Unsupported):
    """The server refused a request the spec does not oblige it to accept (HTTP/1.0, a
    target it cannot represent): nothing was learnt about the rule, so it is not judged."""


class NotJudged(Unsupported):
    """What the check needed to happen first did not happen (no http.disconnect to read
    the shape of, no first chunk to leave after, no lifespan.shutdown to time), and
    ``judged_by``, another row, judges exactly that: this row learnt nothing about its
    own sentence, so it blames nothing.  One behaviour is one failure, in one row."""

    def __init__(self, missing: str, judged_by: str) -> None:
        super().__init__(f"not judged: {missing}; {judged_by} judges that")
        self.judged_by = judged_by


class HarnessError(Exception):
    """The harness could not judge: the server did not start, or our own code failed."""


def verdict_for(level: Level, outcome: type[BaseException] | None) -> Verdict:
    """Fold a check's outcome and its requirement's level into a verdict (table above)."""
    if outcome is None:
        return Verdict.INFO if level is Level.INFO else Verdict.PASS
    if issubclass(outcome, Unsupported):
        return Verdict.UNSUPPORTED
    if issubclass(outcome, ConformanceFailure):
        if level is Level.INFO:
            return Verdict.INFO
        if level in (Level.SHOULD, Level.MAY):
            return Verdict.WARN
        return Verdict.FAIL
    return Verdict.ERROR
