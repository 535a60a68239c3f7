"""The plan a pre-cache records, read back in another process's place, and the bulk get."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from shutterline import exceptions
from shutterline.butler import inputs, planfile, precache, repo, selection

from . import sameinputs
from .conftest import Central


@pytest.fixture(scope="module")
def local_root(shared_central: Central, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planfile") / "local"
    precache.precache_detector(shared_central.butler, str(root), 1000, 2, threads=2)
    return root


def test_recorded_plan_is_the_plan_of_the_central_and_of_the_local_registry(
    shared_central: Central, local_root: Path
) -> None:
    local = repo.open_repo(str(local_root))
    recorded = planfile.read_plan(local_root, local.dimensions, 1000, 2)
    # The same refs in the same order, records, timespans and patches as planning again,
    # on the central registry (what the pre-cache did) and on the local one (what the
    # pipeline container did before it read the recorded plan).
    sameinputs.assert_same_plan(recorded, selection.plan_detector(shared_central.butler, 1000, 2))
    sameinputs.assert_same_plan(recorded, selection.plan_detector(local, 1000, 2))
    assert recorded.raw is not None and recorded.orbits is not None and len(recorded.refcat) > 0
    loaded = inputs.inputs_from(recorded, inputs.read_inputs(local, recorded, threads=2))
    sameinputs.assert_same_inputs(
        loaded, inputs.load_detector_inputs(shared_central.butler, 1000, 2)
    )


def test_reading_a_plan_asks_the_registry_once_for_all_files(local_root: Path) -> None:
    local = repo.open_repo(str(local_root))
    plan = planfile.read_plan(local_root, local.dimensions, 1000, 2)
    inputs.read_inputs(local, plan, threads=1)  # a new Butler reads the dataset types once
    statements: list[str] = []
    engine = local._registry._db._engine  # type: ignore[attr-defined]
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        data = inputs.read_inputs(local, plan, threads=1)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert set(data) == {r.id for r in plan.refs} and len(plan.refs) >= 6
    # One query for every file's record (before: one per get), none to plan.
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) == 1 and "FROM file_datastore_records" in selects[0], statements


def test_a_dataset_without_a_file_is_named(shared_central: Central, local_root: Path) -> None:
    local = repo.open_repo(str(local_root))
    plan = planfile.read_plan(local_root, local.dimensions, 1000, 2)
    other = selection.plan_detector(shared_central.butler, 1001, 1)  # not copied here
    with pytest.raises(exceptions.MissingInputError, match=r"'bias'.*no file in this repo"):
        inputs.with_records(local, [*plan.refs, other.bias.ref])


def test_a_missing_foreign_or_damaged_plan_is_refused(local_root: Path, tmp_path: Path) -> None:
    local = repo.open_repo(str(local_root))
    with pytest.raises(exceptions.MissingInputError, match="was the repository pre-cached"):
        planfile.read_plan(tmp_path, local.dimensions, 1000, 2)
    with pytest.raises(exceptions.PermanentError, match="visit 1000 detector 2, not of visit 1000 "
                       "detector 1"):  # fmt: skip
        planfile.read_plan(local_root, local.dimensions, 1000, 1)
    text = (local_root / planfile.PLAN_FILE).read_text()
    for damaged, why in (
        (text[: len(text) // 2], "JSONDecodeError"),
        (text.replace('"version":1', '"version":0'), "version 0, expected 1"),
        (text.replace('"bias":', '"biased":'), "KeyError: 'bias'"),
    ):
        (tmp_path / planfile.PLAN_FILE).write_text(damaged)
        with pytest.raises(exceptions.PermanentError, match=why) as info:
            planfile.read_plan(tmp_path, local.dimensions, 1000, 2)
        assert str(tmp_path / planfile.PLAN_FILE) in str(info.value)
