"""Stamp selection's brightest pixel per cell against the transposed-copy code it replaced."""

from __future__ import annotations

import numpy as np

from shutterline.differencing import psfmatch


def _slow_cell_argmax(score: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's pixels gathered into one row (a transposed copy), its first maximum."""
    ny, nx = score.shape
    by, bx = ny // block, nx // block
    cells = score.reshape(by, block, bx, block).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    arg = cells.argmax(axis=2)
    cy = (np.arange(by)[:, None] * block + arg // block).ravel()
    cx = (np.arange(bx)[None, :] * block + arg % block).ravel()
    return cy, cx


def test_cell_argmax_gives_the_first_maximum_of_every_cell() -> None:
    rng = np.random.default_rng(3)
    block = 16
    cases = {
        "noise": rng.normal(size=(96, 64)),
        "ties": np.round(rng.normal(size=(96, 64)) * 2.0),  # many equal maxima in a cell
        "masked": np.full((96, 64), -np.inf),  # all masked but one pixel
    }
    cases["masked"][37, 21] = 1.0
    for name, score in cases.items():
        score = score.astype(np.float32)
        got = psfmatch._cell_argmax(score.reshape(6, block, 4, block))
        want = _slow_cell_argmax(score, block)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=name)
