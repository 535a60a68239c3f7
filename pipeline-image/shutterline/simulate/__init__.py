"""The night simulator behind ``shutterline simulate``: a self-consistent DECam-like night.

Belongs here: the sky model, asteroid orbits made to cross the detectors, the observing
plan, the instrument signature, rendering and raw-file writing, and the truth files. It
writes files and nothing else: no Butler, no network. Processing code must never import it
(the pipeline learns only what the raw files, the reference catalog and the orbits tell it).
"""

from shutterline.simulate.config import SimConfig, central_detectors
from shutterline.simulate.night import NightSummary, simulate_night

__all__ = ["NightSummary", "SimConfig", "central_detectors", "simulate_night"]
