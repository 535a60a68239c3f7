"""Simulated nights to fit the selection on, and other nights to report it on.

The DIA selection (`shutterline.differencing.dia.accept`) and the reliability penalties were
chosen on the demo night (seed 7, default densities and seeing): the *fitting* night. The
*validation* nights differ in everything the rules could have been tuned to: seed (fields,
sources, asteroids, detector defects), seeing, star and galaxy density, science-only defects
and satellite trails. Figures are reported for both sets, never the fitting night alone.

The validation nights have been run before: seeds 101 and 202 several times while the rules
were worked on ("seen before"), seeds 303 and 404 once, as the fresh nights of the stop that
froze classifier lrfak4, 505 and 606 once, as those of lrfak5's stop, and 707 and 808 as
those of the cosmic-ray fix's stop, re-scored once and their misses then read ("seen once").
None of them is an untouched test any more. The *fresh* nights (seeds 909, 1010, never
simulated before this set was added) differ from the fitting nights, and from each other, in
seeing, density and defects, as the others do; they are run once, after the rules are frozen
and committed; nothing is chosen from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "FITTING",
    "FRESH",
    "REPOSITORY_CODE",
    "SEEDS_RUN_BEFORE",
    "SIMULATION_CODE",
    "VALIDATION",
    "NightSpec",
    "prepare",
    "prepare_cached",
    "source_digest",
]


@dataclasses.dataclass(frozen=True)
class NightSpec:
    """A named night: the simulator's seed and its settings (``SimConfig`` fields)."""

    name: str
    seed: int
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How often its figures were looked at before: "", "seen once", "seen before".
    seen: str = ""


FITTING = (
    NightSpec("fit-seed7", 7),
    # Trails and late columns to fit the streak search and the classifier on (seed 7 has few).
    NightSpec("fit-seed13-trails", 13, {"trails_per_exposure": 0.5,
                                        "late_columns_per_detector": 1.0}),
)  # fmt: skip
VALIDATION = (
    NightSpec(
        "val-seed101-poor-seeing-dense",
        101,
        {"seeing_scale": 1.3, "star_density": 5.0e4, "late_columns_per_detector": 2.0,
         "trails_per_exposure": 0.3},
        "seen before",
    ),
    NightSpec(
        "val-seed202-good-seeing-galaxies",
        202,
        {"seeing_scale": 0.85, "galaxy_density": 6.5e4, "late_columns_per_detector": 1.0,
         "trails_per_exposure": 0.2, "transient_density": 300.0},
        "seen before",
    ),
    # The fresh nights of lrfak4's stop, run once at de655b1 (same names: their cache).
    NightSpec(
        "fresh-seed303-mid-seeing-crowded-trails",
        303,
        {"seeing_scale": 1.15, "star_density": 3.8e4, "galaxy_density": 5.0e4,
         "late_columns_per_detector": 1.5, "trails_per_exposure": 0.4,
         "variable_density": 350.0},
        "seen once",
    ),
    NightSpec(
        "fresh-seed404-bad-seeing-sparse-defects",
        404,
        {"seeing_scale": 1.45, "star_density": 1.6e4, "late_columns_per_detector": 3.0,
         "trails_per_exposure": 0.15, "transient_density": 260.0,
         "asteroids_per_detector": 6.0},
        "seen once",
    ),
    # The fresh nights of lrfak5's stop, run once at b7ea49e (same names: their cache).
    NightSpec(
        "fresh-seed505-fine-seeing-dense-variables",
        505,
        {"seeing_scale": 0.92, "star_density": 4.5e4, "variable_density": 400.0,
         "late_columns_per_detector": 2.0, "trails_per_exposure": 0.25},
        "seen once",
    ),
    NightSpec(
        "fresh-seed606-poor-seeing-galaxies-defects",
        606,
        {"seeing_scale": 1.35, "star_density": 2.0e4, "galaxy_density": 7.0e4,
         "late_columns_per_detector": 2.5, "trails_per_exposure": 0.3,
         "transient_density": 220.0, "asteroids_per_detector": 5.0},
        "seen once",
    ),
    # The fresh nights of the cosmic-ray fix's stop, run once at its freeze and re-scored once
    # with the weighted variable truth, their misses then read one by one (stop 22).
    NightSpec(
        "fresh-seed707-best-seeing-trails-transients",
        707,
        {"seeing_scale": 0.85, "star_density": 3.2e4, "galaxy_density": 4.5e4,
         "late_columns_per_detector": 0.8, "trails_per_exposure": 0.45,
         "transient_density": 320.0, "variable_density": 300.0},
        "seen once",
    ),
    NightSpec(
        "fresh-seed808-mid-seeing-densest-defects",
        808,
        {"seeing_scale": 1.1, "star_density": 5.5e4, "galaxy_density": 3.5e4,
         "late_columns_per_detector": 3.5, "trails_per_exposure": 0.2,
         "variable_density": 300.0, "asteroids_per_detector": 7.0},
        "seen once",
    ),
)  # fmt: skip
#: Every seed simulated by a set before the present fresh nights (`test_nights` holds the
#: fresh ones to this).
SEEDS_RUN_BEFORE = frozenset({7, 13, 101, 202, 303, 404, 505, 606, 707, 808})
FRESH = (
    # Added with the template-coverage rule and the bright-star chi-square (stop 23); new seeds.
    # 909: fine seeing, dense stars and variables, few defects; 1010: the worst seeing of any
    # set, sparse stars, many galaxies, late columns and trails.
    NightSpec(
        "fresh-seed909-fine-seeing-dense-variables",
        909,
        {"seeing_scale": 0.9, "star_density": 4.8e4, "galaxy_density": 4.0e4,
         "late_columns_per_detector": 1.0, "trails_per_exposure": 0.3,
         "transient_density": 280.0, "variable_density": 380.0},
    ),
    NightSpec(
        "fresh-seed1010-worst-seeing-galaxies-trails",
        1010,
        {"seeing_scale": 1.5, "star_density": 2.4e4, "galaxy_density": 6.0e4,
         "late_columns_per_detector": 2.5, "trails_per_exposure": 0.4,
         "transient_density": 300.0, "variable_density": 320.0, "asteroids_per_detector": 6.0},
    ),
)  # fmt: skip


#: Packages whose code makes a night's raws, and those (with it) that make its repository's
#: calibrations and templates (templates are built through ISR and calibrate).
SIMULATION_CODE = ("simulate", "camera")
REPOSITORY_CODE = (
    *SIMULATION_CODE, "isr", "calibs", "templates", "processing", "images", "butler",
    "skymap", "differencing/warp*.py", "differencing/_resample.py",
)  # fmt: skip


def source_digest(parts: tuple[str, ...], salt: str = "") -> str:
    """A digest of ``salt`` and of the source of ``parts``.

    ``parts`` are package directories or globs under ``shutterline``: a cached night made by
    other code gets another key, so it is made again.
    """
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(salt.encode())
    for part in parts:
        found = package.glob(part) if "*" in part or part.endswith(".py") else None
        files = sorted(found) if found is not None else sorted((package / part).rglob("*.py"))
        for path in files:
            digest.update(str(path.relative_to(package)).encode() + path.read_bytes())
    return digest.hexdigest()


def code_key(spec: NightSpec, size: dict[str, Any], parts: tuple[str, ...]) -> str:
    """`source_digest` of ``parts``, salted with the night's settings and size."""
    return source_digest(parts, repr((dataclasses.astuple(spec)[:3], sorted(size.items()))))


def prepare_cached(
    spec: NightSpec, workdir: Path, size: dict[str, Any], jobs: int
) -> tuple[Path, Path]:
    """`prepare`, skipping what ``workdir`` already holds from the same code and settings.

    ``workdir/simulated`` and ``workdir/ready`` hold the keys (`code_key`) of the night and of
    the repository: a change to the simulator re-simulates, one to ISR or the coadd rebuilds.
    """
    sim_key = code_key(spec, size, SIMULATION_CODE)
    repo_key = code_key(spec, size, REPOSITORY_CODE)
    ready, simulated = workdir / "ready", workdir / "simulated"
    if not (ready.exists() and ready.read_text() == repo_key):
        ready.unlink(missing_ok=True)
        again = not (simulated.exists() and simulated.read_text() == sim_key)
        prepare(spec, workdir, size, jobs, simulate=again)
        simulated.write_text(sim_key)
        ready.write_text(repo_key)
    return workdir / "night", workdir / "repo"


def prepare(
    spec: NightSpec, workdir: Path, size: dict[str, Any], jobs: int, simulate: bool = True
) -> tuple[Path, Path]:
    """Simulate ``spec`` and build its central repository; ``(night dir, repo dir)``.

    ``size`` gives ``fields, detectors, visits, template_visits, nx, ny``; ``simulate=False``
    rebuilds the repository from the night already in ``workdir``.
    """
    from shutterline.butler import ingest, repo
    from shutterline.calibs import build as calibs_build
    from shutterline.simulate import simulate_night
    from shutterline.templates import build as templates_build

    night, root = workdir / "night", workdir / "repo"
    if simulate:
        shutil.rmtree(night, ignore_errors=True)
        simulate_night(night, seed=spec.seed, jobs=jobs, **size, **spec.settings)
    shutil.rmtree(root, ignore_errors=True)
    butler = repo.create_repo(str(root))
    ingest.ingest_raws(butler, sorted((night / "raw").rglob("*.fits")), progress=False)
    ingest.ingest_refcat(butler, [night / "refcat" / "refcat.fits"], progress=False)
    ingest.ingest_orbits(butler, night / "solarsystem" / "orbits.csv")
    calibs_build.build_calibs(butler, progress=False)
    templates_build.build_templates(butler, jobs=jobs, repo_uri=str(root), progress=False)
    return night, root
