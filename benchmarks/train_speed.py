"""Training speed and peak memory per encoder, excluding compilation.

    python benchmarks/train_speed.py                       # SST-2 and IMDB, every encoder
    python benchmarks/train_speed.py --data sst2 --encoders bilstm
    python benchmarks/train_speed.py --data fixed200       # batch 32 x length 200, random ids
    python benchmarks/train_speed.py --data sst2 --encoders bilstm ortho_lstm diversity_lstm

Each (data, encoder) runs in a fresh process so its peak resident memory is its own. The first pass
over the epoch's batches compiles every bucket shape; the timed epoch that follows compiles nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _measure(data: str, encoder: str, epochs: int) -> dict:
    import jax

    from jaxattn.config import load_config
    from jaxattn.data.batching import EncodedSplit, training_batches
    from jaxattn.runs.run import model_for
    from jaxattn.training.objective import AttentionSource
    from jaxattn.training.optimizers import make_optimizer
    from jaxattn.training.trainer import make_train_step

    cfg = load_config(None, [f"model.encoder={encoder}", "model.embed_dim=300"])
    if data == "fixed200":
        rng = np.random.default_rng(0)
        n = 32 * 40
        tokens = [np.r_[2, rng.integers(4, 20000, size=198), 3].astype(np.int32) for _ in range(n)]
        split = EncodedSplit(tokens=tokens, labels=rng.integers(0, 2, size=n).astype(np.int32))
        info, vocab_size = {"task": "binary", "label_names": ["neg", "pos"]}, 20000
        buckets = (200,)
    else:
        from jaxattn.data.prepare import prepare

        cfg.data.name = data
        prepared = prepare(cfg.data)
        split, info, vocab_size = prepared.splits["train"], prepared.info(), len(prepared.vocab)
        buckets = cfg.train.buckets
    model = model_for(cfg, info, vocab_size)
    first = next(training_batches(split, 32, np.random.default_rng(0), 0.1, buckets))
    params = model.init(jax.random.key(0), first)
    optimizer = make_optimizer(cfg.train)
    opt_state = optimizer.init(params)
    # The Diversity LSTM trains with its conicity loss (the other encoders with none).
    from jaxattn.training.penalties import conicity_penalty

    penalty = conicity_penalty(cfg.model.diversity_weight) if encoder == "diversity_lstm" else None
    step = make_train_step(model, optimizer, AttentionSource(), penalty=penalty)
    pos_weight = np.float32(1.0)

    def epoch(seed: int) -> float:
        nonlocal params, opt_state
        start = time.perf_counter()
        loss = 0.0
        for batch in training_batches(split, 32, np.random.default_rng(seed), 0.1, buckets):
            params, opt_state, loss = step(params, opt_state, batch, pos_weight, None)
        jax.block_until_ready(loss)
        return time.perf_counter() - start

    compile_epoch = epoch(0)
    times = [epoch(1 + i) for i in range(epochs)]
    best = min(times)
    lengths = split.lengths
    return {
        "data": data,
        "encoder": encoder,
        "examples": len(split),
        "mean_length": float(lengths.mean()),
        "first_epoch_s_with_compile": round(compile_epoch, 2),
        "epoch_s": round(best, 2),
        "examples_per_s": round(len(split) / best, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(jax.devices()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["sst2", "imdb", "fixed200"])
    parser.add_argument("--encoders", nargs="+", default=["bilstm", "cnn", "average"])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (best is reported)")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "ENCODER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child, args.epochs)))
        return
    rows = []
    for data in args.data:
        for encoder in args.encoders:
            cmd = [sys.executable, __file__, "--child", data, encoder, "--epochs", str(args.epochs)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| data | encoder | train examples | mean len | epoch (s) | examples/s | compile epoch (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['data']} | {r['encoder']} | {r['examples']} | {r['mean_length']:.1f} | {r['epoch_s']} "
            f"| {r['examples_per_s']} | {r['first_epoch_s_with_compile']} | {r['peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
