"""What the MiniLM stage benchmarks share: the packaged model with a config's fresh head, the
SST-2 (or other) test batches ``jaxattn analyze`` would form, and cold / warm timing.

Imported by ``summaries_speed.py``, ``eraser_speed.py`` and ``ig_chunks.py`` (run as
``python benchmarks/NAME.py``, so this folder is on the import path).
"""

from __future__ import annotations

import time

import jax
import numpy as np


def timed(fn) -> tuple[float, float]:
    """(cold, warm) seconds of ``fn()``, its result waited for."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def fresh_model(config: str):
    """(model, params, test split) of the packaged all-MiniLM-L6-v2 with the head of the config
    file ``config`` freshly initialised (``train.seed``): the speed does not depend on training.
    Applies the allocator setting every ``jaxattn`` command applies."""
    from jaxattn.runtime.malloc import keep_freed_memory

    keep_freed_memory()
    from jaxattn.config import load_config
    from jaxattn.data.prepare import prepare
    from jaxattn.runs.pretrained import initial_params, load_source
    from jaxattn.runs.run import model_for

    cfg = load_config(config)
    source = load_source(cfg)
    prepared = prepare(cfg.data, vocab=source.tokenizer)
    model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
    return model, initial_params(model, cfg, source.params), prepared.splits["test"]


def longest_batches(split, widths: str, rows: int):
    """``(width, row indices, batch)`` for each comma-separated width: the longest ``rows``
    instances of ``split`` that fit it ([CLS] and [SEP] included), one batch padded to it."""
    from jaxattn.data.batching import make_batch

    lengths = np.array([len(x) for x in split.tokens])
    order = np.argsort(lengths, kind="stable")
    for width in (int(w) for w in widths.split(",")):
        chosen = [int(i) for i in order if lengths[i] + 2 <= width][-rows:]
        yield width, chosen, make_batch(split, chosen, rows, (width,))
