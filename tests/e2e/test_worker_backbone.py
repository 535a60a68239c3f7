"""The shared backbone fixture: a night in S3 + PostgreSQL with its science raws held back."""

from __future__ import annotations

from typing import Any

import pytest
from lsst.resources import ResourcePath

from shutterline.butler import names, repo

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


def test_backbone_has_calibs_and_templates_but_no_science_raws(backbone: Any) -> None:
    butler = repo.open_repo(backbone.repo)
    science = [int(v["visit"]) for v in backbone.visits]
    raws = butler.query_datasets(names.RAW, collections=names.RAW_COLLECTION, explain=False)
    assert raws and not {int(r.dataId["exposure"]) for r in raws} & set(science)
    for dataset_type in (names.BIAS, names.FLAT):
        assert butler.query_datasets(
            dataset_type, collections=names.CALIB_COLLECTION, find_first=False, explain=False
        )
    assert butler.query_datasets(
        names.TEMPLATE, collections=names.TEMPLATE_COLLECTION, explain=False
    )
    visit, detector = science[0], int(backbone.visits[0]["detectors"][0])
    uri = ResourcePath(backbone.raw_uri_for(visit, detector))
    assert uri.scheme == "s3" and not uri.exists()
    backbone.land(visit, detector)
    try:
        assert uri.read() == backbone.raw_path(visit, detector).read_bytes()
    finally:
        backbone.withdraw(visit, detector)
    assert not uri.exists()
