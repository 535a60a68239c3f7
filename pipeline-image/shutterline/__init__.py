"""Shutterline: prompt processing for a wide-field survey telescope.

This package is what the pipeline image runs: the camera description, the Butler plumbing
(instrument, formatters, ingest, pre-cache), the science stages, the simulator, the sidecars
and the command line. It never imports kopf or the Kubernetes client: the operator lives in
``shutterline_operator``.

Pixel convention, stated once for the whole package: arrays are indexed ``(y, x)``, pixel
coordinates are 0-based with the centre of the first pixel at ``(0.0, 0.0)`` (astropy's
``origin=0``). FITS keywords (``CRPIX``, section strings) stay 1-based as FITS defines them and
are converted only in ``shutterline.camera.geometry``.
"""

__all__: list[str] = []
