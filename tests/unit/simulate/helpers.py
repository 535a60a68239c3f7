"""Building blocks for tests that simulate one exposure of one detector directly."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from shutterline.camera import rawformat
from shutterline.simulate import config, detector, exposure, geometry, schedule, sky
from tests.unit.simulate.conftest import SMALL

CFG = config.SimConfig(**{**SMALL.__dict__, "seed": 11})
CCD = CFG.ccdnums[0]


def plan(
    role: str = "science",
    mjd: float = 61280.2,
    seeing: float = 1.2,
    sky_e: float = 300.0,
    expnum: int = 500001,
) -> schedule.ExposurePlan:
    """A plan with chosen conditions, pointed at (30, -10)."""
    return schedule.ExposurePlan(
        expnum, role, "r", mjd, 30.0, "T", 30.0, -10.0, 1.0, seeing, 26.7, sky_e
    )


def one_source(
    ra: float, dec: float, flux_njy: float, kind: str = "static", t_on: float = -np.inf
) -> Table:
    """A catalog holding a single point source."""
    cat = sky._base_table(
        1, kind, np.array([1], np.int64), np.array([25.0]), np.zeros(1), np.zeros(1)
    )
    cat["flux_r"] = [flux_njy]
    cat["t_on"] = [t_on]
    cat["ra"], cat["dec"] = [ra], [dec]
    return cat


def simulate(p: schedule.ExposurePlan, cat: Table | None) -> exposure.DetectorExposure:
    """Simulate detector CCD of plan ``p`` with a flat response of exactly 1."""
    model = detector.make_detector(CFG, CCD)
    response = np.ones((CFG.ny, CFG.nx), dtype=np.float32)
    return exposure.simulate_exposure(CFG, p, model, response, cat, None)


def electrons(sim: exposure.DetectorExposure) -> np.ndarray:
    """Overscan-subtracted data area ``(ny, nx)`` in electrons (true gain) of a simulated raw."""
    model = detector.make_detector(CFG, CCD)
    raw = geometry.raw_layout(CFG)
    out = np.empty((CFG.ny, CFG.nx))
    for amp in rawformat.AMPLIFIERS:
        data, bias = raw.data[amp], raw.bias[amp]
        # Per-row overscan, smoothed: the bias level drifts slowly along the rows.
        rows = sim.pixels[bias.slices].astype(float).mean(axis=1)
        level = np.convolve(np.pad(rows, 15, mode="edge"), np.ones(31) / 31, "valid")[:, None]
        cols = slice(data.x0 - CFG.overscan, data.x1 - CFG.overscan)
        out[:, cols] = (sim.pixels[data.slices] - level - model.bias_pattern[:, cols]) * (
            model.true_gain[amp]
        )
    return out
