"""The sky map: tracts in declination rings, each cut into overlapping square patches.

Pure geometry over numpy and astropy WCS; no I/O. Template coadds live on patch grids.
"""

from shutterline.skymap.rings import SKYMAP, PatchInfo, RingsSkyMap

__all__ = ["SKYMAP", "PatchInfo", "RingsSkyMap"]
