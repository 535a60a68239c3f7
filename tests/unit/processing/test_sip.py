"""SIP distortion: polynomial fit, inverse, FITS round trip."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from shutterline.processing import astrometry, sip
from tests.unit.processing import synthetic


def test_fit_recovers_distortion_and_inverse_round_trips() -> None:
    shape = (4096, 2048)
    true = synthetic.tan_wcs(shape, 80.0, -20.0, 30.0, distortion=5.0)
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 2048, 400), rng.uniform(0, 4096, 400)
    ra, dec = true.all_pix2world(x, y, 0)
    crpix = np.asarray(true.wcs.crpix) - 1.0
    xi, eta = astrometry.gnomonic(ra, dec, *true.wcs.crval)
    t, cd, a, b = sip.fit_polynomial(x - crpix[0], y - crpix[1], xi, eta, 3)
    np.testing.assert_allclose(t, 0.0, atol=1e-9)
    np.testing.assert_allclose(cd, true.wcs.cd, rtol=1e-6)
    np.testing.assert_allclose(a[:3, :3], true.sip.a, atol=1e-10)
    ap, bp = sip.inverse(a, b, shape, crpix)
    wcs = sip.make_wcs(tuple(true.wcs.crval), crpix, cd, (a, b, ap, bp))
    back = WCS(wcs.to_header(relax=True))
    px, py = back.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(px - x, py - y)) < 1e-3
    # The inverse polynomial alone (what readers without iteration use) is good too.
    uu, vv = sip.apply(a, b, x - crpix[0], y - crpix[1])
    pq = sip.terms(4, 1)
    du = sum(ap[p, q] * uu**p * vv**q for p, q in pq)
    assert np.max(np.abs(uu + du - (x - crpix[0]))) < 0.01


def test_terms() -> None:
    assert sip.terms(2, 2) == [(2, 0), (1, 1), (0, 2)]
    assert len(sip.terms(3)) == 10


def test_tan_field_stays_tan() -> None:
    shape = (4096, 2048)
    true = synthetic.tan_wcs(shape, 80.0, -20.0, 30.0)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 2048, 300), rng.uniform(0, 4096, 300)
    ra, dec = true.all_pix2world(x, y, 0)
    xm, ym = x + rng.normal(0, 0.05, 300), y + rng.normal(0, 0.05, 300)
    fit = astrometry.fit_wcs(
        xm, ym, np.ones(300), ra, dec, np.ones(300), true, shape, astrometry.AstrometryConfig()
    )
    assert fit.wcs.sip is None
    assert fit.rms_arcsec == pytest.approx(0.05 * np.sqrt(2) * synthetic.PIXEL_SCALE, rel=0.2)
