"""Master bias and flat: noise, rejection, normalisation, defects, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline import exceptions
from shutterline.calibs import combine, defects, masters
from shutterline.images import Exposure, MaskBit

SHAPE = (512, 256)
READ_NOISE = 7.0


def _structure(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return (2.0 + 3.0 * xx / SHAPE[1] + 1.5 * np.sin(yy / 50.0)).astype(np.float32)


def _bias_frames(rng: np.random.Generator, n: int, structure: np.ndarray) -> list[Exposure]:
    frames = []
    for i in range(n):
        image = (structure + rng.normal(0, READ_NOISE, SHAPE)).astype(np.float32)
        frames.append(
            Exposure(
                image,
                np.zeros(SHAPE, np.int32),
                np.full(SHAPE, READ_NOISE**2, np.float32),
                metadata={"BUNIT": "electron", "DETECTOR": 3, "VISIT": i, "MJD": 61000.0 + i},
            )
        )
    return frames


def _flat_pattern() -> np.ndarray:
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    pattern = 1.0 + 0.08 * np.sin(xx / 30.0) * np.cos(yy / 70.0)
    pattern[:, 128:] *= 1.03  # amplifier B's residual gain difference
    return pattern


def _flat_frames(
    rng: np.random.Generator, n: int, pattern: np.ndarray, bias: Exposure, band: str = "g"
) -> list[Exposure]:
    frames = []
    for i in range(n):
        level = 15000.0 * (1 + 0.3 * i)  # the lamp drifts between exposures
        expected = level * pattern
        image = rng.poisson(expected) + rng.normal(0, READ_NOISE, SHAPE) + bias.image
        frames.append(
            Exposure(
                image.astype(np.float32),
                np.zeros(SHAPE, np.int32),
                (expected + READ_NOISE**2).astype(np.float32),
                metadata={"BUNIT": "electron", "DETECTOR": 3, "BAND": band, "VISIT": 100 + i},
            )
        )
    return frames


def test_bias_noise_drops_as_inverse_sqrt_n() -> None:
    rng = np.random.default_rng(1)
    structure = _structure(rng)
    stds = {}
    for n in (4, 16):
        master = masters.master_bias(_bias_frames(rng, n, structure))
        stds[n] = float((master.image - structure).std())
        assert stds[n] == pytest.approx(READ_NOISE / np.sqrt(n), rel=0.05)
        # The variance plane says the same.
        assert float(np.median(master.variance)) == pytest.approx(READ_NOISE**2 / n, rel=0.02)
        assert master.metadata["BUNIT"] == "electron" and master.metadata["NINPUT"] == n
    assert stds[4] / stds[16] == pytest.approx(2.0, rel=0.08)


def test_outliers_rejected() -> None:
    rng = np.random.default_rng(2)
    structure = _structure(rng)
    frames = _bias_frames(rng, 5, structure)
    hits = rng.integers(0, SHAPE[0] * SHAPE[1], 300)
    for i, idx in enumerate(hits):
        frames[i % 5].image.ravel()[idx] += rng.uniform(200, 20000)  # cosmic rays
    master = masters.master_bias(frames)
    resid = (master.image - structure).ravel()[hits]
    # Without rejection a 200 e hit adds 40 e to a 5-frame mean; with it, noise only.
    assert float(np.abs(resid).max()) < 5 * READ_NOISE / np.sqrt(4)


def test_flat_normalised_and_pattern_recovered() -> None:
    rng = np.random.default_rng(3)
    bias = masters.master_bias(_bias_frames(rng, 5, _structure(rng)))
    pattern = _flat_pattern()
    flat = masters.master_flat(_flat_frames(rng, 5, pattern, bias), bias)
    good = flat.mask == 0
    assert float(np.median(flat.image[good])) == pytest.approx(1.0, abs=1e-6)
    expected = pattern / np.median(pattern)
    chi = (flat.image - expected)[good] / np.sqrt(flat.variance[good])
    assert abs(float(chi.mean())) < 0.05
    assert float(chi.std()) == pytest.approx(1.0, abs=0.08)
    assert flat.metadata["BUNIT"] == "dimensionless" and flat.metadata["BAND"] == "g"
    # The smooth pattern and the amplifier step are not defects.
    assert int((~good).sum()) == 0


def test_defects_found() -> None:
    rng = np.random.default_rng(4)
    structure = _structure(rng)
    structure[:, 40] += 60.0  # hot column
    structure[300, 200] += 500.0  # hot pixel
    bias = masters.master_bias(_bias_frames(rng, 5, structure))
    pattern = _flat_pattern()
    pattern[:, 90] *= 0.5  # dead column
    pattern[256:, 170] *= 0.8  # a column dead half-way up
    pattern[100, 60] *= 0.1  # dead pixel
    flat = masters.master_flat(_flat_frames(rng, 5, pattern, bias), bias)
    bad = (flat.mask & MaskBit.BAD) != 0
    assert bad[:, 40].all() and bad[300, 200] and bad[:, 90].all() and bad[100, 60]
    assert bad[256:, 170].all() and not bad[:200, 170].any()
    expected_count = 2 * SHAPE[0] + SHAPE[0] // 2 + 2
    assert int(bad.sum()) == expected_count
    assert ((bias.mask & MaskBit.BAD) != 0)[:, 40].all()


def test_defect_finders_quiet_on_clean_calibrations() -> None:
    rng = np.random.default_rng(5)
    flat = (_flat_pattern() * (1 + rng.normal(0, 0.005, SHAPE))).astype(np.float32)
    bias = (_structure(rng) + rng.normal(0, 3.0, SHAPE)).astype(np.float32)
    assert int(defects.flat_defects(flat).sum()) == 0
    assert int(defects.bias_defects(bias).sum()) == 0


def test_input_checks() -> None:
    rng = np.random.default_rng(6)
    bias = masters.master_bias(_bias_frames(rng, 3, _structure(rng)))
    with pytest.raises(exceptions.PermanentError, match="no input"):
        masters.master_bias([])
    mixed = _flat_frames(rng, 2, _flat_pattern(), bias) + _flat_frames(
        rng, 1, _flat_pattern(), bias, band="r"
    )
    with pytest.raises(exceptions.PermanentError, match="different bands"):
        masters.master_flat(mixed, bias)
    dark = _flat_frames(rng, 2, np.zeros(SHAPE), bias)
    with pytest.raises(exceptions.PermanentError, match="no usable light"):
        masters.master_flat(dark, bias)
    with pytest.raises(ValueError, match="differ in shape"):
        combine.clipped_mean([np.zeros((2, 2)), np.zeros((3, 2))], [np.ones((2, 2))] * 2)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 16, 17])
def test_stack_median_matches_numpy(n: int) -> None:
    stack = np.random.default_rng(n).normal(0, 1, (n, 7, 9)).astype(np.float32)
    before = stack.copy()
    np.testing.assert_allclose(combine.stack_median(stack), np.median(stack, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(stack, before)
