"""Astrometric fit: projection maths, offset vote, WCS recovery, refusal."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from astropy.wcs import WCS

from shutterline.exceptions import PermanentError
from shutterline.processing import astrometry
from tests.unit.processing import synthetic


def test_gnomonic_agrees_with_astropy_tan() -> None:
    wcs = synthetic.tan_wcs((4096, 2048), 210.0, -35.0, 12.0)
    x, y = np.array([0.0, 2047.0, 100.0]), np.array([0.0, 4095.0, 3000.0])
    ra, dec = wcs.wcs_pix2world(x, y, 0)
    xi, eta = astrometry.gnomonic(ra, dec, *wcs.wcs.crval)
    cd = wcs.wcs.cd
    expect = cd @ np.vstack([x - (wcs.wcs.crpix[0] - 1), y - (wcs.wcs.crpix[1] - 1)])
    np.testing.assert_allclose(xi, expect[0], atol=1e-10)
    np.testing.assert_allclose(eta, expect[1], atol=1e-10)
    ra2, dec2 = astrometry.deproject(xi, eta, *wcs.wcs.crval)
    np.testing.assert_allclose(ra2, ra, atol=1e-10)
    np.testing.assert_allclose(dec2, dec, atol=1e-10)


def test_vote_finds_offset_among_clutter() -> None:
    rng = np.random.default_rng(0)
    xr, yr = rng.uniform(0, 2048, 300), rng.uniform(0, 4096, 300)
    # 150 of the references are detected, shifted by (5.3, -6.1) px, plus 150 unrelated.
    xs = np.concatenate([xr[:150] + 5.3, rng.uniform(0, 2048, 150)])
    ys = np.concatenate([yr[:150] - 6.1, rng.uniform(0, 4096, 150)])
    dx, dy, votes = astrometry.vote_offset(xs, ys, xr, yr, 12.0)
    assert dx == pytest.approx(5.3, abs=0.05)
    assert dy == pytest.approx(-6.1, abs=0.05)
    assert votes >= 150


class Case(NamedTuple):
    shape: tuple[int, int]
    bad: WCS
    xm: np.ndarray
    ym: np.ndarray
    flux: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray
    y: np.ndarray


def _catalogue_case(seed: int, n: int = 200, noise: float = 0.02) -> Case:
    """True positions, measured positions with ``noise`` px scatter, a 2 arcsec-off WCS."""
    rng = np.random.default_rng(seed)
    shape = (4096, 2048)
    true = synthetic.tan_wcs(shape, 35.0, 10.0, 0.5)
    x, y = rng.uniform(0, 2048, n), rng.uniform(0, 4096, n)
    ra, dec = true.wcs_pix2world(x, y, 0)
    bad = true.deepcopy()
    bad.wcs.crval = [35.0 + 1.5 / 3600, 10.0 - 1.2 / 3600]
    t = np.radians(0.005)
    bad.wcs.cd = true.wcs.cd @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    flux = rng.uniform(1, 100, n)
    xm, ym = x + rng.normal(0, noise, n), y + rng.normal(0, noise, n)
    return Case(shape, bad, xm, ym, flux, ra, dec, x, y)


def test_fit_recovers_true_wcs() -> None:
    c = _catalogue_case(1)
    fit = astrometry.fit_wcs(
        c.xm, c.ym, c.flux, c.ra, c.dec, c.flux, c.bad, c.shape, astrometry.AstrometryConfig()
    )
    px, py = fit.wcs.wcs_world2pix(c.ra, c.dec, 0)
    err = np.hypot(px - c.x, py - c.y) * synthetic.PIXEL_SCALE
    assert np.median(err) < 0.005  # arcsec; centroid noise is 0.005 arcsec per star
    assert fit.n_matched == len(c.ra)
    assert fit.rms_arcsec == pytest.approx(0.02 * synthetic.PIXEL_SCALE * np.sqrt(2), rel=0.2)
    assert list(fit.wcs.wcs.crpix) == list(c.bad.wcs.crpix)


def test_too_few_matches_is_permanent() -> None:
    c = _catalogue_case(2, n=5)
    with pytest.raises(PermanentError, match=r"visit 7 detector 3.*need 8"):
        astrometry.fit_wcs(
            c.xm, c.ym, c.flux, c.ra, c.dec, c.flux, c.bad, c.shape, astrometry.AstrometryConfig(),
            "visit 7 detector 3",
        )  # fmt: skip
