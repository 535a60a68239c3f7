"""Which truth sources a template covers, from the simulator's side (its true footprints).

A science pixel with no template input pixel within the matching kernel's half-width has no
template to subtract: the difference image has no data there and no pipeline could find a
change. Such a source has no *expected* difference, so `truth.score_detector` counts it
apart ("not covered by any template") instead of in the completeness denominator. This is a
scoring definition chosen on that physics, on the fitting nights and synthetic tests, before
the fresh validation nights (seeds 303, 404) were run. It is computed from what the
simulator placed (each template visit's true detector WCS, `simulate.geometry.detector_wcs`,
at the visit's true boresight), never from the pipeline's masks, so a pipeline that masks
too much cannot shrink its own denominator.

The rule is the lenient one: a centre counts as covered when *any* template input pixel lies
within `COVERAGE_PX`, even where the kernel's footprint is only partly covered (the pipeline
marks such pixels ``NO_DATA`` today; that is its choice, and those sources stay counted).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shutterline.differencing import psfmatch

__all__ = ["COVERAGE_PX", "border_distance", "template_covered"]

#: The matching kernel's half-width cap, in pixels.
COVERAGE_PX = float(psfmatch.MAX_HALF_WIDTH)


def border_distance(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distance (px) from ``(x, y)`` to the nearest pixel centre of a ``(ny, nx)`` detector.

    Zero inside (centres ``0 .. nx - 1``), the Euclidean distance to the rectangle outside.
    """
    ny, nx = shape
    dx = np.maximum(0.0, np.maximum(-x, x - (nx - 1)))
    dy = np.maximum(0.0, np.maximum(-y, y - (ny - 1)))
    return np.hypot(dx, dy)


def template_covered(
    night: dict[str, Any], ra: np.ndarray, dec: np.ndarray, band: str
) -> np.ndarray:
    """True where a template visit of ``band`` has an input pixel within `COVERAGE_PX`.

    ``night`` is the simulator's record (``night.yaml``): its ``config`` (shape, overscan),
    ``detectors`` and each template visit's true boresight; every detector of every template
    visit in that band counts (a coadd may take inputs from any of them).
    """
    from shutterline.simulate import config, geometry

    conf = night["config"]
    ccds = tuple(int(d["ccdnum"]) for d in night["detectors"])
    cfg = config.SimConfig(nx=int(conf["nx"]), ny=int(conf["ny"]),
                           overscan=int(conf["overscan"]), detectors=len(ccds),
                           ccdnums=ccds)  # fmt: skip
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    covered = np.zeros(len(ra), bool)
    for v in night["visits"]:
        if v["role"] != "template" or str(v["band"]) != band or covered.all():
            continue
        for ccd in ccds:
            w = geometry.detector_wcs(cfg, ccd, float(v["ra"]), float(v["dec"]))
            x, y = geometry.sky_to_data_pixels(w, cfg, ra, dec)
            covered |= border_distance(x, y, (cfg.ny, cfg.nx)) <= COVERAGE_PX
    return covered
