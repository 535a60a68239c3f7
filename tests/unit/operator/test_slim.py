"""Merge patches are minimal and remove what went away; slimmed pods keep what folding reads."""

from __future__ import annotations

from shutterline_operator.core import slim, status
from tests.unit.operator import objects


def test_merge_patch() -> None:
    old = {
        "phase": "Queued",
        "queue": {"position": 1},
        "detectors": {"1": {"state": "Pending", "reason": "x"}},
    }
    new = {"phase": "Processing", "detectors": {"1": {"state": "Processing"}}}
    assert slim.merge_patch(old, new) == {
        "phase": "Processing",
        "queue": None,
        "detectors": {"1": {"state": "Processing", "reason": None}},
    }
    assert slim.merge_patch(new, new) == {}


def test_slim_pod_folds_like_the_full_pod() -> None:
    full = objects.pod(0, ready=True)
    full["spec"] = {
        "containers": [{"name": "pipeline", "env": [{"name": "X", "value": "y" * 999}]}]
    }
    visit = objects.visit()
    folded = status.fold(visit, objects.job(), [full], [1, 2, 3], objects.NOW)
    assert (
        status.fold(visit, objects.job(), [slim.slim_pod(full)], [1, 2, 3], objects.NOW) == folded
    )
    assert "spec" not in slim.slim_pod(full)
