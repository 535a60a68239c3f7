"""The Alert Production Database: a thin wrapper over ``lsst-dax-apdb``'s ``ApdbSql``.

The schema is dax_apdb's own (``sdm_schemas`` ``apdb.yaml``), so the database is what Rubin's
tools (``apdb-cli``, the PPDB replication) expect. SQLite is the embedded default (a file path
or ``sqlite:///`` URL); a PostgreSQL URL (``postgresql+psycopg2://...``) serves a cluster.

Idempotency: a detector's rows are written by `ApdbHandle.store` in one transaction
(``ApdbSql.store`` wraps every insert in one ``engine.begin()``), and `store` first asks
``containsVisitDetector``: a retried detector whose first attempt committed writes nothing.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import astropy.time
import lsst.sphgeom as sphgeom
import pandas
import sqlalchemy
import sqlalchemy.exc
from lsst.dax import apdb as dax_apdb

from shutterline import exceptions
from shutterline.association import visitinfo

__all__ = ["ApdbHandle", "database_url", "open_apdb"]


def database_url(url_or_path: str | os.PathLike[str]) -> str:
    """SQLAlchemy URL for a URL or a plain SQLite file path."""
    text = os.fspath(url_or_path)
    if "://" in text:
        return text
    return "sqlite:///" + os.path.abspath(text)


#: felis datatype -> (dtype when NOT NULL, dtype when nullable).
_DTYPES = {
    "double": ("float64", "float64"),
    "float": ("float32", "float32"),
    "long": ("int64", "Int64"),
    "int": ("int32", "Int32"),
    "short": ("int16", "Int16"),
    "boolean": ("bool", "boolean"),
}


_F = TypeVar("_F", bound=Callable[..., Any])


def _cause(err: BaseException) -> BaseException:
    """The database error behind ``err``: pandas' ``to_sql`` wraps SQLAlchemy's in its own."""
    if isinstance(err, pandas.errors.DatabaseError) and err.__cause__ is not None:
        return err.__cause__
    return err


_TRANSIENT = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def _retriable(func: _F) -> _F:
    """Turn a database that cannot be reached or is busy into a `RetriableError`.

    A locked SQLite file or a PostgreSQL server that drops the connection is transient:
    the detector may succeed when the Job runs it again, which its exit code then allows.
    """

    @functools.wraps(func)
    def wrapper(self: ApdbHandle, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except (*_TRANSIENT, pandas.errors.DatabaseError) as err:
            cause = _cause(err)
            if not isinstance(cause, _TRANSIENT):
                raise
            detail = getattr(cause, "orig", None) or cause
            raise exceptions.RetriableError(f"APDB {self.url}: {detail}") from err

    return cast(_F, wrapper)


def _visit_time(mjd: float) -> astropy.time.Time:
    return astropy.time.Time(mjd, format="mjd", scale="tai")


class ApdbHandle:
    """An open APDB with the calls association makes.

    Parameters
    ----------
    apdb : lsst.dax.apdb.Apdb
        The underlying ``ApdbSql`` instance.
    url : str
        Its database URL (for messages).
    """

    def __init__(self, apdb: dax_apdb.Apdb, url: str) -> None:
        self.apdb = apdb
        self.url = url
        self._columns: dict[dax_apdb.ApdbTables, list[str]] = {}
        self._dtypes: dict[dax_apdb.ApdbTables, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"ApdbHandle({self.url!r})"

    def columns(self, table: dax_apdb.ApdbTables) -> list[str]:
        """Column names of an APDB table, as the schema defines them."""
        if table not in self._columns:
            definition = self.apdb.tableDef(table)
            if definition is None:
                raise LookupError(f"APDB {self.url} has no table {table.name}")
            self._columns[table] = [c.name for c in definition.columns]
        return self._columns[table]

    def dtypes(self, table: dax_apdb.ApdbTables) -> dict[str, str]:
        """numpy / pandas dtype of each numeric or boolean column of an APDB table.

        Nullable integers and booleans map to pandas' nullable ``Int*`` / ``boolean``.
        """
        if table not in self._dtypes:
            definition = self.apdb.tableDef(table)
            if definition is None:
                raise LookupError(f"APDB {self.url} has no table {table.name}")
            out: dict[str, str] = {}
            for column in definition.columns:
                kind = _DTYPES.get(column.datatype.value)
                if kind is not None:
                    out[column.name] = kind[1] if column.nullable else kind[0]
            self._dtypes[table] = out
        return self._dtypes[table]

    @_retriable
    def objects_in_region(self, region: sphgeom.Region) -> pandas.DataFrame:
        """Latest version of every DIA object in (a superset of) ``region``."""
        return self.apdb.getDiaObjects(region)

    @_retriable
    def sources_for_objects(
        self, region: sphgeom.Region, object_ids: Iterable[int], mjd: float
    ) -> pandas.DataFrame:
        """DIA sources of ``object_ids`` within the configured history window before ``mjd``."""
        frame = self.apdb.getDiaSources(region, list(object_ids), _visit_time(mjd))
        return frame if frame is not None else pandas.DataFrame()

    @_retriable
    def forced_sources_for_objects(
        self, region: sphgeom.Region, object_ids: Iterable[int], mjd: float
    ) -> pandas.DataFrame:
        """DIA forced sources of ``object_ids`` within the history window before ``mjd``."""
        frame = self.apdb.getDiaForcedSources(region, list(object_ids), _visit_time(mjd))
        return frame if frame is not None else pandas.DataFrame()

    @_retriable
    def sources_in_region(
        self, region: sphgeom.Region, mjd: float, since_mjd: float
    ) -> pandas.DataFrame:
        """Every DIA source in ``region`` with midpoint after ``since_mjd``."""
        frame = self.apdb.getDiaSources(region, None, _visit_time(mjd), _visit_time(since_mjd))
        return frame if frame is not None else pandas.DataFrame()

    @_retriable
    def contains(self, visit: int, detector: int) -> bool:
        """Whether this visit and detector already has sources or forced sources stored."""
        return bool(self.apdb.containsVisitDetector(visit, detector))

    @_retriable
    def store(
        self,
        info: visitinfo.VisitInfo,
        objects: pandas.DataFrame,
        sources: pandas.DataFrame,
        forced_sources: pandas.DataFrame | None = None,
    ) -> bool:
        """Write one detector's rows in one transaction, unless they are already there.

        Returns
        -------
        bool
            True if rows were written, False if this visit and detector was already stored
            (a retry after a committed attempt).
        """
        if self.contains(info.visit, info.detector):
            return False
        forced = forced_sources if forced_sources is not None and len(forced_sources) else None
        try:
            self.apdb.store(_visit_time(info.mjd), objects, sources, forced)
        except (sqlalchemy.exc.IntegrityError, pandas.errors.DatabaseError) as err:
            # Another attempt at the same detector committed between our check and our
            # transaction (which rolled back): that attempt's rows stand.
            duplicate = isinstance(_cause(err), sqlalchemy.exc.IntegrityError)
            if duplicate and self.contains(info.visit, info.detector):
                return False
            raise
        return True

    def row_counts(self) -> dict[str, int]:
        """Rows per table (for tests and reports)."""
        counter = getattr(self.apdb, "tableRowCount", None)
        return dict(counter()) if counter is not None else {}


def open_apdb(
    url_or_path: str | os.PathLike[str], create: bool = False, timeout_s: float = 60.0
) -> ApdbHandle:
    """Open, or create, an APDB.

    Parameters
    ----------
    url_or_path : str or path-like
        A SQLite file path, or a SQLAlchemy URL (``sqlite:///...``,
        ``postgresql+psycopg2://user@host:port/db``).
    create : bool
        Create the schema (dax_apdb's ``init_database``) if the database has none yet; an
        existing APDB is opened as it is.
    timeout_s : float
        Connection timeout; for SQLite also how long a writer waits for another process's
        lock (detectors of a visit commit concurrently in the embedded run).

    Raises
    ------
    FileNotFoundError
        If ``create`` is False and a SQLite file does not exist.
    RetriableError
        If the database server cannot be reached.
    """
    url = database_url(url_or_path)
    if url.startswith("sqlite") and not create:
        path = _sqlite_path(url)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no APDB at {path} (pass create=True to make one)")
    # Opening parses the whole sdm schema (~0.16 s of CPU): reuse a handle within a process.
    # The key holds the pid so a forked worker never uses its parent's connection pool, and
    # a SQLite file's inode so a file deleted and made anew is opened anew.
    if not create:
        cached = _OPENED.get(_cache_key(url, timeout_s))
        if cached is not None:
            return cached
    handle = _open(url, create, timeout_s)
    _OPENED[_cache_key(url, timeout_s)] = handle
    return handle


#: Handles opened in this process, by `_cache_key`.
_OPENED: dict[tuple[str, float, int, int], ApdbHandle] = {}


def _cache_key(url: str, timeout_s: float) -> tuple[str, float, int, int]:
    inode = os.stat(_sqlite_path(url)).st_ino if url.startswith("sqlite") else 0
    return (url, float(timeout_s), os.getpid(), inode)


def _open(url: str, create: bool, timeout_s: float) -> ApdbHandle:
    try:
        if create and not _has_schema(url):
            config = _init_schema(url, timeout_s)
        else:
            config = dax_apdb.ApdbSqlConfig(db_url=url)
        config.connection_config.connection_timeout = timeout_s
        # SQLite connections are cheap: one per operation (no pool) means a reused handle
        # always reaches the file now at the path, and no connection outlives a fork.
        config.connection_config.connection_pool = not url.startswith("sqlite")
        return ApdbHandle(dax_apdb.Apdb.from_config(config), url)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as err:
        raise exceptions.RetriableError(f"APDB {url}: {err.orig or err}") from err


def _init_schema(url: str, timeout_s: float) -> dax_apdb.ApdbSqlConfig:
    """Create the schema; if another process creates it at the same moment, use theirs.

    The detectors of a visit may all find an empty database at once (pods starting
    together): the losers of that race see "already exists" errors, which are no fault of
    the data, so they wait for the winner's schema to be complete and open it.
    """
    try:
        return dax_apdb.ApdbSql.init_database(url)
    except sqlalchemy.exc.DBAPIError as err:
        if isinstance(err, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            raise
        first = err
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        config = dax_apdb.ApdbSqlConfig(db_url=url)
        try:
            dax_apdb.Apdb.from_config(config)
            return config
        except Exception:  # the winner is still writing tables or metadata
            time.sleep(0.5)
    raise exceptions.RetriableError(
        f"APDB {url}: schema creation raced another process and is not complete: {first}"
    ) from first


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[-1].split("?", 1)[0]


def _has_schema(url: str) -> bool:
    """Whether the database at ``url`` already holds an APDB metadata table."""
    if url.startswith("sqlite") and not os.path.exists(_sqlite_path(url)):
        return False
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        return "metadata" in sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()
