"""Defects the calibrations never saw, and satellite trails: what a science frame adds.

*Late columns*: a column that went dead or hot after the afternoon's biases and flats were
taken (``late_columns_per_detector`` on average, from a row onward), so no master
calibration masks it; the pipeline must find it in the science frame itself. They are fixed
for the night per detector and recorded in ``night.yaml``.

*Satellite trails*: a straight streak across the detector, as wide as the seeing, in a
random direction (``trails_per_exposure`` per detector and sky exposure, templates'
inputs included, so the coadd must reject them). Each is recorded with its end points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shutterline.simulate import config

__all__ = ["Trail", "add_late_columns", "add_trails", "late_columns", "trails_for"]

F32 = npt.NDArray[np.float32]
#: Surface brightness of a trail: electrons per pixel along its centre line, per second.
_TRAIL_E_PER_S = (20.0, 400.0)


@dataclass(frozen=True)
class Trail:
    """A satellite trail: end points ``(x0, y0)``, ``(x1, y1)`` (data pixels), peak e-/px."""

    x0: float
    y0: float
    x1: float
    y1: float
    peak_e: float


def late_columns(cfg: config.SimConfig, ccdnum: int) -> tuple[tuple[int, int, str], ...]:
    """``(column, first row, 'hot' | 'dead')`` of the detector's science-only defects."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 33, ccdnum]))
    n = int(rng.poisson(cfg.late_columns_per_detector))
    cols = rng.choice(np.arange(8, cfg.nx - 8), size=min(n, cfg.nx - 16), replace=False)
    return tuple(
        (int(c), int(rng.integers(0, cfg.ny // 2)), "dead" if rng.random() < 0.6 else "hot")
        for c in sorted(cols)
    )


def add_late_columns(image: F32, columns: tuple[tuple[int, int, str], ...], sky_e: float) -> None:
    """Dead columns keep 3% of their charge, hot ones gain ten times the sky; in place."""
    for col, first_row, kind in columns:
        if kind == "dead":
            image[first_row:, col] *= np.float32(0.03)
        else:
            image[first_row:, col] += np.float32(10.0 * max(sky_e, 50.0))


def trails_for(
    cfg: config.SimConfig, expnum: int, ccdnum: int, exptime: float
) -> tuple[Trail, ...]:
    """The satellite trails crossing one detector in one exposure (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 34, expnum, ccdnum]))
    out = []
    for _ in range(int(rng.poisson(cfg.trails_per_exposure))):
        # A line through a random point of the detector at a random angle, clipped far out.
        x, y = rng.uniform(0, cfg.nx), rng.uniform(0, cfg.ny)
        angle = rng.uniform(0.0, np.pi)
        reach = float(np.hypot(cfg.nx, cfg.ny))
        dx, dy = reach * np.cos(angle), reach * np.sin(angle)
        peak = float(rng.uniform(*_TRAIL_E_PER_S)) * exptime
        out.append(Trail(x - dx, y - dy, x + dx, y + dy, peak))
    return tuple(out)


def add_trails(image: F32, trails: tuple[Trail, ...], fwhm_px: float) -> None:
    """Add each trail as a Gaussian cross-section of ``fwhm_px`` along its line; in place."""
    if not trails:
        return
    ny, nx = image.shape
    sigma = fwhm_px / 2.3548
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    for t in trails:
        ux, uy = t.x1 - t.x0, t.y1 - t.y0
        norm = float(np.hypot(ux, uy))
        # Perpendicular distance of every pixel to the line.
        dist = np.abs(
            (xx - np.float32(t.x0)) * np.float32(uy / norm)
            - (yy - np.float32(t.y0)) * np.float32(ux / norm)
        )
        near = dist < 5.0 * sigma
        image[near] += np.float32(t.peak_e) * np.exp(-0.5 * (dist[near] / sigma) ** 2)
