"""The camera: 62 science detectors of 2048 x 4096 pixels, laid out like DECam's.

Only the simulator and the instrument's dimension records use this layout. Processing reads
geometry from raw headers (``DATASEC*``, ``BIASSEC*``), never from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CAMERA", "Camera", "DetectorSpec"]

# DECam's focal plane has rows of 3, 4, 5, 6, 6, 7, 7, 6, 6, 5, 4, 3 CCDs (north to south).
_ROWS = (3, 4, 5, 6, 6, 7, 7, 6, 6, 5, 4, 3)


@dataclass(frozen=True)
class DetectorSpec:
    """One detector: its number, name and where its centre sits on the focal plane.

    ``offset_x``/``offset_y`` are in pixels of the focal-plane grid, relative to the
    boresight. CCDs lie with their long (row, y) axis along focal-plane x, as on DECam.
    """

    ccdnum: int
    detpos: str
    offset_x: float
    offset_y: float


@dataclass(frozen=True)
class Camera:
    """The instrument: name, pixel scale and detectors."""

    name: str
    pixel_scale_arcsec: float
    nx: int
    ny: int
    detectors: tuple[DetectorSpec, ...]

    def detector(self, ccdnum: int) -> DetectorSpec:
        """The detector with ``CCDNUM == ccdnum``."""
        for spec in self.detectors:
            if spec.ccdnum == ccdnum:
                return spec
        raise KeyError(f"{self.name} has no detector {ccdnum}")


def _layout(nx: int, ny: int, gap: int) -> tuple[DetectorSpec, ...]:
    # CCDs lie with their long (y) axis along the focal-plane x axis, as on DECam;
    # numbering and S/N names follow row order, which is close enough for a simulation.
    specs: list[DetectorSpec] = []
    half = len(_ROWS) // 2
    for row, count in enumerate(_ROWS):
        fy = (half - row - 0.5) * (nx + gap)
        for col in range(count):
            fx = (col - (count - 1) / 2) * (ny + gap)
            n = len(specs) + 1
            side = "N" if row < half else "S"
            specs.append(DetectorSpec(n, f"{side}{n if n <= 31 else n - 31}", fx, fy))
    return tuple(specs)


CAMERA = Camera(
    name="SimDECam",
    pixel_scale_arcsec=0.263,
    nx=2048,
    ny=4096,
    detectors=_layout(2048, 4096, gap=150),
)
