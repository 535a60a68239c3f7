"""Same seed, same bytes (whatever the number of worker processes); another seed differs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shutterline.simulate import config, night
from tests.unit.simulate.conftest import SMALL


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_the_same_bytes_in_parallel(
    small_night: night.NightSummary, tmp_path: Path
) -> None:
    again = night.simulate_night(tmp_path / "again", SMALL, jobs=2)
    first, second = _digests(small_night.out), _digests(again.out)
    assert len(first) == small_night.n_raw_files + 5
    assert first == second


def test_another_seed_gives_another_night(tmp_path: Path) -> None:
    cfg = config.SimConfig(
        **{
            **SMALL.__dict__,
            "visits": 1,
            "template_visits": 0,
            "n_bias": 1,
            "n_flat": 1,
            "fields": 1,
            "detectors": 1,
            "ccdnums": (),
        }
    )
    a = _digests(night.simulate_night(tmp_path / "a", cfg).out)
    b = _digests(night.simulate_night(tmp_path / "b", cfg, seed=cfg.seed + 1).out)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith("raw"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bands": ("z",)}, "unknown band"),
        ({"visits": 0}, "visits"),
        ({"nx": 101}, "shape"),
        ({"detectors": 63, "ccdnums": ()}, "detectors"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.SimConfig(**{**SMALL.__dict__, **kwargs})
