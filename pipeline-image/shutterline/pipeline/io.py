"""Where a detector's inputs come from and its outputs go; the stages see neither."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from shutterline.pipeline import settings as settings_mod
from shutterline.telemetry import stages

if TYPE_CHECKING:
    from lsst.daf.butler import Butler

    from shutterline.butler.inputs import DetectorInputs
    from shutterline.pipeline.detector import DetectorOutputs

__all__ = [
    "central_repo",
    "export_transfer",
    "load_inputs",
    "local_repo_path",
    "store_products",
    "store_products_reported",
]

log = logging.getLogger(__name__)


def local_repo_path(settings: settings_mod.Settings, visit: int, detector: int) -> Path:
    """The pod-local repository of one detector (on the ephemeral volume in a pod)."""
    return settings.workdir / f"local-{visit}-{detector}"


#: The central repository opened once per process (root -> writeable Butler); each detector
#: gets a clone. Opening one costs about 0.3 s of CPU (configuration, registry schema), paid
#: twice per detector before (pre-cache and export). daf_butler caches collections only inside
#: its caching contexts, so a long-lived Butler still sees what other processes add.
_CENTRAL: dict[str, Butler] = {}


def central_repo(settings: settings_mod.Settings) -> Butler:
    """A writeable Butler on the central repository for this detector (a clone of this
    process's one)."""
    from shutterline.butler import repo

    if settings.repo not in _CENTRAL:
        _CENTRAL[settings.repo] = repo.open_repo(settings.repo, writeable=True)
    return _CENTRAL[settings.repo].clone()


def load_inputs(
    settings: settings_mod.Settings, visit: int, detector: int, rec: stages.StageRecorder
) -> tuple[DetectorInputs, Butler]:
    """A detector's inputs and the repository outputs go to.

    Development mode (``settings.direct``) reads the central repository; otherwise the
    detector's needs are pre-cached into a local repository first, exactly as the pod's init
    container does, and read from there, through the plan the pre-cache made (the local
    repository holds exactly its datasets, under the same ids; a pod's pipeline container,
    another process, reads the plan the pre-cache recorded, `shutterline.butler.planfile`).
    The plan is `selection.plan_detector` either way.
    """
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import planfile, precache, repo

    if settings.direct:
        with rec.stage("load_inputs"):
            butler = repo.open_repo(settings.repo, writeable=bool(settings.export))
            loaded = butler_inputs.load_detector_inputs(
                butler, visit, detector, padding_arcsec=settings.padding_arcsec
            )
        return loaded, butler
    local = local_repo_path(settings, visit, detector)
    plan = None
    if not (local / "butler.yaml").exists():
        with rec.stage("precache") as span:
            report = precache.precache_detector(
                central_repo(settings),
                str(local),
                visit,
                detector,
                padding_arcsec=settings.padding_arcsec,
            )
            span.set_attribute("precache.datasets", report.n_datasets)
            span.set_attribute("precache.bytes", report.bytes)
            plan = report.plan
    with rec.stage("load_inputs"):
        butler = repo.open_repo(str(local), writeable=True)
        if plan is None:  # pre-cached by an earlier attempt: the plan it recorded
            plan = planfile.read_plan(local, butler.dimensions, visit, detector)
        loaded = butler_inputs.inputs_from(plan, butler_inputs.read_inputs(butler, plan))
    return loaded, butler


def store_products(
    settings: settings_mod.Settings, butler: Butler, outputs: DetectorOutputs
) -> list[str]:
    """Put the internal products into the detector's repository; export the configured ones.

    Pre-cached: everything goes into the local repository (the pod's ephemeral volume) and
    the dataset types named in ``settings.export`` are transferred to the central one.
    Direct: only the exported types are written, straight to the central repository.
    """
    from shutterline.butler import names
    from shutterline.butler import outputs as butler_outputs

    visit, detector = (
        int(outputs.calexp.metadata["VISIT"]),
        int(outputs.calexp.metadata["DETECTOR"]),
    )
    products = {
        names.CALEXP: outputs.calexp,
        names.DIFFERENCE_IMAGE: outputs.difference,
        names.SRC: outputs.src,
        names.DIA_SOURCE: outputs.dia_sources,
    }
    if settings.direct:
        products = {k: v for k, v in products.items() if k in settings.export}
    if not products:
        return []
    refs = butler_outputs.put_outputs(butler, visit, detector, products)
    if not settings.direct and settings.export:
        transfer = export_transfer(settings.repo, local_repo_path(settings, visit, detector))
        central = central_repo(settings)
        butler_outputs.export_outputs(
            butler, central, visit, detector, settings.export, transfer=transfer
        )
    return [r.datasetType.name for r in refs]


def export_transfer(central_root: str, local_root: Path) -> str:
    """How exports reach the central repository: ``"hardlink"`` when it is a directory on the
    local repository's file system (the demo: no second copy of a 100 MB difference image
    per detector), else ``"copy"`` (a pod: S3)."""
    from lsst.resources import ResourcePath

    from shutterline.butler import fetch

    central = ResourcePath(central_root, forceDirectory=True)
    return "hardlink" if fetch.same_file_system(central, local_root) else "copy"


def store_products_reported(
    settings: settings_mod.Settings,
    butler: Butler,
    outputs: DetectorOutputs,
    rec: stages.StageRecorder,
) -> None:
    """`store_products` as stage ``products``; a failure is reported, never raised.

    Internal products come after the alerts are out: failing to keep them must not take
    back alerts already spooled.
    """
    with rec.stage("products") as span:
        try:
            store_products(settings, butler, outputs)
        except Exception as exc:
            reason = f"internal products not stored: {type(exc).__name__}: {exc}"
            log.warning("%s", reason)
            rec.emit("products_error", reason)
            span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
