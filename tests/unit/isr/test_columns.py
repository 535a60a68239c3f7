"""Columns that misbehave in the science frame only: found, flagged BAD and interpolated."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.images import MaskBit
from shutterline.isr import _blockmedian, columns, isr
from tests.unit.isr import synth

SHAPE = (1024, 200)
SKY = 800.0


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 60
    xs, ys = rng.uniform(5, SHAPE[1] - 5, n), rng.uniform(5, SHAPE[0] - 5, n)
    stars = synth.gaussian_stars(SHAPE, xs, ys, rng.uniform(2e3, 2e5, n), 4.0)
    return SKY + stars


def _flat_and_bias(shape: tuple[int, int]) -> tuple[object, object]:
    from shutterline.images import Exposure

    bias = Exposure(
        np.zeros(shape, np.float32), np.zeros(shape, np.int32), np.zeros(shape, np.float32),
        metadata={"BUNIT": "electron", "DETECTOR": 7},
    )  # fmt: skip
    flat = Exposure(
        np.ones(shape, np.float32), np.zeros(shape, np.int32), np.zeros(shape, np.float32),
        metadata={"BUNIT": "dimensionless", "DETECTOR": 7, "BAND": "g"},
    )  # fmt: skip
    return bias, flat


def test_clean_frame_has_no_misbehaving_columns() -> None:
    img = _scene().astype(np.float32)
    rng = np.random.default_rng(1)
    img += rng.normal(0, np.sqrt(img)).astype(np.float32)
    var = img.copy()
    assert columns.misbehaving_columns(img, var, np.zeros(SHAPE, np.int32)) == []


@pytest.mark.parametrize(("kind", "first_row"), [("dead", 0), ("dead", 300), ("hot", 555)])
def test_late_column_is_flagged_and_interpolated(kind: str, first_row: int) -> None:
    truth = _scene()
    electrons = truth.copy()
    col = 83
    if kind == "dead":
        electrons[first_row:, col] *= 0.03
    else:
        electrons[first_row:, col] += 10 * SKY
    rng = np.random.default_rng(2)
    raw = synth.make_raw(electrons, synth.default_layout(SHAPE[1]), rng)
    bias, flat = _flat_and_bias(SHAPE)
    exp = isr.run_isr(raw, bias, flat)
    bad_rows = np.flatnonzero(exp.mask[:, col] & MaskBit.BAD)
    assert exp.metadata["N_BADCOL"] == 1
    # Every defective row is flagged; at most one block of good rows above it with it.
    assert bad_rows.min() <= first_row and bad_rows.max() == SHAPE[0] - 1
    assert first_row - bad_rows.min() <= 2 * columns.ColumnConfig().block
    assert not (exp.mask[:, [col - 2, col + 2]] & MaskBit.BAD).any()
    # Interpolated back to the sky between the stars.
    resid = exp.image[first_row:, col] - truth[first_row:, col]
    assert abs(float(np.median(resid))) < 0.05 * SKY


def test_switch_off() -> None:
    electrons = _scene()
    electrons[:, 50] *= 0.03
    raw = synth.make_raw(electrons, synth.default_layout(SHAPE[1]), np.random.default_rng(3))
    bias, flat = _flat_and_bias(SHAPE)
    exp = isr.run_isr(raw, bias, flat, isr.IsrConfig(find_columns=False))
    assert exp.metadata["N_BADCOL"] == 0 and not (exp.mask[:, 50] & MaskBit.BAD).any()


def test_block_medians_match_the_slow_reference() -> None:
    """The sort-based block medians equal ``np.nanmedian`` (the code they replaced), also for
    blocks with an even count, a single usable pixel, none, or NaN pixels marked usable."""
    rng = np.random.default_rng(5)
    image = rng.normal(800.0, 30.0, (512, 37)).astype(np.float32)
    usable = rng.random(image.shape) > 0.3
    usable[:128, 3] = False  # a block with nothing usable
    usable[128:256, 4] = False
    usable[130, 4] = True  # one usable pixel
    usable[256:384, 5] = False
    usable[300:302, 5] = True  # two: an even count
    image[400, 6] = np.nan  # NaN counts as missing whatever the mask says
    fast = columns._block_medians(image, usable, 128)
    blocks = np.where(usable, image, np.nan).reshape(4, 128, 37)
    with pytest.warns(RuntimeWarning):
        slow = np.nanmedian(blocks, axis=1).astype(np.float64)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, equal_nan=True)
    assert np.isnan(fast[0, 3]) and fast[1, 4] == image[130, 4]


@pytest.mark.parametrize(
    ("shape", "block", "dtype"),
    [((1024, 200), 128, np.float32), ((300, 37), 128, np.float32), ((90, 20), 128, np.float32),
     ((257, 16), 8, np.float64), ((64, 9), 7, np.float32)],
)  # fmt: skip
def test_block_medians_equal_the_sorting_reference(shape, block, dtype) -> None:
    """The compiled selection gives the reference's bytes: odd and even counts, masked and NaN
    pixels, blocks with no usable pixel (NaN), ties, rows past the last whole block."""
    rng = np.random.default_rng(shape[0] * shape[1] + block)
    image = rng.normal(SKY, 30.0, shape).astype(dtype)
    image[rng.random(shape) < 0.2] = np.round(image[rng.random(shape) < 0.2].mean())  # ties
    image[rng.random(shape) < 0.01] = np.nan
    usable = rng.random(shape) > 0.3
    usable[:, 3] = False  # a column with no usable pixel in any block
    usable[: min(block, shape[0]), 5] = False  # one block of one column
    usable[:, 7] = rng.random(shape[0]) > 0.97  # few usable: odd and even counts, some none
    image[:, 8] = 0.0  # a dead column: every value tied
    with np.errstate(invalid="ignore"):
        expected = columns._block_medians_reference(image, usable, block)
    got = columns._block_medians(image, usable, block)
    assert got.dtype == expected.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[:, 3]).all()


def test_block_medians_bracketed_select_and_its_fallback_give_the_reference() -> None:
    """Selecting near the column before's median, and the full select it falls back to when
    the middle values are not there: level steps between columns, a run of tied (dead)
    columns that shrinks the bracket, a hot column, a few-sigma gradient along the rows."""
    rng = np.random.default_rng(11)
    shape = (640, 900)
    image = rng.normal(SKY, 30.0, shape) + np.linspace(0.0, 90.0, shape[0])[:, None]
    image[:, 100:400] = 0.0  # dead columns: every value tied
    image[:, 450] += 5e4  # hot
    image[:, 600::7] -= 400.0  # steps to and from every seventh column
    image = image.astype(np.float32)
    usable = rng.random(shape) > 0.05
    with np.errstate(invalid="ignore"):
        expected = columns._block_medians_reference(image, usable, 128)
    np.testing.assert_array_equal(columns._block_medians(image, usable, 128), expected)


@pytest.mark.parametrize("nx", [9, 13, 200])
def test_neighbour_medians_equal_scipys_median_filter(nx: int) -> None:
    """The compiled neighbours' median gives `ndimage.median_filter`'s bytes (the upper of the
    two middle values, edges repeated): ties, steps, rows narrower than the window."""
    rng = np.random.default_rng(nx)
    values = rng.normal(SKY, 2.0, (5, nx))
    values[1] = np.round(values[1])  # ties
    values[2, nx // 2 :] += 300.0  # a step
    values[3] = 7.0  # all tied
    got = _blockmedian.neighbour_medians(values, 6)
    expected = columns._neighbour_medians_reference(values, 6)
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    nan = np.full((2, nx), np.nan)  # all NaN: the fill level of an all-masked frame
    assert np.isnan(_blockmedian.neighbour_medians(nan, 6)).all()
