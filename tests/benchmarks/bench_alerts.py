"""Benchmark of stages 6-8: alert serialization and per-detector APDB association.

Run: ``.venv/bin/python tests/benchmarks/bench_alerts.py [--quick]``

Prints medians over repeats, each beside a baseline measured in the same run (this 2-core
machine is noisy, so only ratios to a same-run baseline mean much):

* serialization of one realistic alert (history of 10 sources and 10 forced sources, three
  30 x 30 cutouts) and of 10,000 alerts, against fastavro's plain ``schemaless_writer`` with
  the unparsed schema (what ``lsst.alert.packet.Schema.serialize`` does);
* association of one detector (``--sources`` DIA sources against an APDB already holding
  ``--visits`` visits of history), forced photometry, alert building and the APDB commit,
  against one 2048 x 4096 float32 FFT convolution (the project's unit of image work).
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.unit.association import synthetic

from shutterline.alerts import build, cutouts, packet, serialize, spool
from shutterline.association import apdb, associate, forced


def _median_time(
    func: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        func()
        times.append(clock() - start)
    return statistics.median(times)


def _fft_convolution() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4096, 2048)).astype(np.float32)
    kernel = rng.normal(size=(31, 31)).astype(np.float32)
    signal.fftconvolve(image, kernel, mode="same")


def _realistic_alert(handle: apdb.ApdbHandle, n_sources: int, visits: int) -> tuple[dict, Any]:
    """An alert of the last visit of ``visits`` (so with ``visits - 1`` earlier sources)."""
    res = None
    for visit in range(1, visits + 1):
        res = _detector_run(handle, visit, n_sources, commit=True)[0]
    assert res is not None
    item = next(iter(res.alert_inputs()))
    exp = synthetic.make_exposure((200, 200), np.array([100.0]), np.array([100.0]), [1e4])
    stamp = cutouts.make_cutout(exp, *map(float, exp.wcs.all_pix2world(100, 100, 0)))
    alert = packet.build_alert(
        item.dia_source,
        item.dia_object,
        item.prv_dia_sources,
        item.prv_dia_forced_sources,
        None,
        {"difference": stamp, "science": stamp, "template": stamp},
    )
    return alert, item


def _positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return 150.0 + rng.uniform(-0.07, 0.07, n), 2.0 + rng.uniform(-0.14, 0.14, n)


_SCIENCE = synthetic.make_exposure((4096, 2048), np.array([]), np.array([]), np.array([]))


class _Steps:
    """Wall and CPU seconds of consecutive steps (CPU time is immune to the other helpers'
    load on this shared machine; wall time is what a detector waits)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._last = (time.perf_counter(), time.process_time())

    def done(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[name] = now[0] - self._last[0]
        self.cpu[name] = now[1] - self._last[1]
        self._last = now


def _detector_run(
    handle: apdb.ApdbHandle, visit: int, n_sources: int, commit: bool
) -> tuple[Any, _Steps]:
    """Stages 6-8 of one detector as the driver runs them; per-step seconds."""
    ra, dec = _positions(n_sources)
    table = synthetic.dia_table(ra, dec, visit=visit, seed=visit)
    table["x"], table["y"] = _SCIENCE.wcs.all_world2pix(ra, dec, 0)
    info = synthetic.visit_info(visit, mjd=60000.0 + visit)
    steps = _Steps()
    res = associate.associate(table, handle, info)
    steps.done("associate")
    res = associate.attach_forced(
        res, forced.forced_photometry(_SCIENCE, _SCIENCE, res.forced_targets())
    )
    steps.done("forced")
    packets = build.build_packets(res.alert_inputs(), {}, _SCIENCE, _SCIENCE, _SCIENCE)
    steps.done("alerts")
    if commit:
        associate.commit(res, handle)
    steps.done("commit")
    with tempfile.TemporaryDirectory() as tmp:
        spool.AlertSpool(tmp).write_many(
            [(p.alert_id, p.payload) for p in packets], visit=visit, detector=info.detector
        )
    steps.done("spool")
    return res, steps


def _report(label: str, ours: Callable[[], Any], base: Callable[[], Any], repeats: int) -> None:
    """Median wall and CPU time of ``ours`` and of the baseline, and their ratios."""
    wall, cpu = _median_time(ours, repeats), _median_time(ours, repeats, time.process_time)
    bwall, bcpu = _median_time(base, repeats), _median_time(base, repeats, time.process_time)
    print(
        f"  {label:24s} wall {wall * 1e3:9.2f} ms  cpu {cpu * 1e3:9.2f} ms   baseline wall"
        f" {bwall * 1e3:9.2f} ms cpu {bcpu * 1e3:9.2f} ms   ratio {wall / bwall:.2f} (wall)"
        f" {cpu / bcpu:.2f} (cpu)"
    )


def bench_serialization(alert: dict, repeats: int, batch: int) -> None:
    """``to_wire`` against fastavro's writer with the unparsed schema (lsst-alert-packet's)."""
    schema = serialize.load_schema()
    raw_definition = schema.packet_schema.definition
    size = len(serialize.to_wire(alert, schema))
    print(
        f"alert packet: {size / 1024:.1f} KiB, {len(alert['prvDiaSources'] or [])} prv sources,"
        f" {len(alert['prvDiaForcedSources'] or [])} prv forced sources, 3 cutouts"
    )
    _report(
        "to_wire, one alert",
        lambda: serialize.to_wire(alert, schema),
        lambda: fastavro.schemaless_writer(io.BytesIO(), raw_definition, alert),
        repeats,
    )
    alerts = [dict(alert, diaSourceId=i) for i in range(batch)]

    def ours_many() -> None:
        for a in alerts:
            serialize.to_wire(a, schema)

    def plain_many() -> None:
        for a in alerts:
            fastavro.schemaless_writer(io.BytesIO(), raw_definition, a)

    _report(f"to_wire, {batch} alerts", ours_many, plain_many, 3)


def bench_detector(n_sources: int, visits: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.sqlite3"
        apdb.open_apdb(template, create=True)
        history = Path(tmp) / "history.sqlite3"
        shutil.copy(template, history)
        handle = apdb.open_apdb(history)
        alert, _ = _realistic_alert(handle, n_sources, visits)
        bench_serialization(alert, repeats=50, batch=ARGS.batch)
        runs = []
        for r in range(repeats):
            work = Path(tmp) / f"run{r}.sqlite3"
            shutil.copy(history, work)
            runs.append(_detector_run(apdb.open_apdb(work), visits + 1, n_sources, True)[1])
    fft = _median_time(_fft_convolution, 3)
    fft_cpu = _median_time(_fft_convolution, 3, clock=time.process_time)
    wall = statistics.median(sum(s.wall.values()) for s in runs)
    cpu = statistics.median(sum(s.cpu.values()) for s in runs)
    print(f"detector: {n_sources} DIA sources, {visits} earlier visits in the APDB (SQLite)")
    print("  step        wall s   cpu s")
    for step in runs[0].wall:
        w = statistics.median(s.wall[step] for s in runs)
        c = statistics.median(s.cpu[step] for s in runs)
        print(f"  {step:10s} {w:7.3f} {c:7.3f}")
    print(f"  total      {wall:7.3f} {cpu:7.3f}")
    print(
        f"  baseline: one 2048x4096 FFT convolution {fft:.3f} s wall, {fft_cpu:.3f} s cpu;"
        f" ratio {wall / fft:.1f} (wall), {cpu / fft_cpu:.1f} (cpu)"
    )


def main() -> None:
    if ARGS.quick:
        ARGS.batch, ARGS.repeats = 1000, 2
    bench_detector(ARGS.sources, ARGS.visits, ARGS.repeats)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sources", type=int, default=100, help="DIA sources per detector")
parser.add_argument("--visits", type=int, default=10, help="earlier visits of history")
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--batch", type=int, default=10_000)
parser.add_argument("--quick", action="store_true", help="smaller batches for a smoke run")
ARGS = parser.parse_args() if __name__ == "__main__" else parser.parse_args([])

if __name__ == "__main__":
    main()
