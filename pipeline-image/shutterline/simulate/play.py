"""Replaying a simulated night: its announcements and a camera that lands the raws.

The simulator's ``schedule.yaml`` lists the night's science visits. `visit_spec` turns one
entry into the Visit spec the observatory would announce; `play` is the camera: it writes
each visit's raws into the data backbone at the raw URIs when their exposures end. A
`ReplayClock` maps the night's times onto the wall clock, optionally compressed, so the
announcements (``shutterline schedule feed``) and the camera (``shutterline schedule
play``) agree on when each visit happens.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from astropy.time import Time

from shutterline.pipeline import task
from shutterline.simulate import rawfile

__all__ = [
    "DEFAULT_RAW_URI",
    "Landing",
    "ReplayClock",
    "land_raw",
    "load_schedule",
    "play",
    "visit_spec",
]

log = logging.getLogger(__name__)

#: Where the camera writes raws, relative to the backbone bucket (a ``str.format`` template).
DEFAULT_RAW_URI = "s3://{bucket}/incoming/{{visit}}/raw_{{visit}}_{{detector:02d}}.fits"
#: Seconds between shutter close and the raw being in the backbone (readout and transfer).
DEFAULT_READOUT_S = 2.0


@dataclasses.dataclass(frozen=True)
class ReplayClock:
    """Night time (MJD, TAI) to wall-clock time (unix seconds).

    ``origin_mjd`` happens at ``start_unix``; night time runs ``speed`` times faster than
    the wall clock (``speed=1``: real time).
    """

    origin_mjd: float
    start_unix: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")

    def wall(self, mjd: float) -> float:
        """Unix time at which night time ``mjd`` happens."""
        return self.start_unix + (mjd - self.origin_mjd) * 86400.0 / self.speed

    def seconds(self, night_seconds: float) -> float:
        """Wall-clock length of ``night_seconds`` of night time."""
        return night_seconds / self.speed


def load_schedule(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """``(instrument, visits)`` of a ``schedule.yaml`` (see `shutterline.simulate.outputs`)."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("visits"), list):
        raise ValueError(f"{path}: not a schedule (no 'visits' list)")
    return str(data.get("instrument", "")), list(data["visits"])


def _utc(mjd_tai: float) -> datetime.datetime:
    return Time(mjd_tai, format="mjd", scale="tai").utc.to_datetime(timezone=datetime.UTC)


def visit_spec(
    entry: dict[str, Any],
    instrument: str,
    raw_uri: str,
    clock: ReplayClock | None = None,
    deadline_seconds: float = task.DEFAULT_DEADLINE_S,
    priority: int = 0,
) -> task.VisitSpec:
    """The announcement of one scheduled visit.

    Without ``clock`` the observation start is the schedule's own time; with one, the
    replay's wall-clock time of it.
    """
    start = (
        datetime.datetime.fromtimestamp(clock.wall(float(entry["mjd"])), datetime.UTC)
        if clock is not None
        else _utc(float(entry["mjd"]))
    )
    return task.VisitSpec(
        instrument=instrument,
        visit_id=int(entry["visit"]),
        band=str(entry["band"]),
        physical_filter=str(entry.get("physical_filter") or entry["band"]),
        boresight=task.Boresight(
            float(entry["ra"]), float(entry["dec"]), float(entry.get("rotation", 0.0))
        ),
        observation_start=start,
        exposure_time=float(entry["exptime"]),
        raw_uri=raw_uri,
        detectors=tuple(int(d) for d in entry["detectors"]),
        deadline_seconds=deadline_seconds,
        priority=priority,
    )


def land_raw(local: str | Path, uri: str) -> float:
    """Write the raw file ``local`` at ``uri`` in one PUT; returns the unix time it landed."""
    from lsst.resources import ResourcePath

    data = Path(local).read_bytes()
    ResourcePath(uri).write(data, overwrite=True)
    return time.time()


@dataclasses.dataclass(frozen=True)
class Landing:
    """One raw written by the camera: where, when it was due and when it landed (unix)."""

    visit: int
    detector: int
    uri: str
    due: float
    landed: float


def _due_raws(
    night: Path,
    visits: Iterable[dict[str, Any]],
    raw_uri: str,
    clock: ReplayClock,
    readout_s: float,
) -> list[tuple[float, int, int, Path, str]]:
    due = []
    for entry in visits:
        visit = int(entry["visit"])
        at = clock.wall(float(entry["mjd"])) + clock.seconds(float(entry["exptime"]) + readout_s)
        for detector in entry["detectors"]:
            path = rawfile.raw_path(night, visit, int(detector))
            if not path.is_file():
                raise FileNotFoundError(f"the night has no raw {path}")
            uri = raw_uri.format(visit=visit, detector=int(detector))
            due.append((at, visit, int(detector), path, uri))
    return sorted(due)


def play(
    night: str | Path,
    visits: Sequence[dict[str, Any]],
    raw_uri: str,
    clock: ReplayClock,
    readout_s: float = DEFAULT_READOUT_S,
    on_land: Callable[[Landing], None] | None = None,
) -> list[Landing]:
    """Land every raw of ``visits`` at its time: shutter close plus ``readout_s`` (night time).

    Raws already late are written at once. Returns the landings in the order they happened.
    """
    landings = []
    for at, visit, detector, path, uri in _due_raws(Path(night), visits, raw_uri, clock, readout_s):
        pause = at - time.time()
        if pause > 0:
            time.sleep(pause)
        landing = Landing(visit, detector, uri, at, land_raw(path, uri))
        log.info("landed %s (%.3f s after due)", uri, landing.landed - at)
        landings.append(landing)
        if on_land is not None:
            on_land(landing)
    return landings
