"""Generated body sizes and piece boundaries for the request-body checks (hypothesis).

Imported by the checks that use it, when they run, not by their module: hypothesis
takes a tenth of a second to import, and collecting the suite is on the critical
path of every column (and of every xdist worker), while a check that generates
bodies runs beside the column's longest watch.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio.from_thread
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st


__all__ = ["EXAMPLES", "chunk_sizes", "length_writes", "run_examples"]

MIB = 1024 * 1024
#: Hypothesis budget per check: few examples (each may be MiB on the wire), no shrinking
#: (a failing example is reported as found), the same examples on every run.
EXAMPLES = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@st.composite
def length_writes(draw: st.DrawFn, max_size: int = 4 * MIB) -> list[int]:
    """A body size and where the client's writes split it: the sizes of the writes."""
    size = draw(st.integers(1, max_size))
    cuts = sorted(set(draw(st.lists(st.integers(1, size), max_size=6))))
    bounds = [0, *(cut for cut in cuts if cut < size), size]
    return [end - start for start, end in itertools.pairwise(bounds)]


@st.composite
def chunk_sizes(draw: st.DrawFn) -> list[int]:
    """The chunk sizes of a chunked body: up to 8 chunks of up to 512 KiB."""
    return draw(st.lists(st.integers(1, 512 * 1024), min_size=1, max_size=8))


def run_examples(check: Any, strategy: st.SearchStrategy[list[int]], *explicit: list[int]) -> None:
    """Run ``check`` (async, one list of sizes) for hypothesis' examples, from a worker thread."""

    @EXAMPLES
    @given(sizes=strategy)
    def one(sizes: list[int]) -> None:
        anyio.from_thread.run(check, sizes)

    for sizes in reversed(explicit):
        one = example(sizes=sizes)(one)
    one()
