"""Dipole lobes fitted one by one, and trail fields from the moments."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import dia, dipoles, measurement
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


def test_trail_length_from_moments() -> None:
    # A trail of L pixels along x smeared by a PSF of variance s2: ixx = s2 + L**2 / 12.
    s2, length = 2.9, 20.0
    out = {
        "trail_flag": np.array([True, False]),
        "ixx": np.array([s2 + length**2 / 12, s2]), "iyy": np.array([s2, s2]),
        "ixy": np.zeros(2), "ap_flux": np.array([5e4, 1e3]), "ap_flux_err": np.ones(2),
        "ra": np.ones(2), "dec": np.ones(2), "ra_err": np.ones(2), "dec_err": np.ones(2),
        "psf_ndata": np.array([400, 400]), "psf_flux_flag_edge": np.zeros(2, bool),
    }  # fmt: skip
    dia._trail(out, np.maximum(out["ixx"], out["iyy"]), s2)
    assert out["trail_length"][0] == pytest.approx(length)
    assert out["trail_angle"][0] == pytest.approx(0.0) and out["trail_flux"][0] == 5e4
    assert np.isnan(out["trail_length"][1]) and out["trail_ndata"].tolist() == [400, 0]
