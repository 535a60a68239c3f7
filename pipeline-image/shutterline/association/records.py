"""Translation between the differencing stage's DIA source table and APDB / alert rows.

The APDB (``sdm_schemas`` ``apdb.yaml``) and the alert schema use the same camel-case field
names (``psfFlux``, ``pixelFlags_bad``, ...), so one translation serves both. Units follow the
schema: fluxes in nJy, ``raErr``/``decErr`` in degrees, moments ``ixx, iyy, ixy`` in arcsec**2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas
from astropy.table import Table
from astropy.time import Time

from shutterline.association import visitinfo

__all__ = [
    "DIA_SOURCE_RENAMES",
    "coerce",
    "dia_source_frame",
    "frame_records",
    "now_mjd_tai",
    "schema_name",
    "snake_to_camel",
]

#: Table column -> schema field, where the generic snake-to-camel rule does not give it.
DIA_SOURCE_RENAMES: dict[str, str] = {
    "sci_flux": "scienceFlux",
    "sci_flux_err": "scienceFluxErr",
    "pixel_flags_bad": "pixelFlags_bad",
    "pixel_flags_cr": "pixelFlags_cr",
    "pixel_flags_cr_center": "pixelFlags_crCenter",
    "pixel_flags_sat": "pixelFlags_saturated",
    "pixel_flags_saturated": "pixelFlags_saturated",
    "pixel_flags_sat_center": "pixelFlags_saturatedCenter",
    "pixel_flags_edge": "pixelFlags_edge",
    "pixel_flags_interpolated": "pixelFlags_interpolated",
    "pixel_flags_interpolated_center": "pixelFlags_interpolatedCenter",
    "pixel_flags_suspect": "pixelFlags_suspect",
    "pixel_flags_suspect_center": "pixelFlags_suspectCenter",
    "pixel_flags_nodata": "pixelFlags_nodata",
    "pixel_flags_nodata_center": "pixelFlags_nodataCenter",
    "pixel_flags_streak": "pixelFlags_streak",
    "pixel_flags_injected": "pixelFlags_injected",
    "pixel_flags_injected_center": "pixelFlags_injectedCenter",
    "pixel_flags_injected_template": "pixelFlags_injected_template",
    "pixel_flags_injected_template_center": "pixelFlags_injected_templateCenter",
    "forced_psf_flux_flag": "forced_PsfFlux_flag",
    "forced_psf_flux_flag_edge": "forced_PsfFlux_flag_edge",
    "forced_psf_flux_flag_no_good_pixels": "forced_PsfFlux_flag_noGoodPixels",
    "ap_flux_flag_aperture_truncated": "apFlux_flag_apertureTruncated",
    "shape_flag_no_pixels": "shape_flag_no_pixels",
    "shape_flag_not_contained": "shape_flag_not_contained",
    "shape_flag_parent_source": "shape_flag_parent_source",
    "pixel_flags_streak_center": "pixelFlags_streakCenter",
    "pixel_flags_offimage": "pixelFlags_offimage",
    "trail_flag": "trail_flag",
    "trail_flag_edge": "trail_flag_edge",
    "shape_flag": "shape_flag",
    "centroid_flag": "centroid_flag",
    "psf_flux_flag": "psfFlux_flag",
    "psf_flux_flag_edge": "psfFlux_flag_edge",
    "psf_flux_flag_no_good_pixels": "psfFlux_flag_noGoodPixels",
    "ap_flux_flag": "apFlux_flag",
    "ixx_psf": "ixxPSF",
    "iyy_psf": "iyyPSF",
    "ixy_psf": "ixyPSF",
    "ra_dec_cov": "ra_dec_Cov",
}

#: Non-nullable integer fields and the value that honestly says "not measured": no pixels
#: were used by a fit that was not attempted.
_REQUIRED_COUNTS = ("psfNdata", "trailNdata", "dipoleNdata")


def snake_to_camel(name: str) -> str:
    """``psf_flux_err`` -> ``psfFluxErr``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def now_mjd_tai() -> float:
    """The current time as MJD (TAI)."""
    return float(Time(time.time(), format="unix", scale="utc").tai.mjd)


def schema_name(column: str, fields: frozenset[str]) -> str | None:
    """The schema field of a stage-5 table column, or None if the schema has none."""
    if column in DIA_SOURCE_RENAMES:
        return DIA_SOURCE_RENAMES[column]
    if column in fields:
        return column
    camel = snake_to_camel(column)
    return camel if camel in fields else None


def dia_source_frame(
    dia_sources: Table,
    info: visitinfo.VisitInfo,
    fields: Iterable[str],
    processed_mjd: float,
) -> pandas.DataFrame:
    """APDB ``DiaSource`` rows for the differencing stage's table.

    Parameters
    ----------
    dia_sources : astropy.table.Table
        One row per DIA source, lower snake-case columns (``dia_source_id, x, y, ra, dec,
        psf_flux, ...``). Columns the schema does not know are dropped.
    info : VisitInfo
        Supplies ``visit, detector, band, midpointMjdTai, exposureTime``.
    fields : iterable of str
        Column names of the APDB ``DiaSource`` table.
    processed_mjd : float
        ``timeProcessedMjdTai`` of every row.

    Returns
    -------
    pandas.DataFrame
        One row per input row, in input order, with schema column names.
    """
    names = frozenset(fields)
    data: dict[str, Any] = {}
    for column in dia_sources.colnames:
        target = schema_name(column, names)
        if target is not None:
            values = np.asarray(dia_sources[column])
            data[target] = values.astype(values.dtype.newbyteorder("="))
    n = len(dia_sources)
    if "diaSourceId" not in data or "bboxSize" not in data:
        raise ValueError("DIA source table needs 'dia_source_id' and 'bbox_size' columns")
    data["diaSourceId"] = data["diaSourceId"].astype(np.int64)
    data["visit"] = np.full(n, info.visit, np.int64)
    data["detector"] = np.full(n, info.detector, np.int16)
    data["band"] = np.full(n, info.band, object)
    data["midpointMjdTai"] = np.full(n, info.mjd, np.float64)
    if info.exposure_time is not None:
        data["exposureTime"] = np.full(n, info.exposure_time, np.float32)
    data["timeProcessedMjdTai"] = np.full(n, processed_mjd, np.float64)
    for count in _REQUIRED_COUNTS:
        data.setdefault(count, np.zeros(n, np.int32))
    data["bboxSize"] = np.asarray(data["bboxSize"]).astype(np.int32)
    return pandas.DataFrame(data)


def coerce(frame: pandas.DataFrame, dtypes: Mapping[str, str]) -> pandas.DataFrame:
    """``frame`` with every column the schema types cast to that type (float -> float32 ...).

    Values then round-trip through the database unchanged, so a retried detector that reads
    its rows back builds byte-identical alerts. Built column by column into a new frame:
    ``DataFrame.astype`` with masked dtypes is an order of magnitude slower.
    """
    data: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        target = dtypes.get(name)
        if target is None or str(column.dtype) == target:
            data[name] = column.to_numpy() if target is None else column.array
        elif target[0].isupper() or target == "boolean":
            data[name] = pandas.array(column.to_numpy(object), dtype=target)
        else:
            data[name] = column.to_numpy(target)
    return pandas.DataFrame(data, index=frame.index)


def _column_values(column: pandas.Series) -> list[Any]:
    """Plain Python values of one column, None for NaN / NA (``tolist`` does the C work)."""
    if not column.hasnans:
        return list(column.to_numpy().tolist())
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        return [None if v != v else v for v in column.to_numpy().tolist()]  # NaN != NaN
    as_object = column.to_numpy(object, na_value=None)
    return [v.item() if isinstance(v, np.generic) else _nan_none(v) for v in as_object]


def _nan_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def frame_records(frame: pandas.DataFrame, drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rows of ``frame`` as dicts of plain Python values (NaN -> None), minus ``drop``."""
    skip = set(drop)
    columns = [c for c in frame.columns if c not in skip]
    values = [_column_values(frame[c]) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
