"""Instrument signature removal: from a raw HDUList to an ``Exposure`` in electrons.

What belongs here: amplifier assembly (overscan, trim, gain), application of master bias and
flat, saturation, bad-pixel and cosmic-ray masks with interpolation, and the variance plane.
Pure array work on objects handed in: no files, no repositories, no Butler.
"""

from shutterline.isr.assembly import assemble_raw
from shutterline.isr.isr import IsrConfig, run_isr

__all__ = ["IsrConfig", "assemble_raw", "run_isr"]
