"""A visit end to end on real (simulated) data, and what a failing detector leaves behind."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
from pathlib import Path

import lsst.alert.packet
import pytest

from shutterline.alerts import serialize
from shutterline.pipeline import visit

pytestmark = pytest.mark.slow


def _alert_names(spool: Path, detector: int) -> list[str]:
    return sorted(p.name for p in spool.glob("*.alert") if f"_{detector}_" in p.name)


def test_visit_spools_valid_alerts_and_a_retry_repeats_them(small_night, tmp_path: Path) -> None:
    entry = small_night.visits[0]
    settings = small_night.settings(tmp_path)
    reports = visit.run_visit(settings, entry["visit"], entry["detectors"], jobs=1)
    assert [r.status for r in reports] == ["succeeded"] * len(reports), [r.reason for r in reports]
    schema = serialize.load_schema()
    validator = lsst.alert.packet.Schema.from_file()
    names = {}
    for r in reports:
        assert r.alert_paths, f"detector {r.detector} produced no alerts"
        names[r.detector] = _alert_names(settings.spool, r.detector)
        for path in r.alert_paths:
            alert = serialize.from_wire(Path(path).read_bytes(), schema)
            validator.validate(alert)
            assert alert["diaSourceId"] // 100_000 == r.visit * 1000 + r.detector
    # The same detector again (a retried pod): the same alerts under the same names, no more.
    again = visit.run_visit(settings, entry["visit"], entry["detectors"][:1], jobs=1)[0]
    assert again.status == "succeeded", again.reason
    assert _alert_names(settings.spool, again.detector) == names[again.detector]


def _corrupt_raw(repo: Path, visit_id: int, detector: int) -> None:
    from shutterline.butler import names
    from shutterline.butler import repo as repo_mod

    butler = repo_mod.open_repo(str(repo))
    (ref,) = butler.query_datasets(
        names.RAW,
        collections=names.RAW_COLLECTION,
        where=f"exposure = {visit_id} AND detector = {detector}",
        explain=False,
    )
    raw = Path(butler.getURI(ref).ospath)
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 3])


def test_a_truncated_raw_fails_its_detector_only(small_night, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(small_night.repo, repo)
    entry = small_night.visits[1]
    bad, good = entry["detectors"]
    _corrupt_raw(repo, entry["visit"], bad)
    settings = small_night.settings(tmp_path / "out", repo=repo, direct=True)
    by_det = {r.detector: r for r in visit.run_visit(settings, entry["visit"], [bad, good])}
    assert by_det[bad].status == "failed"
    assert "raw" in by_det[bad].reason.lower()
    assert by_det[bad].exit_code == 65
    assert _alert_names(settings.spool, bad) == []
    assert by_det[good].status == "succeeded", by_det[good].reason
    assert _alert_names(settings.spool, good)


def test_no_valid_flat_names_the_missing_calibration(small_night, tmp_path: Path) -> None:
    from shutterline.butler import names
    from shutterline.butler import repo as repo_mod

    repo = tmp_path / "repo"
    shutil.copytree(small_night.repo, repo)
    entry = small_night.visits[0]
    detector = entry["detectors"][0]
    butler = repo_mod.open_repo(str(repo), writeable=True)
    refs = butler.query_datasets(
        names.FLAT,
        collections=names.CALIB_COLLECTION,
        where=f"detector = {detector}",
        find_first=False,
        explain=False,
    )
    butler.registry.decertify(
        names.CALIB_COLLECTION, names.FLAT, _all_time(), dataIds=[r.dataId for r in refs]
    )
    settings = small_night.settings(tmp_path / "out", repo=repo, direct=True)
    report = visit.run_visit(settings, entry["visit"], [detector])[0]
    assert report.status == "failed"
    assert "flat" in report.reason and "missing input" in report.reason
    assert _alert_names(settings.spool, detector) == []


def _all_time():
    from lsst.daf.butler import Timespan

    return Timespan(None, None)


def test_an_empty_template_fails_with_its_coverage(small_night, tmp_path: Path) -> None:
    import numpy as np

    from shutterline.butler import names
    from shutterline.butler import repo as repo_mod
    from shutterline.images import Exposure, write_exposure

    repo = tmp_path / "repo"
    shutil.copytree(small_night.repo, repo)
    butler = repo_mod.open_repo(str(repo))
    for ref in butler.query_datasets(
        names.TEMPLATE, collections=names.TEMPLATE_COLLECTION, explain=False
    ):
        path = Path(butler.getURI(ref).ospath)
        old = butler.get(ref)
        empty = Exposure.blank(old.shape, old.wcs)
        empty.psf, empty.metadata = old.psf, old.metadata
        empty.variance[:] = np.inf
        write_exposure(empty, path)
    entry = small_night.visits[0]
    detector = entry["detectors"][0]
    settings = small_night.settings(tmp_path / "out", repo=repo, direct=True)
    report = visit.run_visit(settings, entry["visit"], [detector])[0]
    assert report.status == "failed"
    assert "template covers 0.0%" in report.reason
    assert _alert_names(settings.spool, detector) == []


def test_configured_products_are_exported_to_the_central_repository(
    small_night, tmp_path: Path
) -> None:
    from shutterline.butler import names
    from shutterline.butler import repo as repo_mod

    repo = tmp_path / "repo"
    shutil.copytree(small_night.repo, repo)
    entry = small_night.visits[0]
    detector = entry["detectors"][0]
    settings = small_night.settings(tmp_path / "out", repo=repo, export=(names.DIA_SOURCE,))
    report = visit.run_visit(settings, entry["visit"], [detector])[0]
    assert report.status == "succeeded", report.reason
    assert "products_error" not in report.quantities
    central = repo_mod.open_repo(str(repo))
    where = f"visit = {entry['visit']} AND detector = {detector}"
    kinds = names.DIA_SOURCE, names.CALEXP
    found = {
        k: central.query_datasets(
            k, collections=names.visit_run(entry["visit"]), where=where, explain=False
        )
        for k in kinds
    }
    assert len(found[names.DIA_SOURCE]) == 1
    assert found[names.CALEXP] == []  # not configured: stays in the pod's local repository
    assert len(central.get(found[names.DIA_SOURCE][0])) == len(report.dia_sources)
    # Exported by hard link (one file system); the central copy outlives the pod's volume.
    exported = Path(central.getURI(found[names.DIA_SOURCE][0]).ospath)
    assert exported.stat().st_nlink == 2
    shutil.rmtree(settings.workdir)
    assert exported.stat().st_nlink == 1
    assert len(central.get(found[names.DIA_SOURCE][0])) == len(report.dia_sources)


class _RecordingPool(concurrent.futures.ProcessPoolExecutor):
    """A real detector pool that also notes what it was given."""

    def __init__(self, jobs: int) -> None:
        super().__init__(jobs, mp_context=multiprocessing.get_context("spawn"))
        self.given: list[tuple[int, int]] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if fn is visit.run_detector_job:
            self.given.append((args[1], args[2]))
        return super().submit(fn, *args, **kwargs)


def test_a_night_of_visits_shares_one_pool_and_its_workers(small_night, tmp_path: Path) -> None:
    """`run_visit(pool=...)`: every visit's detectors go to the one pool, whose one worker
    (its imports paid once) serves them all, and they succeed as in a pool of their own."""
    settings = small_night.settings(tmp_path / "out", direct=True)
    first, second = small_night.visits[0], small_night.visits[1]
    with _RecordingPool(1) as pool:
        pid = pool.submit(os.getpid).result()
        reports = visit.run_visit(settings, first["visit"], first["detectors"][:1], 2, pool=pool)
        reports += visit.run_visit(settings, second["visit"], second["detectors"][:1], 2, pool=pool)
        assert pool.submit(os.getpid).result() == pid
    assert pool.given == [(first["visit"], first["detectors"][0]),
                          (second["visit"], second["detectors"][0])]  # fmt: skip
    assert [r.status for r in reports] == ["succeeded", "succeeded"], [r.reason for r in reports]
    assert _alert_names(settings.spool, first["detectors"][0])
