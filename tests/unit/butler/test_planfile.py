"""The plan a pre-cache records, read back in another process's place, and the bulk read
(`shutterline.butler.bulkget`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import event

from shutterline import exceptions
from shutterline.butler import bulkget, inputs, names, planfile, precache, repo, selection
from shutterline.images import Exposure

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
        bulkget.with_records(local, [*plan.refs, other.bias.ref])


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


def _same_dataset(a: Any, b: Any) -> None:
    if isinstance(b, Exposure):
        for plane in ("image", "mask", "variance", "psf"):
            x, y = getattr(a, plane), getattr(b, plane)
            assert (x is None) == (y is None), plane
            if y is not None:
                assert x.dtype == y.dtype and x.dtype.isnative
                np.testing.assert_array_equal(x, y)
        assert a.metadata == b.metadata
        assert (a.wcs is None) == (b.wcs is None)
        if b.wcs is not None:
            assert a.wcs.to_header(relax=True) == b.wcs.to_header(relax=True)
    elif isinstance(b, fits.HDUList):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.header == y.header
            np.testing.assert_array_equal(x.data, y.data)
    else:
        assert type(a) is type(b) and a.keys() == b.keys()
        for key in b:
            np.testing.assert_array_equal(a[key], b[key])


def test_own_files_are_read_as_the_butler_gets_them(local_root: Path) -> None:
    local = repo.open_repo(str(local_root))
    plan = planfile.read_plan(local_root, local.dimensions, 1000, 2)
    refs = bulkget.with_records(local, plan.refs)
    direct = bulkget.local_readers(local, refs)
    # Every exposure and the raw are read directly; the tables (Parquet) by the Butler.
    tables = {names.REFCAT, names.ORBITS}
    assert set(direct) == {r.id for r in refs if r.datasetType.name not in tables}
    assert len(direct) >= 4
    for ref in refs:
        if ref.id in direct:
            _same_dataset(direct[ref.id](), local.get(ref))


def test_a_gone_or_damaged_file_is_named(shared_central: Central, tmp_path: Path) -> None:
    root = tmp_path / "local"
    precache.precache_detector(shared_central.butler, str(root), 1000, 2, threads=2)
    local = repo.open_repo(str(root))
    plan = planfile.read_plan(root, local.dimensions, 1000, 2)
    bias, flat = Path(local.getURI(plan.bias.ref).ospath), Path(local.getURI(plan.flat.ref).ospath)
    bias.unlink()  # a hard link to the central file: unlinked, so that one stays intact
    with pytest.raises(exceptions.MissingInputError, match=f"'bias'.*its file {bias} is gone"):
        inputs.read_inputs(local, plan, threads=1)
    bias.write_bytes(flat.read_bytes()[: 2880 * 3])  # truncated: headers, no planes
    with pytest.raises(exceptions.CorruptInputError, match=rf"corrupt input: bias .*{bias}"):
        inputs.read_inputs(local, plan, threads=2)
