"""The Butler names fixed in docs/architecture.md: instrument, collections, dataset types."""

from __future__ import annotations

from shutterline.camera import filters

__all__ = [
    "BANDS",
    "BIAS",
    "CALEXP",
    "CALEXP_BACKGROUND",
    "CALIB_COLLECTION",
    "DIA_SOURCE",
    "DIFFERENCE_IMAGE",
    "FLAT",
    "INSTRUMENT",
    "ORBITS",
    "ORBITS_COLLECTION",
    "QA",
    "QA_COLLECTION",
    "QA_VISIT",
    "RAW",
    "RAW_COLLECTION",
    "REFCAT",
    "REFCAT_COLLECTION",
    "REFCAT_PIXELIZATION",
    "SRC",
    "SS_FAST_PIECES",
    "SS_FAST_PIECE_ORBITS",
    "SS_PIECES",
    "SS_PIECES_COLLECTION",
    "SS_PIECES_PIXELIZATION",
    "SS_PIECE_ORBITS",
    "SS_PIECE_ORBITS_COLLECTION",
    "SS_PIECE_ORBITS_PIXELIZATION",
    "TEMPLATE",
    "TEMPLATE_COLLECTION",
    "calib_run",
    "qa_run",
    "visit_run",
]

INSTRUMENT = "SimDECam"
#: The Butler's physical filter names are the bands; the header's FILTER text maps to them
#: through `shutterline.camera.filters`.
BANDS = filters.BANDS

RAW_COLLECTION = f"{INSTRUMENT}/raw/all"
CALIB_COLLECTION = f"{INSTRUMENT}/calib"
TEMPLATE_COLLECTION = "templates/coadd"
REFCAT_COLLECTION = "refcats/sim"
ORBITS_COLLECTION = "solarsystem/orbits"
#: Parent of the nightly pieces' RUN collections, one per piece of a night and shard
#: (`shutterline.butler.sspieces.run_name`).
SS_PIECES_COLLECTION = "solarsystem/pieces"
#: Parent of the nightly orbit files' RUN collections, one per night and shard.
SS_PIECE_ORBITS_COLLECTION = "solarsystem/piece-orbits"

RAW = "raw"
BIAS = "bias"
FLAT = "flat"
TEMPLATE = "template_coadd"
REFCAT = "ref_cat"
ORBITS = "ss_orbits"
CALEXP = "calexp"
CALEXP_BACKGROUND = "calexp_background"
DIFFERENCE_IMAGE = "difference_image"
SRC = "src"
DIA_SOURCE = "dia_source"
#: Nightly Chebyshev pieces of known objects, per sky region (and, by RUN, piece of night).
SS_PIECES = "ss_pieces"
#: The pieces that sweep too far for one region (close NEOs): read by every detector.
SS_FAST_PIECES = "ss_fast_pieces"
#: The pieces' regions: HEALPix nside 16 (order 4, nested), `solarsystem.precompute`'s.
SS_PIECES_PIXELIZATION = "healpix4"
#: The orbit records' pixels: HEALPix nside 64 (order 6, nested, 0.9 degrees), inside the
#: pieces' regions; a detector's reach takes a few of them.
SS_PIECE_ORBITS_PIXELIZATION = "healpix6"
#: The ``mpc_orbits`` records of every object with a piece centred in a pixel, once a night.
#: A new name (``ss_piece_orbits`` was per healpix4 region): repositories holding it keep it.
SS_PIECE_ORBITS = "ss_piece_orbits6"
#: The same for the objects with a fast piece.
SS_FAST_PIECE_ORBITS = "ss_fast_piece_orbits"
#: QA records of the analysis pipeline: one per (visit, detector), one per visit.
QA = "qa"
QA_VISIT = "qaVisit"
QA_COLLECTION = f"{INSTRUMENT}/qa"

#: The sky pixelization reference-catalog shards are keyed by (the universe's common one).
REFCAT_PIXELIZATION = "htm7"


def visit_run(visit: int) -> str:
    """The output RUN collection of one processed visit."""
    return f"{INSTRUMENT}/runs/{visit}"


def calib_run(dataset_type: str, valid_from_mjd: float, valid_to_mjd: float | None) -> str:
    """The RUN collection that holds calibrations certified for one validity range.

    One run per (type, range) so two certifications of the same detector never collide.
    """
    end = "inf" if valid_to_mjd is None else f"{valid_to_mjd:.5f}"
    return f"{CALIB_COLLECTION}/{dataset_type}/{valid_from_mjd:.5f}-{end}"


def qa_run(visit: int) -> str:
    """The RUN collection of one visit's QA records (replaced whole when analysed again)."""
    return f"{QA_COLLECTION}/{visit}"
