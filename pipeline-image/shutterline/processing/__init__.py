"""Single-frame processing: characterization (stage 2) and calibration (stage 3).

What belongs here: pure array-level algorithms over an `~shutterline.images.Exposure` after
instrument signature removal, and the two stage entry points that chain them:

- `characterize.characterize`: `background` (sep mesh model), `detection` (sep extraction;
  centroids, PSF and aperture fluxes, shapes, flags), `starselect` and `psf` (a pixel-basis
  PSF whose pixels are polynomials in the position), `stamps` (vectorised cut-outs, sinc
  shifts);
- `calibrate.calibrate`: `astrometry` (offset vote, match, TAN fit, `sip` distortion when the
  residuals ask for it) and `photometry` (clipped zero point).

What must not: file or repository access (stages take and return arrays, ``Exposure``s and
``astropy.table.Table``s; the pipeline driver loads and stores them), spans or metrics
export (the driver records the ``stats`` the results carry), or any import of ``butler``.
"""

__all__: list[str] = []
