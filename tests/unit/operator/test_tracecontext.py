"""The root trace context comes from the Visit's uid: the same on every run, no write first."""

from __future__ import annotations

from shutterline_operator.core import tracecontext
from tests.unit.operator import objects


def test_the_context_is_derived_from_the_uid_when_none_is_stored() -> None:
    visit = objects.visit()
    del visit["metadata"]["annotations"]
    first = tracecontext.traceparent_of(visit)
    assert tracecontext.parse_traceparent(first) is not None
    assert tracecontext.traceparent_of(visit) == first
    visit["metadata"]["uid"] = "uid-other"
    assert tracecontext.traceparent_of(visit) != first


def test_a_stored_context_wins_and_a_malformed_one_is_ignored() -> None:
    visit = objects.visit()
    assert tracecontext.traceparent_of(visit) == objects.TRACEPARENT
    visit["metadata"]["annotations"] = {"shutterline.io/traceparent": "00-zz-1-01"}
    assert tracecontext.traceparent_of(visit) != "00-zz-1-01"
