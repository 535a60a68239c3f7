"""Butler plumbing: the SimDECam instrument, formatters, dataset types, ingest, pre-cache.

What belongs here: everything that talks to an ``lsst.daf.butler`` repository (creating and
opening one, dimension records, storage classes and formatters, ingest of raws, reference
catalogs and orbits, certification of calibrations, pre-caching one detector's inputs and
loading them). Stages never import this package; drivers hand them plain objects.
Import the modules (``from shutterline.butler import repo, ingest``); this ``__init__``
stays light so ``shutterline --help`` does not import the Butler.
"""

__all__: list[str] = []
