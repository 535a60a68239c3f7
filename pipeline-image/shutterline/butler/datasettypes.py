"""Dataset types of the repository: inputs the pipeline reads and outputs it writes."""

from __future__ import annotations

from lsst.daf.butler import Butler, DatasetType, DimensionUniverse

from shutterline.butler import formatters, names

__all__ = ["QA_STORAGE_CLASS", "dataset_types", "register_dataset_types"]

_DETECTOR_VISIT = ("instrument", "visit", "detector")
#: daf_butler's own storage class of a JSON-like dict (the QA records).
QA_STORAGE_CLASS = "StructuredDataDict"


def dataset_types(universe: DimensionUniverse) -> list[DatasetType]:
    """Every dataset type Shutterline uses, for this dimension universe."""
    exposure, table, raw, pieces = (
        formatters.EXPOSURE_STORAGE_CLASS,
        formatters.TABLE_STORAGE_CLASS,
        formatters.RAW_STORAGE_CLASS,
        formatters.PIECES_STORAGE_CLASS,
    )
    spec: list[tuple[str, tuple[str, ...], str, bool]] = [
        (names.RAW, ("instrument", "detector", "exposure"), raw, False),
        (names.BIAS, ("instrument", "detector"), exposure, True),
        (names.FLAT, ("instrument", "detector", "physical_filter"), exposure, True),
        (names.TEMPLATE, ("skymap", "tract", "patch", "band"), exposure, False),
        (names.REFCAT, (names.REFCAT_PIXELIZATION,), table, False),
        # A dataset type with no dimensions is legal: one orbit table per RUN.
        (names.ORBITS, (), table, False),
        (names.SS_PIECES, (names.SS_PIECES_PIXELIZATION,), pieces, False),
        (names.SS_FAST_PIECES, (), pieces, False),
        (names.SS_PIECE_ORBITS, (names.SS_PIECE_ORBITS_PIXELIZATION,), pieces, False),
        (names.SS_FAST_PIECE_ORBITS, (), pieces, False),
        (names.CALEXP, _DETECTOR_VISIT, exposure, False),
        (names.CALEXP_BACKGROUND, _DETECTOR_VISIT, exposure, False),
        (names.DIFFERENCE_IMAGE, _DETECTOR_VISIT, exposure, False),
        (names.SRC, _DETECTOR_VISIT, table, False),
        (names.DIA_SOURCE, _DETECTOR_VISIT, table, False),
        (names.QA, _DETECTOR_VISIT, QA_STORAGE_CLASS, False),
        (names.QA_VISIT, ("instrument", "visit"), QA_STORAGE_CLASS, False),
    ]
    return [
        DatasetType(name, dims, storage_class, universe=universe, isCalibration=is_calib)
        for name, dims, storage_class, is_calib in spec
    ]


def register_dataset_types(butler: Butler) -> None:
    """Register every dataset type (idempotent: an identical definition is accepted)."""
    for dataset_type in dataset_types(butler.dimensions):
        butler.registry.registerDatasetType(dataset_type)
