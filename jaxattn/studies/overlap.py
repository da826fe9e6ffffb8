"""Running a stage's batches with compilation overlapped: the first batch of every distinct shape
goes to a small thread pool ahead of the loop.

On the data sets of the studies a cold stage spends most of its time compiling one program per
bucket shape. XLA compiles without holding Python's lock, so while the loop computes the batches
of one bucket, the pool traces and compiles the next buckets' programs (by running their first
batch through the same jitted functions, which leaves the programs in JAX's own caches: a later
call with the same shapes compiles nothing). The loop waits for a shape's first batch before
running the others of that shape, so no program is compiled twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax

from jaxattn.runtime.compile_stats import CompileCounter, CompileStats


def shape_key(batch: Any) -> tuple:
    """What decides which program a batch runs: its tree and every leaf's shape and dtype."""
    leaves, tree = jax.tree_util.tree_flatten(batch)
    return (tree, *((getattr(x, "shape", None), str(getattr(x, "dtype", type(x))))
                    for x in leaves))


def _timed(compute: Callable[[Any], dict], batch: Any) -> tuple[dict, CompileStats, float]:
    start = time.perf_counter()
    with CompileCounter(this_thread=True) as counted:
        out = jax.device_get(compute(batch))
    return out, counted.stats, time.perf_counter() - start


def default_workers() -> int:
    """Compile threads: one per core, at most 4 (``JAXATTN_COMPILE_THREADS``; 0 turns it off)."""
    value = os.environ.get("JAXATTN_COMPILE_THREADS")
    return int(value) if value else min(4, os.cpu_count() or 1)


def run_batches(
    compute: Callable[[Any], dict], batches: Sequence[Any], workers: int | None = None
) -> Iterator[tuple[Any, dict, CompileStats, float]]:
    """``(batch, host outputs, compilations on its thread, seconds)`` for every batch, in order.

    ``compute`` maps a batch to a dict of arrays; with ``workers`` 0 every batch runs in order
    on the calling thread.
    """
    workers = default_workers() if workers is None else workers
    first: dict[tuple, int] = {}
    for i, batch in enumerate(batches):
        first.setdefault(shape_key(batch), i)
    if workers <= 0 or len(first) <= 1:
        for batch in batches:
            yield (batch, *_timed(compute, batch))
        return
    # The first batch runs alone, so that what every shape shares (a random key, say) is
    # compiled once, not by several threads at the same time.
    yield (batches[0], *_timed(compute, batches[0]))
    with ThreadPoolExecutor(workers, thread_name_prefix="jaxattn-compile") as pool:
        ahead = {i: pool.submit(_timed, compute, batches[i]) for i in sorted(first.values())[1:]}
        try:
            for i, batch in enumerate(batches[1:], start=1):
                done = ahead.pop(i, None)
                yield (batch, *(done.result() if done is not None else _timed(compute, batch)))
        finally:
            for future in ahead.values():  # the consumer stopped early: start nothing more
                future.cancel()
