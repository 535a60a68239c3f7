"""The status patch policy: a waiting Visit's queue slot is re-reported only in coarse steps,
and status work (patches, Events) waits while Visits wait for their Jobs."""

from __future__ import annotations

import datetime as dt
import time

import prometheus_client
import pytest
from kubernetes import client

from shutterline_operator.adapters import kube, tracing
from shutterline_operator.engine import admission, creator, reconcile, statusloop
from tests.unit.operator import objects


def _reconciler(policy: str = "coarse") -> reconcile.Reconciler:
    # An API client that is never called: nothing here is released, timed out or patched.
    return reconcile.Reconciler(kube.Api(client.ApiClient()), tracing.RootSpans(), 3.0, policy)


def _queue(rec: reconcile.Reconciler, waiting: list[str]) -> None:
    """One running Visit filling the limit, and ``waiting`` behind it in that order."""
    now = dt.datetime.now(dt.UTC)
    rec.cache.put_config(objects.config(concurrency={"detectors": 3}))
    for rank, name in enumerate(["running", *waiting]):
        start = (now + dt.timedelta(seconds=rank)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        rec.cache.put_visit(objects.visit(name, observationStart=start, deadlineSeconds=86400))
        job = objects.job(suspend=name != "running", name=name)
        job["metadata"]["creationTimestamp"] = start
        rec.cache.put_job(job)


def _positions(rec: reconcile.Reconciler) -> dict[str, int]:
    return {key[1]: slot.position for key, slot in rec.slots.items()}


def _drain(rec: reconcile.Reconciler, policy_names: list[str]) -> tuple[dict[str, int], set[str]]:
    """Admit, then let the head of the queue leave; the slots and the Visits marked dirty."""
    admission.admit(rec, dt.datetime.now(dt.UTC))
    rec.cache.take_dirty(time.monotonic() + 1)
    head = policy_names[0]
    rec.cache.put_job(objects.job(suspend=True, name=head), deleted=True)
    rec.cache.put_visit(objects.visit(head), deleted=True)
    rec.cache.take_dirty(time.monotonic() + 1)
    admission.admit(rec, dt.datetime.now(dt.UTC))
    dirty = {key[1] for key in rec.cache.take_dirty(time.monotonic() + 1)}
    return _positions(rec), dirty


def test_coarse_positions_report_only_new_steps() -> None:
    names = [f"w{i}" for i in range(1, 10)]
    rec = _reconciler("coarse")
    _queue(rec, names)
    admission.admit(rec, dt.datetime.now(dt.UTC))
    assert _positions(rec) == {name: i for i, name in enumerate(names, 1)}
    positions, dirty = _drain(rec, names)
    # w2 2 -> 1 and w4 4 -> 3 and w8 8 -> 7 change steps; w3 (3 -> 2), w5-7, w9 do not.
    assert positions == {"w2": 1, "w3": 3, "w4": 3, "w5": 5, "w6": 6, "w7": 7, "w8": 7, "w9": 9}
    assert dirty == {"w1", "w2", "w4", "w8"}  # w1 has left: its slot is gone


def test_exact_positions_follow_every_change() -> None:
    names = [f"w{i}" for i in range(1, 10)]
    rec = _reconciler("exact")
    _queue(rec, names)
    positions, dirty = _drain(rec, names)
    assert positions == {name: i for i, name in enumerate(names[1:], 1)}
    assert dirty == set(names)


def _loop(creating: list[bool], hold_s: float) -> statusloop.StatusLoop:
    return statusloop.StatusLoop(_reconciler(), 0.01, 1, lambda: creating[0], hold_s)


def test_status_work_waits_for_creation_at_most_hold_s() -> None:
    creating = [True]
    loop = _loop(creating, hold_s=0.3)
    assert loop._held()
    time.sleep(0.1)
    assert loop._held()
    time.sleep(0.25)
    assert not loop._held()  # held 0.35 s in a row: one turn goes through
    assert loop._held()  # and the next hold begins
    creating[0] = False
    assert not loop._held()
    assert not _loop([True], hold_s=0)._held()


def test_creation_counts_as_going_on_for_linger_s_after_the_last_job() -> None:
    """Between two Visits of a burst the creators are idle for moments: status work stays
    held until none has been busy for ``linger_s`` (a fake clock)."""
    now = [100.0]
    maker = creator.Creator(_reconciler(), 1, linger_s=0.5, clock=lambda: now[0])
    assert not maker.creating()  # never busy: nothing to hold for
    maker.busy.add(("prompt", "v1"))
    assert maker.creating()
    maker.done(("prompt", "v1"))
    now[0] += 0.4
    assert maker.creating()  # idle 0.4 s: the next Visit of the burst may come
    now[0] += 0.2
    assert not maker.creating()
    maker.busy.add(("prompt", "v2"))
    maker.busy.add(("prompt", "v3"))
    maker.done(("prompt", "v2"))
    now[0] += 5
    assert maker.creating()  # v3 still waits for its Job
    unlingering = creator.Creator(_reconciler(), 1, linger_s=0)
    unlingering.busy.add(("prompt", "v1"))
    unlingering.done(("prompt", "v1"))
    assert not unlingering.creating()
    maker.stop()
    unlingering.stop()


def test_admission_passes_are_spaced_in_a_burst() -> None:
    """Every new Job asks for a pass; passes stay at least 0.1 s apart."""
    loop = _loop([False], hold_s=0)
    first = _admission_passes()
    loop._admit_if_due()
    for _ in range(5):
        loop.rec.cache.queue_dirty = True
        loop._admit_if_due()
    _assert_held_until_due(loop, first, 0.12)


def test_a_costly_admission_pass_spaces_the_next_ten_times_its_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass of 30 ms (a burst's many Jobs) holds the next one back 0.3 s: passes keep at
    most a tenth of the GIL from kopf's event intake and the Job creators."""
    real = admission.admit

    def slow(rec: reconcile.Reconciler, now: dt.datetime) -> None:
        real(rec, now)
        time.sleep(0.03)

    monkeypatch.setattr(admission, "admit", slow)
    loop = _loop([False], hold_s=0)
    first = _admission_passes()
    loop._admit_if_due()
    assert 0.3 <= loop.admit_gap < 0.5
    time.sleep(0.15)
    loop.rec.cache.queue_dirty = True
    loop._admit_if_due()
    _assert_held_until_due(loop, first, 0.2)


def _assert_held_until_due(loop: statusloop.StatusLoop, first: float, wait_s: float) -> None:
    """The pass asked for after the first is held back, then runs once ``wait_s`` passed."""
    assert _admission_passes() == first + 1 and loop.rec.cache.queue_dirty
    time.sleep(wait_s)
    loop._admit_if_due()
    assert _admission_passes() == first + 2 and not loop.rec.cache.queue_dirty


def _admission_passes() -> float:
    """How many admission passes this process has timed (the operator's own metric)."""
    labels = {"step": "admit"}
    count = prometheus_client.REGISTRY.get_sample_value(
        "shutterline_reconcile_seconds_count", labels
    )
    return count or 0.0


def test_details_wait_for_a_progress_step_or_ten_detail_intervals() -> None:
    rec = _reconciler()
    key = ("prompt", "v")
    last = time.monotonic()
    rec.patched[key] = last
    old, moved = {"progress": "7/62"}, {"progress": "8/62"}
    assert rec._defer(key, old, moved, {"progress": "8/62"})
    assert rec.cache.dirty[key] == pytest.approx(last + 30.0)  # 10 x detail_s
    stepped = {"progress": "16/62"}
    assert rec._defer(key, old, stepped, {"progress": "16/62"})
    assert rec.cache.dirty[key] == pytest.approx(last + 3.0)  # a new 25 % step: detail_s
    assert not rec._defer(key, old, {"phase": "Succeeded"}, {"phase": "Succeeded"})
    rec.patched[key] = last - 31.0
    assert not rec._defer(key, old, moved, {"progress": "8/62"})
