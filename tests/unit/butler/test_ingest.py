"""Raw ingest: records from headers, malformed files rejected whole, repeats skipped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from lsst.daf.butler import Butler

from shutterline import exceptions
from shutterline.butler import ingest, names, repo, selection
from shutterline.camera import CAMERA


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    return repo.create_repo(str(tmp_path / "repo"))


def _n_raws(butler: Butler) -> int:
    return len(butler.query_datasets(names.RAW, names.RAW_COLLECTION, explain=False, limit=None))


def test_raw_round_trip_and_records(butler: Butler, raw_writer: Callable[..., Path]) -> None:
    path = raw_writer("a.fits", 4242, 7, mjd=61207.25, band="g", ra=30.0, dec=-20.0, seed=3)
    (ref,) = ingest.ingest_raws(butler, [path.parent], progress=False)
    hdul = butler.get(ref)
    with open(path, "rb"):
        from astropy.io import fits

        original = fits.getdata(path, 1)
    np.testing.assert_array_equal(hdul[1].data, original)
    assert hdul[1].data.dtype == np.uint16
    (exposure,) = butler.query_dimension_records("exposure", explain=False)
    assert (exposure.id, exposure.physical_filter, exposure.observation_type) == (
        4242,
        "g",
        "object",
    )
    assert exposure.timespan.begin.tai.mjd == pytest.approx(61207.25, abs=1e-9)
    assert exposure.timespan.end.tai.mjd == pytest.approx(61207.25 + 30 / 86400, abs=1e-9)
    (visit,) = butler.query_dimension_records("visit", explain=False)
    assert visit.id == 4242 and visit.exposure_time == 30.0
    (vdr,) = butler.query_dimension_records("visit_detector_region", explain=False)
    corners = selection.region_corners(vdr.region)
    # The detector centre lies at its focal-plane offset from the boresight.
    spec = CAMERA.detector(7)
    scale = CAMERA.pixel_scale_arcsec / 3600
    assert np.mean(corners[:, 1]) == pytest.approx(-20.0 + spec.offset_y * scale, abs=1e-3)


def test_bias_has_no_visit(butler: Butler, raw_writer: Callable[..., Path]) -> None:
    path = raw_writer("b.fits", 11, 1, obstype="zero", band="none")
    ingest.ingest_raws(butler, [path], progress=False)
    (exposure,) = butler.query_dimension_records("exposure", explain=False)
    assert exposure.physical_filter == "none" and exposure.observation_type == "zero"
    assert butler.query_dimension_records("visit", explain=False, limit=None) == []


@pytest.mark.parametrize(
    ("keyword", "kwargs"),
    [("MJD-OBS", {}), ("GAINB", {}), ("CD1_1", {}), ("DATASECA", {}), ("EXPNUM", {})],
)
def test_missing_keyword_names_file_and_keyword_and_ingests_nothing(
    butler: Butler, raw_writer: Callable[..., Path], keyword: str, kwargs: dict
) -> None:
    good = raw_writer("good.fits", 1, 1)
    bad = raw_writer("bad.fits", 2, 1, drop=keyword, **kwargs)
    with pytest.raises(exceptions.MalformedRawError) as info:
        ingest.ingest_raws(butler, [good, bad], progress=False)
    assert info.value.keyword == keyword and info.value.path == str(bad)
    assert str(bad) in str(info.value) and keyword in str(info.value)
    assert _n_raws(butler) == 0
    assert butler.query_dimension_records("exposure", explain=False, limit=None) == []


@pytest.mark.parametrize(
    ("hdu", "keyword", "value"),
    [
        (0, "FILTER", "z"),
        (1, "BIASSECA", "[1:4]"),
        (0, "TELDEC", 95.0),
        (1, "CCDNUM", 99),
        (1, "DETPOS", "S99"),
        (0, "OBSTYPE", "dark"),
    ],
)
def test_unusable_value_is_named(
    butler: Butler, raw_writer: Callable[..., Path], hdu: int, keyword: str, value: object
) -> None:
    from astropy.io import fits

    bad = raw_writer("bad.fits", 3, 1)
    with fits.open(bad, mode="update") as hdul:
        hdul[hdu].header[keyword] = value
    with pytest.raises(exceptions.MalformedRawError) as info:
        ingest.ingest_raws(butler, [bad], progress=False)
    assert info.value.keyword == keyword
    assert (repr(value) in str(info.value)) or keyword == "DETPOS"
    assert _n_raws(butler) == 0


def test_skip_malformed_ingests_the_good_ones(
    butler: Butler, raw_writer: Callable[..., Path]
) -> None:
    good = raw_writer("good.fits", 1, 1)
    bad = raw_writer("bad.fits", 2, 1, drop="CCDNUM")
    refs = ingest.ingest_raws(butler, [good, bad], progress=False, skip_malformed=True)
    assert [ref.dataId["exposure"] for ref in refs] == [1]


def test_already_ingested_files_are_skipped(
    butler: Butler, raw_writer: Callable[..., Path]
) -> None:
    first = raw_writer("x1.fits", 5, 1)
    assert len(ingest.ingest_raws(butler, [first], progress=False)) == 1
    second = raw_writer("x2.fits", 5, 2)
    refs = ingest.ingest_raws(butler, [first, second], progress=False)
    assert [ref.dataId["detector"] for ref in refs] == [2]
    assert _n_raws(butler) == 2


def test_not_fits_is_malformed(butler: Butler, tmp_path: Path) -> None:
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a fits file at all" * 10)
    with pytest.raises(exceptions.MalformedRawError, match=r"junk\.fits"):
        ingest.ingest_raws(butler, [junk], progress=False)


def test_relative_paths_are_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "raws").mkdir()
    (tmp_path / "raws" / "a.fits").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert ingest.expand_raw_paths(["raws"]) == [str(tmp_path / "raws" / "a.fits")]
