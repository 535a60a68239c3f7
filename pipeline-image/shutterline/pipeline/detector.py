"""One detector of one visit: the stages in order, each a child span."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

from shutterline import exceptions
from shutterline.differencing import dia, subtract, warp
from shutterline.images import Exposure, MaskBit
from shutterline.images import exposure as exposure_mod
from shutterline.isr import isr
from shutterline.pipeline import heap
from shutterline.processing import calibrate, characterize
from shutterline.telemetry import stages

if TYPE_CHECKING:  # the Butler layer is the drivers' business: stages see only its dataclass
    from shutterline.butler.inputs import DetectorInputs
    from shutterline.pipeline import settings as settings_mod

__all__ = ["DetectorOutputs", "assign_ids", "point_source_sigma", "process_detector"]

log = logging.getLogger(__name__)

#: Bits of a DIA source id: (visit * 1000 + detector) * 100000 + index. Deterministic, so a
#: retried detector yields the same ids and the same alerts, never a second one.
_PER_DETECTOR = 100_000


@dataclasses.dataclass
class DetectorOutputs:
    """What a detector run produced, kept in memory until every write is done."""

    calexp: Exposure
    difference: Exposure
    template: Exposure
    src: Table
    dia_sources: Table


def assign_ids(dia_sources: Table, visit: int, detector: int) -> None:
    """Give each DIA source its deterministic id, in the stage's (y, x) order."""
    if len(dia_sources) >= _PER_DETECTOR:
        raise ValueError(f"{len(dia_sources)} DIA sources exceed the id space of a detector")
    base = (visit * 1000 + detector) * _PER_DETECTOR
    dia_sources["dia_source_id"] = base + np.arange(len(dia_sources), dtype=np.int64)


def point_source_sigma(difference: Exposure) -> float:
    """1-sigma PSF-flux noise (nJy) of a point source in the difference image.

    ``sigma = sqrt(median variance / sum(psf**2))`` for an optimal PSF-weighted flux.
    """
    if difference.psf is None:
        raise ValueError("difference image has no PSF")
    # Every fourth row and column: the variance is smooth, the median the same within 0.1 %.
    sub = (slice(None, None, 4), slice(None, None, 4))
    good = difference.mask[sub] == 0
    median_var = float(np.median(difference.variance[sub][good])) if good.any() else float("nan")
    scale = exposure_mod.njy_per_unit(difference.metadata, "difference image")
    return float(np.sqrt(median_var / np.sum(difference.psf.astype(np.float64) ** 2)) * scale)


#: Least fraction of the detector a template must cover (Rubin's default is 0.1 as well).
MIN_TEMPLATE_COVERAGE = 0.1


def template_coverage(template: Exposure) -> float:
    """Fraction of pixels of the warped template that have data."""
    # A count, not a mean: ``np.mean`` of a bool plane converts all 8 M pixels to float64.
    no_data = np.count_nonzero(template.mask & int(MaskBit.NO_DATA))
    return 1.0 - no_data / template.mask.size


def warped_template(inputs: DetectorInputs, calexp: Exposure) -> tuple[Exposure, float]:
    """The template patches warped and stitched onto the science grid, and its coverage.

    Raises
    ------
    PermanentError
        If no patch overlaps, or the patches cover less than `MIN_TEMPLATE_COVERAGE`.
    """
    where = f"visit {inputs.visit} detector {inputs.detector}"
    if not inputs.templates:
        raise exceptions.PermanentError(f"no template patch overlaps {where}")
    template = warp.warp_patches([t for _, t in inputs.templates], calexp.wcs, calexp.shape)
    coverage = template_coverage(template)
    if coverage < MIN_TEMPLATE_COVERAGE:
        patches = ", ".join(f"{p.tract}/{p.patch}" for p, _ in inputs.templates)
        raise exceptions.PermanentError(
            f"template covers {100 * coverage:.1f}% of {where} (need "
            f"{100 * MIN_TEMPLATE_COVERAGE:.0f}%): patches {patches} are empty there"
        )
    return template, coverage


def run_image_stages(
    inputs: DetectorInputs,
    rec: stages.StageRecorder,
    bars: tuple[float, float] = (dia.MIN_CLASSIFIER, dia.MIN_CLASSIFIER_BRIGHT),
) -> DetectorOutputs:
    """Stages 1-5: raw to measured DIA sources.

    ``bars``: the DIA selection's classifier bars (`dia.accept`; the settings'
    ``dia_min_classifier`` and ``dia_min_classifier_bright``).
    """
    heap.keep_freed_memory()  # the stages' large temporaries reuse freed pages
    with rec.stage("isr"):
        exposure = isr.run_isr(inputs.raw, inputs.bias, inputs.flat)
        for key in ("N_CR", "N_SAT", "N_BAD"):
            rec.emit(key.lower(), int(exposure.metadata.get(key, 0)))
    with rec.stage("characterize"):
        # In place: nothing reads the ISR output again (saves a 64 MB image and mask copy).
        char = characterize.characterize(exposure, in_place=True)
        rec.emit("psf_fwhm_px", float(char.exposure.metadata.get("PSF_FWHM", float("nan"))))
        rec.emit("n_sources", len(char.sources))
    with rec.stage("calibrate"):
        cal = calibrate.calibrate(char.exposure, char.sources, inputs.refcat, inputs.band)
        rec.emit("astrometry_rms_arcsec", float(cal.astrometry.rms_arcsec))
        rec.emit("njy_per_electron", exposure_mod.njy_per_unit(cal.exposure.metadata, "calexp"))
    calexp = cal.exposure
    with rec.stage("template"):
        template, coverage = warped_template(inputs, calexp)
        rec.emit("template_coverage", coverage)
    with rec.stage("subtract"):
        diff = subtract.subtract(calexp, template)
        for key, value in diff.metrics.items():
            rec.emit(f"difference_{key}", float(value))
    with rec.stage("dia_detect"):
        sources = dia.detect_and_measure(
            diff.difference, calexp, template, min_classifier=bars[0], min_classifier_bright=bars[1]
        )
        assign_ids(sources, inputs.visit, inputs.detector)
        sigma = point_source_sigma(diff.difference)
        rec.emit("dia_sources", len(sources))
        rec.emit("point_source_sigma_njy", sigma)
    return DetectorOutputs(
        calexp=calexp,
        difference=diff.difference,
        template=template,
        src=cal.sources,
        dia_sources=sources,
    )


def process_detector(
    inputs: DetectorInputs, settings: settings_mod.Settings, rec: stages.StageRecorder
) -> tuple[DetectorOutputs, list[str]]:
    """All stages of one detector; returns its outputs and the spooled alert paths.

    Asteroid predictions start first, in a thread, since they need only the schedule.
    """
    from shutterline.pipeline import outputs as outputs_mod

    predictions = outputs_mod.start_predictions(inputs)
    out = run_image_stages(
        inputs, rec, (settings.dia_min_classifier, settings.dia_min_classifier_bright)
    )
    paths = outputs_mod.write_outputs(settings, out, predictions, rec)
    return out, paths


def discard_partial(spool_dir: str | os.PathLike[str], visit: int, detector: int) -> None:
    """Remove whatever a failed detector left in the spool."""
    from shutterline.alerts import spool as alert_spool

    alert_spool.AlertSpool(spool_dir).discard(visit=visit, detector=detector)
