"""Detection and measurement against the synthetic truth."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from scipy import spatial

from shutterline.processing import characterize, detection, psf
from tests.unit.processing import synthetic

COLUMNS = [
    "x", "y", "flux", "flux_err", "ap_flux", "ap_flux_err", "a", "b", "theta", "ixx", "iyy",
    "ixy", "peak", "flags", "is_saturated", "extendedness",
]  # fmt: skip


def _truth_match(sources: Table, stars: Table) -> tuple[np.ndarray, np.ndarray]:
    tree = spatial.cKDTree(np.column_stack([sources["x"], sources["y"]]))
    dist, idx = tree.query(np.column_stack([stars["x"], stars["y"]]), distance_upper_bound=1.5)
    found = np.isfinite(dist)
    return found, idx


def test_catalogue_has_the_contract_columns(
    characterized: characterize.CharacterizeResult,
) -> None:
    assert set(COLUMNS) <= set(characterized.sources.colnames)


def test_bright_stars_detected_and_centred(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    stars = scene.stars
    ny, nx = scene.config.shape
    inside = (stars["x"] > 5) & (stars["x"] < nx - 5) & (stars["y"] > 5) & (stars["y"] < ny - 5)
    bright = stars[inside & (stars["flux_e"] > 5000) & ~stars["saturated"]]
    found, idx = _truth_match(characterized.sources, bright)
    assert found.mean() > 0.95
    src = characterized.sources[idx[found]]
    err = np.hypot(src["x"] - bright["x"][found], src["y"] - bright["y"][found])
    # A 5000 e- star on 800 e- sky has centroid noise ~0.05 px; brighter ones far less.
    assert np.median(err) < 0.05


def test_psf_fluxes_unbiased_for_bright_stars(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    src = characterized.sources
    found, idx = _truth_match(src, scene.stars)
    sel = src[idx[found]]
    truth = scene.stars[found]
    ok = (sel["flags"] == 0) & (sel["snr"] > 100)
    ratio = sel["flux"][ok] / truth["flux_e"][ok]
    assert ok.sum() > 30
    assert abs(np.median(ratio) - 1.0) < 0.01
    # Errors: the scatter of bright-star ratios is of the size the errors claim (+ PSF floor).
    pull = (sel["flux"][ok] - truth["flux_e"][ok]) / sel["flux_err"][ok]
    assert 0.5 < 1.4826 * np.median(np.abs(pull - np.median(pull))) < 3.0


def test_saturated_stars_flagged(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    sat = scene.stars[scene.stars["saturated"]]
    assert len(sat) >= 2
    found, idx = _truth_match(characterized.sources, sat)
    assert found.sum() >= 1
    assert np.all(characterized.sources["is_saturated"][idx[found]])
    assert np.all(characterized.sources["flags"][idx[found]] & detection.SourceFlag.SATURATED)


def test_extendedness_separates_stars_from_galaxies(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    src = characterized.sources
    found, idx = _truth_match(src, scene.stars)
    star_rows = src[idx[found]]
    bright_stars = star_rows[(star_rows["snr"] > 50) & (star_rows["flags"] == 0)]
    assert np.mean(bright_stars["extendedness"] == 0.0) > 0.95
    others = np.ones(len(src), bool)
    others[idx[found]] = False
    bright_others = src[others & (src["snr"] > 50) & (src["flags"] == 0)]
    # What is bright, clean and not a star is one of the rendered galaxies.
    assert len(bright_others) > 10
    assert np.mean(bright_others["extendedness"] == 1.0) > 0.8


def test_psf_fluxes_exact_model_known_positions() -> None:
    rng = np.random.default_rng(9)
    shape = (300, 300)
    fwhm = 3.5
    g = np.mgrid[-15:16, -15:16].astype(np.float64)
    kernel = synthetic._profile(g[1], g[0], fwhm, None, 0.0)
    model = psf.PsfModel((kernel / kernel.sum())[None], 0, (150.0, 150.0), (150.0, 150.0), fwhm, 1)
    x = rng.uniform(20, 280, 40)
    y = rng.uniform(20, 280, 40)
    flux = rng.uniform(1e4, 1e5, 40)
    image = np.zeros(shape, np.float32)
    cfg = synthetic.SceneConfig(moffat_beta=None, fwhm_arcsec=fwhm * synthetic.PIXEL_SCALE)
    synthetic._render_stars(image, x, y, flux, cfg)
    noise = 5.0
    image += rng.normal(0, noise, shape).astype(np.float32)
    var = np.full(shape, noise**2, np.float32)
    got, err, flags = detection.psf_fluxes(image, var, np.zeros(shape, bool), x, y, model)
    # Blends among 40 stars on 300 x 300 pixels: compare the median, and the errors' size.
    assert np.median(got / flux) == pytest.approx(1.0, abs=0.003)
    assert np.median(err) == pytest.approx(noise * np.sqrt(4 * np.pi) * fwhm / 2.3548, rel=0.1)
    assert not flags.any()


@pytest.mark.parametrize("fwhm", [3.04, 7.6])
def test_detection_complete_at_snr_10_and_clean_on_noise(fwhm: float) -> None:
    rng = np.random.default_rng(12)
    shape, noise, n = (1024, 1024), 10.0, 80
    x, y = rng.uniform(30, 994, n), rng.uniform(30, 994, n)
    # PSF signal-to-noise 10 for a Gaussian PSF on flat noise.
    flux = np.full(n, 10.0 * noise * np.sqrt(4 * np.pi) * fwhm / 2.3548)
    image = rng.normal(0, noise, shape).astype(np.float32)
    cfg = synthetic.SceneConfig(moffat_beta=None, fwhm_arcsec=fwhm * synthetic.PIXEL_SCALE)
    synthetic._render_stars(image, x, y, flux, cfg)
    var = np.full(shape, noise**2, np.float32)
    bad = np.zeros(shape, bool)
    found = detection.detect(image, var, bad)
    dist, _ = spatial.cKDTree(np.column_stack([found["x"], found["y"]])).query(
        np.column_stack([x, y])
    )
    assert np.mean(dist < 3) > 0.9
    pure = rng.normal(0, noise, shape).astype(np.float32)
    assert len(detection.detect(pure, var, bad)) == 0
