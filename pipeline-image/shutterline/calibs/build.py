"""``shutterline calibs build``: master bias and flats from raws in a repository, certified.

The Butler-level driver: it finds the calibration exposures (by observation type, or the ones
named), reads their raws detector by detector, assembles them with
`shutterline.isr.assemble_raw`, combines them with `shutterline.calibs.masters` and certifies
the results in ``SimDECam/calib`` for a validity range.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

from astropy.time import Time
from lsst.daf.butler import Butler, DatasetRef, DimensionRecord, Timespan
from tqdm import tqdm

from shutterline import exceptions
from shutterline.butler import certify, names, selection, workers
from shutterline.calibs import masters
from shutterline.camera import rawformat
from shutterline.images import exposure as exposure_mod
from shutterline.isr import assembly

__all__ = ["CalibBuildResult", "build_calibs", "calibration_exposures"]

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class CalibBuildResult:
    """What a build certified: refs by detector (and physical filter for flats), and range."""

    biases: dict[int, DatasetRef] = dataclasses.field(default_factory=dict)
    flats: dict[tuple[int, str], DatasetRef] = dataclasses.field(default_factory=dict)
    valid_from_mjd: float = 0.0
    valid_to_mjd: float | None = None


def calibration_exposures(
    butler: Butler, observation_type: str, exposures: Sequence[int] | None = None
) -> list[DimensionRecord]:
    """Exposure records of one observation type, all of them or the ``exposures`` named.

    Raises
    ------
    MissingInputError
        A named exposure is not registered.
    PermanentError
        A named exposure is of another observation type.
    """
    bind: dict[str, Any] = {"inst": names.INSTRUMENT}
    if exposures:
        where = "instrument = inst AND exposure IN (ids)"
        bind["ids"] = sorted(set(exposures))
    else:
        where = "instrument = inst AND exposure.observation_type = ot"
        bind["ot"] = observation_type
    records = butler.query_dimension_records(
        "exposure", where=where, bind=bind, limit=None, explain=False
    )
    if exposures:
        missing = sorted(set(exposures) - {int(r.id) for r in records})
        if missing:
            raise exceptions.MissingInputError(
                names.RAW, {"exposure": missing}, "exposures not registered in the repository"
            )
        wrong = sorted(int(r.id) for r in records if r.observation_type != observation_type)
        if wrong:
            raise exceptions.PermanentError(
                f"exposures {wrong} are not of observation type {observation_type!r}"
            )
    return sorted(records, key=lambda r: int(r.id))


def _raws_by_detector(
    butler: Butler, records: Sequence[DimensionRecord], detectors: Sequence[int] | None
) -> dict[int, list[DatasetRef]]:
    refs = selection.raws_of_exposures(butler, [r.id for r in records])
    grouped: dict[int, list[DatasetRef]] = collections.defaultdict(list)
    for ref in refs:
        detector = int(ref.dataId["detector"])
        if detectors is None or detector in detectors:
            grouped[detector].append(ref)
    return {
        d: sorted(g, key=lambda r: int(r.dataId["exposure"])) for d, g in sorted(grouped.items())
    }


def _assemble(butler: Butler, refs: Sequence[DatasetRef]) -> list[exposure_mod.Exposure]:
    out = []
    for ref in refs:
        hdul = butler.get(ref)
        try:
            out.append(assembly.assemble_raw(hdul))
        except exceptions.MalformedRawError as exc:
            # The file read is the repository's copy: name the exposure it came from too.
            where = f"exposure {ref.dataId['exposure']} detector {ref.dataId['detector']}"
            raise exceptions.PermanentError(f"{where}: {exc}") from exc
        finally:
            hdul.close()
    return out


def _default_valid_from(butler: Butler) -> float:
    # Earlier visits (template building) are processed with these calibrations too, so by
    # default they cover every exposure in the repository: from the day of the earliest one.
    records = butler.query_dimension_records(
        "exposure",
        where="instrument = inst",
        bind={"inst": names.INSTRUMENT},
        limit=None,
        explain=False,
    )
    begins = [r.timespan.begin.tai.mjd for r in records if r.timespan is not None]
    return float(math.floor(min(begins))) if begins else 0.0


def _stored_bias(butler: Butler, detector: int, mjd: float) -> exposure_mod.Exposure:
    when = Timespan.fromInstant(Time(mjd, format="mjd", scale="tai"))
    data_id = {"instrument": names.INSTRUMENT, "detector": detector}
    ref = butler.find_dataset(
        names.BIAS, data_id, collections=names.CALIB_COLLECTION, timespan=when
    )
    if ref is None:
        raise exceptions.MissingInputError(
            names.BIAS, data_id, f"needed to build flats; none certified at MJD {mjd:.5f}"
        )
    bias: exposure_mod.Exposure = butler.get(ref)
    return bias


def _check_free(
    butler: Butler, name: str, data_ids: Sequence[dict[str, Any]], result: CalibBuildResult
) -> None:
    # Certification refuses overlapping validity ranges; find out before any work is done.
    span = certify.validity_timespan(result.valid_from_mjd, result.valid_to_mjd)
    for data_id in data_ids:
        full = {"instrument": names.INSTRUMENT, **data_id}
        found = butler.find_dataset(name, full, collections=names.CALIB_COLLECTION, timespan=span)
        if found is not None:
            raise exceptions.PermanentError(
                f"a {name} for {data_id} is already certified in {names.CALIB_COLLECTION} "
                f"for a range overlapping [{result.valid_from_mjd}, {result.valid_to_mjd}); "
                "give --valid-from/--valid-to that do not overlap it"
            )


FlatJob = tuple[str, int, list[DatasetRef]]  # physical filter, detector, raws


def _flat_jobs(
    butler: Butler, records: Sequence[DimensionRecord], detectors: Sequence[int] | None
) -> list[FlatJob]:
    by_filter: dict[str, list[DimensionRecord]] = collections.defaultdict(list)
    for record in records:
        by_filter[str(record.physical_filter)].append(record)
    return [
        (physical_filter, detector, refs)
        for physical_filter, group in sorted(by_filter.items())
        for detector, refs in _raws_by_detector(butler, group, detectors).items()
    ]


DetectorMasters = tuple[int, exposure_mod.Exposure | None, list[tuple[str, exposure_mod.Exposure]]]


def _masters(
    butler: Butler,
    detector: int,
    bias_refs: list[DatasetRef],
    flats: list[tuple[str, list[DatasetRef]]],
) -> DetectorMasters:
    """One detector's master bias (when it has bias raws) and master flats, not stored yet:
    ``(detector, bias or None, [(physical filter, flat)])``. A flat is corrected with the bias
    built here, else with the one certified at its time."""
    bias = masters.master_bias(_assemble(butler, bias_refs)) if bias_refs else None
    built = []
    for physical_filter, refs in flats:
        raws = _assemble(butler, refs)
        use = (
            bias
            if bias is not None
            else _stored_bias(butler, detector, float(raws[0].metadata["MJD"]))
        )
        built.append((physical_filter, masters.master_flat(raws, use)))
    return detector, bias, built


def _worker(
    repo_uri: str,
    detector: int,
    bias_refs: list[DatasetRef],
    flats: list[tuple[str, list[DatasetRef]]],
) -> DetectorMasters:
    return _masters(workers.worker_butler(repo_uri), detector, bias_refs, flats)


def _built(
    butler: Butler,
    bias_raws: dict[int, list[DatasetRef]],
    flat_jobs: list[FlatJob],
    jobs: int,
    repo_uri: str | None,
) -> Iterator[DetectorMasters]:
    """Every detector's masters, in ``jobs`` processes (reading ``repo_uri``) when asked, at
    most ``jobs + 1`` detectors' masters waiting for the parent to store them."""
    flats: dict[int, list[tuple[str, list[DatasetRef]]]] = collections.defaultdict(list)
    for physical_filter, detector, refs in flat_jobs:
        flats[detector].append((physical_filter, refs))
    detectors = sorted(set(bias_raws) | set(flats))
    work = [(d, bias_raws.get(d, []), flats.get(d, [])) for d in detectors]
    if jobs <= 1 or repo_uri is None or len(work) <= 1:
        yield from (_masters(butler, *item) for item in work)
        return
    yield from workers.ordered_results(_worker, [(repo_uri, *item) for item in work], jobs)


def _certify_all(
    butler: Butler,
    built: Iterator[DetectorMasters],
    total: int,
    result: CalibBuildResult,
    progress: bool,
) -> None:
    """Certify each detector's masters as they come (bias, then its flats)."""
    span = (result.valid_from_mjd, result.valid_to_mjd)
    for detector, bias, flats in tqdm(
        built, total=total, desc="master bias and flats", unit="detector", disable=not progress
    ):
        if bias is not None:
            result.biases[detector] = certify.certify_calibration(
                butler, names.BIAS, bias, {"detector": detector}, *span
            )
        for physical_filter, flat in flats:
            data_id = {"detector": detector, "physical_filter": physical_filter}
            result.flats[(detector, physical_filter)] = certify.certify_calibration(
                butler, names.FLAT, flat, data_id, *span
            )


def _calibration_records(
    butler: Butler,
    bias_exposures: Sequence[int] | None,
    flat_exposures: Sequence[int] | None,
    valid_from_mjd: float | None,
    valid_to_mjd: float | None,
) -> tuple[list[DimensionRecord], list[DimensionRecord]]:
    """The bias and flat exposures' records, after checking the request makes sense."""
    if valid_from_mjd is not None and valid_to_mjd is not None and valid_to_mjd <= valid_from_mjd:
        raise exceptions.PermanentError(
            f"empty validity range [{valid_from_mjd}, {valid_to_mjd}): end must follow start"
        )
    bias_records = calibration_exposures(butler, rawformat.OBSTYPE_BIAS, bias_exposures)
    flat_records = calibration_exposures(butler, rawformat.OBSTYPE_FLAT, flat_exposures)
    if not bias_records and not flat_records:
        raise exceptions.MissingInputError(
            names.RAW,
            {"observation_type": [rawformat.OBSTYPE_BIAS, rawformat.OBSTYPE_FLAT]},
            "no calibration exposures registered",
        )
    return bias_records, flat_records


def build_calibs(
    butler: Butler,
    bias_exposures: Sequence[int] | None = None,
    flat_exposures: Sequence[int] | None = None,
    valid_from_mjd: float | None = None,
    valid_to_mjd: float | None = None,
    detectors: Sequence[int] | None = None,
    progress: bool = True,
    jobs: int = 1,
    repo_uri: str | None = None,
) -> CalibBuildResult:
    """Build and certify master biases (per detector) and flats (per detector and filter).

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        Writeable, on a repository with raws ingested.
    bias_exposures, flat_exposures : sequence of int, optional
        Exposure ids to use; default every ``zero`` / ``dome flat`` exposure registered.
    valid_from_mjd, valid_to_mjd : float, optional
        Validity range ``[from, to)`` in MJD (TAI). Default: from the start (UTC day) of the
        earliest exposure in the repository, open-ended.
    detectors : sequence of int, optional
        Restrict to these detectors.
    jobs : int
        Worker processes for the masters, a detector each (needs ``repo_uri``, the same
        repository, which the workers open read-only); the parent certifies them.

    Raises
    ------
    MissingInputError
        No calibration exposures found, or no bias for the flats' detector.
    PermanentError
        Inputs that cannot be combined (see `shutterline.calibs.masters`).
    """
    bias_records, flat_records = _calibration_records(
        butler, bias_exposures, flat_exposures, valid_from_mjd, valid_to_mjd
    )
    start = _default_valid_from(butler) if valid_from_mjd is None else valid_from_mjd
    result = CalibBuildResult(valid_from_mjd=start, valid_to_mjd=valid_to_mjd)
    bias_raws = _raws_by_detector(butler, bias_records, detectors) if bias_records else {}
    flat_jobs = _flat_jobs(butler, flat_records, detectors) if flat_records else []
    _check_free(butler, names.BIAS, [{"detector": d} for d in bias_raws], result)
    flat_ids = [{"detector": d, "physical_filter": f} for f, d, _ in flat_jobs]
    _check_free(butler, names.FLAT, flat_ids, result)
    built = _built(butler, bias_raws, flat_jobs, jobs, repo_uri)
    total = len(set(bias_raws) | {d for _, d, _ in flat_jobs})
    _certify_all(butler, built, total, result, progress)
    _LOG.info("certified %d biases and %d flats for [%s, %s)",
              len(result.biases), len(result.flats), start, valid_to_mjd)  # fmt: skip
    return result
