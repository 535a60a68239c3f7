"""A small simulated night, prepared once per session: raws, calibrations, templates."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from shutterline.demo import night
from shutterline.pipeline import settings as settings_mod


@dataclass(frozen=True)
class SmallNight:
    """Paths of the prepared night and its schedule."""

    night: Path
    repo: Path
    visits: list[dict]

    def settings(self, out: Path, repo: Path | None = None, **kw: object) -> settings_mod.Settings:
        """Settings for a run writing below ``out``."""
        return settings_mod.Settings(
            repo=str(repo or self.repo),
            apdb=str(out / "apdb.sqlite3"),
            spool=out / "spool",
            workdir=out / "work",
            spans_path=out / "spans.jsonl",
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="session")
def small_night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallNight]:
    """One field, two 1024 x 2048 detectors, two science visits (the PSF fit needs stars)."""
    root = tmp_path_factory.mktemp("small-night")
    cfg = night.DemoConfig(
        workdir=root,
        seed=11,
        fields=1,
        detectors=2,
        visits=2,
        template_visits=3,
        shape=(1024, 2048),
        jobs=2,
    )
    night_dir, repo = night.prepare_repository(cfg)
    schedule = yaml.safe_load((night_dir / "schedule.yaml").read_text())["visits"]
    yield SmallNight(night_dir, repo, schedule)
    shutil.rmtree(root, ignore_errors=True)
