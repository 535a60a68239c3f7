"""The compact per-detector status and the progress patch policy: pure folders."""

from __future__ import annotations

from typing import Any

import pytest

from shutterline_operator.core import compact, slim, status

DETECTORS = [3, 1, 2, 4]  # completion index i is DETECTORS[i]


def _entries() -> dict[str, dict[str, Any]]:
    failed = {"reason": "missing input: no 'flat' dataset", "exitCode": 65, "pod": "v-1-x"}
    return {
        "3": {"index": 0, "state": "Succeeded", "attempts": 1, "alerts": 5, "diaSources": 9},
        "1": {"index": 1, "state": "Failed", "attempts": 1, "alerts": 0, **failed},
        "2": {"index": 2, "state": "Succeeded", "attempts": 2, "alerts": 1, "diaSources": 2},
        "4": {"index": 3, "state": "Processing", "attempts": 1, "pod": "v-3-y"},
    }


def test_compact_keeps_states_counts_and_the_notable_entries() -> None:
    encoded = compact.encode(_entries(), DETECTORS, "compact")
    assert encoded["detectorStates"] == {"Succeeded": "2-3", "Failed": "1", "Processing": "4"}
    assert encoded["detectorAlerts"] == [5, 0, 1, 0]  # completion-index order
    assert encoded["detectorDiaSources"] == [9, 0, 2, 0]
    # The failed detector and the one that needed two attempts keep their full entries.
    assert encoded["detectors"] == {"1": _entries()["1"], "2": _entries()["2"]}


def test_decode_gives_back_what_a_fold_needs() -> None:
    decoded = compact.decode(compact.encode(_entries(), DETECTORS, "compact"), DETECTORS)
    assert decoded["1"] == _entries()["1"]
    assert decoded["2"] == _entries()["2"]
    assert decoded["3"] == {"index": 0, "state": "Succeeded", "attempts": 1, "alerts": 5,
                            "diaSources": 9}  # fmt: skip
    assert decoded["4"] == {"index": 3, "state": "Processing"}  # its pod says the rest


def test_map_shape_is_every_full_entry_and_decodes_to_itself() -> None:
    encoded = compact.encode(_entries(), DETECTORS, "map")
    assert encoded == {"detectors": _entries()}
    assert compact.decode(encoded, DETECTORS) == _entries()


def test_nothing_finished_has_no_count_lists_and_unknown_shape_fails() -> None:
    pending = {str(d): {"index": i, "state": "Pending"} for i, d in enumerate(DETECTORS)}
    assert compact.encode(pending, DETECTORS, "compact") == {"detectorStates": {"Pending": "1-4"}}
    assert compact.decode({}, DETECTORS) == {}
    with pytest.raises(
        ValueError,
        match="SHUTTERLINE_STATUS_DETECTORS='full': not one of compact, map",
    ):
        compact.encode(pending, DETECTORS, "full")


def test_progress_steps() -> None:
    assert status.progress_step("0/62", 10) == 0
    assert status.progress_step("6/62", 10) == 0  # 9.7 %
    assert status.progress_step("7/62", 10) == 1
    assert status.progress_step("62/62", 10) == 10
    assert status.progress_step("5/62", 0) == 5
    assert status.progress_step(None, 10) == 0


def test_a_detail_patch_is_worth_it_on_a_new_step_or_a_notable_change() -> None:
    old = {"progress": "7/62"}
    assert not status.worth(old, {"progress": "8/62"}, {"progress": "8/62"}, 10)
    assert status.worth(old, {"progress": "13/62"}, {"progress": "13/62"}, 10)
    assert status.worth(old, {"progress": "8/62"}, {"progress": "8/62"}, 0)
    retrying = {"detectors": {"5": {"state": "Retrying"}}}
    assert status.worth(old, old, retrying, 10)
    assert status.worth(old, old, {"queue": {"position": 4}}, 10)
    assert not status.worth(old, old, {"detectorStates": {"Processing": "1-62"}}, 10)


def test_a_status_of_the_shape_before_turns_compact_in_one_merge_patch() -> None:
    before = compact.encode(_entries(), DETECTORS, "map")
    after = compact.encode(compact.decode(before, DETECTORS), DETECTORS, "compact")
    patch = slim.merge_patch(before, after)
    # The plain entries go (null in a merge patch), the notable ones stay untouched.
    assert patch["detectors"] == {"3": None, "4": None}
    assert patch["detectorStates"] == after["detectorStates"]
