"""Keep freed memory in the process heap, so that large arrays reuse it instead of new pages.

glibc serves an allocation above its mmap threshold (dynamic, at most 32 MB by default) with
a fresh ``mmap`` and unmaps it on free. A detector's stages allocate and free arrays of 8 to
70 MB all the time (planes, masks, full-size spectra), so every one of them is paid again in
page faults and in the kernel zeroing its pages: one subtraction spent 0.2-0.5 s of system
time on 400 MB of them against 0.7 s of its own work (``resource.getrusage``, load 9). With
both the mmap and the trim threshold at `KEEP_BYTES`, a freed array stays in the heap and the
next one reuses its pages. Peak resident memory of one detector: 1294 -> 1300 MB
(``tests/benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["KEEP_BYTES", "keep_freed_memory"]

#: Allocations below this come from the heap, and this much free heap is kept, not trimmed.
KEEP_BYTES = 1 << 30
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to `KEEP_BYTES`, once per process.

    Returns False where the C library has no ``mallopt`` or refuses the values (not glibc):
    allocation then works as before.
    """
    try:
        # The process's own symbols, the C library's among them: ``ctypes.util`` would cost
        # 35 ms of imports and an ``ldconfig`` run at every process start.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
