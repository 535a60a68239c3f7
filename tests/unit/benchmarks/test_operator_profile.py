"""py-spy's collapsed stacks as `bench_operator_scale.py --py-spy` summarises them."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks import operator_profile

RAW = """\
thread (0x1): MainThread;run (/lib/base_events.py:10);visit_event (/op/handlers.py:3) 6
thread (0x1): MainThread;run (/lib/base_events.py:12);_run_once (/lib/base_events.py:40) 2
thread (0x2): create_3;_run (/op/creator.py:5);create (/op/kube.py:9);dumps (/json/__init__.py:2) 2
"""


def test_stacks_by_thread_function_and_own_time(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text(RAW)
    lines = operator_profile.stacks(path, top=3)
    assert lines[0] == "10 samples; by thread: MainThread 8, create 2"
    inclusive = lines[2:5]
    # one function at two lines of a file counts once per stack: 8 of 10, not 2 rows
    assert inclusive[0].split() == ["80.0", "%", "run", "(base_events.py)"]
    own = lines[lines.index("at the top of the stack (own):") + 1 :]
    assert own[0].split() == ["60.0", "%", "visit_event", "(handlers.py)"]
    assert ["20.0", "%", "dumps", "(__init__.py)"] in [row.split() for row in own]


def test_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("")
    assert operator_profile.stacks(path, top=3) == ["no samples"]
