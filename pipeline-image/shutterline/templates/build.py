"""``shutterline templates build``: template coadds from earlier science visits.

For every selected science exposure and detector: instrument signature removal with the
certified calibrations, characterization (background, PSF, sources), calibration against the
reference catalog (WCS, nJy), warping onto every overlapping sky-map patch; then, per patch and
band, a coadd (`shutterline.templates.coadd`) stored as ``template_coadd``. Detectors run in
worker processes up to ``jobs``; each returns its warps cropped to where they have data.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from astropy.table import Table, vstack
from astropy.time import Time
from lsst.daf.butler import Butler, DatasetRef, DimensionRecord, Timespan
from lsst.sphgeom import LonLat
from tqdm import tqdm

from shutterline import exceptions
from shutterline.butler import certify, names, refcat, repo, selection, skymaps, storage, workers
from shutterline.camera import filters, rawformat
from shutterline.differencing import warp as warp_mod
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod
from shutterline.isr import isr as isr_mod
from shutterline.processing import calibrate, characterize
from shutterline.skymap import rings
from shutterline.templates import coadd

__all__ = ["TemplateBuildResult", "build_templates", "process_detector", "template_exposures"]

_LOG = logging.getLogger(__name__)
PatchKey = tuple[int, int, str]  # tract, patch, band


@dataclasses.dataclass
class TemplateBuildResult:
    """What a build stored, and what it had to skip (``(exposure, detector, reason)``)."""

    templates: dict[PatchKey, DatasetRef] = dataclasses.field(default_factory=dict)
    inputs: dict[PatchKey, list[int]] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)


def template_exposures(
    butler: Butler,
    exposures: Sequence[int] | None = None,
    before_mjd: float | None = None,
    bands: Sequence[str] | None = None,
) -> list[DimensionRecord]:
    """Science exposure records to build templates from.

    The ``exposures`` named; else every science exposure starting before ``before_mjd``;
    else every science exposure of an earlier observing day than the latest one (the night
    being processed is never its own template). Restricted to ``bands`` if given.
    """
    where = "instrument = inst AND exposure.observation_type = ot"
    bind: dict[str, Any] = {"inst": names.INSTRUMENT, "ot": rawformat.OBSTYPE_SCIENCE}
    records = butler.query_dimension_records(
        "exposure", where=where, bind=bind, limit=None, explain=False
    )
    if exposures:
        wanted = set(exposures)
        records = [r for r in records if int(r.id) in wanted]
        missing = sorted(wanted - {int(r.id) for r in records})
        if missing:
            raise exceptions.MissingInputError(
                names.RAW, {"exposure": missing}, "not registered science exposures"
            )
    elif before_mjd is not None:
        records = [r for r in records if r.timespan.begin.tai.mjd < before_mjd]
    elif records:
        last_day = max(int(r.day_obs) for r in records)
        records = [r for r in records if int(r.day_obs) < last_day]
    if bands:
        records = [r for r in records if str(r.physical_filter) in bands]
    return sorted(records, key=lambda r: int(r.id))


#: The last calibrations this process read, by dataset id (a bias and a flat): the work is
#: ordered by detector, so consecutive inputs of one detector read them once. Stages only
#: read calibrations, never change them.
_CALIBS: collections.OrderedDict[Any, exposure_mod.Exposure] = collections.OrderedDict()


def _calib(butler: Butler, name: str, data_id: dict[str, Any], mjd: float) -> exposure_mod.Exposure:
    when = Timespan.fromInstant(Time(mjd, format="mjd", scale="tai"))
    full = {"instrument": names.INSTRUMENT, **data_id}
    ref = butler.find_dataset(name, full, collections=names.CALIB_COLLECTION, timespan=when)
    if ref is None:
        raise exceptions.MissingInputError(name, full, f"none certified at MJD {mjd:.5f}")
    if ref.id not in _CALIBS:
        _CALIBS[ref.id] = butler.get(ref)
        while len(_CALIBS) > 2:
            _CALIBS.popitem(last=False)
    _CALIBS.move_to_end(ref.id)
    return _CALIBS[ref.id]


def _refcat(butler: Butler, corners: np.ndarray, padding_arcsec: float) -> Table:
    padded = selection.padded_corners(corners, padding_arcsec)
    refs = refcat.shard_refs(butler, padded)
    if not refs:
        raise exceptions.MissingInputError(
            names.REFCAT,
            {"pixels": len(refcat.shards_for_region(skymaps.polygon(padded)))},
            "no shard overlaps",
        )
    tables = [butler.get(ref) for ref in refs]
    return tables[0] if len(tables) == 1 else vstack(tables, join_type="exact")


def _cropped(warped: exposure_mod.Exposure) -> coadd.Warp | None:
    has_data = (warped.mask & int(mask_mod.MaskBit.NO_DATA)) == 0
    rows, cols = np.flatnonzero(has_data.any(axis=1)), np.flatnonzero(has_data.any(axis=0))
    if rows.size == 0:
        return None
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    sub = exposure_mod.Exposure(
        warped.image[box].copy(),
        warped.mask[box].copy(),
        warped.variance[box].copy(),
        psf=warped.psf,
        metadata=warped.metadata,
    )
    return coadd.Warp(coadd.to_njy(sub), int(rows[0]), int(cols[0]))


def _footprint(exposure: exposure_mod.Exposure) -> np.ndarray:
    if exposure.wcs is None:
        raise exceptions.PermanentError(f"{exposure.metadata.get('VISIT')}: exposure has no WCS")
    ny, nx = exposure.shape
    corners: np.ndarray = exposure.wcs.calc_footprint(axes=(nx, ny))
    return corners


def process_detector(
    butler: Butler,
    exposure: int,
    detector: int,
    skymap: rings.RingsSkyMap = rings.SKYMAP,
    padding_arcsec: float = 60.0,
) -> dict[PatchKey, coadd.Warp]:
    """ISR, characterize, calibrate and warp one detector of one exposure onto its patches.

    Returns
    -------
    dict
        ``(tract, patch, band) -> Warp`` in nJy, cropped to where the warp has data.
    """
    data_id = {"instrument": names.INSTRUMENT, "detector": detector, "exposure": exposure}
    hdul = butler.get(names.RAW, data_id, collections=names.RAW_COLLECTION)
    try:
        mjd = float(hdul[0].header["MJD-OBS"])
        band = filters.band_of(hdul[0].header["FILTER"])
        bias = _calib(butler, names.BIAS, {"detector": detector}, mjd)
        flat = _calib(butler, names.FLAT, {"detector": detector, "physical_filter": band}, mjd)
        exp = isr_mod.run_isr(hdul, bias, flat)
    finally:
        hdul.close()
    del bias, flat
    char = characterize.characterize(exp, in_place=True)
    corners = _footprint(exp)
    cal = calibrate.calibrate(
        char.exposure, char.sources, _refcat(butler, corners, padding_arcsec), band
    )
    corners = _footprint(cal.exposure)
    warps: dict[PatchKey, coadd.Warp] = {}
    for info in skymap.patches_overlapping(corners[:, 0], corners[:, 1]):
        cropped = _cropped(warp_mod.warp_exposure(cal.exposure, info.wcs, info.shape))
        if cropped is not None:
            warps[(info.tract, info.patch, band)] = cropped
    return warps


_WORKER_BUTLER: Butler | None = None


def _init_worker(repo_uri: str) -> None:
    global _WORKER_BUTLER
    _WORKER_BUTLER = repo.open_repo(repo_uri)


def _attempt(
    butler: Butler, exposure: int, detector: int, skymap: rings.RingsSkyMap
) -> tuple[int, int, dict[PatchKey, coadd.Warp] | None, str]:
    # A detector that cannot be processed (too few stars, no calibration) is skipped with
    # its reason; the other inputs still make templates.
    try:
        return exposure, detector, process_detector(butler, exposure, detector, skymap), ""
    except exceptions.ShutterlineError as exc:
        return exposure, detector, None, str(exc)


def _worker(
    item: tuple[int, int, rings.RingsSkyMap],
) -> tuple[int, int, dict[PatchKey, coadd.Warp] | None, str]:
    assert _WORKER_BUTLER is not None, "worker not initialised"
    return _attempt(_WORKER_BUTLER, *item)


def _work_items(
    butler: Butler, records: Sequence[DimensionRecord], detectors: Sequence[int] | None
) -> list[tuple[int, int]]:
    # ``(exposure, detector)`` by detector, then exposure: consecutive items share their
    # calibrations (`_calib` keeps the last ones read).
    refs = selection.raws_of_exposures(butler, [r.id for r in records])
    items = {(int(r.dataId["exposure"]), int(r.dataId["detector"])) for r in refs}
    wanted = (i for i in items if detectors is None or i[1] in detectors)
    return sorted(wanted, key=lambda i: (i[1], i[0]))


def _results(
    butler: Butler,
    items: list[tuple[int, int]],
    skymap: rings.RingsSkyMap,
    jobs: int,
    repo_uri: str | None,
) -> Any:
    if jobs <= 1 or repo_uri is None or len(items) <= 1:
        return (_attempt(butler, e, d, skymap) for e, d in items)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(repo_uri,)
    )

    def generate() -> Any:
        with pool:
            yield from pool.map(_worker, [(e, d, skymap) for e, d in items])

    return generate()


def _coadd(
    key: PatchKey,
    inputs: list[tuple[int, float, coadd.Warp]],
    skymap: rings.RingsSkyMap,
    config: coadd.CoaddConfig | None,
    target: tuple[str, str],
) -> tuple[PatchKey, list[int], str]:
    """One patch's coadd (in a worker process when ``jobs > 1``) written for ingest as
    ``target = (storage class, path stem)``; ``(key, input exposures, path written)``.

    Writing here, not in the parent, spreads the FITS writes over the workers and sends back
    a path instead of a pickled patch.
    """
    tract, patch, band = key
    info = skymap.patch(tract, patch)
    out = coadd.coadd([w for _, _, w in inputs], info.shape, config)
    out.wcs = info.wcs
    visits = sorted({e for e, _, _ in inputs})
    out.metadata.update(
        {
            "BAND": band,
            "TRACT": tract,
            "PATCH": patch,
            "MJD": float(np.mean([m for _, m, _ in inputs])),
            "INPUTS": ",".join(map(str, visits))[:68],
            "NVISIT": len(visits),
        }
    )
    return key, visits, storage.write_local(out, *target)


def _coadds(
    collected: Collected,
    skymap: rings.RingsSkyMap,
    config: coadd.CoaddConfig | None,
    jobs: int,
    targets: dict[PatchKey, tuple[str, str]],
) -> Iterator[tuple[PatchKey, list[int], str]]:
    """Every patch's coadd written for ingest, in ``jobs`` processes, at most ``jobs + 1``
    patches' warps in flight (one queued, so no worker waits on the parent).

    Each patch's warps are dropped from ``collected`` as it is handed out, so memory falls as
    the coadds are made (the patches are independent; a night's 45 took 4 minutes on one core).
    """
    keys = sorted(collected)
    items = ((key, collected.pop(key), skymap, config, targets[key]) for key in keys)
    if jobs <= 1 or len(keys) <= 1:
        yield from (_coadd(*item) for item in items)
    else:
        yield from workers.ordered_results(_coadd, items, jobs)


def _store_all(
    butler: Butler,
    collected: Collected,
    skymap: rings.RingsSkyMap,
    config: coadd.CoaddConfig | None,
    jobs: int,
    result: TemplateBuildResult,
    progress: bool,
) -> None:
    """Coadd every patch and store them all in one ingest (one registry transaction, not a
    commit per patch; a failed build stores none)."""
    refs = {
        (t, p, b): certify.template_ref(butler, t, p, b, skymap) for t, p, b in sorted(collected)
    }
    with tempfile.TemporaryDirectory(prefix="shutterline-templates-") as staging:
        targets = {
            k: (ref.datasetType.storageClass_name, os.path.join(staging, "-".join(map(str, k))))
            for k, ref in refs.items()
        }
        written = []
        coadds = _coadds(collected, skymap, config, jobs, targets)
        for key, visits, path in tqdm(
            coadds, total=len(refs), desc="coadding patches", unit="patch", disable=not progress
        ):
            result.inputs[key] = visits
            written.append((path, refs[key]))
        storage.ingest_local(butler, written)
    result.templates.update(refs)


def _planned_keys(
    butler: Butler,
    records: Sequence[DimensionRecord],
    detectors: Sequence[int] | None,
    skymap: rings.RingsSkyMap,
) -> list[PatchKey]:
    # The patches the raw WCSs (within 2 arcsec of the truth) say the inputs will cover:
    # enough to find existing templates before hours of processing, not to build with.
    regions = butler.query_dimension_records(
        "visit_detector_region",
        where="instrument = inst AND visit IN (ids)",
        bind={"inst": names.INSTRUMENT, "ids": [int(r.id) for r in records]},
        limit=None,
        explain=False,
    )
    bands = {int(r.id): str(r.physical_filter) for r in records}
    keys: set[PatchKey] = set()
    for region in regions:
        if detectors is not None and int(region.detector) not in detectors:
            continue
        points = [LonLat(v) for v in region.region.getVertices()]
        ra = np.array([p.getLon().asDegrees() for p in points])
        dec = np.array([p.getLat().asDegrees() for p in points])
        band = bands[int(region.visit)]
        keys.update((p.tract, p.patch, band) for p in skymap.patches_overlapping(ra, dec, 10.0))
    return sorted(keys)


def _clear_existing(
    butler: Butler, keys: list[PatchKey], skymap: rings.RingsSkyMap, replace: bool
) -> None:
    tracts = _registered_tracts(butler, skymap)
    existing = []
    for tract, patch, band in keys:
        if tract not in tracts:
            continue  # nothing can exist on a tract not registered yet
        data_id = {"skymap": skymap.name, "tract": tract, "patch": patch, "band": band}
        existing += butler.query_datasets(
            names.TEMPLATE,
            collections=names.TEMPLATE_COLLECTION,
            data_id=data_id,
            explain=False,
        )
    if existing and not replace:
        ids = ", ".join(
            f"{r.dataId['tract']}/{r.dataId['patch']}/{r.dataId['band']}" for r in existing[:5]
        )
        raise exceptions.PermanentError(
            f"{len(existing)} template patches already exist in {names.TEMPLATE_COLLECTION} "
            f"(tract/patch/band {ids}); pass replace (--replace) to rebuild them"
        )
    if existing:
        butler.pruneDatasets(existing, disassociate=True, unstore=True, purge=True)
        _LOG.info("removed %d existing template patches", len(existing))


def _registered_tracts(butler: Butler, skymap: rings.RingsSkyMap) -> set[int]:
    # Querying a data id whose tract record does not exist yet is an error, not "none".
    records = butler.query_dimension_records(
        "tract", where="skymap = sm", bind={"sm": skymap.name}, limit=None, explain=False
    )
    return {int(r.id) for r in records}


Collected = dict[PatchKey, list[tuple[int, float, coadd.Warp]]]  # exposure, MJD, warp


def _collect(
    results: Any, total: int, mjds: dict[int, float], result: TemplateBuildResult, progress: bool
) -> Collected:
    # Each patch's inputs in (exposure, detector) order, whatever order they were made in:
    # the coadd's sums, and so its bytes, follow the order of its inputs.
    done: dict[tuple[int, int], dict[PatchKey, coadd.Warp]] = {}
    for exposure, detector, warps, reason in tqdm(
        results, total=total, desc="template inputs", unit="detector", disable=not progress
    ):
        if warps is None:
            _LOG.warning("template input %d/%d skipped: %s", exposure, detector, reason)
            result.skipped.append((exposure, detector, reason))
        else:
            done[(exposure, detector)] = warps
    result.skipped.sort()
    collected: Collected = collections.defaultdict(list)
    for exposure, detector in sorted(done):
        for key, warp in done.pop((exposure, detector)).items():
            collected[key].append((exposure, mjds[exposure], warp))
    return collected


def _warps(
    butler: Butler,
    records: Sequence[DimensionRecord],
    detectors: Sequence[int] | None,
    skymap: rings.RingsSkyMap,
    workers: tuple[int, str | None],
    result: TemplateBuildResult,
    progress: bool,
) -> Collected:
    """Every selected detector processed and warped, by patch; ``workers = (jobs, repo_uri)``.

    Raises `PermanentError` (with the first reasons) when no detector could be processed.
    """
    mjds = {int(r.id): float(r.timespan.begin.tai.mjd) for r in records}
    items = _work_items(butler, records, detectors)
    results = _results(butler, items, skymap, *workers)
    collected = _collect(results, len(items), mjds, result, progress)
    if not collected:
        reasons = "; ".join(f"{e}/{d}: {r}" for e, d, r in result.skipped[:3])
        raise exceptions.PermanentError(f"no template input could be processed ({reasons})")
    return collected


def build_templates(
    butler: Butler,
    exposures: Sequence[int] | None = None,
    before_mjd: float | None = None,
    bands: Sequence[str] | None = None,
    detectors: Sequence[int] | None = None,
    jobs: int = 1,
    repo_uri: str | None = None,
    config: coadd.CoaddConfig | None = None,
    skymap: rings.RingsSkyMap = rings.SKYMAP,
    progress: bool = True,
    replace: bool = False,
) -> TemplateBuildResult:
    """Build and store template coadds for every patch and band the selected visits cover.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        Writeable; raws, certified calibrations and the reference catalog present.
    exposures, before_mjd, bands :
        Which science exposures (see `template_exposures`).
    detectors : sequence of int, optional
        Restrict to these detectors.
    jobs : int
        Worker processes for the per-detector work (needs ``repo_uri``, the same repository
        the workers open read-only).
    replace : bool
        Remove existing templates of the same patch and band first; otherwise their
        presence is an error (raised before anything is written).

    Raises
    ------
    MissingInputError
        No science exposure selected.
    PermanentError
        No selected detector could be processed (the reasons are in the message), or a
        template of the same patch and band exists and ``replace`` is false.
    """
    records = template_exposures(butler, exposures, before_mjd, bands)
    if not records:
        raise exceptions.MissingInputError(
            names.RAW,
            {"observation_type": rawformat.OBSTYPE_SCIENCE, "before_mjd": before_mjd},
            "no science exposures selected for templates (name them, or give --before)",
        )
    if not replace:  # fail before the work, not after it
        _clear_existing(butler, _planned_keys(butler, records, detectors, skymap), skymap, False)
    result = TemplateBuildResult()
    collected = _warps(butler, records, detectors, skymap, (jobs, repo_uri), result, progress)
    _clear_existing(butler, sorted(collected), skymap, replace)
    _store_all(butler, collected, skymap, config, jobs, result, progress)
    return result
