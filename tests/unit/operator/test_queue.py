"""The built-in queue releases in priority-then-time order within the detector limit."""

from __future__ import annotations

from shutterline_operator.core import queue
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
