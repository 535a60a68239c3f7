"""Dimension records of the sky map: the skymap, and its tracts and patches on demand.

The rings sky map has tens of thousands of tracts of a few hundred patches each; the
registry only needs the tracts that hold templates, so a tract and all its patches are
registered the first time a template lands in it.
"""

from __future__ import annotations

import hashlib

import numpy as np
from lsst.daf.butler import Butler
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from shutterline.skymap import rings

__all__ = ["polygon", "register_skymap", "register_tract", "skymap_hash"]


def polygon(corners: np.ndarray) -> ConvexPolygon:
    """A sphgeom polygon from ``(n, 2)`` ICRS corners in degrees (any winding)."""
    vectors = [UnitVector3d(LonLat.fromDegrees(float(ra), float(dec))) for ra, dec in corners]
    return ConvexPolygon.convexHull(vectors)


def skymap_hash(skymap: rings.RingsSkyMap = rings.SKYMAP) -> bytes:
    """A digest of the sky map's parameters: a changed geometry is a different sky map."""
    return hashlib.sha1(repr(skymap).encode()).digest()


def register_skymap(butler: Butler, skymap: rings.RingsSkyMap = rings.SKYMAP) -> None:
    """Insert the skymap record (idempotent)."""
    butler.registry.insertDimensionData(
        "skymap",
        {
            "name": skymap.name,
            "hash": skymap_hash(skymap),
            "tract_max": skymap.tract_max,
            "patch_nx_max": skymap.patch_nx_max,
            "patch_ny_max": skymap.patch_ny_max,
        },
        skip_existing=True,
    )


def register_tract(butler: Butler, tract: int, skymap: rings.RingsSkyMap = rings.SKYMAP) -> None:
    """Insert a tract and all its patches, with their regions (idempotent)."""
    registry = butler.registry
    where = "skymap = sm AND tract = t"
    bind = {"sm": skymap.name, "t": tract}
    if butler.query_dimension_records("tract", where=where, bind=bind, explain=False):
        return
    registry.insertDimensionData(
        "tract",
        {"skymap": skymap.name, "id": tract, "region": polygon(skymap.tract_corners(tract))},
        skip_existing=True,
    )
    n_patches = skymap.patch_nx_max * skymap.patch_ny_max
    records = []
    for patch_id in range(n_patches):
        info = skymap.patch(tract, patch_id)
        records.append(
            {
                "skymap": skymap.name,
                "tract": tract,
                "id": patch_id,
                "cell_x": info.index[0],
                "cell_y": info.index[1],
                "region": polygon(info.corners),
            }
        )
    registry.insertDimensionData("patch", *records, skip_existing=True)
