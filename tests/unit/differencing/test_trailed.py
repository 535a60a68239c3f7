"""The trailed-source model fit: length, angle and flux recovered, with honest errors."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import measurement, trailed

SHAPE = (96, 96)
SIGMA = 1.8  # PSF width, pixels
NOISE = 10.0  # per pixel


def _trail_image(
    rng: np.random.Generator, length: float, theta: float, flux: float
) -> measurement.Cutter:
    # Rendered by summing many PSFs along the segment (not with the model being tested).
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float64)
    img = np.zeros(SHAPE)
    steps = ((np.arange(400) + 0.5) / 400 - 0.5) * length  # midpoints: exactly L long
    for t in steps:
        x0, y0 = 48.3 + t * np.cos(theta), 47.6 + t * np.sin(theta)
        img += np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / SIGMA**2)
    img *= flux / img.sum()
    img += rng.normal(0.0, NOISE, SHAPE)
    var = np.full(SHAPE, NOISE**2, np.float32)
    return measurement.Cutter(img.astype(np.float32), var, np.zeros(SHAPE, np.int32))


@pytest.mark.parametrize(("length", "theta"), [(20.0, 0.5), (9.0, 2.6)])
def test_length_angle_and_flux_recovered_within_their_errors(length: float, theta: float) -> None:
    rng = np.random.default_rng(3)
    pulls: list[list[float]] = []
    for _ in range(12):
        cut = _trail_image(rng, length, theta, 40000.0)
        fit = trailed.fit_trail(cut, SIGMA, 47.0, 48.0, 30000.0, length * 0.6, theta + 0.2)
        assert fit.ok and not fit.edge and fit.ndata > 100
        d_theta = (fit.theta - theta + np.pi / 2) % np.pi - np.pi / 2
        pulls.append([
            (fit.length - length) / fit.length_err, d_theta / fit.theta_err,
            (fit.flux - 40000.0) / fit.flux_err, (fit.x - 48.3) / fit.x_err,
        ])  # fmt: skip
        dof = fit.ndata - 5
        assert abs(fit.chi2 - dof) < 5 * np.sqrt(2 * dof)
    rms = np.sqrt(np.mean(np.square(pulls), axis=0))
    assert np.all(rms < 1.6) and np.all(rms > 0.4), rms


def test_a_point_source_has_no_length() -> None:
    cut = _trail_image(np.random.default_rng(4), 0.0, 0.0, 40000.0)
    fit = trailed.fit_trail(cut, SIGMA, 47.6, 48.3, 40000.0)
    assert fit.ok and fit.length < 2.0 and fit.flux == pytest.approx(40000.0, rel=0.05)


def test_a_stamp_with_too_few_pixels_fails_with_the_flag() -> None:
    cut = _trail_image(np.random.default_rng(5), 10.0, 0.0, 40000.0)
    masked = measurement.Cutter(
        cut.image, cut.variance, np.full(SHAPE, int(measurement.FIT_BAD), np.int32)
    )
    fit = trailed.fit_trail(masked, SIGMA, 47.6, 48.3, 40000.0)
    assert not fit.ok and fit.edge and fit.ndata == 0 and np.isnan(fit.length)


@pytest.mark.slow
def test_dia_sources_carry_the_trail_fit_in_sky_units() -> None:
    from shutterline.differencing import dia, subtract, warp

    from . import synth

    rng = np.random.default_rng(8)
    shape = (320, 320)
    field = synth.make_field(rng, shape, n_stars=40, flux_range=(2e3, 2e4))
    fwhm_px = 1.0 / synth.SCI_SCALE
    point = (np.array([80.0]), np.array([240.0]), np.array([30000.0]))
    science = synth.make_science(rng, field, fwhm_px, extra=point)
    # A fast asteroid: 30 px at 30 degrees from +x, 60000 nJy spread along it.
    t = ((np.arange(300) + 0.5) / 300 - 0.5) * 30.0
    a = np.radians(30.0)
    streak = synth.render(shape, 200 + t * np.cos(a), 120 + t * np.sin(a),
                          np.full(t.size, 60000.0 / 2.0 / t.size), fwhm_px)  # fmt: skip
    science.image += streak + rng.normal(size=shape).astype(np.float32) * np.sqrt(streak)
    science.variance += streak
    patches = synth.make_template_patches(rng, field, 0.8)
    template = warp.warp_patches(patches, field.wcs, shape)
    table = dia.detect_and_measure(
        subtract.subtract(science, template).difference, science, template
    )
    assert not np.asarray(table["trail_flag"]).any()
    for name in ("trail_length", "trail_length_err", "trail_angle", "trail_angle_err",
                 "trail_flux", "trail_chi2", "trail_ra", "trail_dec_err"):  # fmt: skip
        assert np.isfinite(np.asarray(table[name], float)).all(), name
    d = np.hypot(np.asarray(table["x"]) - 200.0, np.asarray(table["y"]) - 120.0)
    row = table[int(np.argmin(d))]
    assert row["trail_length"] == pytest.approx(
        30.0 * synth.SCI_SCALE, abs=3 * row["trail_length_err"] + 0.05
    )
    # +x is west and +y north on this sky (rotated 0.4 degrees): 30 degrees is a bearing of 120.
    assert row["trail_angle"] == pytest.approx(120.0 - 0.4, abs=1.0)
    assert row["trail_flux"] == pytest.approx(60000.0, rel=0.05)
    point_row = table[
        int(np.argmin(np.hypot(np.asarray(table["x"]) - 80.0, np.asarray(table["y"]) - 240.0)))
    ]
    assert point_row["trail_length"] < 0.4


def test_analytic_jacobian_fit_matches_the_finite_difference_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference is the fit as it was: the same least squares with scipy's forward
    # differences for the Jacobian (six model evaluations a step instead of one).
    rng = np.random.default_rng(8)
    cases = [(0.0, 0.0), (4.0, 1.2), (9.0, 2.6), (20.0, 0.5), (30.0, -0.9)]
    cuts = [(_trail_image(rng, length, theta, 40000.0), length, theta) for length, theta in cases]
    fits = [
        trailed.fit_trail(c, SIGMA, 47.0, 48.0, 30000.0, 0.6 * ln, th + 0.2) for c, ln, th in cuts
    ]
    real = trailed.optimize.least_squares
    monkeypatch.setattr(trailed.optimize, "least_squares", lambda *a, jac=None, **k: real(*a, **k))
    for fit, (cut, ln, th) in zip(fits, cuts, strict=True):
        ref = trailed.fit_trail(cut, SIGMA, 47.0, 48.0, 30000.0, 0.6 * ln, th + 0.2)
        assert fit.ok and ref.ok and fit.ndata == ref.ndata
        assert fit.chi2 == pytest.approx(ref.chi2, rel=1e-4)
        # A point source's length and angle are degenerate (the model is even in L at 0):
        # both fits give none, with an error that means nothing.
        names = ("flux", "x", "y", "length") if ln else ("flux", "x", "y")
        for name in names:
            err = getattr(ref, f"{name}_err")
            assert abs(getattr(fit, name) - getattr(ref, name)) < 0.02 * err, name
            assert getattr(fit, f"{name}_err") == pytest.approx(err, rel=0.02), name
        if not ln:
            assert fit.length < 0.1 and ref.length < 0.1
            continue
        d_theta = (fit.theta - ref.theta + np.pi / 2) % np.pi - np.pi / 2
        assert abs(d_theta) < 0.02 * ref.theta_err
        assert fit.theta_err == pytest.approx(ref.theta_err, rel=0.02)
