"""What a simulated night is made of: the run's settings and the fixed instrument numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shutterline.camera import layout

__all__ = [
    "BANDS",
    "EXPTIME_S",
    "NJY_AB_ZERO_MAG",
    "BandSpec",
    "SimConfig",
    "central_detectors",
]

#: AB magnitude of a flux of 1 nJy: m_AB = 31.4 - 2.5 log10(flux / nJy).
NJY_AB_ZERO_MAG = 31.4
#: Exposure time of every science visit and template visit, seconds.
EXPTIME_S = 30.0
#: Exposure time of dome flats, seconds.
FLAT_EXPTIME_S = 10.0


@dataclass(frozen=True)
class BandSpec:
    """Throughput and sky of one band, DECam-like.

    ``zp_mag`` is the AB magnitude giving 1 electron per second at airmass 1 (above the
    atmosphere's extinction ``extinction`` mag per airmass already applied once);
    ``sky_mag`` is the dark-sky brightness at zenith in AB mag per square arcsecond.
    """

    name: str
    zp_mag: float
    extinction: float
    sky_mag: float
    #: Color offset of a typical asteroid relative to its r-band H magnitude.
    asteroid_color: float


BANDS: dict[str, BandSpec] = {
    "g": BandSpec("g", 26.5, 0.18, 22.1, 0.45),
    "r": BandSpec("r", 26.7, 0.10, 21.2, 0.0),
    "i": BandSpec("i", 26.6, 0.08, 20.4, -0.15),
}


@dataclass(frozen=True)
class SimConfig:
    """Settings of one simulated night; every field has a sensible default.

    ``visits`` is the number of science visits per field during the night (bands cycle
    through ``bands``); ``template_visits`` the number of earlier visits per field and band.
    ``nx, ny`` are the science pixels of one detector (columns, rows); smaller shapes keep
    tests fast and shrink the focal-plane layout in proportion.
    """

    seed: int = 1
    visits: int = 4
    detectors: int = 2
    fields: int = 3
    bands: tuple[str, ...] = ("r",)
    template_visits: int = 3
    nx: int = 2048
    ny: int = 4096
    n_bias: int = 5
    n_flat: int = 5
    night_mjd: float = 61280.0
    overscan: int = 50
    #: Densities per square degree: stars (r < 25.5), galaxies (r < 25.5).
    star_density: float = 2.5e4
    galaxy_density: float = 4.0e4
    #: Per square degree of the simulated fields.
    variable_density: float = 250.0
    transient_density: float = 180.0
    asteroids_per_detector: float = 4.0
    #: Science-only defects (columns the calibrations never saw) per detector, on average.
    late_columns_per_detector: float = 0.5
    #: Satellite trails per detector and sky exposure, on average.
    trails_per_exposure: float = 0.05
    #: The visits' seeing draws (0.8 to 2.0 arcsec FWHM) are multiplied by this.
    seeing_scale: float = 1.0
    ccdnums: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = [b for b in self.bands if b not in BANDS]
        if unknown:
            raise ValueError(f"unknown band(s) {unknown}; simulated bands are {sorted(BANDS)}")
        for name in ("visits", "detectors", "fields", "template_visits", "n_bias", "n_flat"):
            if getattr(self, name) < (0 if name in ("template_visits",) else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.nx % 2 or self.nx < 64 or self.ny < 64:
            raise ValueError(
                f"detector shape must be even in x and at least 64: {self.nx}x{self.ny}"
            )
        if not self.ccdnums:
            object.__setattr__(self, "ccdnums", central_detectors(self.detectors))
        elif len(self.ccdnums) != self.detectors:
            raise ValueError("ccdnums must list exactly `detectors` detectors")

    @property
    def scale(self) -> tuple[float, float]:
        """Shrink factors of the focal-plane layout for a small detector shape (x, y)."""
        return self.nx / layout.CAMERA.nx, self.ny / layout.CAMERA.ny


def central_detectors(n: int) -> tuple[int, ...]:
    """The ``n`` detectors nearest the boresight, as sorted CCD numbers.

    Raises
    ------
    ValueError
        If the camera has fewer than ``n`` detectors.
    """
    specs = layout.CAMERA.detectors
    if not 1 <= n <= len(specs):
        raise ValueError(f"detectors must be between 1 and {len(specs)}, got {n}")
    ranked = sorted(specs, key=lambda d: (math.hypot(d.offset_x, d.offset_y), d.ccdnum))
    return tuple(sorted(d.ccdnum for d in ranked[:n]))
