"""Dipole lobes fitted one by one, and the chi-square of both together."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import dipoles, measurement
from tests.unit.isr import synth


def _psf(fwhm: float = 4.0, size: int = 25) -> np.ndarray:
    c = (size - 1) / 2.0
    psf = synth.gaussian_stars((size, size), np.array([c]), np.array([c]), np.array([1.0]), fwhm)
    return psf / psf.sum()


def test_lobes_measured_with_their_fluxes_length_and_angle() -> None:
    shape = (80, 80)
    pos = synth.gaussian_stars(shape, np.array([42.0]), np.array([40.0]), np.array([9000.0]), 4.0)
    neg = synth.gaussian_stars(shape, np.array([36.0]), np.array([40.0]), np.array([3000.0]), 4.0)
    rng = np.random.default_rng(1)
    image = (pos - neg + rng.normal(0, 5.0, shape)).astype(np.float32)
    cut = measurement.Cutter(image, np.full(shape, 25.0, np.float32), np.zeros(shape, np.int32))
    psf = _psf()
    main = measurement.fit_psf(cut, psf, 40.0, 42.0, recentre=True)
    snr = (image / 5.0).astype(np.float32)
    row = dipoles.measure_dipole(cut, psf, snr, main, +1.0, 4.0, 0.25)
    assert row["dipole_fit_attempted"]
    assert row["dipole_mean_flux"] == pytest.approx(6000.0, rel=0.05)
    assert row["dipole_flux_diff"] == pytest.approx(6000.0, rel=0.1)
    assert row["dipole_length"] == pytest.approx(6.0 * 0.25, rel=0.1)
    assert row["dipole_angle"] == pytest.approx(0.0, abs=5.0)
    assert row["dipole_ndata"] > 0
    # The two lobes model their stamp (33 x 33 here) to near the noise: 25 per pixel.
    assert 0.7 * 33**2 < row["dipole_chi2"] < 1.6 * 33**2
    assert row["dipole_chi2"] < 0.05 * float(np.sum(image[24:57, 23:56].astype(float) ** 2) / 25)
