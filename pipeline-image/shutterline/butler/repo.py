"""Create and open Shutterline repositories (a directory or an S3 prefix)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import lsst.daf.butler
from lsst.daf.butler import Butler, CollectionType, Config, DimensionUniverse
from lsst.resources import ResourcePath

from shutterline.butler import datasettypes, formatters, instrument, names, skymaps
from shutterline.camera import layout

__all__ = ["INPUT_COLLECTIONS", "create_repo", "open_repo", "register_collections"]

_LOG = logging.getLogger(__name__)
_SQLITE = "gen3.sqlite3"

#: Where the pipeline looks for its inputs, in order.
INPUT_COLLECTIONS = (
    names.RAW_COLLECTION,
    names.CALIB_COLLECTION,
    names.TEMPLATE_COLLECTION,
    names.REFCAT_COLLECTION,
    names.ORBITS_COLLECTION,
)


def _repo_config(root: ResourcePath, registry_url: str | None) -> Config:
    config = Config(formatters.butler_config())
    if registry_url is not None:
        config["registry", "db"] = registry_url
    elif root.scheme not in ("", "file"):
        raise ValueError(
            f"a repository at {root} needs a registry database URL "
            "(for example postgresql+psycopg2://user@host:port/name); SQLite lives on local disk"
        )
    return config


def _template_key() -> str:
    # Everything that shapes an empty repository: a change to any of it makes a new template.
    parts = [
        lsst.daf.butler.__version__,
        repr(formatters.butler_config()),
        repr(layout.CAMERA),
        skymaps.skymap_hash().hex(),
        repr(
            [
                (t.name, str(t.dimensions), t.storageClass_name, t.isCalibration())
                for t in datasettypes.dataset_types(DimensionUniverse())
            ]
        ),
    ]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def _cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "shutterline" / "butler-templates"


def _template() -> Path:
    """An empty SQLite repository, made once and copied for every new local repository.

    Creating the registry schema and its fixed records costs about sixty SQLite commits
    (seconds on an ordinary disk); copying two small files costs milliseconds.
    """
    target = _cache_root() / _template_key()
    if (target / _SQLITE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=target.parent))
    try:
        _create_full(str(staging / "repo"), None).close()
        with contextlib.suppress(OSError):  # another process won the race: use theirs
            (staging / "repo").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _ensure_btree_gist(registry_url: str) -> None:
    """daf_butler's PostgreSQL registry needs ``btree_gist`` (validity-range constraints).

    It is a trusted extension, so the database owner may create it; do so when it is missing.
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise RuntimeError(
            f"registry database {engine.url.render_as_string(hide_password=True)} lacks the "
            f"btree_gist extension and it could not be created: {exc}"
        ) from exc
    finally:
        engine.dispose()


def _create_full(root: str, registry_url: str | None) -> Butler:
    uri = ResourcePath(root, forceDirectory=True)
    if registry_url is not None and registry_url.startswith("postgresql"):
        _ensure_btree_gist(registry_url)
    config = _repo_config(uri, registry_url)
    Butler.makeRepo(uri, config=config)
    butler = Butler.from_config(uri, writeable=True)
    instrument.register_instrument(butler)
    skymaps.register_skymap(butler)
    datasettypes.register_dataset_types(butler)
    register_collections(butler)
    return butler


def create_repo(root: str, registry_url: str | None = None) -> Butler:
    """Create a repository and fill in everything that does not depend on data.

    Parameters
    ----------
    root : str
        A directory or ``s3://bucket/prefix``. S3 credentials and endpoint come from the
        environment (``AWS_*``, ``S3_ENDPOINT_URL``) as lsst-resources reads them.
    registry_url : str, optional
        SQLAlchemy URL of the registry database. Default: SQLite inside a directory root;
        required for S3 roots (PostgreSQL).

    Returns
    -------
    lsst.daf.butler.Butler
        A writeable Butler on the new repository, with the instrument, detectors, physical
        filters, visit system, sky map, dataset types and collections registered, and
        checksums recorded for every file the datastore stores.
    """
    uri = ResourcePath(root, forceDirectory=True)
    if registry_url is not None or not uri.isLocal:
        butler = _create_full(root, registry_url)
    else:
        directory = Path(uri.ospath)
        if (directory / "butler.yaml").exists():
            raise FileExistsError(f"a repository exists already at {directory}")
        directory.mkdir(parents=True, exist_ok=True)
        template = _template()
        for name in ("butler.yaml", _SQLITE):
            shutil.copyfile(template / name, directory / name)
        butler = Butler.from_config(uri, writeable=True)
    _LOG.info("created repository %s", uri)
    return butler


def register_collections(butler: Butler) -> None:
    """Register the input collections of the layout (idempotent)."""
    registry = butler.registry
    for run in (
        names.RAW_COLLECTION,
        names.TEMPLATE_COLLECTION,
        names.REFCAT_COLLECTION,
        names.ORBITS_COLLECTION,
    ):
        registry.registerRun(run)
    registry.registerCollection(names.CALIB_COLLECTION, CollectionType.CALIBRATION)


def open_repo(
    root: str, writeable: bool = False, collections: Iterable[str] | str = INPUT_COLLECTIONS
) -> Butler:
    """Open an existing repository (a directory or ``s3://`` URI).

    ``collections`` are the default search path for reads; by default the input
    collections of the layout.
    """
    uri = ResourcePath(root, forceDirectory=True)
    return Butler.from_config(uri, writeable=writeable, collections=collections)
