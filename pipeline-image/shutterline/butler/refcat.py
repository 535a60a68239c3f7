"""Reference-catalog shards: one table per htm7 trixel, and the shards a region needs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, DatasetRef
from lsst.sphgeom import HtmPixelization, LonLat, Region, UnitVector3d
from tqdm import tqdm

from shutterline.butler import names, skymaps, storage

__all__ = ["HTM_LEVEL", "htm_indices", "shard_refs", "shards_for_region", "write_shards"]

_LOG = logging.getLogger(__name__)
HTM_LEVEL = 7
_PIXELIZATION = HtmPixelization(HTM_LEVEL)


def htm_indices(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """htm7 index of each position; ``ra``, ``dec`` ``(n,)`` in degrees."""
    index = _PIXELIZATION.index
    return np.fromiter(
        (
            index(UnitVector3d(LonLat.fromDegrees(float(r), float(d))))
            for r, d in zip(ra, dec, strict=True)
        ),
        dtype=np.int64,
        count=len(ra),
    )


def shards_for_region(region: Region) -> list[int]:
    """htm7 trixels that may overlap ``region`` (sphgeom's envelope, a superset)."""
    ranges = _PIXELIZATION.envelope(region)
    return [int(pix) for begin, end in ranges for pix in range(begin, end)]


def shard_refs(
    butler: Butler, corners: np.ndarray, with_dimension_records: bool = False
) -> list[DatasetRef]:
    """The stored shards that may overlap the polygon of ``corners`` (``(n, 2)`` degrees)."""
    return list(
        butler.query_datasets(
            names.REFCAT,
            collections=names.REFCAT_COLLECTION,
            where=f"{names.REFCAT_PIXELIZATION} IN (pixels)",
            bind={"pixels": shards_for_region(skymaps.polygon(corners))},
            with_dimension_records=with_dimension_records,
            explain=False,
            limit=None,
        )
    )


def write_shards(butler: Butler, tables: Sequence[Table], progress: bool = True) -> int:
    """Split ``tables`` (columns ``id, ra, dec, <band>_flux, <band>_fluxErr``) by htm7 and
    store each shard as ``ref_cat`` in ``refcats/sim``. Returns the number of shards."""
    catalog = tables[0] if len(tables) == 1 else vstack(list(tables), join_type="exact")
    for column in ("id", "ra", "dec"):
        if column not in catalog.colnames:
            raise ValueError(f"reference catalog has no {column!r} column")
    pixels = htm_indices(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
    order = np.argsort(pixels, kind="stable")
    unique, starts = np.unique(pixels[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    items = []
    for i, pixel in enumerate(tqdm(unique, desc="writing refcat shards", disable=not progress)):
        shard = catalog[order[bounds[i] : bounds[i + 1]]]
        ref = storage.make_ref(
            butler, names.REFCAT, {names.REFCAT_PIXELIZATION: int(pixel)}, names.REFCAT_COLLECTION
        )
        items.append((shard, ref))
    storage.put_many_checksummed(butler, items)
    _LOG.info("wrote %d rows in %d %s shards", len(catalog), len(unique), names.REFCAT_PIXELIZATION)
    return len(unique)
