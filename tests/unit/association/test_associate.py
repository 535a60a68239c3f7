"""Association against the real lsst-dax-apdb on SQLite."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from concurrent import futures

import numpy as np
import pytest
from astropy.table import Table

from shutterline import exceptions
from shutterline.association import apdb, associate, matching
from tests.unit.association import synthetic

ARCSEC = 1.0 / 3600.0


def _positions(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions inside the synthetic footprint, at least 10 arcsec apart."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    grid = np.arange(side * side)[:n]
    ra = 150.0 - 0.07 + (grid % side) * 12 * ARCSEC + rng.uniform(-1, 1, n) * ARCSEC
    dec = 2.0 - 0.14 + (grid // side) * 12 * ARCSEC + rng.uniform(-1, 1, n) * ARCSEC
    return ra, dec


def _run(handle: apdb.ApdbHandle, table: Table, visit: int, mjd: float, band: str = "r"):
    info = synthetic.visit_info(visit, mjd=mjd, band=band)
    res = associate.associate(table, handle, info)
    associate.commit(res, handle)
    return res


def test_first_visit_creates_one_object_per_source_with_the_source_id(sqlite_apdb):
    ra, dec = _positions(50)
    table = synthetic.dia_table(ra, dec, visit=1)
    res = _run(sqlite_apdb, table, 1, 60000.1)
    assert res.n_new == 50 and res.n_matched == 0
    np.testing.assert_array_equal(res.dia_sources["dia_object_id"], table["dia_source_id"])
    assert (res.objects["nDiaSources"] == 1).all()
    counts = sqlite_apdb.row_counts()
    assert counts["DiaSource"] == 50 and counts["DiaObject"] == 50


def test_second_visit_attaches_to_first_object_and_carries_history(sqlite_apdb):
    ra, dec = _positions(30)
    first = synthetic.dia_table(ra, dec, visit=1, flux=2000.0, seed=1)
    _run(sqlite_apdb, first, 1, 60000.1)
    # 0.3 arcsec away: inside the 1 arcsec radius.
    second = synthetic.dia_table(ra + 0.3 * ARCSEC, dec, visit=2, flux=4000.0, seed=2)
    res = _run(sqlite_apdb, second, 2, 60001.1)
    assert res.n_matched == 30 and res.n_new == 0
    np.testing.assert_array_equal(res.dia_sources["dia_object_id"], first["dia_source_id"])
    inputs = list(res.alert_inputs())
    for i, item in enumerate(inputs):
        assert [p["diaSourceId"] for p in item.prv_dia_sources] == [int(first["dia_source_id"][i])]
        assert item.dia_object["nDiaSources"] == 2
        # Equal errors: the weighted mean is the plain mean of the two measured fluxes.
        expected = 0.5 * (first["psf_flux"][i] + second["psf_flux"][i])
        assert item.dia_object["r_psfFluxMean"] == pytest.approx(expected, rel=1e-5)
        assert item.dia_object["r_psfFluxNdata"] == 2
        slope = abs(second["psf_flux"][i] - first["psf_flux"][i]) / 1.0
        assert item.dia_object["r_psfFluxMaxSlope"] == pytest.approx(slope, rel=1e-4)
        assert item.dia_object["lastDiaSourceMjdTai"] == pytest.approx(60001.1)
        assert item.dia_object["firstDiaSourceMjdTai"] == pytest.approx(60000.1)
    # The object moved to the mean position, 0.15 arcsec east of the first source.
    ra_mean = inputs[0].dia_object["ra"]
    assert (ra_mean - ra[0]) / ARCSEC == pytest.approx(0.15, abs=1e-3)


def test_source_beyond_radius_makes_a_new_object(sqlite_apdb):
    ra, dec = _positions(10)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1), 1, 60000.1)
    moved = synthetic.dia_table(ra, dec + 1.5 * ARCSEC, visit=2)
    res = _run(sqlite_apdb, moved, 2, 60001.1)
    assert res.n_matched == 0 and res.n_new == 10
    assert all(not item.prv_dia_sources for item in res.alert_inputs())


def test_bands_are_summarised_separately(sqlite_apdb):
    ra, dec = _positions(5)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1, flux=1000.0), 1, 60000.1, band="g")
    res = _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=2, flux=3000.0), 2, 60000.2)
    obj = next(iter(res.alert_inputs())).dia_object
    assert obj["g_psfFluxNdata"] == 1 and obj["r_psfFluxNdata"] == 1
    assert obj["g_psfFluxMean"] == pytest.approx(1000.0, abs=500)
    assert obj["r_psfFluxMean"] == pytest.approx(3000.0, abs=500)


def test_matching_is_one_to_one_closest_first():
    # Two sources near one object: the closer one takes it.
    idx, sep = matching.match_nearest(
        [10.0, 10.0 + 0.5 * ARCSEC], [0.0, 0.0], [10.0 + 0.4 * ARCSEC], [0.0], 1.0
    )
    assert idx.tolist() == [-1, 0]
    assert sep[1] == pytest.approx(0.1, abs=1e-6)


def test_rerun_of_a_committed_detector_is_idempotent(sqlite_apdb):
    ra, dec = _positions(20)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1, seed=1), 1, 60000.1)
    second = synthetic.dia_table(ra, dec, visit=2, seed=2)
    first_try = _run(sqlite_apdb, second, 2, 60001.1)
    before = sqlite_apdb.row_counts()
    retry = associate.associate(second, sqlite_apdb, synthetic.visit_info(2, mjd=60001.1))
    assert retry.already_stored
    assert associate.commit(retry, sqlite_apdb) is False
    assert sqlite_apdb.row_counts() == before
    np.testing.assert_array_equal(
        retry.dia_sources["dia_object_id"], first_try.dia_sources["dia_object_id"]
    )
    for a, b in zip(first_try.alert_inputs(), retry.alert_inputs(), strict=True):
        assert a.dia_source["diaSourceId"] == b.dia_source["diaSourceId"]
        assert [p["diaSourceId"] for p in a.prv_dia_sources] == [
            p["diaSourceId"] for p in b.prv_dia_sources
        ]
        assert b.dia_object["nDiaSources"] == a.dia_object["nDiaSources"] == 2


def test_retry_after_an_uncommitted_attempt_writes_once(sqlite_apdb):
    ra, dec = _positions(20)
    table = synthetic.dia_table(ra, dec, visit=1)
    info = synthetic.visit_info(1)
    associate.associate(table, sqlite_apdb, info)  # crashed before commit
    res = associate.associate(table, sqlite_apdb, info)
    assert associate.commit(res, sqlite_apdb) is True
    assert sqlite_apdb.row_counts()["DiaSource"] == 20
    assert sqlite_apdb.row_counts()["DiaObject"] == 20


def test_retry_that_measured_different_sources_fails_clearly(sqlite_apdb):
    ra, dec = _positions(5)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1), 1, 60000.1)
    other = synthetic.dia_table(ra[:3], dec[:3], visit=1)
    other["dia_source_id"] += 50
    with pytest.raises(exceptions.PermanentError, match="measured different sources"):
        associate.associate(other, sqlite_apdb, synthetic.visit_info(1))


def test_solar_system_sources_get_no_object_and_input_is_untouched(sqlite_apdb):
    ra, dec = _positions(6)
    table = synthetic.dia_table(ra, dec, visit=1)
    table["ss_object_id"] = np.array([0, 0, 0, 0, 77, 78], np.int64)
    snapshot = table.copy()
    res = _run(sqlite_apdb, table, 1, 60000.1)
    assert res.dia_sources["dia_object_id"].tolist()[4:] == [0, 0]
    assert res.n_new == 4
    inputs = list(res.alert_inputs())
    assert inputs[4].dia_object is None and inputs[4].dia_source["ssObjectId"] == 77
    assert "dia_object_id" not in table.colnames
    for name in snapshot.colnames:
        np.testing.assert_array_equal(table[name], snapshot[name])


def test_forced_sources_are_stored_and_returned_as_history(sqlite_apdb):
    ra, dec = _positions(4)
    info1 = synthetic.visit_info(1, mjd=60000.1)
    res = associate.associate(synthetic.dia_table(ra, dec, visit=1), sqlite_apdb, info1)
    targets = res.forced_targets()
    forced = Table(
        {
            "dia_object_id": targets["dia_object_id"],
            "ra": targets["ra"],
            "dec": targets["dec"],
            "psf_flux": np.full(len(targets), 1500.0),
            "psf_flux_err": np.full(len(targets), 100.0),
            "science_flux": np.full(len(targets), 6500.0),
            "science_flux_err": np.full(len(targets), 120.0),
        }
    )
    res = associate.attach_forced(res, forced)
    assert res.objects["r_fpFluxMean"].to_numpy() == pytest.approx(1500.0)
    associate.commit(res, sqlite_apdb)
    assert sqlite_apdb.row_counts()["DiaForcedSource"] == 4
    res2 = associate.associate(
        synthetic.dia_table(ra, dec, visit=2), sqlite_apdb, synthetic.visit_info(2, mjd=60001.1)
    )
    first = next(iter(res2.alert_inputs()))
    assert [f["psfFlux"] for f in first.prv_dia_forced_sources] == [1500.0]
    assert first.prv_dia_forced_sources[0]["visit"] == 1


def test_open_missing_sqlite_without_create_names_the_path(tmp_path):
    missing = tmp_path / "nope.sqlite3"
    with pytest.raises(FileNotFoundError, match=r"nope\.sqlite3"):
        apdb.open_apdb(missing)


def test_open_with_create_keeps_an_existing_database(sqlite_apdb):
    ra, dec = _positions(3)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1), 1, 60000.1)
    path = sqlite_apdb.url.split("///", 1)[1]
    again = apdb.open_apdb(path, create=True)
    assert again.row_counts()["DiaSource"] == 3


def _commit_detector(path: str, detector: int) -> int:
    """In a child process: associate and commit one detector of visit 1."""
    handle = apdb.open_apdb(path)
    ra, dec = _positions(30, seed=detector)
    table = synthetic.dia_table(ra, dec, visit=1, detector=detector)
    res = associate.associate(table, handle, synthetic.visit_info(1, detector=detector))
    return int(associate.commit(res, handle))


@pytest.mark.slow
def test_detectors_commit_concurrently_to_one_sqlite_file(sqlite_apdb):
    path = sqlite_apdb.url.split("///", 1)[1]
    context = multiprocessing.get_context("fork")
    with futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        done = list(pool.map(_commit_detector, [path, path], [3, 4]))
    assert done == [1, 1]
    assert sqlite_apdb.row_counts()["DiaSource"] == 60
    # The two "detectors" overlap on purpose: whichever commits second may not version the
    # other's objects at the same time, so every source has its own object.
    assert sqlite_apdb.row_counts()["DiaObject"] == 60
    assert sqlite_apdb.apdb.containsVisitDetector(1, 3)
    assert sqlite_apdb.apdb.containsVisitDetector(1, 4)


def test_locked_database_is_a_retriable_error(sqlite_apdb):
    path = sqlite_apdb.url.split("///", 1)[1]
    handle = apdb.open_apdb(path, timeout_s=0.2)
    ra, dec = _positions(5)
    res = associate.associate(
        synthetic.dia_table(ra, dec, visit=1), handle, synthetic.visit_info(1)
    )
    blocker = sqlite3.connect(path)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(exceptions.RetriableError, match="locked"):
            associate.commit(res, handle)
    finally:
        blocker.rollback()
        blocker.close()
    assert associate.commit(res, handle) is True


def test_detector_without_dia_sources_associates_and_commits(sqlite_apdb):
    ra, dec = _positions(3)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1), 1, 60000.1)
    empty = synthetic.dia_table(ra, dec, visit=2)[:0]
    info = synthetic.visit_info(2, mjd=60001.1)
    res = associate.associate(empty, sqlite_apdb, info)
    assert list(res.alert_inputs()) == [] and len(res.dia_sources) == 0
    # The objects already there are still forced-photometry targets.
    assert sorted(res.forced_targets()["dia_object_id"]) == sorted(
        synthetic.source_ids(1, 7, 3).tolist()
    )
    associate.commit(res, sqlite_apdb)
    assert sqlite_apdb.row_counts()["DiaSource"] == 3


def test_reopening_in_a_process_reuses_the_handle_until_the_file_changes(sqlite_apdb, tmp_path):
    path = sqlite_apdb.url.split("///", 1)[1]
    assert apdb.open_apdb(path) is apdb.open_apdb(path)
    other = tmp_path / "other.sqlite3"
    shutil.copy(path, other)
    first = apdb.open_apdb(other)
    shutil.copy(path, tmp_path / "new.sqlite3")
    os.replace(tmp_path / "new.sqlite3", other)  # a new file (inode) at the same path
    assert apdb.open_apdb(other) is not first


def test_overlapping_detector_of_the_same_visit_makes_new_objects(sqlite_apdb):
    ra, dec = _positions(10)
    _run(sqlite_apdb, synthetic.dia_table(ra, dec, visit=1, detector=7), 1, 60000.1)
    twin = synthetic.dia_table(ra, dec, visit=1, detector=8)
    res = associate.associate(twin, sqlite_apdb, synthetic.visit_info(1, detector=8))
    assert res.n_matched == 0 and res.n_new == 10
    assert associate.commit(res, sqlite_apdb)
    assert sqlite_apdb.row_counts()["DiaObject"] == 20
