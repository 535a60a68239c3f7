"""Chebyshev pieces: fit sampled curves on fixed nodes, evaluate them (and their rates) fast.

A piece covers ``[t0, t0 + span]``; time maps to ``x = 2 (t - t0) / span - 1`` in [-1, 1].
Samples are taken at the ``degree + 1`` Chebyshev points of the first kind, where the
interpolating polynomial is near-minimax, so the fit is one fixed matrix product, vectorized
over any number of curves (no least squares per object).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["evaluate", "fit", "nodes"]

FloatArray = npt.NDArray[np.float64]


@functools.cache
def nodes(degree: int) -> FloatArray:
    """The ``degree + 1`` Chebyshev points of the first kind in [-1, 1], ascending."""
    k = np.arange(degree + 1)
    return np.asarray(-np.cos(np.pi * (k + 0.5) / (degree + 1)), dtype=np.float64)


@functools.cache
def _fit_matrix(degree: int) -> FloatArray:
    """``M`` with ``coefficients = samples @ M.T`` for samples at `nodes` (discrete cosine)."""
    x = nodes(degree)
    t = np.polynomial.chebyshev.chebvander(x, degree)  # (nodes, coefficients)
    weights = np.full(degree + 1, 2.0 / (degree + 1))
    weights[0] = 1.0 / (degree + 1)
    return np.asarray(weights[:, None] * t.T, dtype=np.float64)


def fit(samples: FloatArray) -> FloatArray:
    """Coefficients, shape ``(..., degree + 1)``, of samples ``(..., degree + 1)`` at `nodes`."""
    return np.asarray(samples @ _fit_matrix(samples.shape[-1] - 1).T, dtype=np.float64)


def evaluate(coefficients: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Values and d/dx of pieces ``(n, ..., degree + 1)`` at ``x`` of shape ``(n,)``.

    Clenshaw's recurrence for the value and its derivative together, one pass over the
    coefficients, vectorized over pieces.
    """
    x = np.asarray(x, dtype=np.float64).reshape((-1,) + (1,) * (coefficients.ndim - 2))
    b1 = b2 = np.zeros(coefficients.shape[:-1])
    d1 = d2 = np.zeros(coefficients.shape[:-1])
    for k in range(coefficients.shape[-1] - 1, 0, -1):
        d1, d2 = 2.0 * b1 + 2.0 * x * d1 - d2, d1
        b1, b2 = coefficients[..., k] + 2.0 * x * b1 - b2, b1
    value = coefficients[..., 0] + x * b1 - b2
    return value, b1 + x * d1 - d2
