"""One-to-one nearest-neighbour matching on the sphere."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import spatial

from shutterline.association import visitinfo

__all__ = ["match_nearest"]

#: Candidates examined per source; more than one so a source that loses its nearest object to
#: a closer source can still take its second-nearest.
_CANDIDATES = 4


def match_nearest(
    ra1: npt.ArrayLike,
    dec1: npt.ArrayLike,
    ra2: npt.ArrayLike,
    dec2: npt.ArrayLike,
    radius_arcsec: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Match each position of set 1 to at most one of set 2, closest pairs first.

    Parameters
    ----------
    ra1, dec1 : array_like
        ``(n1,)`` degrees.
    ra2, dec2 : array_like
        ``(n2,)`` degrees.
    radius_arcsec : float
        Largest separation of a match.

    Returns
    -------
    index : numpy.ndarray
        ``(n1,)`` index into set 2, or -1 where nothing matched.
    separation : numpy.ndarray
        ``(n1,)`` separation in arcsec (NaN where unmatched).
    """
    xyz1 = visitinfo.unit_vectors(ra1, dec1)
    xyz2 = visitinfo.unit_vectors(ra2, dec2)
    n1 = len(xyz1)
    index = np.full(n1, -1, np.int64)
    separation = np.full(n1, np.nan)
    if n1 == 0 or len(xyz2) == 0:
        return index, separation
    chord = 2.0 * np.sin(np.deg2rad(radius_arcsec / 3600.0) / 2.0)
    k = min(_CANDIDATES, len(xyz2))
    dist, cand = spatial.cKDTree(xyz2).query(xyz1, k=k, distance_upper_bound=chord)
    dist = dist.reshape(n1, k)
    cand = cand.reshape(n1, k)
    rows, cols = np.nonzero(np.isfinite(dist))
    order = np.argsort(dist[rows, cols], kind="stable")
    taken = np.zeros(len(xyz2), bool)
    for r, c in zip(rows[order], cols[order], strict=True):
        j = cand[r, c]
        if index[r] < 0 and not taken[j]:
            index[r] = j
            taken[j] = True
            separation[r] = np.rad2deg(2.0 * np.arcsin(dist[r, c] / 2.0)) * 3600.0
    return index, separation
