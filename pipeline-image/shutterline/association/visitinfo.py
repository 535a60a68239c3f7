"""``VisitInfo``: what association needs to know about one detector of one visit."""

from __future__ import annotations

import dataclasses

import lsst.sphgeom as sphgeom
import numpy as np
import numpy.typing as npt

from shutterline.images import exposure as exposure_mod

__all__ = ["VisitInfo", "unit_vectors"]


@dataclasses.dataclass(frozen=True)
class VisitInfo:
    """Identity, time and sky footprint of one detector of one visit.

    The driver passes these as an argument rather than as columns of the DIA source table:
    they are the same for every row.

    Attributes
    ----------
    visit, detector : int
        Butler ids of the visit (exposure) and detector.
    band : str
        Single-letter band (``u g r i z y``).
    mjd : float
        Exposure midpoint, MJD (TAI).
    corners : numpy.ndarray
        ``(n, 2)`` ICRS (ra, dec) in degrees of the footprint's corners, in order around the
        boundary (n >= 3).
    exposure_time : float or None
        Seconds.
    """

    visit: int
    detector: int
    band: str
    mjd: float
    corners: npt.NDArray[np.float64]
    exposure_time: float | None = None

    @classmethod
    def from_exposure(cls, exposure: exposure_mod.Exposure) -> VisitInfo:
        """Read ``VISIT, DETECTOR, BAND, MJD, EXPTIME`` metadata and the WCS footprint.

        ``MJD`` is the exposure start (``MJD-OBS``, TAI) as instrument signature removal
        copies it; the midpoint is ``MJD + EXPTIME / 2``, which is what every time of the
        alert schema (``midpointMjdTai``) and the asteroid predictions refer to.
        """
        meta = exposure.metadata
        missing = [k for k in ("VISIT", "DETECTOR", "BAND", "MJD") if k not in meta]
        if missing or exposure.wcs is None:
            raise ValueError(f"exposure lacks what association needs: {missing or ['wcs']}")
        ny, nx = exposure.shape
        px = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
        py = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        ra, dec = exposure.wcs.all_pix2world(px, py, 0)
        exptime = meta.get("EXPTIME")
        half_exposure_days = 0.0 if exptime is None else float(exptime) / 2.0 / 86400.0
        return cls(
            visit=int(meta["VISIT"]),
            detector=int(meta["DETECTOR"]),
            band=str(meta["BAND"]),
            mjd=float(meta["MJD"]) + half_exposure_days,
            corners=np.column_stack([ra, dec]).astype(np.float64),
            exposure_time=None if exptime is None else float(exptime),
        )

    def region(self, pad_arcsec: float = 0.0) -> sphgeom.ConvexPolygon:
        """The footprint as a spherical polygon, grown by ``pad_arcsec`` on every side.

        Padding lets a source on the edge match an object just outside it.
        """
        vectors = unit_vectors(self.corners[:, 0], self.corners[:, 1])
        grow = np.deg2rad(pad_arcsec / 3600.0)
        # Move each corner outward along both of its edges: for a rectangle (a detector)
        # every edge then lies exactly ``pad`` further out.
        out_prev = vectors - np.roll(vectors, 1, axis=0)
        out_next = vectors - np.roll(vectors, -1, axis=0)
        out_prev /= np.linalg.norm(out_prev, axis=1, keepdims=True)
        out_next /= np.linalg.norm(out_next, axis=1, keepdims=True)
        grown = vectors + grow * (out_prev + out_next)
        grown /= np.linalg.norm(grown, axis=1, keepdims=True)
        return sphgeom.ConvexPolygon.convexHull([sphgeom.UnitVector3d(*v) for v in grown])


def unit_vectors(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """ICRS unit vectors, shape ``(n, 3)``, of positions in degrees."""
    ra = np.deg2rad(np.asarray(ra_deg, dtype=np.float64))
    dec = np.deg2rad(np.asarray(dec_deg, dtype=np.float64))
    cos_dec = np.cos(dec)
    return np.column_stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])
