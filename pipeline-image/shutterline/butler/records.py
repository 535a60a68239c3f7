"""Dimension records of observations, built from validated raw headers.

Each science exposure is its own visit (visit id = exposure id = ``EXPNUM``); its
``visit_detector_region`` is the detector's footprint through the raw's approximate WCS,
and the visit's region is a circle around the boresight covering the whole focal plane.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import astropy.units as u
from astropy.time import Time, TimeDelta
from lsst.daf.butler import Timespan
from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

from shutterline.butler import instrument, names, rawheaders, skymaps
from shutterline.camera import layout

__all__ = ["DAY_OBS_OFFSET_HOURS", "day_obs", "focal_plane_radius_deg", "observation_records"]

#: The observing day rolls over at noon in Chile (UTC-4 or so): ``day_obs`` is the date at
#: ``TAI - 16 h``, so a whole night shares one day_obs.
DAY_OBS_OFFSET_HOURS = 16.0

_ORDER = (
    "day_obs",
    "group",
    "exposure",
    "visit",
    "visit_definition",
    "visit_system_membership",
    "visit_detector_region",
)


def day_obs(mjd: float) -> int:
    """The observing day ``YYYYMMDD`` of an MJD (TAI)."""
    shifted = Time(mjd - DAY_OBS_OFFSET_HOURS / 24.0, format="mjd", scale="tai")
    return int(shifted.strftime("%Y%m%d"))


def focal_plane_radius_deg(camera: layout.Camera = layout.CAMERA) -> float:
    """Radius around the boresight that holds every detector, degrees."""
    half_diag = math.hypot(camera.nx, camera.ny) / 2.0
    reach = max(math.hypot(d.offset_x, d.offset_y) for d in camera.detectors) + half_diag
    return reach * camera.pixel_scale_arcsec / 3600.0


def _timespan(info: rawheaders.RawInfo) -> Timespan:
    begin = Time(info.mjd, format="mjd", scale="tai")
    return Timespan(begin, begin + TimeDelta(info.exptime * u.s))


def _exposure_records(info: rawheaders.RawInfo) -> dict[str, dict[str, Any]]:
    dobs = day_obs(info.mjd)
    zenith = math.degrees(math.acos(1.0 / info.airmass)) if info.airmass >= 1.0 else None
    inst = names.INSTRUMENT
    return {
        "day_obs": {
            "instrument": inst,
            "id": dobs,
            "timespan": Timespan.from_day_obs(dobs, offset=int(DAY_OBS_OFFSET_HOURS * 3600)),
        },
        "group": {"instrument": inst, "name": str(info.exposure)},
        "exposure": {
            "instrument": inst,
            "id": info.exposure,
            "obs_id": info.obs_id,
            "physical_filter": info.physical_filter,
            "group": str(info.exposure),
            "day_obs": dobs,
            "exposure_time": info.exptime,
            "dark_time": info.exptime,
            "observation_type": info.obstype,
            "observation_reason": "science" if info.is_science else "calibration",
            "seq_num": info.exposure,
            "tracking_ra": info.tel_ra if info.is_science else None,
            "tracking_dec": info.tel_dec if info.is_science else None,
            "zenith_angle": zenith,
            "has_simulated": True,
            "can_see_sky": info.is_science,
            "timespan": _timespan(info),
        },
    }


def _visit_records(info: rawheaders.RawInfo) -> dict[str, dict[str, Any]]:
    inst, visit = names.INSTRUMENT, info.exposure
    centre = UnitVector3d(LonLat.fromDegrees(info.tel_ra, info.tel_dec))
    exp = _exposure_records(info)["exposure"]
    return {
        "visit": {
            "instrument": inst,
            "id": visit,
            "name": info.obs_id,
            "physical_filter": info.physical_filter,
            "day_obs": exp["day_obs"],
            "seq_num": info.exposure,
            "exposure_time": info.exptime,
            "observation_reason": "science",
            "zenith_angle": exp["zenith_angle"],
            "region": Circle(centre, Angle.fromDegrees(focal_plane_radius_deg())),
            "timespan": exp["timespan"],
        },
        "visit_definition": {"instrument": inst, "exposure": info.exposure, "visit": visit},
        "visit_system_membership": {
            "instrument": inst,
            "visit": visit,
            "visit_system": instrument.VISIT_SYSTEM_ID,
        },
    }


def observation_records(infos: Iterable[rawheaders.RawInfo]) -> list[tuple[str, list[dict]]]:
    """Records for a batch of raws, one of each, in the order the registry needs them."""
    unique: dict[str, dict[tuple, dict[str, Any]]] = {name: {} for name in _ORDER}
    for info in infos:
        element_records = _exposure_records(info)
        if info.is_science and info.corners is not None:
            element_records.update(_visit_records(info))
            element_records["visit_detector_region"] = {
                "instrument": names.INSTRUMENT,
                "visit": info.exposure,
                "detector": info.detector,
                "region": skymaps.polygon(info.corners),
            }
        for element, record in element_records.items():
            key = tuple(v for k, v in record.items() if k in ("id", "name", "visit", "detector"))
            unique[element].setdefault(key, record)
    return [(name, list(unique[name].values())) for name in _ORDER if unique[name]]
