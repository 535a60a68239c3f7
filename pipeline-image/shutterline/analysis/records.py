"""The QA records: one per (visit, detector) and one per visit, as plain JSON-ready dicts.

Both go to the repository (dataset types ``qa`` and ``qaVisit``) and to the metrics topic
(``kind: "qa"``). Values a detector lacked the products for are ``null`` and the product is
named under ``missing``. Units: FWHM in arcseconds (``fwhmPx`` in pixels), magnitudes AB,
``zeroPoint`` the magnitude of one electron per second, ``sky`` electrons per pixel over
the exposure, ``astromScatter`` milliarcseconds, times in seconds. ``night`` is the
observing night: the UTC date twelve hours before the exposure started.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.time import Time

from shutterline.analysis import depth, diffquality, photometry, psfmap, timing
from shutterline.images import exposure as exposure_mod

__all__ = [
    "SUMMARY_KEYS",
    "AnalysisConfig",
    "DetectorProducts",
    "detector_record",
    "jsonable",
    "night_of",
    "summary",
    "visit_record",
]

#: The visit values the termination message and ``Visit.status`` carry.
SUMMARY_KEYS = (
    "fwhm",
    "ellipticity",
    "zeroPoint",
    "zeroPointScatter",
    "limitingMag",
    "sky",
    "astromScatter",
    "diaCount",
    "diaExpected",
    "dipoleFraction",
    "residualChiSigma",
    "latencySeconds",
)


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the measurements.

    Attributes
    ----------
    grid : tuple of int
        ``(rows, cols)`` cells of the PSF map per detector.
    match_radius_arcsec : float
        Source-to-reference match radius.
    expected_dia_per_deg2 : float
        DIA sources expected per square degree and visit (the rate ``diaRatio`` compares
        with). An instrument's own rate is configuration (``SHUTTERLINE_QA_EXPECTED_DIA_PER_DEG2``
        in the PromptConfig's settings); the default is what the small test night, seed 11,
        1024 x 2048, shows (1100 to 1250 per square degree), and other nights are compared
        against it, never fitted to it.
    """

    grid: tuple[int, int] = (4, 2)
    match_radius_arcsec: float = 1.0
    expected_dia_per_deg2: float = 1200.0


@dataclasses.dataclass
class DetectorProducts:
    """What the analysis of one detector reads; ``None`` for a product not exported."""

    visit: int
    detector: int
    calexp: exposure_mod.Exposure | None = None
    src: Table | None = None
    difference: exposure_mod.Exposure | None = None
    dia: Table | None = None
    refcat: Table | None = None
    metrics: Mapping[str, Any] | None = None


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain, and NaN or inf made ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def night_of(mjd_tai: float) -> str:
    """The observing night (``YYYY-MM-DD``) of an exposure starting at ``mjd_tai``."""
    when = Time(mjd_tai, format="mjd", scale="tai").utc.datetime - datetime.timedelta(hours=12)
    return when.date().isoformat()


def _pixel_scale_arcsec(calexp: exposure_mod.Exposure) -> float:
    if calexp.wcs is None:
        return float("nan")
    scales = calexp.wcs.proj_plane_pixel_scales()
    return float(np.sqrt(abs(scales[0].to_value("deg") * scales[1].to_value("deg")))) * 3600.0


def _image_values(p: DetectorProducts, cfg: AnalysisConfig) -> dict[str, Any]:
    """PSF map, calibration and depth: everything measured on the calexp and ``src``."""
    assert p.calexp is not None and p.src is not None
    cal = p.calexp
    scale = _pixel_scale_arcsec(cal)
    guess = float(cal.metadata.get("PSF_FWHM", 4.0))
    pmap = psfmap.measure_psf_map(cal.image, cal.mask, p.src, guess, cfg.grid)
    out: dict[str, Any] = {
        "pixelScale": scale,
        "fwhm": pmap.fwhm_px * scale,
        "fwhmPx": pmap.fwhm_px,
        "ellipticity": pmap.ellipticity,
        "e1": pmap.e1,
        "e2": pmap.e2,
        "nPsfStars": pmap.n_stars,
        "psfMap": {
            "rows": cfg.grid[0],
            "cols": cfg.grid[1],
            "fwhm": pmap.cell_fwhm_px * scale,
            "ellipticity": pmap.cell_ellipticity,
            "count": pmap.cell_count,
        },
    }
    exptime = float(cal.metadata.get("EXPTIME", float("nan")))
    zp = float("nan")
    if p.refcat is not None:
        calib = photometry.measure_calibration(
            p.src, p.refcat, str(cal.metadata.get("BAND")), exptime, cfg.match_radius_arcsec
        )
        zp = calib.zero_point
        out.update(
            zeroPoint=zp,
            zeroPointScatter=calib.zero_point_scatter,
            nPhotometric=calib.n_photometric,
            astromScatter=calib.astrom_scatter_mas,
            astromOffset=list(calib.astrom_offset_mas),
            nAstrometric=calib.n_astrometric,
        )
    d = depth.measure_depth(cal.variance, cal.mask, cal.psf, pmap.fwhm_px, zp, exptime, scale)
    out.update(sky=d.sky_e, skyMag=d.sky_mag_arcsec2, nea=d.nea_px, limitingMag=d.limiting_mag)
    return out


def _area_deg2(calexp: exposure_mod.Exposure, scale_arcsec: float) -> float:
    ny, nx = calexp.shape
    return float(ny * nx * (scale_arcsec / 3600.0) ** 2)


def _diff_values(p: DetectorProducts, fwhm_px: float, cfg: AnalysisConfig) -> dict[str, Any]:
    assert p.calexp is not None and p.src is not None and p.difference is not None
    assert p.dia is not None
    diff = p.difference
    q = diffquality.measure_diff_quality(
        p.calexp.image,
        exposure_mod.njy_per_unit(p.calexp.metadata, "calexp"),
        (diff.image, diff.variance, diff.mask),
        exposure_mod.njy_per_unit(diff.metadata, "difference image"),
        p.src,
        p.dia,
        fwhm_px,
        _area_deg2(p.calexp, _pixel_scale_arcsec(p.calexp)),
        cfg.expected_dia_per_deg2,
    )
    return {
        "nBrightStars": q.n_bright,
        "residualFraction": q.residual_fraction,
        "residualChiSigma": q.residual_chi_sigma,
        "diaCount": q.dia_count,
        "dipoleFraction": q.dipole_fraction,
        "diaExpected": q.dia_expected,
        "diaRatio": q.dia_ratio,
    }


def detector_record(
    p: DetectorProducts, shutter_close: float | None, cfg: AnalysisConfig | None = None
) -> dict[str, Any]:
    """The QA record of one detector (see the module docstring for names and units)."""
    cfg = cfg or AnalysisConfig()
    record: dict[str, Any] = {"kind": "qa", "level": "detector", "visit": p.visit}
    record["detector"] = p.detector
    names = ("calexp", "src", "difference", "dia", "refcat", "metrics")
    record["missing"] = [n for n in names if getattr(p, n) is None]
    if p.calexp is not None:
        meta = p.calexp.metadata
        record.update(band=meta.get("BAND"), mjd=meta.get("MJD"), exptime=meta.get("EXPTIME"))
        if meta.get("MJD") is not None:
            record["night"] = night_of(float(meta["MJD"]))
    if p.calexp is not None and p.src is not None:
        record.update(_image_values(p, cfg))
        if p.difference is not None and p.dia is not None:
            record.update(_diff_values(p, float(record["fwhmPx"]), cfg))
    elif p.dia is not None:
        record["diaCount"] = len(p.dia)
    if p.metrics is not None:
        record["timing"] = timing.detector_timing(p.metrics, shutter_close)
        record["latencySeconds"] = record["timing"]["latencySeconds"]
    return jsonable(record)


def _values(records: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records if isinstance(r.get(key), int | float)]


def _median(records: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = _values(records, key)
    return float(np.median(values)) if values else None


def visit_record(
    visit: int, detectors: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The visit's QA record from its detectors' records: medians of the image values over
    the focal plane, sums of the DIA counts, the slowest detector's latency."""
    record: dict[str, Any] = {"kind": "qa", "level": "visit", "visit": visit, **(extra or {})}
    record["detectors"] = sorted(int(d["detector"]) for d in detectors)
    for key in ("band", "mjd", "night", "exptime"):
        found = [d[key] for d in detectors if d.get(key) is not None]
        record[key] = found[0] if found else record.get(key)
    for key in ("fwhm", "ellipticity", "zeroPoint", "zeroPointScatter", "limitingMag", "sky"):
        record[key] = _median(detectors, key)
    for key in ("skyMag", "astromScatter", "residualFraction", "residualChiSigma"):
        record[key] = _median(detectors, key)
    zps = _values(detectors, "zeroPoint")
    record["zeroPointSpread"] = float(np.std(zps)) if len(zps) > 1 else None
    counts = [d for d in detectors if isinstance(d.get("diaCount"), int)]
    record["diaCount"] = sum(int(d["diaCount"]) for d in counts) if counts else None
    expected = _values(detectors, "diaExpected")
    record["diaExpected"] = float(sum(expected)) if expected else None
    dipoles = [d for d in counts if d.get("dipoleFraction") is not None]
    n_dia = sum(int(d["diaCount"]) for d in dipoles)
    record["dipoleFraction"] = (
        sum(float(d["dipoleFraction"]) * int(d["diaCount"]) for d in dipoles) / n_dia
        if n_dia
        else None
    )
    timed = [d["timing"] for d in detectors if d.get("timing")]
    record["timing"] = timing.visit_timing(timed) if timed else None
    record["latencySeconds"] = record["timing"]["latencySeconds"] if timed else None
    record["missing"] = {str(d["detector"]): d["missing"] for d in detectors if d.get("missing")}
    return jsonable(record)


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The visit values of `SUMMARY_KEYS`, rounded for a termination message."""
    out: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        value = record.get(key)
        out[key] = round(value, 4) if isinstance(value, float) else value
    return out
