"""Fixtures: a small central repository with everything one detector needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from lsst.daf.butler import Butler

from shutterline.butler import certify, ingest, repo
from shutterline.images import Exposure
from shutterline.skymap import SKYMAP

from .rawfiles import write_raw

__all__ = ["Central", "make_exposure", "make_refcat", "populate", "write_raw"]

VISIT_MJD = 61207.1
RA, DEC = 150.0, 2.0
DETECTORS = (1, 2)
VISITS = (1000, 1001)


@dataclass
class Central:
    """A populated repository and what was put into it."""

    butler: Butler
    root: Path
    bias: dict[int, Exposure]
    flat: dict[int, Exposure]
    refcat: Table


def make_exposure(value: float, shape: tuple[int, int] = (8, 12), seed: int = 0) -> Exposure:
    """A small exposure whose image is ``value`` plus seeded noise."""
    rng = np.random.default_rng(seed)
    image = (value + rng.normal(0, 0.01, shape)).astype(np.float32)
    return Exposure(image, np.zeros(shape, np.int32), np.full(shape, 0.01, np.float32))


def make_refcat(
    seed: int = 1, n: int = 400, centres: np.ndarray | None = None, radius: float = 1.2
) -> Table:
    """``n`` stars within ``radius`` degrees (a box) of each of ``centres`` ``(k, 2)``."""
    rng = np.random.default_rng(seed)
    centres = np.array([[RA, DEC]]) if centres is None else centres
    ra = np.concatenate([c[0] + rng.uniform(-radius, radius, n) for c in centres])
    dec = np.concatenate([c[1] + rng.uniform(-radius, radius, n) for c in centres])
    return Table(
        {
            "id": np.arange(len(ra), dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "r_flux": rng.uniform(1e3, 1e6, len(ra)),
            "r_fluxErr": rng.uniform(10, 100, len(ra)),
        }
    )


def populate(butler: Butler, workdir: Path) -> Central:
    """Raws for VISITS x DETECTORS, a bias and flat per detector, templates, refcat, orbits."""
    paths = [
        write_raw(
            workdir / "raw" / f"raw_{v}_{d:02d}.fits", v, d, mjd=VISIT_MJD + 0.01 * i, seed=v + d
        )
        for i, v in enumerate(VISITS)
        for d in DETECTORS
    ]
    ingest.ingest_raws(butler, paths, progress=False)
    bias = {d: make_exposure(100.0 + d, seed=d) for d in DETECTORS}
    flat = {d: make_exposure(1.0 + 0.1 * d, seed=10 + d) for d in DETECTORS}
    for d in DETECTORS:
        certify.certify_calibration(butler, "bias", bias[d], {"detector": d}, 61200.0, None)
        certify.certify_calibration(
            butler, "flat", flat[d], {"detector": d, "physical_filter": "r"}, 61200.0, None
        )
    corners = _footprints(butler)
    for info in SKYMAP.patches_overlapping(corners[:, 0], corners[:, 1], 120.0):
        certify.put_template(
            butler, make_exposure(info.patch, seed=info.patch), info.tract, info.patch, "r"
        )
    centres = np.array([[RA, DEC], *[c.mean(axis=0) for c in np.split(corners, len(corners) // 4)]])
    catalog = make_refcat(n=150, centres=centres, radius=0.05)
    catalog.write(workdir / "refcat.fits", overwrite=True)
    ingest.ingest_refcat(butler, [workdir / "refcat.fits"], progress=False)
    orbits = Table({"id": [1, 2], "a": [2.5, 2.7], "e": [0.1, 0.2]})
    orbits.write(workdir / "orbits.csv", format="ascii.csv", overwrite=True)
    ingest.ingest_orbits(butler, workdir / "orbits.csv")
    return Central(butler, workdir, bias, flat, catalog)


def _footprints(butler: Butler) -> np.ndarray:
    from shutterline.butler import selection

    corners = []
    for record in butler.query_dimension_records("visit_detector_region", explain=False):
        corners.append(selection.region_corners(record.region))
    return np.concatenate(corners)


@pytest.fixture
def central(tmp_path: Path) -> Central:
    """A POSIX central repository with SQLite registry, populated (this test's own)."""
    butler = repo.create_repo(str(tmp_path / "central"))
    return populate(butler, tmp_path)


@pytest.fixture(scope="session")
def shared_central(tmp_path_factory: pytest.TempPathFactory) -> Central:
    """Like ``central`` but shared by the session's tests, which may only add to it."""
    workdir = tmp_path_factory.mktemp("central")
    return populate(repo.create_repo(str(workdir / "central")), workdir)


@pytest.fixture
def raw_writer(tmp_path: Path) -> Callable[..., Path]:
    """``write_raw`` into the test's temporary directory."""

    def write(name: str, *args: object, **kwargs: object) -> Path:
        return write_raw(tmp_path / "raws" / name, *args, **kwargs)  # type: ignore[arg-type]

    return write
