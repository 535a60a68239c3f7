"""Each raw role's required keywords, checked at ingest: a bias or flat needs no WCS or pointing."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsst.daf.butler import Butler

from shutterline import exceptions
from shutterline.butler import ingest, repo
from shutterline.calibs import build
from shutterline.camera import rawformat
from tests.unit.butler.rawfiles import write_raw

_NO_SKY = ",".join((*rawformat.WCS_KEYS, "CD1_2", "CD2_1", "TELRA", "TELDEC", "AIRMASS"))


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    return repo.create_repo(str(tmp_path / "repo"))


def test_calibration_raws_without_wcs_or_pointing_build_masters(
    butler: Butler, tmp_path: Path
) -> None:
    raws = [
        write_raw(
            tmp_path / f"b{i}.fits", 10 + i, 1, obstype="zero", seed=i, drop=_NO_SKY + ",FILTER"
        )
        for i in range(3)
    ]
    raws += [
        write_raw(tmp_path / f"f{i}.fits", 20 + i, 1, obstype="dome flat", seed=5 + i,
                  drop=_NO_SKY, level=20000)
        for i in range(3)
    ]  # fmt: skip
    assert len(ingest.ingest_raws(butler, raws, progress=False)) == 6
    result = build.build_calibs(butler, progress=False)
    assert set(result.biases) == {1} and set(result.flats) == {(1, "r")}
    flat = butler.get(result.flats[(1, "r")])
    assert flat.wcs is None and flat.metadata["BAND"] == "r"


@pytest.mark.parametrize(
    ("obstype", "keyword"),
    [("dome flat", "FILTER"), ("object", "CD1_1"), ("object", "TELRA"), ("zero", "EXPTIME")],
)
def test_a_role_missing_its_keyword_is_refused_at_ingest_naming_the_original(
    butler: Butler, tmp_path: Path, obstype: str, keyword: str
) -> None:
    bad = write_raw(tmp_path / "given" / "bad.fits", 30, 1, obstype=obstype, drop=keyword)
    with pytest.raises(exceptions.MalformedRawError) as info:
        ingest.ingest_raws(butler, [bad], progress=False)
    assert info.value.path == str(bad) and info.value.keyword == keyword
    assert butler.query_dimension_records("exposure", explain=False, limit=None) == []
