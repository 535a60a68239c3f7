"""``make bench``'s driver: scripts run in their own processes, and one table at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import run_all

RECORDING = """
import json, os, pathlib, sys
out = pathlib.Path(os.environ["SHUTTERLINE_BENCH_OUT"])
rows = [{"figure": "stages, sum", "value": "1.0 s", "against": "9.5 x FFT",
         "command": "python tests/benchmarks/bench_a.py"}]
(out / "bench_a.rows.json").write_text(json.dumps(rows))
print("args", sys.argv[1:])
"""


def _truth_record(cache: Path) -> None:
    totals = {"completeness_snr10": 0.96, "found": 48, "expected": 50, "false_mean": 3.0,
              "asteroids": [30, 30], "astrometry_median_arcsec": 0.04}  # fmt: skip
    path = cache / "truth-nights-v9" / "small" / "results.json"
    path.parent.mkdir(parents=True)
    record = {"commit": "0123abc", "validation": {"totals": totals, "failed": 0}}
    path.write_text(json.dumps(record))


def test_one_table_from_recorded_rows_json_records_and_printing_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts, cache = tmp_path / "scripts", tmp_path / "cache"
    scripts.mkdir()
    (scripts / "bench_a.py").write_text(RECORDING)
    (scripts / "bench_truth.py").write_text(
        f"from tests.unit.benchmarks import test_run_all as t\n"
        f"import pathlib\nt._truth_record(pathlib.Path({str(cache)!r}))\n"
    )
    (scripts / "bench_p.py").write_text("print('figures only printed')\n")
    (scripts / "bench_z.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "HERE", scripts)
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    monkeypatch.setattr(run_all, "BENCH_CACHE", cache)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[3]))
    monkeypatch.setitem(run_all.QUICK_ARGS, "bench_a", "--repeat 1")
    assert run_all.main(["--quick"]) == 1  # bench_z failed, the others still ran
    out = capsys.readouterr().out
    table = out[out.index("=== summary") :]
    assert "args ['--repeat', '1']" in out  # quick options reach the script
    assert "9.5 x FFT" in table and "python tests/benchmarks/bench_a.py --repeat 1" in table
    truth = next(line for line in table.splitlines() if "validation: completeness" in line)
    assert truth.split()[:2] == ["bench_truth", "validation:"] and "0.96 (48/50)" in truth
    assert "see .bench/bench_p.txt" in table and "failed: bench_z" in out
    assert (tmp_path / ".bench" / "bench_p.txt").read_text() == "figures only printed\n"


def test_a_stale_json_record_is_not_shown_as_this_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_all, "BENCH_CACHE", tmp_path)  # not the machine's own records
    _truth_record(tmp_path)
    assert run_all._newest("truth-nights-*/*/results.json", since=0) is not None
    future = (tmp_path / "truth-nights-v9" / "small" / "results.json").stat().st_mtime + 10
    assert run_all._newest("truth-nights-*/*/results.json", since=future) is None
