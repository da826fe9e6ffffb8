"""glibc's allocator, set so that XLA's CPU buffers are reused rather than returned to the system.

XLA allocates every intermediate buffer of a CPU program with ``malloc`` and frees it when the
program no longer needs it. With glibc's defaults, freed memory at the top of the heap beyond
128 KiB (the trim threshold, raised only as far as twice the mmap threshold) goes back to the
system, and the next call of the same program faults every page of it in again. Inside a loop
that runs the model many times this is most of the cost: leave-one-out on all-MiniLM-L6-v2 at
512 pieces with 4 shortened rows a call spent a third of its time in the kernel (about 100,000
page faults a second) and took 313 ms per row, against 180 ms with the settings below
(``benchmarks/loo_rows.py``, ``benchmarks/RESULTS.md``, "Leave-one-out at 512 pieces").

:func:`keep_freed_memory` fixes the mmap threshold (buffers below it come from the heap) and
raises the trim threshold, so freed buffers stay mapped for the next call. The process's
resident memory then stays near its peak instead of shrinking between calls. ``jaxattn``
commands apply it at start (``JAXATTN_GLIBC_MALLOC=default`` leaves glibc's own settings);
from Python, call it once before the work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Buffers below this many bytes come from the heap (glibc's largest dynamic threshold).
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory at the top of the heap is kept up to this many bytes.
TRIM_THRESHOLD = 2**30


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD,
                      trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Sets glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` for this process; whether both
    were set (False where the C library is not glibc, or ``JAXATTN_GLIBC_MALLOC=default``)."""
    if os.environ.get("JAXATTN_GLIBC_MALLOC", "").lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold))
