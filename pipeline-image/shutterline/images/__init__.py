"""In-memory image types shared by every stage: ``Exposure`` and mask bit planes.

Plain data plus FITS (de)serialisation through astropy; no Butler, no network.
"""

from shutterline.images.exposure import Exposure, read_exposure, write_exposure
from shutterline.images.mask import MaskBit

__all__ = ["Exposure", "MaskBit", "read_exposure", "write_exposure"]
