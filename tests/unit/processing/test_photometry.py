"""Zero point: clipped weighted mean with an honest error."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.exceptions import PermanentError
from shutterline.processing import photometry


def _stars(
    seed: int, n: int = 200, zp: float = 0.8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_e = 10 ** rng.uniform(3.5, 5.5, n)
    err_e = np.sqrt(true_e + 40 * 900.0)
    flux = true_e + rng.normal(0, 1, n) * err_e
    ref = true_e * zp * (1 + 0.01 * rng.normal(0, 1, n))
    return flux, err_e, ref, 0.01 * ref


def test_zero_point_recovered_within_error() -> None:
    pulls = []
    for seed in range(20):
        flux, err, ref, ref_err = _stars(seed)
        cal = photometry.fit_zero_point(flux, err, ref, ref_err, systematic=0.0)
        assert cal.njy_per_unit_err == cal.njy_per_unit_err_stat
        pulls.append((cal.njy_per_unit - 0.8) / cal.njy_per_unit_err)
    # The error is honest: pulls over 20 seeds have unit scatter, give or take.
    assert abs(np.mean(pulls)) < 0.7
    assert 0.5 < np.std(pulls) < 1.6


def test_outliers_clipped_and_mag_zero_consistent() -> None:
    flux, err, ref, ref_err = _stars(3)
    flux[:10] *= 3.0  # blends and variables
    cal = photometry.fit_zero_point(flux, err, ref, ref_err)
    assert cal.n_stars <= len(flux) - 10
    assert cal.njy_per_unit == pytest.approx(0.8, abs=4 * cal.njy_per_unit_err)
    assert cal.mag_zero == pytest.approx(31.4 - 2.5 * np.log10(cal.njy_per_unit), abs=1e-3)


def test_too_few_stars_is_permanent() -> None:
    with pytest.raises(PermanentError, match="visit 1 detector 2: 1 usable"):
        photometry.fit_zero_point(
            np.array([1.0, -1.0]), np.ones(2), np.ones(2), np.ones(2), where="visit 1 detector 2"
        )


def test_systematic_added_in_quadrature() -> None:
    flux, err, ref, ref_err = _stars(7)
    cal = photometry.fit_zero_point(flux, err, ref, ref_err)
    rel_stat = cal.njy_per_unit_err_stat / cal.njy_per_unit
    rel = cal.njy_per_unit_err / cal.njy_per_unit
    assert rel == pytest.approx(np.hypot(rel_stat, photometry.SYSTEMATIC))
    assert cal.mag_zero_err == pytest.approx(2.5 / np.log(10) * rel)
