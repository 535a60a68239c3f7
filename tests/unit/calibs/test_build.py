"""The Butler-level builder on a small simulated night: masters certified and usable."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from astropy.time import Time
from lsst.daf.butler import Butler, Timespan

from shutterline import exceptions
from shutterline.butler import ingest, names, repo
from shutterline.calibs import build
from shutterline.images import MaskBit
from shutterline.isr import run_isr
from shutterline.simulate import simulate_night


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Butler, dict, build.CalibBuildResult]:
    root = tmp_path_factory.mktemp("calibs")
    simulate_night(
        root / "sim",
        seed=5,
        visits=1,
        detectors=1,
        fields=1,
        nx=128,
        ny=256,
        template_visits=1,
        n_bias=4,
        n_flat=4,
    )
    butler = repo.create_repo(str(root / "repo"))
    ingest.ingest_raws(butler, [root / "sim" / "raw"], progress=False)
    summary = yaml.safe_load((root / "sim" / "night.yaml").read_text())
    return butler, summary, build.build_calibs(butler, progress=False)


def _calib(butler: Butler, kind: str, data_id: dict, mjd: float) -> object:
    when = Timespan.fromInstant(Time(mjd, format="mjd", scale="tai"))
    ref = butler.find_dataset(
        kind,
        {"instrument": names.INSTRUMENT, **data_id},
        collections=names.CALIB_COLLECTION,
        timespan=when,
    )
    assert ref is not None, f"no {kind} certified at {mjd}"
    return butler.get(ref)


def test_masters_certified_for_every_visit(night: tuple) -> None:
    butler, summary, result = night
    ccd = summary["detectors"][0]["ccdnum"]
    assert set(result.biases) == {ccd} and set(result.flats) == {(ccd, "r")}
    for visit in summary["visits"]:  # templates from earlier nights included
        bias = _calib(butler, "bias", {"detector": ccd}, visit["mjd"])
        flat = _calib(butler, "flat", {"detector": ccd, "physical_filter": "r"}, visit["mjd"])
        assert bias.metadata["BUNIT"] == "electron" and bias.metadata["NINPUT"] == 4
        good = flat.mask == 0
        assert float(np.median(flat.image[good])) == pytest.approx(1.0, abs=1e-5)


def test_simulated_bad_columns_found(night: tuple) -> None:
    butler, summary, _ = night
    det = summary["detectors"][0]
    flat = _calib(
        butler,
        "flat",
        {"detector": det["ccdnum"], "physical_filter": "r"},
        summary["visits"][-1]["mjd"],
    )
    bad = (flat.mask & MaskBit.BAD) != 0
    for column, first_row, _kind in det["bad_columns"]:
        assert bad[first_row:, column].mean() > 0.95, (column, first_row)
    truth_pixels = sum(flat.shape[0] - r for _, r, _ in det["bad_columns"])
    # Partial columns are flagged in 256-row segments: allow one segment per column extra.
    assert truth_pixels <= int(bad.sum()) <= truth_pixels + 256 * len(det["bad_columns"])


def test_science_raw_processes_to_sky_level(night: tuple) -> None:
    butler, summary, _ = night
    det = summary["detectors"][0]
    visit = summary["visits"][-1]
    data_id = {
        "instrument": names.INSTRUMENT,
        "detector": det["ccdnum"],
        "exposure": visit["visit"],
    }
    hdul = butler.get(names.RAW, data_id, collections=names.RAW_COLLECTION)
    bias = _calib(butler, "bias", {"detector": det["ccdnum"]}, visit["mjd"])
    flat = _calib(butler, "flat", {"detector": det["ccdnum"], "physical_filter": "r"}, visit["mjd"])
    exp = run_isr(hdul, bias, flat)
    sky = float(np.median(exp.image))
    # The flat absorbs the header gain's error: the sky comes out at the true level.
    assert sky == pytest.approx(visit["sky_e_per_px"], rel=0.02)


def test_wrong_observation_type_refused(night: tuple) -> None:
    butler, summary, _ = night
    science = summary["visits"][-1]["visit"]
    with pytest.raises(exceptions.PermanentError, match="observation type"):
        build.calibration_exposures(butler, "zero", [science])
    with pytest.raises(exceptions.MissingInputError, match="not registered"):
        build.calibration_exposures(butler, "zero", [987654])


def test_overlapping_certification_refused_before_work(night: tuple) -> None:
    butler, _, result = night
    with pytest.raises(exceptions.PermanentError, match="already certified"):
        build.build_calibs(butler, valid_from_mjd=result.valid_from_mjd + 1, progress=False)
    # A disjoint range is fine.
    later = build.build_calibs(butler, valid_from_mjd=50000.0, valid_to_mjd=50010.0, progress=False)
    assert len(later.biases) == 1 and len(later.flats) == 1


def test_masters_built_in_processes_equal_one_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``build_calibs(jobs=2)`` builds each detector's masters in a worker process: the same
    masters, bias and flat, as in one process, for every detector, certified alike."""
    root = tmp_path_factory.mktemp("calibs-jobs")
    simulate_night(root / "sim", seed=6, visits=1, detectors=2, fields=1, nx=128, ny=256,
                   template_visits=1, n_bias=3, n_flat=3)  # fmt: skip
    results = {}
    for jobs in (1, 2):
        butler = repo.create_repo(str(root / f"repo{jobs}"))
        ingest.ingest_raws(butler, [root / "sim" / "raw"], progress=False)
        result = build.build_calibs(
            butler, progress=False, jobs=jobs, repo_uri=str(root / f"repo{jobs}")
        )
        results[jobs] = (butler, result)
    (one, serial), (two, parallel) = results[1], results[2]
    assert len(serial.biases) == 2 and set(serial.biases) == set(parallel.biases)
    assert set(serial.flats) == set(parallel.flats) and len(serial.flats) == 2
    pairs = [(serial.biases[d], parallel.biases[d]) for d in serial.biases]
    pairs += [(serial.flats[k], parallel.flats[k]) for k in serial.flats]
    for a_ref, b_ref in pairs:
        a, b = one.get(a_ref), two.get(b_ref)
        for plane in ("image", "mask", "variance"):
            np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane))
        assert a.metadata == b.metadata
