"""Where the camera observes from: the Blanco 4 m telescope at Cerro Tololo (DECam's site)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CTIO", "Site"]


@dataclass(frozen=True)
class Site:
    """An observatory on the WGS84 ellipsoid: geodetic latitude, east longitude (deg), metres."""

    name: str
    lat_deg: float
    lon_deg: float
    height_m: float


CTIO = Site("CTIO Blanco 4m", -30.16606, -70.81489, 2215.0)
