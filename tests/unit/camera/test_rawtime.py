"""TIMESYS: DECam headers are UTC; the project's times are TAI, converted once on reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from shutterline import exceptions
from shutterline.butler import ingest, repo
from shutterline.camera import rawtime
from shutterline.isr import assemble_raw
from shutterline.simulate import rawfile, schedule
from tests.unit.butler.rawfiles import write_raw
from tests.unit.isr import synth

UTC_START = "2026-03-01T03:12:45.123"
TAI_MINUS_UTC_S = 37.0


def _utc_header(**extra: object) -> fits.Header:
    start = Time(UTC_START, scale="utc")
    header = fits.Header({"TIMESYS": "UTC", "MJD-OBS": start.mjd, "DATE-OBS": UTC_START})
    header.update(extra)
    return header


def test_utc_header_is_read_as_utc_and_returned_in_tai() -> None:
    got = rawtime.start_tai(_utc_header())
    assert (got - Time(UTC_START, scale="utc").mjd) * 86400 == pytest.approx(TAI_MINUS_UTC_S)
    no_timesys = _utc_header()
    del no_timesys["TIMESYS"]  # the FITS default is UTC
    assert rawtime.start_tai(no_timesys) == got
    tai = fits.Header({"TIMESYS": "TAI", "MJD-OBS": 61000.5})
    assert rawtime.start_tai(tai) == 61000.5


@pytest.mark.parametrize(
    ("extra", "keyword"),
    [({"TIMESYS": "GPS"}, "TIMESYS"), ({"DATE-OBS": "2026-03-01T03:13:45"}, "DATE-OBS")],
)
def test_unknown_system_or_disagreeing_date_is_named(extra: dict, keyword: str) -> None:
    with pytest.raises(rawtime.HeaderTimeError) as info:
        rawtime.start_tai(_utc_header(**extra))
    assert info.value.keyword == keyword


def test_ingest_and_isr_store_tai_for_a_utc_raw(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "a.fits", 8, 1)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header.update(_utc_header())
    butler = repo.create_repo(str(tmp_path / "repo"))
    ingest.ingest_raws(butler, [path], progress=False)
    (record,) = butler.query_dimension_records("exposure")
    expected = Time(UTC_START, scale="utc").tai.mjd
    assert record.timespan.begin.tai.mjd == pytest.approx(expected, abs=1e-8)
    spec = synth.RawSpec()
    spec.primary.update(_utc_header())
    rng = np.random.default_rng(0)
    exp = assemble_raw(
        synth.make_raw(np.full((40, 32), 100.0), synth.default_layout(32), rng, spec)
    )
    assert exp.metadata["MJD"] == pytest.approx(expected, abs=1e-8)


def test_disagreeing_times_refused_at_ingest(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "a.fits", 8, 1)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header.update(_utc_header(TIMESYS="TAI"))  # a UTC instant labelled TAI is fine
        hdul[0].header["DATE-OBS"] = "2026-03-01T04:00:00"
    with pytest.raises(exceptions.MalformedRawError, match="DATE-OBS"):
        ingest.ingest_raws(repo.create_repo(str(tmp_path / "repo")), [path], progress=False)


def test_simulator_writes_utc_like_decam() -> None:
    plan = schedule.ExposurePlan(
        expnum=7, role="science", band="r", mjd=61000.25, exptime=30.0, field="f", ra=10.0,
        dec=-5.0, airmass=1.1, seeing_arcsec=1.0, zeropoint_mag=25.0, sky_e_per_px=100.0,
    )  # fmt: skip
    header = rawfile.primary_header(plan)
    assert header["TIMESYS"] == "UTC"
    assert (61000.25 - header["MJD-OBS"]) * 86400 == pytest.approx(TAI_MINUS_UTC_S, abs=1e-4)
    assert rawtime.start_tai(header) == pytest.approx(61000.25, abs=1e-9)
