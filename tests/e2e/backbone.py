"""A small simulated night in the real data backbone, for the worker-pod and operator tests.

``backbone`` (session-scoped) simulates one field of two small detectors, two science visits
and the earlier template visits; creates the central repository in the test S3 server with a
PostgreSQL registry; ingests the calibration and template raws, the reference catalog and
the orbits; builds master biases and flats and template coadds. The science raws are held
back on local disk, not ingested, as they would be before the camera read them out:
``backbone.land(visit, detector)`` writes one at its raw URI, as the camera does.

Use it as::

    def test_something(backbone):
        spec = backbone.visit_spec(backbone.visits[0]["visit"])   # the Visit's spec (dict)
        env = backbone.env()          # SHUTTERLINE_REPO and the S3 credentials for a pod
        apdb = backbone.new_apdb()    # a fresh PostgreSQL APDB URL
        backbone.land(visit, detector)
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["NIGHT", "Backbone", "backbone", "make_backbone"]

log = logging.getLogger(__name__)

#: Night shape: small enough to simulate and build in a minute or two on two cores, large
#: enough for the PSF fit and the astrometric match to find their stars (at 512 x 1024
#: some detectors have too few reference stars to fit).
NIGHT: dict[str, Any] = {
    "seed": 11,
    "fields": 1,
    "detectors": 2,
    "visits": 2,
    "template_visits": 3,
    "nx": 1024,
    "ny": 2048,
}


@dataclasses.dataclass
class Backbone:
    """The prepared night and the services it lives in.

    Attributes
    ----------
    night : Path
        The simulator's output directory (``raw/``, ``schedule.yaml``, ``truth/``, ...).
    repo : str
        Central repository URI, ``s3://<bucket>/repo`` (registry in PostgreSQL).
    bucket : str
        The backbone bucket; raws land under ``incoming/`` in it.
    raw_uri : str
        The ``rawUri`` template of the night's Visits.
    instrument : str
        Instrument name.
    visits : list of dict
        The science visits of ``schedule.yaml`` (not ingested).
    """

    night: Path
    repo: str
    bucket: str
    raw_uri: str
    instrument: str
    visits: list[dict[str, Any]]
    s3: Any
    postgres: Any

    def entry(self, visit: int) -> dict[str, Any]:
        """The schedule entry of ``visit``."""
        for entry in self.visits:
            if int(entry["visit"]) == int(visit):
                return entry
        raise KeyError(f"visit {visit} is not in the night's schedule")

    def visit_spec(
        self, visit: int, start: datetime.datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """The Visit ``spec`` (camelCase dict) announcing ``visit``.

        ``observationStart`` is ``start`` (default: now), so a Visit made from it is not
        already past its deadline; the raws still carry the night's own times. ``fields``
        override spec fields (``deadlineSeconds=...``).
        """
        from shutterline.simulate import play

        spec = play.visit_spec(self.entry(visit), self.instrument, self.raw_uri).to_dict()
        when = start or datetime.datetime.now(datetime.UTC)
        spec["observationStart"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {**spec, **fields}

    def raw_path(self, visit: int, detector: int) -> Path:
        """The simulated raw of ``visit``/``detector`` on local disk."""
        from shutterline.simulate import rawfile

        return rawfile.raw_path(self.night, int(visit), int(detector))

    def raw_uri_for(self, visit: int, detector: int) -> str:
        """Where the raw of ``visit``/``detector`` lands."""
        return self.raw_uri.format(visit=int(visit), detector=int(detector))

    def land(self, visit: int, detector: int, path: Path | None = None) -> float:
        """Write the raw (or ``path`` instead) at its raw URI; returns the unix time it landed."""
        from shutterline.simulate import play

        return play.land_raw(
            path or self.raw_path(visit, detector), self.raw_uri_for(visit, detector)
        )

    def withdraw(self, visit: int, detector: int) -> None:
        """Delete a landed raw again (so another test can wait for it)."""
        key = self.raw_uri_for(visit, detector).removeprefix(f"s3://{self.bucket}/")
        self.s3.client().delete_object(Bucket=self.bucket, Key=key)

    def env(self) -> dict[str, str]:
        """What a worker container needs to reach the backbone (plus the S3 credentials)."""
        return {**self.s3.env(), "SHUTTERLINE_REPO": self.repo}

    def pod_env(
        self, visit: int, detector: int, scratch: Path, spec: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """The environment the operator sets on ``detector``'s worker pod of ``visit``
        (docs/architecture.md), with its volume at ``scratch``, a fresh APDB and a
        termination-message file in ``scratch``; plus this process's own environment."""
        import json
        import os

        spec = spec or self.visit_spec(visit)
        detectors = [int(d) for d in spec["detectors"]]
        index = detectors.index(int(detector))
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("SHUTTERLINE_")},
            **self.env(),
            "SHUTTERLINE_APDB": self.new_apdb(),
            "SHUTTERLINE_SPOOL": str(scratch / "spool"),
            "SHUTTERLINE_WORKDIR": str(scratch / "work"),
            "SHUTTERLINE_RAW_WAIT_S": "120",
            "SHUTTERLINE_VISIT_SPEC": json.dumps(spec),
            "SHUTTERLINE_DETECTORS": ",".join(str(d) for d in detectors),
            "JOB_COMPLETION_INDEX": str(index),
            "POD_NAME": f"visit-{visit}-{index}-pod",
            "TESTBED_TERMINATION_MESSAGE_PATH": str(scratch / "termination-log"),
        }

    def new_apdb(self) -> str:
        """A fresh, empty PostgreSQL database for an APDB; its SQLAlchemy URL."""
        return str(self.postgres.create_database("apdb"))


def _science_excluded(night: Path, science: set[int]) -> list[Path]:
    return [
        p for p in sorted((night / "raw").rglob("raw_*.fits")) if int(p.parent.name) not in science
    ]


def _build(night: Path, repo_uri: str, registry: str, science: set[int]) -> None:
    from shutterline.butler import ingest, repo
    from shutterline.calibs import build as calibs_build
    from shutterline.templates import build as templates_build

    butler = repo.create_repo(repo_uri, registry_url=registry)
    ingest.ingest_raws(butler, _science_excluded(night, science), progress=False)
    ingest.ingest_refcat(butler, [night / "refcat" / "refcat.fits"], progress=False)
    ingest.ingest_orbits(butler, night / "solarsystem" / "orbits.csv")
    calibs_build.build_calibs(butler, progress=False)
    templates_build.build_templates(butler, jobs=1, repo_uri=repo_uri, progress=False)


def make_backbone(s3_server: Any, postgres_server: Any, workdir: Path, **night: Any) -> Backbone:
    """Simulate the night (`NIGHT`, with ``night`` overrides) under ``workdir`` and build its
    central repository in ``s3_server`` with a registry in ``postgres_server``.

    The S3 credentials must be in the environment already (lsst-resources reads them there).
    """
    from shutterline.simulate import play, simulate_night

    t0 = time.perf_counter()
    night_dir = workdir / "night"
    simulate_night(night_dir, jobs=2, **{**NIGHT, **night})
    instrument, visits = play.load_schedule(night_dir / "schedule.yaml")
    bucket = s3_server.make_bucket("backbone")
    repo_uri = f"s3://{bucket}/repo"
    registry = postgres_server.create_database("backbone")
    _build(night_dir, repo_uri, registry, {int(v["visit"]) for v in visits})
    log.info("backbone ready in %.0f s", time.perf_counter() - t0)
    return Backbone(
        night=night_dir,
        repo=repo_uri,
        bucket=bucket,
        raw_uri=play.DEFAULT_RAW_URI.format(bucket=bucket),
        instrument=instrument,
        visits=visits,
        s3=s3_server,
        postgres=postgres_server,
    )


@pytest.fixture(scope="session")
def backbone(
    s3_server: Any, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backbone]:
    """The small night in S3 + PostgreSQL, science raws held back (see the module docstring)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3_server.env().items():
            patch.setenv(key, value)
        yield make_backbone(s3_server, postgres_server, tmp_path_factory.mktemp("backbone"))
