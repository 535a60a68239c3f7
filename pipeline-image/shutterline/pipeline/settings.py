"""One frozen settings object, read once at start-up and passed down."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Settings"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a detector run needs to know about its surroundings.

    Attributes
    ----------
    repo
        Central repository URI (a directory or ``s3://bucket/path``).
    apdb
        Alert production database: a SQLite path or a PostgreSQL URL.
    spool
        The alert relay's spool directory.
    workdir
        Scratch space: local repositories of pre-cached detectors live below it.
    direct
        Read the central repository directly (development mode) instead of pre-caching.
    export
        Dataset types of internal products to export to the central repository.
    padding_arcsec
        Template and reference-catalog margin around a detector footprint.
    otlp_endpoint, spans_path
        Where spans go: an OTLP/HTTP receiver and/or a JSON-lines file.
    """

    repo: str
    apdb: str
    spool: Path
    workdir: Path
    direct: bool = False
    export: tuple[str, ...] = ()
    padding_arcsec: float = 30.0
    otlp_endpoint: str | None = None
    spans_path: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings of a worker pod, from the variables the operator sets."""
        env = os.environ if env is None else env
        missing = [k for k in ("SHUTTERLINE_REPO", "SHUTTERLINE_APDB") if not env.get(k)]
        if missing:
            raise ValueError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            repo=env["SHUTTERLINE_REPO"],
            apdb=env["SHUTTERLINE_APDB"],
            spool=Path(env.get("SHUTTERLINE_SPOOL", "/spool")),
            workdir=Path(env.get("SHUTTERLINE_WORKDIR", "/work")),
            direct=env.get("SHUTTERLINE_DIRECT", "") in ("1", "true", "yes"),
            export=tuple(x for x in env.get("SHUTTERLINE_EXPORT", "").split(",") if x),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        )
