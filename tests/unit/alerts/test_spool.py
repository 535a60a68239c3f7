"""The spool: packets appear whole or not at all; a retry replaces, never duplicates."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shutterline.alerts import spool


def test_write_then_rewrite_same_id_replaces(tmp_path):
    sp = spool.AlertSpool(tmp_path)
    sp.write(42, b"first", visit=1, detector=3)
    path = sp.write(42, b"second", visit=1, detector=3)
    assert path.name == "1_3_42.alert"
    assert sp.pending() == [path]
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["1_3_42.alert"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    sp = spool.AlertSpool(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        sp.write(7, b"x" * 1000, visit=1, detector=1)
    assert list(tmp_path.iterdir()) == []


_CRASH = """
import os, sys
from shutterline.alerts import spool
sp = spool.AlertSpool(sys.argv[1])
sp.write(1, b"complete", visit=5, detector=2)
os.replace = lambda *a, **k: os._exit(9)  # the process dies between write and rename
sp.write(2, b"never visible", visit=5, detector=2)
"""


def test_crash_mid_write_leaves_only_an_invisible_temporary(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path)], check=False)
    assert proc.returncode == 9
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "5_2_1.alert" in names and len(names) == 2
    temp = next(n for n in names if n != "5_2_1.alert")
    assert temp.startswith(".") and temp.endswith(".tmp")
    # What a relay sees with its glob: only the complete packet.
    sp = spool.AlertSpool(tmp_path)
    assert [p.name for p in sp.pending()] == ["5_2_1.alert"]
    assert sorted(p.name for p in tmp_path.glob("*.alert")) == ["5_2_1.alert"]
    # Discarding the failed detector removes both.
    assert sp.discard(visit=5, detector=2) == 2
    assert list(tmp_path.iterdir()) == []


def test_discard_touches_only_the_named_detector(tmp_path):
    sp = spool.AlertSpool(tmp_path)
    sp.write_many([(1, b"a"), (2, b"b")], visit=9, detector=1)
    sp.write(3, b"c", visit=9, detector=11)
    assert sp.discard(visit=9, detector=1) == 2
    assert [p.name for p in sp.pending()] == ["9_11_3.alert"]


def test_concurrent_reader_never_sees_a_partial_packet(tmp_path):
    sp = spool.AlertSpool(tmp_path, fsync=False)
    payload = os.urandom(256 * 1024)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for path in Path(tmp_path).glob("*.alert"):
                # A packet replaced between glob and open is gone: fine.
                with contextlib.suppress(FileNotFoundError):
                    seen.append(len(path.read_bytes()))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            sp.write(i % 5, payload, visit=1, detector=1)
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) == {len(payload)}
    assert len(sp.pending()) == 5


def test_write_many_failure_cleans_temporaries_and_discard_the_rest(tmp_path, monkeypatch):
    sp = spool.AlertSpool(tmp_path)
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="Input/output"):
        sp.write_many([(1, b"a"), (2, b"b"), (3, b"c")], visit=4, detector=2)
    # No temporary survives; the one packet already renamed is removed by discard.
    assert [p.name for p in tmp_path.iterdir()] == ["4_2_1.alert"]
    assert sp.discard(visit=4, detector=2) == 1
    assert list(tmp_path.iterdir()) == []
