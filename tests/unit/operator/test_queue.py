"""The built-in queue releases in priority-then-time order within the detector limit."""

from __future__ import annotations

import pytest

from shutterline_operator.core import queue, status
from tests.unit.operator import objects


def _entry(
    name: str, priority: int, created: str, demand: int = 2, running: int = 0
) -> queue.Entry:
    return queue.Entry(("ns", name), priority, created, demand, running == 0, running)


def test_priority_then_time() -> None:
    entries = [
        _entry("low-old", 0, "2026-03-01T00:00:00Z"),
        _entry("high-new", 5, "2026-03-01T00:00:09Z"),
        _entry("low-new", 0, "2026-03-01T00:00:05Z"),
    ]
    plan = queue.plan(entries, limit=2)
    assert plan.release == [("ns", "high-new")]
    assert [k[1] for k in plan.waiting] == ["low-old", "low-new"]
    assert plan.waiting[("ns", "low-old")].position == 1
    assert "2/2 detectors running" in plan.waiting[("ns", "low-old")].reason


def test_running_jobs_hold_capacity() -> None:
    entries = [_entry("running", 0, "a", running=2), _entry("next", 9, "b")]
    assert queue.plan(entries, limit=3).release == []
    assert queue.plan(entries, limit=4).release == [("ns", "next")]


def test_strict_order_no_overtaking_but_oversized_runs_alone() -> None:
    entries = [_entry("big", 5, "a", demand=10), _entry("small", 0, "b", demand=1)]
    plan = queue.plan(entries, limit=4)
    assert plan.release == [("ns", "big")]  # nothing runs: the oversized head runs alone
    entries = [_entry("r", 0, "0", running=1), *entries]
    plan = queue.plan(entries, limit=4)
    assert plan.release == []
    assert list(plan.waiting) == [("ns", "big"), ("ns", "small")]


def test_entry_from_job() -> None:
    running = queue.entry_from_job(objects.job(completed="0"), priority=3)
    assert running is not None
    assert (running.running, running.demand, running.suspended) == (2, 3, False)
    waiting = queue.entry_from_job(objects.job(suspend=True), priority=3)
    assert waiting is not None and waiting.running == 0 and waiting.suspended
    done = objects.job(conditions=[objects.condition("Complete")])
    assert queue.entry_from_job(done, priority=0) is None


def _slot(position: int, running: int = 248) -> status.QueueSlot:
    return status.QueueSlot(position, f"queued at position {position}: {running}/248 running")


def test_coarse_steps_are_powers_of_two() -> None:
    steps = [queue.step(p, "coarse") for p in (1, 2, 3, 4, 7, 8, 15, 16, 500)]
    assert steps == [1, 2, 2, 4, 4, 8, 8, 16, 256]
    assert queue.step(37, "exact") == 37
    assert queue.step(37, "phase") == queue.step(1, "phase")
    with pytest.raises(ValueError, match="'sometimes' is not one of"):
        queue.step(1, "sometimes")


def _reports(policy: str, positions: list[int]) -> list[int]:
    """The positions a Visit's status shows as the queue drains through ``positions``."""
    reported: status.QueueSlot | None = None
    shown = []
    for position in positions:
        settled = queue.settle(reported, _slot(position, running=200 + position), policy)
        if settled != reported:
            shown.append(settled.position)
        reported = settled
    return shown


def test_a_draining_queue_is_reported_in_steps() -> None:
    """500 -> 1 in steps of 4 (one visit of 4 released at a time): every change under
    ``exact``, eight under ``coarse``, one under ``phase``; the coarse position is
    never more than twice the true one."""
    positions = [*range(500, 0, -4), 1]
    assert _reports("exact", positions) == positions
    coarse = _reports("coarse", positions)
    assert coarse == [500, 252, 124, 60, 28, 12, 4, 1]
    reported = None
    for position in positions:
        reported = queue.settle(reported, _slot(position), "coarse")
        assert position <= reported.position < 2 * position
    assert _reports("phase", positions) == [500]


def test_moving_back_a_step_is_reported() -> None:
    """A higher-priority Visit arriving pushes a waiting one back: a new step is shown."""
    assert queue.settle(_slot(3), _slot(5), "coarse") == _slot(5)
    assert queue.settle(_slot(5), _slot(6), "coarse") == _slot(5)
    assert queue.settle(_slot(5), _slot(5, running=10), "exact") == _slot(5, running=10)
