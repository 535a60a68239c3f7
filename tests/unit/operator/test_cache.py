"""The engine's cache: the owner index from pods to Visits, stale events, dirty marks."""

from __future__ import annotations

import time
from typing import Any

from shutterline_operator.engine import cache
from tests.unit.operator import objects


def _versioned(obj: dict[str, Any], version: int) -> dict[str, Any]:
    obj["metadata"]["resourceVersion"] = str(version)
    return obj


def test_pod_events_mark_the_visit_through_its_job() -> None:
    held = cache.Cache()
    held.put_visit(objects.visit())
    held.take_dirty(time.monotonic())
    held.put_job(objects.job())
    held.put_pod(objects.pod(0, ready=True))
    assert held.take_dirty(time.monotonic()) == [("prompt", "visit-100007")]
    visit, job, pods = held.visit_view(("prompt", "visit-100007"))
    assert visit is not None and job is not None
    assert [p["metadata"]["name"] for p in pods] == ["visit-100007-0-abcde"]
    held.put_pod(objects.pod(0), deleted=True)
    assert held.visit_view(("prompt", "visit-100007"))[2] == []


def test_older_events_do_not_overwrite_newer_objects() -> None:
    held = cache.Cache()
    held.put_job(_versioned(objects.job(completed="0"), 20))
    held.put_job(_versioned(objects.job(), 10))
    assert held.jobs[("prompt", "visit-100007")]["status"]["completedIndexes"] == "0"
    assert held.queue_dirty


def test_config_for_finds_the_instrument() -> None:
    held = cache.Cache()
    held.put_config(objects.config())
    assert held.config_for("prompt", "SimDECam") is not None
    assert held.config_for("prompt", "Other") is None
    assert held.config_for("elsewhere", "SimDECam") is None


def test_dirty_marks_wait_for_the_interval() -> None:
    held = cache.Cache()
    held.mark(("ns", "a"))
    assert held.take_dirty(time.monotonic() - 10) == []
    assert held.earliest_dirty() is not None
    assert held.take_dirty(time.monotonic()) == [("ns", "a")]
    assert not held.wake.is_set()


def test_visits_being_patched_stay_dirty_until_done() -> None:
    held = cache.Cache()
    held.put_visit(objects.visit())
    key = ("prompt", "visit-100007")
    assert held.take_dirty(time.monotonic()) == [key]
    held.mark(key)  # changed again while its patch is in flight
    assert held.earliest_dirty({key}) is None
    assert held.take_dirty(time.monotonic(), {key}) == []
    assert not held.wake.is_set()  # the loop sleeps until the patch ends, no busy turning
    assert held.take_dirty(time.monotonic()) == [key]


def test_a_job_seen_once_is_remembered_by_its_visits_uid() -> None:
    held = cache.Cache()
    visit = objects.visit()
    assert not held.had_job(visit)
    held.put_job(objects.job())
    held.put_job(objects.job(), deleted=True)  # timed out in the queue, or its TTL
    assert held.had_job(visit)
    assert not held.had_job(objects.visit("visit-100008"))


def test_a_deferred_mark_waits_unless_one_is_due_earlier() -> None:
    held = cache.Cache()
    key = ("prompt", "visit-100007")
    now = time.monotonic()
    held.mark_at(key, now + 60)
    assert held.take_dirty(now) == []
    held.mark_at(key, now - 1)
    held.mark_at(key, now + 60)  # a later deferral never delays what is already due
    assert held.take_dirty(now) == [key]


def test_a_new_event_ends_a_deferral() -> None:
    held = cache.Cache()
    held.put_job(objects.job())
    key = ("prompt", "visit-100007")
    held.take_dirty(time.monotonic())
    held.mark_at(key, time.monotonic() + 60)
    held.put_pod(objects.pod(0, ready=True))  # maybe a new phase: look at once
    assert held.take_dirty(time.monotonic()) == [key]


def test_take_dirty_takes_the_longest_waiting_first_up_to_a_limit() -> None:
    held = cache.Cache()
    now = time.monotonic()
    for offset, name in ((3, "c"), (1, "a"), (2, "b")):
        held.mark_at(("ns", name), now - 10 + offset)
    assert held.take_dirty(now, limit=2) == [("ns", "a"), ("ns", "b")]
    assert held.take_dirty(now, limit=0) == []
    assert held.take_dirty(now) == [("ns", "c")]


def test_the_visit_id_index_finds_what_a_scan_of_the_namespace_would() -> None:
    """The duplicate check reads `Cache.same_visit_id`; against the whole namespace (the
    slow reference it replaced) it decides the same through adds, changes and deletes."""
    import datetime as dt
    import random

    from shutterline_operator.core import validation

    rng = random.Random(5)
    store = cache.Cache()
    config, camera = objects.config(), frozenset(range(1, 63))
    now = dt.datetime(2026, 3, 1, 3, 12, 40, tzinfo=dt.UTC)
    duplicates = 0
    for step in range(400):
        name = f"v{rng.randrange(40)}"
        visit = objects.visit(name, visitId=rng.randrange(8), deadlineSeconds=86400)
        visit["metadata"].update(
            namespace=rng.choice(["a", "b"]),
            resourceVersion=str(step),
            creationTimestamp=f"2026-03-01T03:{rng.randrange(60):02d}:00Z",
        )
        if rng.random() < 0.2:
            visit["spec"]["instrument"] = "Other"
        store.put_visit(visit, deleted=rng.random() < 0.15)
        namespace = visit["metadata"]["namespace"]
        every = [v for (ns, _), v in store.visits.items() if ns == namespace]
        fast = validation.validate(visit, config, camera, store.same_visit_id(visit), now)
        assert fast == validation.validate(visit, config, camera, every, now)
        duplicates += fast is not None and fast.reason == "DuplicateVisit"
    assert duplicates > 50  # the check was exercised, not only passed
