"""``night.yaml``: what was simulated, including the truths a pipeline must not be told.

Layout::

    seed: int
    instrument: SimDECam
    config: {visits, detectors, fields, bands, template_visits, nx, ny, overscan, n_bias,
             n_flat, night_mjd, late_columns_per_detector, trails_per_exposure, seeing_scale,
             star_density, galaxy_density}
    fields: [{name, ra, dec}]
    detectors: [{ccdnum, detpos, gain: {A, B}, true_gain, bias_level, read_noise, full_well,
                 saturate_adu, bad_columns: [[x, first_row, hot|dead], ...] (also in the
                 calibrations), late_columns: [...] (science frames only)}]
    exposures: {bias: [expnum...], flat: {band: [expnum...]}, template: [...], science: [...]}
    visits: [{visit, role, field, band, mjd, mjd_mid, exptime, ra, dec, airmass,
              seeing_fwhm_arcsec, zeropoint_mag, njy_per_electron, sky_e_per_px,
              point_source_sigma_njy, wcs_error: {ccdnum: {shift_arcsec,
              rotation_arcsec_at_corner}}, trails: {ccdnum: [[x0, y0, x1, y1, peak_e]]}}]
                                                       # template and science visits

``zeropoint_mag`` is the AB magnitude giving one electron per second (extinction
included); ``njy_per_electron`` converts electrons over the exposure (after flat-fielding
by a response of mean 1) to nJy; ``point_source_sigma_njy`` is the 1-sigma PSF-flux noise of
an isolated faint point source on the single visit (sky and read noise only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shutterline.camera import layout
from shutterline.simulate import artefacts, config, detector, render, schedule

__all__ = ["READ_NOISE_E", "point_source_sigma_njy", "write_night_record"]

#: The typical read noise (e-) the record's noise figures assume (detectors vary about it).
READ_NOISE_E = 7.0


def point_source_sigma_njy(
    plan: schedule.ExposurePlan, read_noise_e: float = READ_NOISE_E
) -> float:
    """PSF-flux noise (nJy) of a faint point source: sqrt(NEA (sky + rn^2)) in nJy."""
    sigma = render.core_sigma(plan.seeing_arcsec / layout.CAMERA.pixel_scale_arcsec)
    w1, w2 = 1.0 - render.PSF_WING_WEIGHT, render.PSF_WING_WEIGHT
    s1, s2 = sigma, sigma * render.PSF_WING_RATIO
    # 1 / NEA = integral of psf^2 for the double Gaussian.
    inv_nea = (
        w1**2 / (4 * np.pi * s1**2)
        + w2**2 / (4 * np.pi * s2**2)
        + 2 * w1 * w2 / (2 * np.pi * (s1**2 + s2**2))
    )
    noise_e = np.sqrt((plan.sky_e_per_px + read_noise_e**2) / inv_nea)
    return float(noise_e * plan.njy_per_electron)


def _trails(cfg: config.SimConfig, plan: schedule.ExposurePlan) -> dict[int, list[list[float]]]:
    """Per detector, ``[x0, y0, x1, y1, peak_e]`` of each satellite trail (data pixels)."""
    out = {}
    for ccd in cfg.ccdnums:
        trails = artefacts.trails_for(cfg, plan.expnum, ccd, plan.exptime)
        if trails:
            out[ccd] = [
                [round(float(v), 2) for v in (t.x0, t.y0, t.x1, t.y1, t.peak_e)] for t in trails
            ]
    return out


def _visit(plan: schedule.ExposurePlan, errors: dict[int, dict[str, float]]) -> dict[str, Any]:
    return {
        "visit": plan.expnum,
        "role": plan.role,
        "field": plan.field,
        "band": plan.band,
        "mjd": plan.mjd,
        "mjd_mid": round(plan.mjd_mid, 8),
        "exptime": plan.exptime,
        "ra": plan.ra,
        "dec": plan.dec,
        "airmass": plan.airmass,
        "seeing_fwhm_arcsec": plan.seeing_arcsec,
        "zeropoint_mag": plan.zeropoint_mag,
        "njy_per_electron": round(plan.njy_per_electron, 6),
        "sky_e_per_px": plan.sky_e_per_px,
        "point_source_sigma_njy": round(point_source_sigma_njy(plan), 3),
        "wcs_error": {
            int(c): {k: round(v, 4) for k, v in e.items()} for c, e in sorted(errors.items())
        },
    }


def _detector(cfg: config.SimConfig, ccd: int) -> dict[str, Any]:
    det = detector.make_detector(cfg, ccd, with_arrays=False)
    return {
        "ccdnum": ccd,
        "detpos": det.detpos,
        "gain": det.gain,
        "true_gain": {a: round(g, 5) for a, g in det.true_gain.items()},
        "bias_level": det.bias_level,
        "read_noise": det.read_noise,
        "full_well": {a: round(w, 1) for a, w in det.full_well.items()},
        "saturate_adu": det.saturate_adu,
        "bad_columns": [list(b) for b in det.bad_columns],
        "late_columns": [list(b) for b in artefacts.late_columns(cfg, ccd)],
    }


def write_night_record(
    out: Path,
    cfg: config.SimConfig,
    fields: list[schedule.Field],
    plans: list[schedule.ExposurePlan],
    errors: dict[int, dict[int, dict[str, float]]],
) -> None:
    """Write ``night.yaml`` (see the module docstring)."""
    keys = (
        "visits",
        "detectors",
        "fields",
        "template_visits",
        "nx",
        "ny",
        "overscan",
        "n_bias",
        "n_flat",
        "night_mjd",
        "late_columns_per_detector",
        "trails_per_exposure",
        "seeing_scale",
        "star_density",
        "galaxy_density",
    )
    settings: dict[str, Any] = {k: getattr(cfg, k) for k in keys}
    settings["bands"] = list(cfg.bands)
    doc = {
        "seed": cfg.seed,
        "instrument": layout.CAMERA.name,
        "config": settings,
        "fields": [{"name": f.name, "ra": f.ra, "dec": f.dec} for f in fields],
        "detectors": [_detector(cfg, c) for c in cfg.ccdnums],
        "exposures": {
            "bias": [p.expnum for p in plans if p.role == "bias"],
            "flat": {
                b: [p.expnum for p in plans if p.role == "flat" and p.band == b] for b in cfg.bands
            },
            "template": [p.expnum for p in plans if p.role == "template"],
            "science": [p.expnum for p in plans if p.role == "science"],
        },
        "visits": [
            {**_visit(p, errors.get(p.expnum, {})), "trails": _trails(cfg, p)}
            for p in plans
            if p.role in ("template", "science")
        ],
    }
    (out / "night.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
