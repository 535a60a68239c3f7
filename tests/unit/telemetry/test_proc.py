"""The /proc sampler against a real child process doing known work, one step at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shutterline.telemetry import proc

MB = 1024 * 1024

# The child does one named step per line read from stdin and answers "done" after each.
_CHILD = textwrap.dedent(
    """
    import os, sys, time
    held = []
    for line in sys.stdin:
        step, _, arg = line.strip().partition(" ")
        if step == "alloc":  # N MiB, every page touched so it is resident
            held.append(bytearray(int(arg) * 1024 * 1024))
            for i in range(0, len(held[-1]), 4096):
                held[-1][i] = 1
        elif step == "free":
            held.clear()
        elif step == "burn":  # CPU seconds, measured by the child itself
            t0 = time.process_time()
            while time.process_time() - t0 < float(arg):
                pass
        elif step == "write":  # N MiB to a file, synced so the storage layer sees it
            with open(sys.argv[1], "wb") as out:
                out.write(os.urandom(int(arg) * 1024 * 1024))
                out.flush()
                os.fsync(out.fileno())
        elif step == "spawn":  # a child process burning CPU seconds, left running
            import subprocess
            code = (
                "import time\\nt0 = time.process_time()\\n"
                f"while time.process_time() - t0 < {arg}: pass\\ntime.sleep(60)"
            )
            held.append(subprocess.Popen([sys.executable, "-c", code]))
        print("done", flush=True)
    """
)


class Child:
    """A child process told to do one step at a time."""

    def __init__(self, out: Path) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def close(self) -> None:
        """Kill the child and close its pipes."""
        self.p.kill()
        self.p.wait()
        for pipe in (self.p.stdin, self.p.stdout):
            if pipe:
                pipe.close()

    def do(self, step: str) -> None:
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(step + "\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "done"


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    c = Child(tmp_path / "written.bin")
    c.do("noop")  # interpreter started
    yield c
    c.close()


def test_resident_and_peak_memory_follow_an_allocation(child: Child) -> None:
    tree = proc.ProcessTree(child.p.pid)
    before = tree.sample()
    child.do("alloc 200")
    during = tree.sample()
    child.do("free")
    after = tree.sample()
    # bytearray pages are the child's alone; allow 10 MiB of interpreter noise.
    assert during.rss_bytes - before.rss_bytes == pytest.approx(200 * MB, abs=10 * MB)
    assert after.rss_bytes < during.rss_bytes - 150 * MB  # freed memory goes back
    assert after.hwm_bytes >= before.rss_bytes + 195 * MB  # the kernel keeps the peak


def test_cpu_seconds_follow_a_busy_loop(child: Child) -> None:
    tree = proc.ProcessTree(child.p.pid)
    before = tree.sample()
    child.do("burn 0.8")
    after = tree.sample()
    # Clock ticks are 10 ms; the loop's own overshoot and the pipe add a little more.
    assert after.cpu_s - before.cpu_s == pytest.approx(0.8, abs=0.08)


def test_written_bytes_are_counted_at_the_syscall_and_storage_layers(child: Child) -> None:
    tree = proc.ProcessTree(child.p.pid)
    before = tree.sample()
    child.do("write 16")
    after = tree.sample()
    assert after.write_chars - before.write_chars == pytest.approx(16 * MB, abs=64 * 1024)
    # Storage accounting: the synced pages, give or take filesystem metadata.
    assert after.write_bytes - before.write_bytes == pytest.approx(16 * MB, rel=0.05)
    assert after.time > before.time


def test_a_child_process_counts_in_the_tree(child: Child) -> None:
    tree = proc.ProcessTree(child.p.pid)
    alone = proc.ProcessTree(child.p.pid, descendants=False)
    child.do("spawn 0.6")
    samples = []
    for _ in range(100):  # the grandchild burns 0.6 CPU s within a few seconds
        both, own = tree.sample(), alone.sample()
        samples.append(both)
        if both.cpu_s - own.cpu_s >= 0.6:
            break
        time.sleep(0.1)
    assert max(s.processes for s in samples) == 2
    assert own.processes == 1
    # The grandchild's 0.6 s are in the tree and not in the root's own counters.
    assert both.cpu_s - own.cpu_s == pytest.approx(0.6, abs=0.05)
    assert both.rss_bytes > own.rss_bytes


def test_an_exited_process_is_gone_and_its_pid_not_mistaken(child: Child) -> None:
    tree = proc.ProcessTree(child.p.pid)
    assert tree.alive()
    child.close()
    assert not tree.alive()
    with pytest.raises(proc.ProcessGone):
        tree.sample()


def test_a_missing_process_is_reported_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    with pytest.raises(proc.ProcessGone):
        proc.ProcessTree(2**22 + 12345)


def test_start_time_is_when_the_process_started(child: Child) -> None:
    import os

    assert proc.started_at(child.p.pid) >= proc.started_at(os.getpid())
    assert abs(proc.started_at(child.p.pid) - time.time()) < 60  # clock ticks since boot
