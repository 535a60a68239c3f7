"""The night's side files: truth table, reference catalog, orbits, schedule and night record.

Formats (all paths relative to the output directory):

``truth/sources.csv``
    One row per source per template/science visit per detector where the source's centre
    lies on the detector (transients only once they have appeared). Columns, in order:
    ``id`` (int; asteroids' ids are those of ``orbits.csv``), ``kind`` (static | variable |
    transient | asteroid), ``visit`` (= EXPNUM), ``detector`` (CCDNUM), ``mjd`` (mid-exposure,
    TAI), ``band``, ``ra``, ``dec`` (deg, ICRS, true), ``x``, ``y`` (0-based pixel position on
    the trimmed science area ``ny x nx``, amplifier A on the left, under the *unperturbed*
    WCS; raw column = x + overscan width), ``flux_nJy`` (true flux at mid-exposure),
    ``mag`` (AB), ``extended`` (1 for galaxies). Sorted by visit, detector, id.
``refcat/refcat.fits``
    Binary table of stars (static and variable) with true r < 21.5: ``id`` (= truth id),
    ``ra``, ``dec`` (deg, 10 mas errors), and ``<b>_flux``, ``<b>_fluxErr`` (nJy) for g, r, i.
``solarsystem/orbits.csv``
    The ``shutterline.solarsystem.orbits`` table: ``id, a_au, e, incl_deg, node_deg,
    argperi_deg, mean_anomaly_deg, epoch_mjd, h_mag`` (heliocentric ecliptic J2000 elements,
    epoch MJD TAI, H on the r band).
``schedule.yaml`` and ``night.yaml``
    See ``write_schedule`` and ``write_night_record``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.table import Table
from astropy.time import Time

from shutterline.camera import filters, layout
from shutterline.simulate import config, exposure, schedule

__all__ = [
    "write_orbits",
    "write_refcat",
    "write_schedule",
    "write_truth",
]

REFCAT_MAG_LIMIT = 21.5
_REFCAT_POS_ERR_MAS = 10.0


#: Number format of each float column of the truth table.
_TRUTH_FORMATS = {
    "mjd": ".8f",
    "ra": ".9f",
    "dec": ".9f",
    "x": ".4f",
    "y": ".4f",
    "flux_nJy": ".6g",
    "mag": ".5f",
}


def write_truth(out: Path, columns: dict[str, np.ndarray]) -> int:
    """Write ``truth/sources.csv`` from concatenated truth columns; returns the row count.

    Formatted by hand: astropy's table writer takes seconds for a night's 10^5 rows.
    """
    order = np.lexsort((columns["id"], columns["detector"], columns["visit"]))
    text_columns = []
    for name in exposure.TRUTH_COLUMNS:
        values = np.asarray(columns[name])[order]
        fmt = _TRUTH_FORMATS.get(name)
        text_columns.append(
            [format(v, fmt) for v in values.tolist()] if fmt else [str(v) for v in values.tolist()]
        )
    lines = [",".join(exposure.TRUTH_COLUMNS)]
    lines += [",".join(row) for row in zip(*text_columns, strict=True)]
    path = out / "truth" / "sources.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(order)


def write_refcat(out: Path, catalogs: list[Table], seed: int) -> int:
    """Write the reference catalog of all fields' stars; returns the number of stars."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 61]))
    stars = [
        c[(~np.asarray(c["extended"])) & (np.asarray(c["kind"]) != "transient")] for c in catalogs
    ]
    ids = np.concatenate([np.asarray(s["id"], np.int64) for s in stars])
    ra = np.concatenate([np.asarray(s["ra"], float) for s in stars])
    dec = np.concatenate([np.asarray(s["dec"], float) for s in stars])
    flux = {b: np.concatenate([np.asarray(s[f"flux_{b}"], float) for s in stars]) for b in "gri"}
    keep = flux["r"] > 10.0 ** (-0.4 * (REFCAT_MAG_LIMIT - config.NJY_AB_ZERO_MAG))
    table = Table()
    table["id"] = ids[keep]
    err_deg = _REFCAT_POS_ERR_MAS / 3.6e6
    dec_k = dec[keep] + rng.normal(0.0, err_deg, int(keep.sum()))
    ra_k = ra[keep] + rng.normal(0.0, err_deg, int(keep.sum())) / np.cos(np.deg2rad(dec[keep]))
    table["ra"], table["dec"] = ra_k % 360.0, dec_k
    table["ra"].unit = table["dec"].unit = "deg"
    for b in "gri":
        true = flux[b][keep]
        mag = config.NJY_AB_ZERO_MAG - 2.5 * np.log10(true)
        # Gaia/Pan-STARRS-like: 3 mmag floor, growing to ~0.05 mag at the limit.
        sigma_mag = np.hypot(0.003, 0.05 * 10.0 ** (0.4 * (mag - REFCAT_MAG_LIMIT)))
        err = true * sigma_mag * np.log(10.0) / 2.5
        table[f"{b}_flux"] = true + rng.normal(0.0, 1.0, len(true)) * err
        table[f"{b}_fluxErr"] = err
        table[f"{b}_flux"].unit = table[f"{b}_fluxErr"].unit = "nJy"
    path = out / "refcat" / "refcat.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write(path, format="fits", overwrite=True)
    return len(table)


def write_orbits(out: Path, orbit_table: Table) -> None:
    """Write ``solarsystem/orbits.csv`` (full float precision)."""
    path = out / "solarsystem" / "orbits.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    orbit_table.write(path, format="ascii.csv", overwrite=True)


def _visit_entry(plan: schedule.ExposurePlan, ccdnums: tuple[int, ...]) -> dict[str, Any]:
    return {
        "visit": plan.expnum,
        "exposure": plan.expnum,
        "mjd": plan.mjd,
        "mjd_mid": round(plan.mjd_mid, 8),
        "field": plan.field,
        "ra": plan.ra,
        "dec": plan.dec,
        "band": plan.band,
        "physical_filter": filters.physical_filter_of(plan.band),
        "observation_start": Time(plan.mjd, format="mjd", scale="tai").utc.isot + "Z",
        "rotation": 0.0,
        "exptime": plan.exptime,
        "detectors": list(ccdnums),
    }


def write_schedule(out: Path, plans: list[schedule.ExposurePlan], ccdnums: tuple[int, ...]) -> None:
    """Write ``schedule.yaml``: the night's science visits in observing order.

    ``{instrument, visits: [{visit, exposure, mjd (start, TAI), mjd_mid, field, ra, dec
    (boresight, deg), band, physical_filter (DECam's text), observation_start (UTC, RFC 3339,
    as a Visit's ``observationStart``), rotation (deg), exptime (s), detectors: [CCDNUM...]}]}``.
    """
    visits = [_visit_entry(p, ccdnums) for p in plans if p.role == "science"]
    text = yaml.safe_dump({"instrument": layout.CAMERA.name, "visits": visits}, sort_keys=False)
    (out / "schedule.yaml").write_text(text)
