"""Calibrations certified for a validity range, and template coadds on sky-map patches."""

from __future__ import annotations

import logging
from typing import Any

from astropy.time import Time
from lsst.daf.butler import Butler, DatasetRef, Timespan

from shutterline.butler import names, skymaps, storage
from shutterline.images import exposure as exposure_io
from shutterline.skymap import rings

__all__ = ["certify_calibration", "put_template", "template_ref", "validity_timespan"]

_LOG = logging.getLogger(__name__)


def validity_timespan(valid_from_mjd: float, valid_to_mjd: float | None) -> Timespan:
    """``[from, to)`` in MJD (TAI); ``None`` means valid from then on."""
    begin = Time(valid_from_mjd, format="mjd", scale="tai")
    end = None if valid_to_mjd is None else Time(valid_to_mjd, format="mjd", scale="tai")
    return Timespan(begin, end)


def certify_calibration(
    butler: Butler,
    dataset_type: str,
    obj: exposure_io.Exposure,
    data_id: dict[str, Any],
    valid_from_mjd: float,
    valid_to_mjd: float | None,
) -> DatasetRef:
    """Store a master calibration and certify it in ``SimDECam/calib`` for a validity range.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        Writeable.
    dataset_type : str
        ``'bias'`` (data id: detector) or ``'flat'`` (detector, physical_filter).
    obj : Exposure
        The master calibration.
    data_id : dict
        ``instrument`` may be left out.
    valid_from_mjd, valid_to_mjd : float
        Validity range ``[from, to)`` in MJD (TAI); ``valid_to_mjd=None`` is open-ended.

    Returns
    -------
    lsst.daf.butler.DatasetRef
        The stored dataset, in a RUN named for the type and range.

    Raises
    ------
    lsst.daf.butler.registry.ConflictingDefinitionError
        Another dataset of the same type and data id is certified for an overlapping range.
    """
    data_id = {"instrument": names.INSTRUMENT, **data_id}
    run = names.calib_run(dataset_type, valid_from_mjd, valid_to_mjd)
    butler.registry.registerRun(run)
    ref = storage.make_ref(butler, dataset_type, data_id, run)
    timespan = validity_timespan(valid_from_mjd, valid_to_mjd)
    with butler.transaction():
        storage.put_checksummed(butler, obj, ref)
        butler.registry.certify(names.CALIB_COLLECTION, [ref], timespan)
    _LOG.info("certified %s %s for %s", dataset_type, data_id, timespan)
    return ref


def put_template(
    butler: Butler,
    exposure: exposure_io.Exposure,
    tract: int,
    patch: int,
    band: str,
    skymap: rings.RingsSkyMap = rings.SKYMAP,
) -> DatasetRef:
    """Store a template coadd for one patch and band in ``templates/coadd``.

    The tract and its patches are registered on first use. The exposure's shape should be
    the patch's ``(ny, nx)`` (a mismatch is logged, not refused: a caller may crop).
    """
    expected = skymap.patch(tract, patch).shape
    if exposure.shape != expected:
        _LOG.warning(
            "template for tract %d patch %d has shape %s, patch is %s",
            tract,
            patch,
            exposure.shape,
            expected,
        )
    return storage.put_checksummed(
        butler, exposure, template_ref(butler, tract, patch, band, skymap)
    )


def template_ref(
    butler: Butler, tract: int, patch: int, band: str, skymap: rings.RingsSkyMap = rings.SKYMAP
) -> DatasetRef:
    """The ref a template of one patch and band gets in ``templates/coadd`` (to write with
    `storage.write_local` and store with `storage.ingest_local`); registers the tract and its
    patches on first use."""
    skymaps.register_tract(butler, tract, skymap)
    data_id = {"skymap": skymap.name, "tract": tract, "patch": patch, "band": band}
    return storage.make_ref(butler, names.TEMPLATE, data_id, names.TEMPLATE_COLLECTION)
