"""The nightly pieces in a repository: stored per shard, planned and pre-cached per detector,
looked up, associated and carried into an alert's ``ssSource`` and ``mpc_orbits``.

The central repository is the butler tests' one (two visits of two detectors near RA 150,
Dec 2). Objects are planted on each detector's footprint at the visit time among a small
synthetic catalogue, precomputed in two shards (two RUNs per piece of the night).
"""

from __future__ import annotations

import fnmatch
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
import yaml
from astropy import units as u
from astropy.table import Table
from astropy_healpix import HEALPix

from shutterline.alerts import packet, serialize
from shutterline.butler import inputs, names, planfile, precache, repo, selection, sspieces
from shutterline.simulate import orbitcatalog
from shutterline.solarsystem import associate as ssassoc
from shutterline.solarsystem import lookup, mpcorbits, orbits, piecefiles, precompute, predict
from tests.unit.association import synthetic
from tests.unit.butler import conftest as butler_fixtures
from tests.unit.butler import sameinputs

pytestmark = pytest.mark.slow

START = butler_fixtures.VISIT_MJD - 0.05
NIGHT = precompute.Night(START, 2)  # two 2-hour pieces; both visits in the first
PLANTED = 880000001


def _planted(butler: object) -> Table:
    """One object at the centre of each detector footprint of visit 1000, 2 au away."""
    centres = []
    for record in butler.query_dimension_records("visit_detector_region", explain=False):  # type: ignore[attr-defined]
        if record.visit == 1000:
            corners = selection.region_corners(record.region)
            centres.append(predict.footprint_circle(corners)[0])
    mjd = butler_fixtures.VISIT_MJD + 15.0 / 86400.0
    obs = precompute.observer_positions(np.array([mjd]))[0, 0]
    rows = []
    for k, (ra, dec) in enumerate(sorted(centres)):
        d = 2.0
        look = np.array(
            [np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
             np.cos(np.radians(dec)) * np.sin(np.radians(ra)), np.sin(np.radians(dec))]
        )  # fmt: skip
        r = obs + d * look
        v = np.cross([0.0, 0.0, 1.0], r)
        v *= np.sqrt(orbits.GM_SUN / np.linalg.norm(r)) / np.linalg.norm(v)
        rows.append(orbits.elements_from_state(r, v, mjd, ids=[PLANTED + k], h_mag=18.0))
    from astropy.table import vstack

    return vstack(rows)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> tuple[butler_fixtures.Central, Path]:
    workdir = tmp_path_factory.mktemp("central")
    central = butler_fixtures.populate(repo.create_repo(str(workdir / "central")), workdir)
    cat = orbitcatalog.merge_night(
        orbitcatalog.synthesize(4000, 3, 61200.0), _planted(central.butler)
    )
    path = workdir / "catalog.npz"
    mpcorbits.write_catalog(path, cat)
    out = workdir / "pieces"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(precompute, "_CHUNK", 2000)  # two chunks: one per shard
        for shard in range(2):
            precompute.run(path, out, NIGHT, shard=shard, shards=2)
            assert sspieces.store_pieces(central.butler, out, shard, 2) > 0
    return central, out


def _datasets(out: Path, shards: int, pattern: str) -> list[Path]:
    """The names of the per-region datasets the shards' files split into, as paths."""
    found = [
        Path(name)
        for tag in piecefiles.shard_tags(shards)
        for name, _ in piecefiles.split(out, tag)
    ]
    return [p for p in found if fnmatch.fnmatch(p.name, pattern)]


def _circle(plan: selection.DetectorPlan) -> tuple[tuple[float, float], float]:
    return predict.footprint_circle(plan.corners, pad_arcsec=selection.SS_PAD_DEG * 3600.0)


def test_plan_takes_exactly_the_footprints_regions_of_the_exposure_piece(
    central: tuple[butler_fixtures.Central, Path],
) -> None:
    butler, out = central[0].butler, central[1]
    plan = selection.plan_detector(butler, 1000, 2)
    (ra, dec), radius = _circle(plan)
    hp = HEALPix(nside=precompute.REGION_NSIDE, order="nested")
    reach = (radius + precompute.FAST_RADIUS_DEG) * u.deg
    wanted = {int(p) for p in hp.cone_search_lonlat(ra * u.deg, dec * u.deg, reach)}
    on_disk = {  # (region, shard) of piece 0 that exist, within reach
        (int(p.name[1:5]), p.name[-12:-4])
        for p in _datasets(out, 2, "r*.p000.*.npz")
        if int(p.name[1:5]) in wanted
    }
    got = {
        (int(r.dataId[names.SS_PIECES_PIXELIZATION]), r.run[-8:])
        for r in plan.ss_pieces
        if r.datasetType.name == names.SS_PIECES
    }
    assert got == on_disk and got
    fast = [r for r in plan.ss_pieces if r.datasetType.name == names.SS_FAST_PIECES]
    assert len(fast) == len(_datasets(out, 2, "fast.p000.*.npz"))
    piece0 = sspieces.run_name(START, NIGHT.span_days, 0, 2).rsplit("/", 1)[0]
    orbit_types = {names.SS_PIECE_ORBITS, names.SS_FAST_PIECE_ORBITS}
    pieces = [r for r in plan.ss_pieces if r.datasetType.name not in orbit_types]
    assert {r.run.rsplit("/", 1)[0] for r in pieces} == {piece0}
    # The night's orbit records of the healpix6 pixels in reach (every shard), once a night.
    orbit_files = {(int(p.name[1:6]), p.name[-12:-4]) for p in _datasets(out, 2, "o[0-9]*.npz")}
    hp6 = HEALPix(nside=piecefiles.ORBIT_NSIDE, order="nested")  # healpix6, the same reach
    wanted6 = {int(p) for p in hp6.cone_search_lonlat(ra * u.deg, dec * u.deg, reach)}
    got_orbits = {
        (int(r.dataId[names.SS_PIECE_ORBITS_PIXELIZATION]), r.run[-8:])
        for r in plan.ss_pieces
        if r.datasetType.name == names.SS_PIECE_ORBITS
    }
    assert got_orbits == {(r, s) for r, s in orbit_files if r in wanted6} and got_orbits
    night = sspieces.orbits_run_name(START, NIGHT.n_pieces * NIGHT.span_days, 0, 2)
    assert {r.run.rsplit("/", 1)[0] for r in plan.ss_pieces if r not in pieces} == {
        night.rsplit("/", 1)[0]
    }
    assert sspieces.SWEEP_PAD_DEG == precompute.FAST_RADIUS_DEG


def test_a_retried_shard_stores_nothing_twice(
    central: tuple[butler_fixtures.Central, Path],
) -> None:
    assert sspieces.store_pieces(central[0].butler, central[1], 1, 2) == 0


def test_precached_pieces_give_the_directory_lookup_and_alert_records(
    central: tuple[butler_fixtures.Central, Path], tmp_path: Path
) -> None:
    out = central[1]
    report = precache.precache_detector(
        str(central[0].root / "central"), str(tmp_path / "local"), 1000, 2, threads=2
    )
    local = repo.open_repo(str(tmp_path / "local"))
    plan = selection.plan_detector(local, 1000, 2)
    # The plan the pre-cache recorded for the pod holds the same pieces, in the same order.
    sameinputs.assert_same_plan(
        planfile.read_plan(tmp_path / "local", local.dimensions, 1000, 2), plan
    )
    det = inputs.load_detector_inputs(local, 1000, 2)
    assert len(det.ss_pieces) == len(plan.ss_pieces) > 0
    size = sum(Path(local.getURI(r).ospath).stat().st_size for r in plan.ss_pieces)
    print(f"one detector's pieces: {len(plan.ss_pieces)} files, {size / 1e3:.1f} kB")
    assert size < report.bytes
    mjd = det.mjd + det.exptime / 2.0 / 86400.0
    (ra, dec), radius = _circle(plan)
    from_repo = lookup.lookup_pieces(det.ss_pieces, (ra, dec), radius, mjd)
    from_dir = lookup.lookup(out, (ra, dec), radius, mjd)
    assert from_repo.colnames == from_dir.colnames
    for name in from_dir.colnames:
        np.testing.assert_array_equal(from_repo[name], from_dir[name], err_msg=name)
    assert {PLANTED, PLANTED + 1} & set(from_repo["id"].tolist())
    _associate_and_build(predict.predict_from_lookup(from_repo, mjd), mjd)


def _associate_and_build(pred: Table, mjd: float) -> None:
    """A DIA source 0.3" from each prediction and one 20" off: only the near ones match."""
    offset = 0.3 / 3600.0
    ra = np.r_[np.asarray(pred["ra"]) + offset / np.cos(np.radians(pred["dec"])), pred["ra"][0]]
    dec = np.r_[np.asarray(pred["dec"]), pred["dec"][0] + 20.0 / 3600.0]
    dia = synthetic.dia_table(ra, dec, visit=1000, flux=np.full(len(ra), 5000.0), seed=1)
    ss = ssassoc.ssassociate(dia, pred)
    assert list(dia["ss_object_id"][:-1]) == list(pred["ss_object_id"])
    assert dia["ss_object_id"][-1] == 0
    np.testing.assert_allclose(ss["ephOffset"], 0.3, atol=0.01)
    records = ssassoc.ss_source_records(ss)
    schema = serialize.load_schema()
    for row in dia[:-1]:
        record = records[int(row["dia_source_id"])]
        source = {
            "diaSourceId": int(row["dia_source_id"]), "visit": 1000, "detector": 2,
            "midpointMjdTai": mjd, "ra": float(row["ra"]), "dec": float(row["dec"]),
            "x": 1.0, "y": 1.0, "psfNdata": 1, "trailNdata": 1, "dipoleNdata": 1,
            "timeProcessedMjdTai": mjd, "bboxSize": 10,
        }  # fmt: skip
        alert = packet.build_alert(source, None, None, None, record, None, schema=schema)
        orbit = alert["mpc_orbits"]
        assert orbit["id"] == alert["ssSource"]["ssObjectId"]
        assert isinstance(orbit["designation"], str) and orbit["a"] > 0
        wire = serialize.to_wire(alert, schema)
        back: Any = fastavro.schemaless_reader(io.BytesIO(wire[5:]), schema.parsed)
        assert back["mpc_orbits"]["designation"] == orbit["designation"]
        assert back["ssSource"]["ssObjectId"] == orbit["id"]


def test_the_cli_stores_a_shard_in_a_repository(tmp_path: Path) -> None:
    from shutterline.cli import main

    cat = tmp_path / "catalog.npz"
    mpcorbits.write_catalog(cat, orbitcatalog.synthesize(300, 5, 61200.0))
    root = tmp_path / "repo"
    repo.create_repo(str(root))
    argv = ["orbits", "precompute", "--catalog", str(cat), "--out", str(tmp_path / "p")]
    argv += ["--start", "61280", "--hours", "2", "--shard", "0", "--shards", "1"]
    assert main.main([*argv, "--repo", str(root)]) == 0
    butler = repo.open_repo(str(root))
    run = sspieces.run_name(61280.0, 2.0 / 24.0, 0, 1)
    assert list(butler.registry.queryCollections(f"{names.SS_PIECES_COLLECTION}/*")) == [run]
    refs = butler.query_datasets(names.SS_PIECES, collections=run, explain=False, limit=None)
    assert len(refs) == len(_datasets(tmp_path / "p", 1, "r*.npz")) > 0
    got = butler.get(refs[0])
    assert set(got) == {"pieces", "piece_start_mjd", "piece_span_days"}
    assert {"c0", "coef", "ra"} <= set(got["pieces"].dtype.names)
    assert "designation" not in got["pieces"].dtype.names
    night = sspieces.orbits_run_name(61280.0, 2.0 / 24.0, 0, 1)
    refs = butler.query_datasets(names.SS_PIECE_ORBITS, collections=night, explain=False)
    assert len(refs) == len(_datasets(tmp_path / "p", 1, "o[0-9]*.npz")) > 0
    records = butler.get(refs[0])
    assert set(records) == {"orbits", "night_start_mjd", "night_span_days"}
    assert set(records["orbits"].dtype.names) == {name for name, _ in mpcorbits.COLUMNS}


def _old_repository(root: Path) -> None:
    """A repository as made before the pieces: its butler.yaml lacks their storage class."""
    repo.create_repo(str(root))
    path = root / "butler.yaml"
    config = yaml.safe_load(path.read_text())
    del config["storageClasses"]["ShutterlinePieces"]
    del config["datastore"]["formatters"]["ShutterlinePieces"]
    path.write_text(yaml.safe_dump(config))


def test_a_repository_older_than_the_pieces_says_what_to_do(tmp_path: Path) -> None:
    # A fresh process: this one has opened repositories that define the storage class.
    cat = tmp_path / "catalog.npz"
    mpcorbits.write_catalog(cat, orbitcatalog.synthesize(300, 5, 61200.0))
    precompute.run(cat, tmp_path / "p", precompute.Night(61280.0, 1))
    _old_repository(tmp_path / "repo")
    code = (
        "import sys; from pathlib import Path; from shutterline.butler import repo, sspieces;"
        "b = repo.open_repo(sys.argv[1], writeable=True);"
        "sspieces.store_pieces(b, Path(sys.argv[2]), 0, 1)"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "repo"), str(tmp_path / "p")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "lacks the storage class ShutterlinePieces" in done.stderr
    assert "orbits precompute --repo" in done.stderr and "add_storage_classes" in done.stderr
    butler = repo.open_repo(str(tmp_path / "repo"))
    assert not list(butler.registry.queryCollections(f"{names.SS_PIECES_COLLECTION}/*"))


def test_the_precompute_brings_an_older_repository_up_to_date(tmp_path: Path) -> None:
    from shutterline.cli import main

    cat = tmp_path / "catalog.npz"
    mpcorbits.write_catalog(cat, orbitcatalog.synthesize(300, 5, 61200.0))
    _old_repository(tmp_path / "repo")
    assert sspieces.add_storage_classes(str(tmp_path / "repo")) == ["ShutterlinePieces"]
    assert sspieces.add_storage_classes(str(tmp_path / "repo")) == []  # idempotent
    _old_repository(tmp_path / "repo2")
    argv = ["orbits", "precompute", "--catalog", str(cat), "--out", str(tmp_path / "p")]
    argv += ["--start", "61280", "--hours", "2", "--repo", str(tmp_path / "repo2")]
    assert main.main(argv) == 0
    config = yaml.safe_load((tmp_path / "repo2" / "butler.yaml").read_text())
    assert "ShutterlinePieces" in config["datastore"]["formatters"]
    code = (  # a fresh process reads the pieces back with the repository's own configuration
        "import sys; from shutterline.butler import repo, names;"
        "b = repo.open_repo(sys.argv[1]);"
        "refs = b.query_datasets(names.SS_PIECES, collections='solarsystem/pieces/*',"
        " find_first=False, explain=False);"
        "print(len(refs), sorted(b.get(refs[0]))[:2])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "repo2")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert int(done.stdout.split()[0]) == len(_datasets(tmp_path / "p", 1, "r*.npz"))


def test_nothing_known_in_the_footprint_associates_nothing() -> None:
    found = lookup.lookup_pieces([], (10.0, 0.0), 0.2, 61280.0)
    pred = predict.predict_from_lookup(found, 61280.0)
    dia = synthetic.dia_table(np.array([10.0]), np.array([0.0]), visit=1, seed=2)
    assert len(ssassoc.ssassociate(dia, pred)) == 0 and dia["ss_object_id"][0] == 0
    assert ssassoc.ss_source_records(ssassoc.ssassociate(dia, pred)) == {}
