"""run_isr: bias, flat, variance, defects, saturation and calibration checks."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline import exceptions
from shutterline.images import Exposure, MaskBit
from shutterline.isr import run_isr
from tests.unit.isr import synth

SHAPE = (256, 200)
SKY = 600.0
BAD_COLUMN = 57


def _calibs(rng: np.random.Generator) -> tuple[Exposure, Exposure]:
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    bias = (3.0 + 4.0 * xx / SHAPE[1] + rng.normal(0, 0.3, SHAPE)).astype(np.float32)
    bias[:, 150] += 80.0  # a warm column the master bias removes
    flat = (1.0 + 0.08 * np.sin(xx / 40.0) * np.cos(yy / 60.0)).astype(np.float32)
    flat[:, BAD_COLUMN] = 0.3  # a dead column: the flat knows it is bad
    flat_mask = np.zeros(SHAPE, np.int32)
    flat_mask[:, BAD_COLUMN] = MaskBit.BAD
    return (
        Exposure(
            bias,
            np.zeros(SHAPE, np.int32),
            np.full(SHAPE, 0.1, np.float32),
            metadata={"BUNIT": "electron", "DETECTOR": 7},
        ),
        Exposure(
            flat,
            flat_mask,
            np.zeros(SHAPE, np.float32),
            metadata={"BUNIT": "dimensionless", "DETECTOR": 7, "BAND": "g"},
        ),
    )


def _truth(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = rng.uniform(15, SHAPE[1] - 15, 12)
    ys = rng.uniform(15, SHAPE[0] - 15, 12)
    xs[np.abs(xs - BAD_COLUMN) < 8] += 16
    return SKY + synth.gaussian_stars(SHAPE, xs, ys, np.full(12, 2e4), 4.0), xs, ys


def _raw(truth: np.ndarray, bias: Exposure, flat: Exposure, rng: np.random.Generator) -> object:
    return synth.make_raw(truth * flat.image + bias.image, synth.default_layout(SHAPE[1]), rng)


def test_recovers_flux_with_honest_variance() -> None:
    rng = np.random.default_rng(1)
    bias, flat = _calibs(rng)
    truth, xs, ys = _truth(rng)
    exp = run_isr(_raw(truth, bias, flat, rng), bias, flat)
    assert exp.metadata["BUNIT"] == "electron"
    good = exp.mask == 0
    resid = (exp.image - truth)[good]
    # Bias, gain and flat recovered: the mean residual is zero within 5 of its errors.
    assert abs(float(resid.mean())) < 5 * float(resid.std()) / np.sqrt(resid.size)
    # The variance plane predicts the scatter (it is estimated from the noisy pixels, which
    # biases the mean of chi by about -1/(2 sigma), so only the width is checked).
    chi = resid / np.sqrt(exp.variance[good])
    assert float(chi.std()) == pytest.approx(1.0, abs=0.03)
    # Star fluxes in a 6-pixel-radius aperture, sky known: within 4 sigma of the truth.
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    for x, y in zip(xs, ys, strict=True):
        ap = (xx - x) ** 2 + (yy - y) ** 2 < 36
        measured = float((exp.image[ap] - SKY).sum())
        expected = float((truth[ap] - SKY).sum())
        assert abs(measured - expected) < 4 * float(np.sqrt(exp.variance[ap].sum()))


def test_defects_masked_and_interpolated() -> None:
    rng = np.random.default_rng(2)
    bias, flat = _calibs(rng)
    truth = np.full(SHAPE, SKY)
    exp = run_isr(_raw(truth, bias, flat, rng), bias, flat)
    column = exp.mask[:, BAD_COLUMN]
    assert ((column & MaskBit.BAD) != 0).all() and ((column & MaskBit.INTRP) != 0).all()
    assert float(np.median(exp.image[:, BAD_COLUMN])) == pytest.approx(SKY, abs=3.0)
    assert exp.metadata["N_BAD"] == SHAPE[0]


def test_calibrations_not_modified() -> None:
    rng = np.random.default_rng(3)
    bias, flat = _calibs(rng)
    before = (bias.image.copy(), flat.image.copy(), flat.mask.copy())
    run_isr(_raw(np.full(SHAPE, SKY), bias, flat, rng), bias, flat)
    for a, b in zip(before, (bias.image, flat.image, flat.mask), strict=True):
        np.testing.assert_array_equal(a, b)


def test_saturated_star_and_bleed_trail_masked_not_cr() -> None:
    rng = np.random.default_rng(4)
    bias, flat = _calibs(rng)
    truth = np.full(SHAPE, SKY)
    truth += synth.gaussian_stars(SHAPE, np.array([120.0]), np.array([128.0]), np.array([3e6]), 4.0)
    truth[100:160, 120] = 3e5  # a bleed trail: full-well charge spilling along the column
    exp = run_isr(_raw(truth, bias, flat, rng), bias, flat)
    sat = (exp.mask & MaskBit.SAT) != 0
    assert sat[100:160, 120].all()
    # Grown beyond the trail: 3 pixels along the column, 1 across.
    assert sat[97, 120] and sat[162, 120] and sat[130, 119] and sat[130, 121]
    assert not sat[90, 120] and not sat[130, 110]
    assert int(((exp.mask & MaskBit.CR) != 0).sum()) == 0


def test_cosmic_ray_flagged_through_run_isr() -> None:
    rng = np.random.default_rng(5)
    bias, flat = _calibs(rng)
    truth, _, _ = _truth(rng)
    truth[40, 30] += 3000.0
    truth[41, 31] += 2000.0
    exp = run_isr(_raw(truth, bias, flat, rng), bias, flat)
    cr = (exp.mask & MaskBit.CR) != 0
    assert cr[40, 30] and cr[41, 31]
    assert abs(float(exp.image[40, 30]) - SKY) < 5 * np.sqrt(SKY)


@pytest.mark.parametrize(
    ("which", "change", "message"),
    [
        ("bias", {"shape": (SHAPE[0], SHAPE[1] - 2)}, "bias shape"),
        ("flat", {"shape": (SHAPE[0] + 2, SHAPE[1])}, "flat shape"),
        ("bias", {"BUNIT": "adu"}, "bias BUNIT"),
        ("flat", {"BUNIT": "electron"}, "flat BUNIT"),
        ("flat", {"BAND": "r"}, "flat BAND"),
        ("bias", {"DETECTOR": 8}, "bias DETECTOR"),
    ],
)
def test_calibration_mismatch_is_permanent(which: str, change: dict, message: str) -> None:
    rng = np.random.default_rng(6)
    bias, flat = _calibs(rng)
    raw = _raw(np.full(SHAPE, SKY), bias, flat, rng)
    calib = bias if which == "bias" else flat
    if "shape" in change:
        blank = Exposure.blank(change["shape"])
        blank.metadata = dict(calib.metadata)
        calib = blank
    else:
        calib.metadata.update(change)
    pair = (calib, flat) if which == "bias" else (bias, calib)
    with pytest.raises(exceptions.PermanentError, match=message):
        run_isr(raw, *pair)
