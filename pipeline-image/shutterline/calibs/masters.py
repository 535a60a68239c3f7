"""Master bias and master flat from assembled calibration exposures (array level, no Butler)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shutterline import exceptions
from shutterline.calibs import combine, defects
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = ["master_bias", "master_flat"]

_BAD = int(mask_mod.MaskBit.BAD)
_SAT = int(mask_mod.MaskBit.SAT)


def _common(exposures: Sequence[exposure_mod.Exposure], kind: str) -> dict[str, object]:
    if not exposures:
        raise exceptions.PermanentError(f"cannot build a master {kind}: no input exposures")
    shapes = {e.shape for e in exposures}
    detectors = {e.metadata.get("DETECTOR") for e in exposures}
    units = {e.metadata.get("BUNIT") for e in exposures}
    if len(shapes) > 1 or len(detectors) > 1 or units != {"electron"}:
        raise exceptions.PermanentError(
            f"inputs of a master {kind} disagree: shapes {sorted(shapes)}, detectors "
            f"{sorted(map(str, detectors))}, units {sorted(map(str, units))} (need electron)"
        )
    mjds = [float(e.metadata.get("MJD", np.nan)) for e in exposures]
    return {
        "DETECTOR": detectors.pop(),
        "CALIB": kind,
        "NINPUT": len(exposures),
        "INPUTS": ",".join(str(e.metadata.get("VISIT", "?")) for e in exposures)[:68],
        "MJDMIN": float(np.nanmin(mjds)) if np.isfinite(mjds).any() else 0.0,
        "MJDMAX": float(np.nanmax(mjds)) if np.isfinite(mjds).any() else 0.0,
    }


def master_bias(
    exposures: Sequence[exposure_mod.Exposure], nsigma: float = 4.0
) -> exposure_mod.Exposure:
    """Combine overscan-subtracted bias exposures into a master bias.

    Parameters
    ----------
    exposures : sequence of Exposure
        Outputs of `shutterline.isr.assemble_raw` for zero-second exposures of one detector:
        ``(ny, nx)`` electrons with variance.
    nsigma : float
        Outlier rejection threshold (`combine.clipped_mean`), in each input's own noise.

    Returns
    -------
    Exposure
        ``(ny, nx)`` float32 residual bias structure in electrons, variance of the mean,
        ``BAD`` on defects (`defects.bias_defects`); metadata BUNIT='electron', DETECTOR,
        CALIB='bias', NINPUT, INPUTS, MJDMIN, MJDMAX, NBAD.
    """
    metadata = _common(exposures, "bias")
    mean, var, _ = combine.clipped_mean(
        [e.image for e in exposures], [e.variance for e in exposures], nsigma
    )
    mask = np.where(defects.bias_defects(mean), _BAD, 0).astype(np.int32)
    metadata.update({"BUNIT": "electron", "NBAD": int(np.count_nonzero(mask))})
    return exposure_mod.Exposure(mean, mask, var, metadata=metadata)


def _normalized(
    exposure: exposure_mod.Exposure, bias: exposure_mod.Exposure
) -> tuple[np.ndarray, np.ndarray]:
    image = exposure.image - bias.image
    variance = exposure.variance + bias.variance
    good = (exposure.mask & _SAT) == 0
    try:
        image, variance, _ = combine.normalize_by_median(image, variance, good)
    except ValueError as exc:
        visit = exposure.metadata.get("VISIT", "?")
        raise exceptions.PermanentError(
            f"flat exposure {visit} has no usable light: {exc}"
        ) from exc
    return image, variance


def master_flat(
    exposures: Sequence[exposure_mod.Exposure],
    bias: exposure_mod.Exposure,
    nsigma: float = 4.0,
) -> exposure_mod.Exposure:
    """Combine dome flats of one detector and band into a master flat of median 1.

    Each flat is bias-subtracted and divided by its own median (lamp level changes between
    exposures), the stack is combined with outlier rejection, defects are found
    (`defects.flat_defects`, plus the master bias's defects) and the result is divided by its
    median over good pixels.

    Parameters
    ----------
    exposures : sequence of Exposure
        Outputs of `shutterline.isr.assemble_raw` for dome flats, ``(ny, nx)`` electrons.
    bias : Exposure
        The master bias of the same detector.

    Returns
    -------
    Exposure
        ``(ny, nx)`` float32 dimensionless flat (median 1 over good pixels), its variance,
        ``BAD`` on defects; metadata BUNIT='dimensionless', DETECTOR, BAND, CALIB='flat', ...
    """
    metadata = _common(exposures, "flat")
    bands = {e.metadata.get("BAND") for e in exposures}
    if len(bands) != 1:
        raise exceptions.PermanentError(
            f"flats of different bands combined: {sorted(map(str, bands))}"
        )
    if bias.shape != exposures[0].shape:
        raise exceptions.PermanentError(
            f"bias shape {bias.shape} does not match the flats' shape {exposures[0].shape}"
        )
    pairs = [_normalized(e, bias) for e in exposures]
    mean, var, _ = combine.clipped_mean([p[0] for p in pairs], [p[1] for p in pairs], nsigma)
    del pairs
    bad = defects.flat_defects(mean) | ((bias.mask & _BAD) != 0)
    flat, var, _ = combine.normalize_by_median(mean, var, ~bad)
    flat[bad & ~(np.isfinite(flat) & (flat > 0))] = 1.0  # keep division safe on dead pixels
    mask = np.where(bad, _BAD, 0).astype(np.int32)
    metadata.update(
        {"BUNIT": "dimensionless", "BAND": bands.pop(), "NBAD": int(np.count_nonzero(bad))}
    )
    return exposure_mod.Exposure(flat, mask, var, metadata=metadata)
