"""The reliability version fits where the APDB stores it (PostgreSQL enforces lengths)."""

from __future__ import annotations

from importlib import resources

import yaml

from shutterline.differencing import reliability


def test_version_fits_the_apdb_column() -> None:
    schema = yaml.safe_load(
        resources.files("lsst.sdm.schemas").joinpath("apdb.yaml").read_text(encoding="utf-8")
    )
    tables = {t["name"]: t for t in schema["tables"]}
    column = next(c for c in tables["DiaSource"]["columns"] if c["name"] == "reliabilityVersion")
    assert 0 < len(reliability.VERSION) <= column["length"]


def test_the_classifier_version_fits_too_and_its_file_matches_the_features() -> None:
    assert 0 < len(reliability.MODEL_VERSION) <= 7
    model = reliability.load_model()
    assert model["version"] == reliability.MODEL_VERSION
    assert len(model["coef"]) == len(reliability.FEATURES) == len(model["mean"])
