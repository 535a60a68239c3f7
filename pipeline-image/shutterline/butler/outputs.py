"""Internal products of a processed detector: put into a repository, exported on request.

Outputs go to the visit's RUN collection ``SimDECam/runs/<visit>`` in the local repository;
which of them are copied back to the central repository is configuration, handed in as a
list of dataset type names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lsst.daf.butler import Butler, DatasetRef

from shutterline.butler import names

__all__ = ["OUTPUT_TYPES", "export_outputs", "put_outputs"]

#: Dataset types a detector's processing may write, all with data id {instrument, visit, detector}.
OUTPUT_TYPES = (
    names.CALEXP,
    names.CALEXP_BACKGROUND,
    names.DIFFERENCE_IMAGE,
    names.SRC,
    names.DIA_SOURCE,
)


def put_outputs(
    butler: Butler, visit: int, detector: int, products: Mapping[str, Any]
) -> list[DatasetRef]:
    """Store ``products`` (dataset type name -> Exposure or Table) for one detector.

    Raises
    ------
    ValueError
        A name is not one of `OUTPUT_TYPES`.
    """
    unknown = set(products) - set(OUTPUT_TYPES)
    if unknown:
        raise ValueError(f"not output dataset types: {sorted(unknown)}; known: {OUTPUT_TYPES}")
    run = names.visit_run(visit)
    butler.registry.registerRun(run)
    data_id = {"instrument": names.INSTRUMENT, "visit": visit, "detector": detector}
    # One transaction for the puts: one registry commit (an fsync on SQLite), not one each;
    # the run is registered before, outside it, as daf_butler asks.
    with butler.transaction():
        return [butler.put(obj, name, data_id, run=run) for name, obj in products.items()]


def export_outputs(
    local: Butler,
    central: Butler,
    visit: int,
    detector: int,
    dataset_types: Iterable[str],
    transfer: str = "copy",
) -> list[DatasetRef]:
    """Copy the chosen outputs of one detector from ``local`` to ``central`` (transfer_from).

    ``transfer`` is ``Butler.transfer_from``'s: ``"hardlink"`` where both repositories are
    directories on one file system (the demo), never a symbolic link (the local repository
    goes away). Returns the refs transferred; types with no dataset for this detector are
    skipped.
    """
    refs: list[DatasetRef] = []
    data_id = {"instrument": names.INSTRUMENT, "visit": visit, "detector": detector}
    for name in dataset_types:
        refs += local.query_datasets(
            name,
            collections=names.visit_run(visit),
            data_id=data_id,
            with_dimension_records=True,
            explain=False,
        )
    if not refs:
        return []
    return list(central.transfer_from(local, refs, transfer=transfer, transfer_dimensions=True))
