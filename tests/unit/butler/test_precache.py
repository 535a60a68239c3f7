"""Pre-cache into a local repository; the same inputs load from either repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from shutterline import exceptions
from shutterline.butler import inputs, names, precache, repo, selection

from . import sameinputs
from .conftest import Central, write_raw


@pytest.mark.parametrize("method", ["stream", "transfer_from"])
def test_precache_then_load_gives_the_same_inputs(
    shared_central: Central, tmp_path: Path, method: str
) -> None:
    report = precache.precache_detector(
        str(shared_central.root / "central"),
        str(tmp_path / "local"),
        1000,
        2,
        threads=4,
        method=method,
    )
    local = repo.open_repo(str(tmp_path / "local"))
    from_local = inputs.load_detector_inputs(local, 1000, 2)
    from_central = inputs.load_detector_inputs(shared_central.butler, 1000, 2)
    assert from_local.orbits is not None
    sameinputs.assert_same_inputs(from_local, from_central)
    # The bias and flat are the ones certified for detector 2.
    np.testing.assert_array_equal(from_local.bias.image, shared_central.bias[2].image)
    np.testing.assert_array_equal(from_local.flat.image, shared_central.flat[2].image)
    # Exactly the plan was transferred: one raw, this detector's, and nothing else.
    raws = local.query_datasets(names.RAW, names.RAW_COLLECTION, explain=False, limit=None)
    assert [(r.dataId["exposure"], r.dataId["detector"]) for r in raws] == [(1000, 2)]
    n_local = sum(
        len(local.query_datasets(t, collections="*", find_first=False, explain=False, limit=None))
        for t in (names.RAW, names.BIAS, names.FLAT, names.TEMPLATE, names.REFCAT, names.ORBITS)
    )
    assert (
        report.n_datasets
        == n_local
        == 3 + len(from_local.templates) + len(selection.plan_detector(local, 1000, 2).refcat) + 1
    )
    assert report.bytes > 0 and report.n_unverified == 0
    assert report.query_seconds > 0 and report.transfer_seconds > 0


def test_refcat_covers_the_padded_footprint(shared_central: Central) -> None:
    loaded = inputs.load_detector_inputs(shared_central.butler, 1001, 1, padding_arcsec=60.0)
    catalog = shared_central.refcat
    ra0, dec0 = loaded.footprint.mean(axis=0)
    # Stars within 50 arcsec of the detector centre: inside the footprint padded by 60.
    dist = np.hypot((catalog["ra"] - ra0) * np.cos(np.radians(dec0)), catalog["dec"] - dec0)
    near = dist < 50 / 3600
    assert near.sum() > 0
    assert set(catalog["id"][near]) <= set(loaded.refcat["id"])
    # Stars far away are not loaded: the selection is spatial, not everything.
    assert len(loaded.refcat) < len(catalog) / 2


def test_target_must_be_new(shared_central: Central, tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "something").write_text("x")
    with pytest.raises(FileExistsError):
        precache.precache_detector(shared_central.butler, str(tmp_path / "local"), 1000, 1)


def test_missing_flat_names_type_and_data_id(shared_central: Central, tmp_path: Path) -> None:
    from shutterline.butler import ingest

    butler = repo.open_repo(str(shared_central.root / "central"), writeable=True)
    raw = write_raw(tmp_path / "g.fits", 3000, 1, band="g", mjd=61207.2)
    ingest.ingest_raws(butler, [raw], progress=False)
    with pytest.raises(exceptions.MissingInputError) as info:
        precache.precache_detector(butler, str(tmp_path / "local"), 3000, 1)
    assert info.value.dataset_type == "flat"
    assert info.value.data_id["physical_filter"] == "g" and info.value.data_id["detector"] == 1
    assert not (tmp_path / "local").exists()
    with pytest.raises(exceptions.MissingInputError, match="flat"):
        inputs.load_detector_inputs(butler, 3000, 1)


def test_unknown_visit_is_a_missing_raw(shared_central: Central) -> None:
    with pytest.raises(exceptions.MissingInputError, match=r"'raw'.*visit: 4"):
        inputs.load_detector_inputs(shared_central.butler, 4, 1)


def test_corrupted_file_is_detected_and_nothing_left(central: Central, tmp_path: Path) -> None:
    ref = central.butler.find_dataset(
        names.FLAT,
        instrument=names.INSTRUMENT,
        detector=1,
        physical_filter="r",
        collections=names.CALIB_COLLECTION,
        timespan=selection.plan_detector(central.butler, 1000, 1).flat.timespan,
    )
    assert ref is not None
    path = Path(central.butler.getURI(ref).ospath)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the pixels: same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(exceptions.CorruptInputError) as info:
        precache.precache_detector(central.butler, str(tmp_path / "local"), 1000, 1)
    assert "flat" in str(info.value) and "detector=1" in str(info.value)
    assert "checksum" in str(info.value)
    assert not any(p.name.startswith("local") for p in tmp_path.iterdir())


def test_a_local_central_on_one_file_system_is_linked_after_verification(
    shared_central: Central, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    report = precache.precache_detector(shared_central.butler, str(local), 1000, 1)
    assert report.n_unverified == 0
    assert report.plan is not None and report.plan.refs
    butler = repo.open_repo(str(local))
    for ref in report.plan.refs:
        copied = Path(butler.getURI(ref).ospath)
        source = Path(shared_central.butler.getURI(ref).ospath)
        assert copied.stat().st_ino == source.stat().st_ino  # a link, not a second copy
    # Removing the local repository leaves the central one whole.
    shutil.rmtree(local)
    assert all(Path(shared_central.butler.getURI(ref).ospath).is_file() for ref in report.plan.refs)
