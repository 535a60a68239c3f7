"""Reliability scores (0..1) for DIA sources: hand-made penalties, and a trained classifier.

`classify` is a logistic regression on DIA-source table columns (`features`), trained on
fake point sources injected into the science images of the fitting nights against the
detections that match no injected or true changing source, only on the rows no other rule
of `dia.rejections` drops (`shutterline.evaluation.fakes`); its coefficients are the versioned file
``reliability_<version>.json`` beside this module. `score` is the older, explainable one: a
product of penalties, each for one documented way a difference
image makes false sources. A clean, PSF-like, isolated detection scores 1. ``z`` is the
significance of the core chi-square of the PSF fit (`measurement.PsfFit.chi2_z`), so noise
alone rarely costs anything and a cosmic ray (far sharper than the PSF) costs nearly all; it
allows for the PSF-matching residual of a static source under the change (`dia._core_z`), so
a variable on a bright star is not scored by its star's residual.

================================  =======  ===================================================
condition                          factor   why
================================  =======  ===================================================
PSF-fit core residual ``z`` > 5    e^(-(z-5)/3)  shape unlike the PSF (residual, blend, artefact)
dipole                             0.2      mis-registration or PSF-matching residual
masked pixel at the centre         0.1      saturated / bad / cosmic ray / no data / edge
masked pixel in the footprint      0.5      measurement partly on bad pixels
interpolated or suspect pixels     0.7      measurement partly on repaired pixels
saturated pixels within 5 FWHM     0.3      the wings of a saturated star rarely subtract
much smaller than the PSF          0.2      cosmic-ray-like sharpness (size < 0.5 x PSF, SNR > 15)
trailed                            0.8      often real (a fast asteroid), but also artefacts
|flux| < 3 % of template flux      0.5      likely the residual of a bright static star
================================  =======  ===================================================
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FEATURES", "MODEL_VERSION", "VERSION", "classify", "features", "load_model", "score"]

#: The trained classifier's version (``reliability_<version>.json``), at most 7 characters.
MODEL_VERSION = "lrfak5"
#: Names of the classifier's inputs, in order (see `features`).
FEATURES = (
    "log_snr", "log_chi2_ndata", "size_ratio", "shape_flag", "extendedness",
    "log_template_ratio", "is_negative", "is_dipole", "hard_masked", "repaired",
    "ap_over_psf", "peak_over_snr", "centroid_flag",
)  # fmt: skip


def _col(table: Any, name: str) -> np.ndarray:
    return np.asarray(table[name], np.float64)


def features(table: Any) -> np.ndarray:
    """``(n, len(FEATURES))`` classifier inputs from a DIA source table's columns; finite."""
    snr = np.abs(np.nan_to_num(_col(table, "snr"), nan=0.0))
    flux = np.abs(np.nan_to_num(_col(table, "psf_flux"), nan=0.0))
    ndata = np.maximum(_col(table, "psf_ndata"), 1.0)
    chi2 = np.nan_to_num(_col(table, "psf_chi2"), nan=ndata * 10.0)
    size = (_col(table, "ixx") + _col(table, "iyy")) / (
        _col(table, "ixx_psf") + _col(table, "iyy_psf")
    )
    tpl = np.clip(np.nan_to_num(_col(table, "template_flux"), nan=0.0), 0.0, None)
    hard = np.zeros(len(snr), bool)
    for name in ("bad", "sat", "cr", "edge", "nodata"):
        hard |= np.asarray(table[f"pixel_flags_{name}"], bool)
    repaired = np.asarray(table["pixel_flags_interpolated"], bool) | np.asarray(
        table["pixel_flags_suspect"], bool
    )
    ap = np.nan_to_num(_col(table, "ap_flux") / np.where(flux > 0, flux, np.nan), nan=0.0)
    sign = np.where(np.asarray(table["is_negative"], bool), -1.0, 1.0)
    cols = [
        np.log10(np.maximum(snr, 1.0)), np.log10(np.maximum(chi2 / ndata, 1e-3)),
        np.clip(np.nan_to_num(size, nan=0.0), 0.0, 5.0), np.asarray(table["shape_flag"], float),
        np.nan_to_num(_col(table, "extendedness"), nan=1.0),
        np.log10(1.0 + tpl / np.maximum(flux, 1.0)),
        np.asarray(table["is_negative"], float), np.asarray(table["is_dipole"], float),
        hard.astype(float), repaired.astype(float), np.clip(ap * sign, -2.0, 4.0),
        np.clip(np.abs(np.nan_to_num(_col(table, "peak_snr"))) / np.maximum(snr, 1.0), 0.0, 4.0),
        np.asarray(table["centroid_flag"], float),
    ]  # fmt: skip
    return np.column_stack(cols) if len(snr) else np.zeros((0, len(FEATURES)))


@functools.cache
def load_model(version: str = MODEL_VERSION) -> dict[str, Any]:
    """The classifier file ``reliability_<version>.json``: features, mean, scale, coef."""
    path = Path(__file__).with_name(f"reliability_{version}.json")
    try:
        model: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"reliability classifier {version}: {path} is missing") from exc
    if tuple(model["features"]) != FEATURES:
        raise ValueError(f"{path}: features {model['features']} differ from {FEATURES}")
    return model


def classify(table: Any, version: str = MODEL_VERSION) -> np.ndarray:
    """Probability that each row is real, float32 (the trained logistic regression)."""
    model = load_model(version)
    x = (features(table) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    z = x @ np.asarray(model["coef"]) + float(model["intercept"])
    return (1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))).astype(np.float32)


#: This table of penalties, revision 2 (``z`` allows for the static source's matching residual).
VERSION = "slpen-2"  # at most 7 characters: the APDB column is string(7)


def score(
    *,
    chi2_z: np.ndarray,
    is_dipole: np.ndarray,
    center_masked: np.ndarray,
    any_masked: np.ndarray,
    repaired: np.ndarray,
    near_saturation: np.ndarray,
    size_ratio: np.ndarray,
    snr: np.ndarray,
    trail: np.ndarray,
    flux: np.ndarray,
    template_flux: np.ndarray,
) -> np.ndarray:
    """Reliability per source, float32 in ``[0, 1]``; every argument is a length-n array.

    ``size_ratio`` is the de-weighted moment trace of the source over the PSF's (NaN when it
    could not be measured; then no sharpness penalty). Below an SNR of 15 the size is too
    noisy to judge (about 20 % error at SNR 10); the residual ``z`` covers sharpness there.
    """
    z = np.nan_to_num(np.asarray(chi2_z, float), nan=0.0)
    # z is only roughly N(0, 1): neighbouring pixels' noise is not fully independent.
    r = np.exp(-np.clip(z - 5.0, 0.0, None) / 3.0)
    r = np.where(is_dipole, r * 0.2, r)
    r = np.where(center_masked, r * 0.1, np.where(any_masked, r * 0.5, r))
    r = np.where(repaired, r * 0.7, r)
    r = np.where(near_saturation, r * 0.3, r)
    size = np.asarray(size_ratio, float)
    sharp = np.isfinite(size) & (size < 0.5) & (np.abs(snr) > 15)
    r = np.where(sharp, r * 0.2, r)
    r = np.where(trail, r * 0.8, r)
    residual = np.abs(flux) < 0.03 * np.nan_to_num(np.asarray(template_flux, float), nan=0.0)
    r = np.where(residual, r * 0.5, r)
    return np.clip(r, 0.0, 1.0).astype(np.float32)
