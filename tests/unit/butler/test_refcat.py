"""Reference-catalog shards by htm7."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import vstack
from lsst.daf.butler import Butler
from lsst.sphgeom import Angle, Circle, HtmPixelization, LonLat, UnitVector3d

from shutterline.butler import ingest, names, refcat, repo

from .conftest import make_refcat


def test_every_star_lands_in_the_shard_that_contains_it(tmp_path: Path) -> None:
    butler: Butler = repo.create_repo(str(tmp_path / "repo"))
    catalog = make_refcat(seed=5, n=300)
    catalog.write(tmp_path / "cat.fits")
    n_shards = ingest.ingest_refcat(butler, [tmp_path / "cat.fits"], progress=False)
    refs = butler.query_datasets(names.REFCAT, names.REFCAT_COLLECTION, explain=False, limit=None)
    assert len(refs) == n_shards > 1
    pixelization = HtmPixelization(7)
    shards = []
    for ref in refs:
        shard = butler.get(ref)
        trixel = pixelization.triangle(int(ref.dataId["htm7"]))
        for ra, dec in zip(shard["ra"], shard["dec"], strict=True):
            assert trixel.contains(UnitVector3d(LonLat.fromDegrees(ra, dec)))
        shards.append(shard)
    together = vstack(shards)
    together.sort("id")
    np.testing.assert_array_equal(together["id"], catalog["id"])
    np.testing.assert_allclose(together["r_flux"], catalog["r_flux"])


def test_shards_for_region_cover_the_region() -> None:
    rng = np.random.default_rng(2)
    circle = Circle(UnitVector3d(LonLat.fromDegrees(10.0, -30.0)), Angle.fromDegrees(0.3))
    pixels = set(refcat.shards_for_region(circle))
    ra = 10.0 + rng.uniform(-0.3, 0.3, 500)
    dec = -30.0 + rng.uniform(-0.3, 0.3, 500)
    inside = np.array(
        [
            circle.contains(UnitVector3d(LonLat.fromDegrees(r, d)))
            for r, d in zip(ra, dec, strict=True)
        ]
    )
    idx = refcat.htm_indices(ra, dec)
    assert inside.sum() > 100
    assert set(idx[inside].tolist()) <= pixels
