"""Each analysis measure recovers a known value injected into a synthetic exposure.

Scenes from `tests.unit.processing.synthetic` (seeded): stars rendered with a known PSF,
a known calibration (``njy_per_unit`` 0.8, 30 s, so the zero point is
``31.4 - 2.5 log10(0.8 * 30) = 27.9495``), a known sky (800 e + 6 e read noise).
Tolerances are sized to the scatter of these seeds and say why.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from shutterline.analysis import depth, diffquality, photometry, psfmap, timing
from shutterline.processing import calibrate, characterize
from tests.unit.processing import synthetic

_ZP = 31.4 - 2.5 * np.log10(0.8 * 30.0)


def _moments_scene(fwhm: float, e1: float, n: int = 40, seed: int = 0) -> np.ndarray:
    """``(n, 31, 31)`` noisy Gaussian stars of FWHM ``fwhm`` px and distortion ``e1``."""
    rng = np.random.default_rng(seed)
    g = np.arange(31) - 15.0
    sigma = fwhm / 2.3548
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-0.5, 0.5, 2)
        x, y = g[None, :] - dx, g[:, None] - dy
        prof = np.exp(-0.5 * (x**2 * (1 - e1) + y**2 * (1 + e1)) / sigma**2)
        out.append(1e5 * prof / prof.sum() + rng.normal(0, 5.0, prof.shape))
    return np.array(out)


@pytest.mark.parametrize(("fwhm", "e1"), [(3.0, 0.0), (5.0, 0.1), (8.0, -0.2)])
def test_adaptive_moments_recover_size_and_shape(fwhm: float, e1: float) -> None:
    stack = _moments_scene(fwhm, e1)
    ixx, iyy, ixy, ok = psfmap.adaptive_moments(stack, np.ones(stack.shape, bool), 2.0)
    assert ok.all()
    size = 2.3548 * (ixx * iyy - ixy**2) ** 0.25
    # Stamps at signal-to-noise ~ 700: 1 % in size, 0.01 in e1 per star on average.
    # The stretch keeps sigma_x sigma_y = sigma^2 / sqrt(1 - e1^2): the determinant radius.
    assert np.median(size) == pytest.approx(fwhm / (1 - e1**2) ** 0.25, rel=0.01)
    assert np.median((ixx - iyy) / (ixx + iyy)) == pytest.approx(e1, abs=0.01)
    assert np.median(np.abs(ixy / (ixx + iyy))) < 0.01


@pytest.fixture(scope="module")
def gaussian_scene() -> tuple[synthetic.Scene, calibrate.CalibrateResult]:
    """A Gaussian-PSF scene (FWHM 1.2 arcsec, e1 = 0.08), characterized and calibrated."""
    cfg = synthetic.SceneConfig(
        seed=5, moffat_beta=None, fwhm_arcsec=1.2, ellipticity=0.08, n_stars=600
    )
    scene = synthetic.make_scene(cfg)
    char = characterize.characterize(scene.exposure)
    cal = calibrate.calibrate(char.exposure, char.sources, scene.refcat, "r")
    return scene, cal


def test_psf_map_on_a_scene_with_known_psf(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    _, cal = gaussian_scene
    image = cal.exposure
    pmap = psfmap.measure_psf_map(image.image, image.mask, cal.sources, 4.5, (4, 2))
    truth = 1.2 / synthetic.PIXEL_SCALE
    assert pmap.n_stars > 50
    assert pmap.fwhm_px == pytest.approx(truth, rel=0.03)
    # The distortion is 0.08; noise adds a little to |e| (always positive).
    assert pmap.e1 == pytest.approx(0.08, abs=0.015)
    assert pmap.ellipticity == pytest.approx(0.08, abs=0.025)
    assert pmap.cell_fwhm_px.shape == (4, 2) and pmap.cell_count.sum() == pmap.n_stars
    assert np.nanmax(np.abs(pmap.cell_fwhm_px / truth - 1)) < 0.08


def test_psf_map_follows_a_gradient() -> None:
    cfg = synthetic.SceneConfig(seed=8, moffat_beta=None, fwhm_gradient=0.3, n_stars=800)
    scene = synthetic.make_scene(cfg)
    char = characterize.characterize(scene.exposure)
    pmap = psfmap.measure_psf_map(
        char.exposure.image, char.exposure.mask, char.sources, 4.0, (4, 1)
    )
    rows = pmap.cell_fwhm_px[:, 0]
    assert np.all(np.diff(rows) > 0), rows  # FWHM grows along y, as rendered
    truth = 1.0 / synthetic.PIXEL_SCALE
    assert rows[-1] / rows[0] == pytest.approx((1 + 0.3 * 0.75) / (1 - 0.3 * 0.75), rel=0.1)
    assert pmap.fwhm_px == pytest.approx(truth, rel=0.05)


def test_zero_point_and_astrometry_against_the_reference(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    scene, cal = gaussian_scene
    result = photometry.measure_calibration(cal.sources, scene.refcat, "r", 30.0)
    # 1 % reference errors and PSF-flux noise: the median of ~100 stars to 0.01 mag.
    assert result.zero_point == pytest.approx(_ZP, abs=0.01)
    assert 0.005 < result.zero_point_scatter < 0.05
    assert result.n_photometric > 50
    # Positions are exact in the reference catalogue; centroids of bright stars good to
    # a few hundredths of a pixel (0.263 arcsec): tens of milliarcseconds.
    assert 1.0 < result.astrom_scatter_mas < 60.0
    assert result.n_astrometric >= result.n_photometric


def test_astrometric_scatter_grows_with_injected_position_noise(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    scene, cal = gaussian_scene
    base = photometry.measure_calibration(cal.sources, scene.refcat, "r", 30.0)
    rng = np.random.default_rng(1)
    noisy = Table(scene.refcat, copy=True)
    sigma_deg = 0.2 / 3600.0  # 200 mas per axis
    noisy["dec"] = noisy["dec"] + rng.normal(0, sigma_deg, len(noisy))
    noisy["ra"] = noisy["ra"] + rng.normal(0, sigma_deg, len(noisy)) / np.cos(
        np.radians(noisy["dec"])
    )
    result = photometry.measure_calibration(cal.sources, noisy, "r", 30.0)
    expected = np.hypot(np.hypot(200.0, 200.0), base.astrom_scatter_mas)
    assert result.astrom_scatter_mas == pytest.approx(expected, rel=0.15)


def test_calibration_names_a_missing_band(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    scene, cal = gaussian_scene
    with pytest.raises(ValueError, match="no z_flux"):
        photometry.measure_calibration(cal.sources, scene.refcat, "z", 30.0)


def test_sky_and_depth_of_a_known_scene(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    _, cal = gaussian_scene
    exp = cal.exposure
    fwhm = 1.2 / synthetic.PIXEL_SCALE
    d = depth.measure_depth(exp.variance, exp.mask, None, fwhm, _ZP, 30.0, synthetic.PIXEL_SCALE)
    # Variance = sky (800 e, +-1.5 % gradient) + 36 e read noise, as rendered.
    assert d.sky_e == pytest.approx(836.0, rel=0.01)
    sigma_e = np.sqrt(4 * np.pi * (fwhm / 2.3548) ** 2 * 836.0)
    assert d.limiting_mag == pytest.approx(_ZP - 2.5 * np.log10(5 * sigma_e / 30.0), abs=0.01)
    # A PSF image of the same Gaussian gives the same noise-equivalent area.
    g = np.arange(41) - 20.0
    psf = np.exp(-0.5 * (g[None] ** 2 + g[:, None] ** 2) / (fwhm / 2.3548) ** 2)
    assert depth.noise_equivalent_area(psf, float("nan")) == pytest.approx(d.nea_px, rel=0.01)


def test_difference_quality_sees_residuals_and_dipoles(
    gaussian_scene: tuple[synthetic.Scene, calibrate.CalibrateResult],
) -> None:
    _, cal = gaussian_scene
    exp = cal.exposure
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, exp.shape).astype(np.float32) * np.sqrt(exp.variance)
    clean = (noise, exp.variance, np.zeros(exp.shape, np.int32))
    dia = Table({"is_dipole": np.array([True, False, False, False])})
    args = (cal.sources, dia, 1.2 / synthetic.PIXEL_SCALE, 0.01, 200.0)
    good = diffquality.measure_diff_quality(exp.image, 1.0, clean, 1.0, *args)
    assert good.n_bright > 10
    assert good.residual_chi_sigma == pytest.approx(1.0, abs=0.3)
    assert abs(good.residual_fraction) < 0.005
    assert good.dipole_fraction == 0.25 and good.dia_count == 4
    assert good.dia_expected == pytest.approx(2.0) and good.dia_ratio == pytest.approx(2.0)
    # Leave 5 % of every star behind: the fraction says 5 %, the chi spread grows.
    left = (noise + 0.05 * (exp.image - np.median(exp.image)), exp.variance, clean[2])
    bad = diffquality.measure_diff_quality(exp.image, 1.0, left, 1.0, *args)
    assert bad.residual_fraction == pytest.approx(0.05, abs=0.01)
    assert bad.residual_chi_sigma > 3 * good.residual_chi_sigma


def test_visit_timing_takes_the_slowest_detector() -> None:
    records = [
        {
            "status": "succeeded",
            "criticalPathSeconds": c,
            "lastAlertAt": f"2026-03-01T03:14:{s:02d}.000Z",
            "stages": {"isr": c / 4, "subtract": c / 2},
            "telemetry": {"cpu_s": 10.0 * c, "peak_rss_bytes": 1e9 * c},
        }
        for c, s in ((8.0, 20), (12.0, 35))
    ]
    close = 1772334765.0  # 2026-03-01T03:12:45Z
    each = [timing.detector_timing(r, close) for r in records]
    assert [e["latencySeconds"] for e in each] == [95.0, 110.0]
    visit = timing.visit_timing(each)
    assert visit["latencySeconds"] == 110.0 and visit["criticalPathSeconds"] == 12.0
    assert visit["stages"]["subtract"] == {"median": 5.0, "max": 6.0}
    assert visit["cpuSeconds"] == 200.0 and visit["peakRssBytes"] == 12e9
