"""Freed large arrays stay in the heap once `heap.keep_freed_memory` ran (glibc)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent(
    """
    import resource
    import numpy as np
    from shutterline.pipeline import heap

    def faults_per_array():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(8):
            a = np.ones((4096, 4096), np.float32)  # 64 MB, above glibc's default threshold
            del a
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 8

    default = faults_per_array()
    kept = heap.keep_freed_memory()
    faults_per_array()  # the first array after the change still grows the heap
    print(default, kept, faults_per_array())
    """
)


def test_freed_arrays_are_reused_without_new_page_faults() -> None:
    # A fresh process: the setting lasts for the process, and the default is measured first.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True
    ).stdout.split()
    default, kept, after = float(out[0]), out[1] == "True", float(out[2])
    assert kept  # this machine's C library is glibc
    # 64 MB is 32 huge pages or 16384 small ones a fresh mmap faults in; reused heap: none.
    assert default >= 30
    assert after < default / 5, (default, after)
