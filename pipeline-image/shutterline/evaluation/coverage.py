"""Which truth sources a template covers, from the simulator's side (its true footprints).

A source whose centre falls on no template input pixel has no template flux at its place:
whatever the kernel spreads in from inputs beside it, the difference there holds no measure
of the change (for a variable star, of the star's template flux; for a transient, of the
sky it appeared on), and no pipeline could find it. Such a source has no *expected*
difference, so `truth.score_detector` counts it apart ("not covered by any template") instead
of in the completeness denominator. It is computed from what the simulator placed (each
template visit's true detector WCS, `simulate.geometry.detector_wcs`, at the visit's true
boresight), never from the pipeline's masks, so a pipeline that masks too much cannot shrink
its own denominator.

The rule is still the lenient one: a centre on an input pixel counts, even where most of its
PSF falls off that input (the pipeline marks such pixels ``NO_DATA`` today; that is its
choice, and those sources stay counted). Before stop 23 a centre counted up to the matching
kernel's half-width (20 px) off every input: on the nights of seeds 707 and 808 (now seen) a
variable 4 px past a coadd's edge was expected in four visits, only its wing covered.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["COVERAGE_PX", "border_distance", "template_covered"]

#: How far (px) past the last input pixel centre a source's centre still counts: that
#: pixel's own half width.
COVERAGE_PX = 0.5


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
    """True where a source's centre lies on an input pixel of a template visit of ``band``.

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
