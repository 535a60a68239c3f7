"""Repository creation: instrument, sky map, dataset types and collections are in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsst.daf.butler import CollectionType

from shutterline.butler import names, repo
from shutterline.camera import CAMERA
from shutterline.skymap import SKYMAP


def test_create_registers_instrument_filters_skymap_and_types(tmp_path: Path) -> None:
    repo.create_repo(str(tmp_path / "r"))
    butler = repo.open_repo(str(tmp_path / "r"))
    detectors = butler.query_dimension_records("detector", explain=False, limit=None)
    assert sorted(d.id for d in detectors) == [d.ccdnum for d in CAMERA.detectors]
    assert {d.full_name for d in detectors} == {d.detpos for d in CAMERA.detectors}
    filters = {
        f.name: f.band for f in butler.query_dimension_records("physical_filter", explain=False)
    }
    assert {b: filters[b] for b in names.BANDS} == {b: b for b in names.BANDS}
    (skymap,) = butler.query_dimension_records("skymap", explain=False)
    assert (skymap.name, skymap.tract_max) == (SKYMAP.name, SKYMAP.tract_max)
    assert butler.get_dataset_type(names.FLAT).isCalibration()
    assert set(butler.get_dataset_type(names.RAW).dimensions.required) == {
        "instrument",
        "detector",
        "exposure",
    }
    assert butler.collections.get_info(names.CALIB_COLLECTION).type is CollectionType.CALIBRATION
    assert not butler.isWriteable()


def test_datastore_records_checksums(tmp_path: Path) -> None:
    text = (tmp_path / "r").joinpath("butler.yaml")
    repo.create_repo(str(tmp_path / "r"))
    assert "checksum: true" in text.read_text()


def test_s3_root_without_registry_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="registry database URL"):
        repo.create_repo("s3://bucket/repo")


def test_create_twice_fails(tmp_path: Path) -> None:
    repo.create_repo(str(tmp_path / "r"))
    with pytest.raises(FileExistsError):
        repo.create_repo(str(tmp_path / "r"))
