"""`load_detector_inputs`: the one function every mode uses to read a detector's inputs.

It works the same on the central repository (development mode, reading the backbone
directly) and on a pre-cached local repository: it plans with
`shutterline.butler.selection.plan_detector` and reads each dataset with the Butler
(`shutterline.butler.bulkget`: the files' records in one query, Shutterline's own local
files by their formatter's read function).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, DatasetId, DatasetRef

from shutterline.butler import bulkget, names, selection
from shutterline.images import exposure as exposure_io
from shutterline.skymap import rings

__all__ = ["DetectorInputs", "inputs_from", "load_detector_inputs", "read_inputs"]


@dataclass(frozen=True)
class DetectorInputs:
    """Everything the stages read for one detector of one visit.

    Attributes
    ----------
    visit, detector : int
        Ids.
    band : str
        Band of the visit (``g``, ``r``, ``i``).
    mjd : float
        Start of the exposure, MJD (TAI).
    exptime : float
        Exposure time, seconds.
    boresight : tuple of float
        Telescope pointing ``(ra, dec)``, degrees.
    raw : astropy.io.fits.HDUList
        The raw file in memory (primary header, one image extension of uint16 pixels).
    bias, flat : Exposure
        Master calibrations valid at ``mjd``, ``(ny, nx)`` trimmed science pixels.
    templates : list of (PatchInfo, Exposure)
        Template coadds of every patch overlapping the padded footprint, in nJy.
    refcat : astropy.table.Table
        Reference-catalog rows of every htm7 shard overlapping the padded footprint.
    orbits : astropy.table.Table or None
        Asteroid orbital elements, if the repository has them.
    footprint : numpy.ndarray
        ``(4, 2)`` ICRS corners (degrees) of the raw pixel grid from the raw WCS.
    ss_pieces : list of dict
        The nightly solar-system pieces around the footprint at the exposure midpoint
        (``ss_pieces`` and ``ss_fast_pieces`` datasets) and the night's orbit records of the
        healpix6 pixels in the same reach (``ss_piece_orbits6``, ``ss_fast_piece_orbits``);
        empty if the repository has none.
    """

    visit: int
    detector: int
    band: str
    mjd: float
    exptime: float
    boresight: tuple[float, float]
    raw: fits.HDUList
    bias: exposure_io.Exposure
    flat: exposure_io.Exposure
    templates: list[tuple[rings.PatchInfo, exposure_io.Exposure]]
    refcat: Table
    orbits: Table | None
    footprint: np.ndarray
    ss_pieces: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)


def _read_all(butler: Butler, refs: list[DatasetRef], threads: int) -> dict[DatasetId, Any]:
    refs = bulkget.with_records(butler, refs)  # one registry query for every file
    # Tables are read here, in this thread: converting a Parquet table to astropy from
    # several threads at once failed now and then with "no valid converter found".
    tables = {names.REFCAT, names.ORBITS}
    out = {ref.id: butler.get(ref) for ref in refs if ref.datasetType.name in tables}
    refs = [ref for ref in refs if ref.datasetType.name not in tables]
    direct = bulkget.local_readers(butler, refs)
    if threads <= 1:
        return out | {
            ref.id: read() if (read := direct.get(ref.id)) else butler.get(ref) for ref in refs
        }
    # Reads are independent; a few threads hide S3 latency in direct mode. A Butler is not
    # safe to share between threads, so each worker reads through its own clone.
    local = threading.local()

    def get(ref: DatasetRef) -> Any:
        if read := direct.get(ref.id):
            return read()
        if not hasattr(local, "butler"):
            local.butler = butler.clone()
        return local.butler.get(ref)

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {ref.id: pool.submit(get, ref) for ref in refs}
        return out | {key: future.result() for key, future in futures.items()}


def read_inputs(
    butler: Butler, plan: selection.DetectorPlan, threads: int = 4
) -> dict[DatasetId, Any]:
    """Every dataset of ``plan`` in memory, by dataset id (``threads`` reads at once)."""
    return _read_all(butler, plan.refs, threads)


def inputs_from(
    plan: selection.DetectorPlan, data: dict[DatasetId, Any], raw: fits.HDUList | None = None
) -> DetectorInputs:
    """Assemble the inputs from a plan and its datasets (`read_inputs`).

    ``raw`` is the raw in memory when the plan has none (pre-staged from an announcement).
    """
    if raw is None and plan.raw is None:
        raise ValueError(f"visit {plan.visit} detector {plan.detector}: the plan has no raw")
    shards = [data[ref.id] for ref in plan.refcat]
    return DetectorInputs(
        visit=plan.visit,
        detector=plan.detector,
        band=plan.band,
        mjd=plan.mjd,
        exptime=plan.exptime,
        boresight=plan.boresight,
        raw=raw if raw is not None else data[plan.raw.id],  # type: ignore[union-attr]
        bias=data[plan.bias.ref.id],
        flat=data[plan.flat.ref.id],
        templates=[(info, data[ref.id]) for info, ref in plan.templates],
        refcat=shards[0] if len(shards) == 1 else vstack(shards, join_type="exact"),
        orbits=data[plan.orbits.id] if plan.orbits is not None else None,
        footprint=plan.corners,
        ss_pieces=[data[ref.id] for ref in plan.ss_pieces],
    )


def load_detector_inputs(
    butler: Butler,
    visit: int,
    detector: int,
    padding_arcsec: float = 60.0,
    threads: int = 4,
) -> DetectorInputs:
    """Read one detector's inputs from a central or a pre-cached repository.

    ``threads`` datasets are read at once (each thread through its own Butler clone). A
    pre-staged pod reads the same way (`read_inputs`, then `inputs_from` once its raw is in).

    Raises
    ------
    shutterline.exceptions.MissingInputError
        An input is missing (names the dataset type and data id).
    """
    plan = selection.plan_detector(butler, visit, detector, padding_arcsec)
    return inputs_from(plan, read_inputs(butler, plan, threads))
