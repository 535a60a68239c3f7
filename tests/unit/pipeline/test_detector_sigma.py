"""The detector driver's point-source noise: every fourth pixel against the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.images import Exposure, MaskBit
from shutterline.pipeline import detector


def _reference_sigma(difference: Exposure) -> float:
    """The slow reference: the median variance over every clean pixel."""
    assert difference.psf is not None
    median_var = float(np.median(difference.variance[difference.mask == 0]))
    return float(np.sqrt(median_var / np.sum(difference.psf.astype(np.float64) ** 2)))


def test_subsampled_sigma_matches_the_whole_frame() -> None:
    rng = np.random.default_rng(3)
    shape = (1024, 512)
    yy = np.linspace(0.0, 1.0, shape[0])[:, None]
    variance = (400.0 * (1.0 + 0.3 * yy) + rng.normal(0, 20.0, shape)).astype(np.float32)
    mask = np.zeros(shape, np.int32)
    mask[rng.random(shape) < 0.05] = int(MaskBit.SAT)
    variance[mask != 0] = 1e6  # masked pixels must not count
    y, x = np.mgrid[-7:8, -7:8]
    psf = np.exp(-(x**2 + y**2) / (2 * 1.8**2)).astype(np.float32)
    diff = Exposure(
        image=np.zeros(shape, np.float32),
        mask=mask,
        variance=variance,
        psf=psf / psf.sum(),
        metadata={"BUNIT": "nJy", "NJY_PER_UNIT": 1.0},
    )
    assert detector.point_source_sigma(diff) == pytest.approx(_reference_sigma(diff), rel=5e-3)
