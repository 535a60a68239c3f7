"""Stage 2, characterization: background, PSF model, source detection and measurement."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import sep
from astropy.table import Table

from shutterline import exceptions
from shutterline.images import Exposure
from shutterline.images import mask as mask_mod
from shutterline.processing import background as background_mod
from shutterline.processing import detection, starselect
from shutterline.processing import psf as psf_mod
from shutterline.telemetry import stages

__all__ = ["CharacterizeConfig", "CharacterizeResult", "characterize", "describe"]

# Detection ignores what cannot be a source, but keeps saturated cores: they are stars.
_DETECT_BAD_BITS = int(mask_mod.MaskBit.BAD | mask_mod.MaskBit.CR | mask_mod.MaskBit.NO_DATA)


@dataclasses.dataclass(frozen=True)
class CharacterizeConfig:
    """Configuration of `characterize`.

    Attributes
    ----------
    mesh_size, filter_size : int
        Background mesh (pixels) and median filter (meshes).
    nsigma : float
        Detection threshold, significance in the smoothed image.
    minarea : int
        Minimum number of pixels above threshold.
    psf_stars : starselect.PsfStarConfig
        PSF star selection and model degree.
    """

    mesh_size: int = 128
    filter_size: int = 3
    nsigma: float = 5.0
    minarea: int = 5
    psf_stars: starselect.PsfStarConfig = dataclasses.field(
        default_factory=starselect.PsfStarConfig
    )


@dataclasses.dataclass(frozen=True)
class CharacterizeResult:
    """What `characterize` returns.

    Attributes
    ----------
    exposure : Exposure
        Background-subtracted exposure with ``psf`` (image at the centre) and metadata
        ``PSF_FWHM`` (pixels), ``BKG_RMS`` (electrons), ``APCORR`` added; its ``variance``
        is the input's array (shared, not copied).
    background : background.BackgroundModel
        The subtracted sky.
    psf_model : psf.PsfModel
        Spatially varying PSF.
    sources : astropy.table.Table
        Source catalogue (see `detection.measure`), plus ``psf_star`` (bool, selected for
        the PSF fit); ``flux``/``flux_err`` aperture-corrected (``meta['ap_correction']``).
    stats : dict
        QA numbers for spans and metrics.
    """

    exposure: Exposure
    background: background_mod.BackgroundModel
    psf_model: psf_mod.PsfModel
    sources: Table
    stats: dict[str, float]


def describe(metadata: dict[str, Any]) -> str:
    """``visit V detector D`` from exposure metadata, for error messages."""
    return f"visit {metadata.get('VISIT', '?')} detector {metadata.get('DETECTOR', '?')}"


def _native(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` itself when already native-endian ``dtype`` (sep refuses FITS byte order)."""
    native = np.dtype(dtype)  # numpy's dtype objects are native-endian
    return array if array.dtype == native else array.astype(native)


def _subtracted(exposure: Exposure, back: np.ndarray, in_place: bool) -> Exposure:
    """The background-subtracted exposure: a new image, the untouched planes shared."""
    mask = _native(exposure.mask, np.int32)
    variance = _native(exposure.variance, np.float32)
    if in_place:
        if exposure.image.dtype == np.float32:  # native float32: subtract where it lies
            np.subtract(exposure.image, back, out=exposure.image)
        else:
            exposure.image = np.subtract(exposure.image, back, dtype=np.float32)
        exposure.mask, exposure.variance = mask, variance
        return exposure
    # The variance is shared, not copied (a full-frame pass for nothing: no stage rescales a
    # variance in place, and sep cannot take read-only views). The mask is copied because
    # later stages add bit planes to it.
    return Exposure(
        image=np.subtract(exposure.image, back, dtype=np.float32),
        mask=mask.copy() if mask is exposure.mask else mask,
        variance=variance,
        wcs=exposure.wcs.deepcopy() if exposure.wcs is not None else None,
        psf=None,
        metadata=dict(exposure.metadata),
    )


def _psf(
    image: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    objects: np.ndarray,
    saturated: np.ndarray,
    config: starselect.PsfStarConfig,
    where: str,
) -> tuple[psf_mod.PsfModel, np.ndarray]:
    """PSF model and the indices of its stars; relaxed selection before giving up."""
    flux, err, _ = sep.sum_circle(
        image, objects["x"], objects["y"], 4.0, var=variance, mask=bad, subpix=1
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.nan_to_num(flux / err)
    stars, r50 = starselect.select_psf_stars(image, bad, objects, snr, saturated, config)
    if stars.size < config.min_stars:
        # A sparse field: accept fainter, less isolated stars rather than fail the detector.
        relaxed = dataclasses.replace(
            config, min_snr=10.0, neighbour_ratio=0.2, locus_width=max(config.locus_width, 0.25)
        )
        stars, r50 = starselect.select_psf_stars(image, bad, objects, snr, saturated, relaxed)
    if stars.size < config.min_stars:
        raise exceptions.PermanentError(
            f"characterize {where}: only {stars.size} usable PSF stars among {len(objects)} "
            f"detections (need {config.min_stars}); the image may be empty, out of focus "
            "or badly saturated"
        )
    model, _, _ = starselect.build_psf(image, variance, bad, objects, stars, r50, config.max_degree)
    return model, stars


def _measure(
    out: Exposure,
    bad: np.ndarray,
    objects: np.ndarray,
    saturated: np.ndarray,
    model: psf_mod.PsfModel,
    stars: np.ndarray,
) -> Table:
    """Measure all detections, mark PSF star candidates, aperture-correct the PSF fluxes."""
    sources = detection.measure(out.image, out.variance, bad, objects, saturated, model)
    sources["psf_star"] = np.isin(sources["id"], stars)
    apcorr = detection.aperture_correction(sources, np.asarray(sources["psf_star"]))
    sources["flux"] *= apcorr
    sources["flux_err"] *= apcorr
    sources.meta["ap_correction"] = apcorr
    return sources


def characterize(
    exposure: Exposure, config: CharacterizeConfig | None = None, *, in_place: bool = False
) -> CharacterizeResult:
    """Subtract the background, model the PSF, detect and measure sources.

    Parameters
    ----------
    exposure : Exposure
        After instrument signature removal: image (electrons), mask, variance.
    config : CharacterizeConfig, optional
    in_place : bool
        Subtract the background from ``exposure.image`` itself and return ``exposure``
        (saves one full-frame allocation). By default ``exposure`` is left untouched and the
        result has a new image and mask, and shares the input's ``variance`` array (do not
        modify it in place).

    Raises
    ------
    shutterline.exceptions.PermanentError
        Too few stars to model the PSF.
    """
    config = config or CharacterizeConfig()
    where = describe(exposure.metadata)
    clock = stages.Laps("characterize")
    bad = background_mod.bad_pixel_mask(exposure.mask)
    bkg = background_mod.estimate_background(
        exposure.image, bad, mesh_size=config.mesh_size, filter_size=config.filter_size
    )
    clock.lap("background")
    out = _subtracted(exposure, bkg.array, in_place)
    clock.lap("subtract")
    det_bad = background_mod.bad_pixel_mask(out.mask, _DETECT_BAD_BITS)
    objects = detection.detect(
        out.image, out.variance, det_bad, nsigma=config.nsigma, minarea=config.minarea
    )
    saturated = detection.saturated_near(out.mask, objects["xpeak"], objects["ypeak"])
    clock.lap("detect")
    model, stars = _psf(out.image, out.variance, bad, objects, saturated, config.psf_stars, where)
    clock.lap("psf")
    sources = _measure(out, bad, objects, saturated, model, stars)
    clock.lap("measure")
    out.psf = model.image_at(*model.origin)
    apcorr = float(sources.meta["ap_correction"])
    out.metadata.update({"PSF_FWHM": model.fwhm, "BKG_RMS": bkg.global_rms, "APCORR": apcorr})
    stats = {
        "n_sources": float(len(sources)),
        "n_psf_stars": float(model.n_stars),
        "psf_fwhm_px": model.fwhm,
        "psf_degree": float(model.degree),
        "aperture_correction": apcorr,
        "background_level": bkg.global_level,
        "background_rms": bkg.global_rms,
        **clock.laps,
    }
    return CharacterizeResult(out, bkg, model, sources, stats)
