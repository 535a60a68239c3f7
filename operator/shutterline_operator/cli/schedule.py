"""``shutterline schedule feed|play``: replay a simulated night against a cluster.

``feed`` announces the night's visits (creates ``Visit`` objects ahead of their times);
``play`` is the camera (writes the raws into the backbone when each exposure ends). Both
map the night onto the wall clock the same way: the first visit opens its shutter at
``--start`` and the night runs ``--speed`` times faster than real time, so run them with
the same ``--start`` and ``--speed`` (``feed`` prints the start it chose).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``schedule feed`` and ``schedule play``."""
    parser = subparsers.add_parser(
        "schedule", help="replay a simulated night: announce its visits, land its raws"
    )
    steps = parser.add_subparsers(dest="schedule_command", required=True, metavar="STEP")
    feed = steps.add_parser(
        "feed",
        help="create Visits from schedule.yaml ahead of their observation times",
        description="Create one Visit per scheduled visit, --lead-time seconds before its "
        "shutter opens on the replay clock.",
    )
    _common(feed)
    feed.add_argument("--lead-time", type=float, required=True, metavar="S")
    feed.add_argument("--namespace", default="default")
    feed.add_argument(
        "--deadline",
        type=float,
        default=60.0,
        metavar="S",
        help="deadlineSeconds of each Visit (default 60)",
    )
    feed.add_argument("--kubeconfig", help="default: $KUBECONFIG, then in-cluster")
    feed.add_argument("--dry-run", action="store_true", help="print the Visits, create none")
    feed.set_defaults(func=_feed)
    camera = steps.add_parser(
        "play",
        help="the simulated camera: write the raws at their raw URIs at their times",
        description="Write each scheduled visit's raws (from the simulator's output beside "
        "schedule.yaml, or --night) at the raw URI when its exposure ends plus --readout.",
    )
    _common(camera)
    camera.add_argument("--night", type=Path, help="simulator output (default: FILE's folder)")
    camera.add_argument(
        "--readout",
        type=float,
        default=2.0,
        metavar="S",
        help="shutter close to raw in the backbone, night seconds (default 2)",
    )
    camera.add_argument("--landings", type=Path, help="write the landing times here (JSON)")
    camera.set_defaults(func=_play)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("schedule", type=Path, metavar="FILE", help="the simulator's schedule.yaml")
    p.add_argument(
        "--raw-uri",
        required=True,
        metavar="TEMPLATE",
        help="where raws land, e.g. s3://bucket/incoming/{visit}/raw_{visit}_{detector:02d}.fits",
    )
    p.add_argument(
        "--start",
        type=_when,
        metavar="RFC3339",
        help="wall-clock time of the first visit's shutter opening "
        "(feed default: now + lead time; play: required unless feeding now)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="night seconds per wall second (default 1: real time)",
    )
    p.add_argument("--visits", type=int, metavar="N", help="only the first N visits")


def _when(text: str) -> float:
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone")
    return when.timestamp()


def _night(args: argparse.Namespace, start: float) -> tuple[str, list[dict[str, Any]], Any]:
    from shutterline.simulate import play

    instrument, visits = play.load_schedule(args.schedule)
    visits = visits[: args.visits] if args.visits else visits
    if not visits:
        raise SystemExit(f"{args.schedule}: no visits to replay")
    clock = play.ReplayClock(float(visits[0]["mjd"]), start, args.speed)
    return instrument, visits, clock


def _feed(args: argparse.Namespace) -> int:
    from shutterline_operator import feed

    start = args.start if args.start is not None else time.time() + args.lead_time
    instrument, visits, clock = _night(args, start)
    stamp = datetime.datetime.fromtimestamp(start, datetime.UTC).isoformat()
    print(f"first shutter opens at {stamp} (use --start {stamp} for play)", flush=True)
    if args.dry_run:
        for manifest in _manifests(visits, instrument, args, clock):
            print(json.dumps(manifest))
        return 0
    api = _custom_objects(args.kubeconfig)

    def show(manifest: dict[str, Any], at: float) -> None:
        print(f"{_clock(at)} created {args.namespace}/{manifest['metadata']['name']}", flush=True)

    feed.feed(
        api,
        visits,
        instrument,
        args.raw_uri,
        clock,
        args.lead_time,
        args.namespace,
        args.deadline,
        on_created=show,
    )
    return 0


def _manifests(
    visits: list[dict[str, Any]], instrument: str, args: argparse.Namespace, clock: Any
) -> list[dict[str, Any]]:
    from shutterline.simulate import play
    from shutterline_operator import feed

    return [
        feed.visit_manifest(
            play.visit_spec(e, instrument, args.raw_uri, clock, args.deadline), args.namespace
        )
        for e in visits
    ]


def _custom_objects(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=kubeconfig)
    except config.ConfigException:
        config.load_incluster_config()
    return client.CustomObjectsApi()


def _play(args: argparse.Namespace) -> int:
    from shutterline.simulate import play

    if args.start is None:
        print(
            "shutterline schedule play: --start is required (the feed prints it)", file=sys.stderr
        )
        return 2
    _, visits, clock = _night(args, args.start)
    night = args.night or args.schedule.parent

    def show(landing: Any) -> None:
        print(
            f"{_clock(landing.landed)} landed {landing.uri} "
            f"({landing.landed - landing.due:+.3f} s)",
            flush=True,
        )

    landings = play.play(night, visits, args.raw_uri, clock, args.readout, on_land=show)
    if args.landings:
        args.landings.write_text(json.dumps([dataclasses.asdict(x) for x in landings], indent=1))
    return 0


def _clock(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
