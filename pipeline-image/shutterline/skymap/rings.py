"""A rings sky map: one TAN tract per cell of declination rings, patches on the tract grid.

Ring ``i`` covers declinations ``[-90 + i * size, -90 + (i + 1) * size)``; it holds as many
tracts as fit around its widest parallel, so tracts stay about ``size`` wide in RA. A tract is
a TAN projection centred on its cell, a little larger than the cell (``tract_overlap``) so
a footprint near an edge is whole in at least one tract. Patches are ``patch_inner`` pixels
square plus ``patch_overlap`` pixels on each side; patch id is ``y * n_patches + x``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

__all__ = ["SKYMAP", "PatchInfo", "RingsSkyMap"]


@dataclass(frozen=True)
class PatchInfo:
    """One patch: ids, its pixel grid (``wcs`` with origin 0, ``shape`` ``(ny, nx)``) and the
    ICRS corners of that grid, ``(4, 2)`` degrees counter-clockwise."""

    tract: int
    patch: int
    index: tuple[int, int]
    wcs: WCS
    shape: tuple[int, int]
    corners: np.ndarray


@dataclass(frozen=True)
class RingsSkyMap:
    """Geometry of the whole sky map; see the module docstring."""

    name: str = "sim_rings"
    tract_size_deg: float = 1.0
    tract_overlap_deg: float = 0.02
    pixel_scale_arcsec: float = 0.25
    patch_inner: int = 1000
    patch_overlap: int = 25

    @property
    def n_rings(self) -> int:
        """Number of declination rings."""
        return round(180.0 / self.tract_size_deg)

    @property
    def n_patches(self) -> int:
        """Patches per tract along each axis."""
        span = (self.tract_size_deg + 2 * self.tract_overlap_deg) * 3600 / self.pixel_scale_arcsec
        return math.ceil(span / self.patch_inner)

    @property
    def patch_nx_max(self) -> int:
        """Largest patch x index + 1 (a Butler skymap record field)."""
        return self.n_patches

    @property
    def patch_ny_max(self) -> int:
        """Largest patch y index + 1."""
        return self.n_patches

    @functools.cached_property
    def _ring_counts(self) -> np.ndarray:
        edges = -90.0 + self.tract_size_deg * np.arange(self.n_rings + 1)
        widest = np.minimum(np.abs(edges[:-1]), np.abs(edges[1:]))
        widest[(edges[:-1] < 0) & (edges[1:] > 0)] = 0.0
        counts = np.ceil(360.0 * np.cos(np.radians(widest)) / self.tract_size_deg)
        return np.maximum(counts, 1).astype(np.int64)

    @functools.cached_property
    def _ring_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self._ring_counts)])

    @property
    def tract_max(self) -> int:
        """Largest tract id + 1."""
        return int(self._ring_offsets[-1])

    def find_tracts(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Tract id of the cell holding each position (degrees); vectorized."""
        ra = np.mod(np.asarray(ra, float), 360.0)
        ring = np.floor((np.asarray(dec, float) + 90.0) / self.tract_size_deg).astype(np.int64)
        ring = np.clip(ring, 0, self.n_rings - 1)
        count = self._ring_counts[ring]
        column = np.minimum(np.floor(ra / (360.0 / count)).astype(np.int64), count - 1)
        return np.asarray(self._ring_offsets[ring] + column)

    def tract_center(self, tract: int) -> tuple[float, float]:
        """``(ra, dec)`` of a tract's centre, degrees."""
        if not 0 <= tract < self.tract_max:
            raise KeyError(f"{self.name} has no tract {tract}")
        ring = int(np.searchsorted(self._ring_offsets, tract, side="right") - 1)
        column = tract - int(self._ring_offsets[ring])
        count = int(self._ring_counts[ring])
        dec = -90.0 + (ring + 0.5) * self.tract_size_deg
        return (column + 0.5) * 360.0 / count, dec

    def tract_wcs(self, tract: int) -> WCS:
        """TAN WCS of the full tract grid, ``n_patches * patch_inner`` pixels square."""
        ra, dec = self.tract_center(tract)
        size = self.n_patches * self.patch_inner
        scale = self.pixel_scale_arcsec / 3600.0
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ra, dec]
        wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]  # FITS 1-based: centre of the grid
        wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
        return wcs

    def tract_corners(self, tract: int) -> np.ndarray:
        """ICRS corners of the tract grid, ``(4, 2)`` degrees."""
        size = self.n_patches * self.patch_inner
        return _corners(self.tract_wcs(tract), (size, size))

    def patch(self, tract: int, patch: int) -> PatchInfo:
        """The patch ``patch`` of ``tract``."""
        n = self.n_patches
        if not 0 <= patch < n * n:
            raise KeyError(f"{self.name} tract {tract} has no patch {patch}")
        px, py = patch % n, patch // n
        x0 = max(px * self.patch_inner - self.patch_overlap, 0)
        y0 = max(py * self.patch_inner - self.patch_overlap, 0)
        x1 = min((px + 1) * self.patch_inner + self.patch_overlap, n * self.patch_inner)
        y1 = min((py + 1) * self.patch_inner + self.patch_overlap, n * self.patch_inner)
        wcs = self.tract_wcs(tract).deepcopy()
        wcs.wcs.crpix = wcs.wcs.crpix - np.array([x0, y0])
        shape = (y1 - y0, x1 - x0)
        return PatchInfo(tract, patch, (px, py), wcs, shape, _corners(wcs, shape))

    def patches_overlapping(
        self, ra: np.ndarray, dec: np.ndarray, padding_arcsec: float = 0.0
    ) -> list[PatchInfo]:
        """Patches whose inner area overlaps the polygon with corners ``ra``, ``dec`` (degrees),
        grown by ``padding_arcsec``; from every tract whose cell the grown polygon touches."""
        ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
        probe_ra, probe_dec = _grown(ra, dec, padding_arcsec)
        found: list[PatchInfo] = []
        for tract in sorted(set(self.find_tracts(probe_ra, probe_dec).tolist())):
            found.extend(self._patches_in_tract(tract, probe_ra, probe_dec))
        return found

    def _patches_in_tract(self, tract: int, ra: np.ndarray, dec: np.ndarray) -> list[PatchInfo]:
        x, y = self.tract_wcs(tract).all_world2pix(ra, dec, 0)
        n = self.n_patches
        lo = np.floor(np.array([x.min(), y.min()]) / self.patch_inner).astype(int)
        hi = np.floor(np.array([x.max(), y.max()]) / self.patch_inner).astype(int)
        lo, hi = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
        return [
            self.patch(tract, py * n + px)
            for py in range(lo[1], hi[1] + 1)
            for px in range(lo[0], hi[0] + 1)
        ]


def _corners(wcs: WCS, shape: tuple[int, int]) -> np.ndarray:
    ny, nx = shape
    xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    return np.column_stack([ra, dec])


def _grown(ra: np.ndarray, dec: np.ndarray, padding_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """The polygon's corners and edge midpoints pushed out by the padding, plus its centre.

    Sampling edges as well as corners keeps a footprint that spans a tract cell from being
    missed when no corner falls inside that cell.
    """
    ra0, dec0 = float(np.mean(ra)), float(np.mean(dec))
    cosd = math.cos(math.radians(dec0))
    dx = ((ra - ra0 + 180.0) % 360.0 - 180.0) * cosd
    dy = dec - dec0
    t = np.linspace(0.0, 1.0, 9)[:-1]
    ex = np.concatenate([dx[i] + t * (np.roll(dx, -1)[i] - dx[i]) for i in range(len(dx))])
    ey = np.concatenate([dy[i] + t * (np.roll(dy, -1)[i] - dy[i]) for i in range(len(dy))])
    norm = np.hypot(ex, ey)
    grow = np.where(norm > 0, (norm + padding_arcsec / 3600.0) / np.maximum(norm, 1e-12), 1.0)
    gx, gy = np.append(ex * grow, 0.0), np.append(ey * grow, 0.0)
    return ra0 + gx / max(cosd, 1e-6), np.clip(dec0 + gy, -90.0, 90.0)


SKYMAP = RingsSkyMap()
