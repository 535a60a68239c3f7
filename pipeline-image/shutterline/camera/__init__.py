"""The DECam-like camera: detector layout, raw-file keywords, pixel-section geometry.

Plain data and pure functions only; no I/O beyond reading a header object handed in.
"""

from shutterline.camera.geometry import Section, parse_section
from shutterline.camera.layout import CAMERA, Camera, DetectorSpec

__all__ = ["CAMERA", "Camera", "DetectorSpec", "Section", "parse_section"]
