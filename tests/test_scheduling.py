"""Who boots when (conformance/_boots.py) and which worker runs what (conformance/_xdist.py)."""

from __future__ import annotations

import threading
import time

import pytest

from conformance import _boots
from conformance._boots import BACKGROUND, LEAD, URGENT, boot_priority
from conformance._xdist import target_of_node


def _queue(gate: _boots._Gate, order: list[str], name: str, level: int) -> threading.Thread:
    def take() -> None:
        slot = gate.take(level, name, "")
        order.append(name)
        time.sleep(0.01)
        slot.release()

    thread = threading.Thread(target=take, daemon=True)  # a broken gate must not hang the run
    thread.start()
    return thread


def _wait_queued(gate: _boots._Gate, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(gate._waiting) < count and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(gate._waiting) == count


def test_background_boots_take_the_free_slots_most_urgent_first() -> None:
    gate = _boots._Gate(1)
    held = gate.take(BACKGROUND, "first", "")
    order: list[str] = []
    threads = [_queue(gate, order, "less-urgent", BACKGROUND + 1)]
    _wait_queued(gate, 1)
    threads.append(_queue(gate, order, "more-urgent-but-later", BACKGROUND))
    _wait_queued(gate, 2)
    held.release()
    for thread in threads:
        thread.join(5)
    assert order == ["more-urgent-but-later", "less-urgent"]


@pytest.mark.parametrize("level", [URGENT, LEAD])
def test_a_boot_a_check_waits_for_or_a_lead_never_queues(level: int) -> None:
    gate = _boots._Gate(1)
    held = gate.take(BACKGROUND, "busy", "")
    slot = gate.take(level, "now", "")  # returns at once although no slot is free
    slot.release()
    held.release()
    assert gate._free == 1


def test_a_queued_boot_that_a_check_comes_to_need_goes_at_once() -> None:
    gate = _boots._Gate(1)
    held = gate.take(BACKGROUND, "busy", "")
    order: list[str] = []
    thread = _queue(gate, order, "needed", BACKGROUND)
    _wait_queued(gate, 1)
    gate.hurry(key="needed")
    thread.join(5)
    assert order == ["needed"]
    held.release()
    assert gate._free == 1


def test_the_urgency_follows_the_context() -> None:
    seen: list[int] = []
    with boot_priority(BACKGROUND, owner="scenario"):
        thread = threading.Thread(target=lambda: seen.append(_boots._priority.get()))
        thread.start()  # a plain thread starts with an empty context
        thread.join()
        seen.append(_boots._priority.get())
    seen.append(_boots._priority.get())
    assert seen == [URGENT, BACKGROUND, URGENT]


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("conformance/suite/test_http_scope.py::test_x[uvicorn]", "uvicorn"),
        ("conformance/suite/test_http_scope.py::test_x[uvicorn:h11]", "uvicorn:h11"),
        ("suite/test_a.py::test_x[uvicorn:websockets-sansio]", "uvicorn:websockets-sansio"),
        ("suite/test_a.py::test_x[uvicorn:websockets-GET]", "uvicorn:websockets"),
        ("suite/test_a.py::test_x[GET-hypercorn]", "hypercorn"),
        ("suite/test_a.py::test_x", None),
        ("suite/test_a.py::test_x[other]", None),
    ],
)
def test_a_check_is_scheduled_with_its_target(nodeid: str, expected: str | None) -> None:
    names = [
        "uvicorn",
        "uvicorn:h11",
        "uvicorn:websockets",
        "uvicorn:websockets-sansio",
        "hypercorn",
    ]
    assert target_of_node(nodeid, names) == expected


def test_the_queue_waits_while_a_lead_is_on_its_way_to_its_instance() -> None:
    gate = _boots._Gate(1)
    lead = _boots._Lead(gate)  # a lead scenario has started, its boot not yet up
    order: list[str] = []
    thread = _queue(gate, order, "background", BACKGROUND)
    _wait_queued(gate, 1)
    time.sleep(0.05)
    assert order == []  # a free slot, but the lead goes first
    lead.done()
    thread.join(5)
    assert order == ["background"]


def test_a_boot_hurried_before_it_reached_the_gate_does_not_queue() -> None:
    gate = _boots._Gate(1)
    held = gate.take(BACKGROUND, "busy", "")
    gate.hurry(key="needed")  # the check is waiting already; the boot arrives after
    slot = gate.take(BACKGROUND, "needed", "")  # returns at once
    slot.release()
    held.release()
    assert gate._free == 1


def test_a_boot_queued_past_the_bound_goes_without_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_boots, "QUEUE_BOUND", 0.05)
    gate = _boots._Gate(1)
    gate.take(BACKGROUND, "never-given-back", "")
    slot = gate.take(BACKGROUND, "late", "")  # returns after the bound instead of hanging
    slot.release()
    assert gate._free == 0
    assert gate._waiting == []
