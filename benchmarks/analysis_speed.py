"""Speed of the J&W analyses in instances per second, compilation excluded (reported apart).

    python benchmarks/analysis_speed.py                       # SST-2 test, 1,725 sentences
    python benchmarks/analysis_speed.py --data imdb --n 1000  # IMDB test, first 1,000 reviews
    python benchmarks/analysis_speed.py --stages grad,loo     # some stages only
    python benchmarks/analysis_speed.py --fake                # random ids, SST-2-like lengths
    python benchmarks/analysis_speed.py --set loo_chunk=8 --set adv_batch_size=256
    python benchmarks/analysis_speed.py --encoder transformer  # the config defaults' Transformer
    python benchmarks/analysis_speed.py --stages attention,norm,erasure,eraser  # the later tests

Model: BiLSTM (embeddings 300-d, 128 per direction, H = 256) with additive attention and random
parameters (the speed does not depend on training); ``--encoder`` picks another encoder with the
config defaults (``jaxattn.config.ModelConfig``: Transformer 2 layers, 4 heads, width 128, FF 256). Every stage runs the pipeline's own code
(``jaxattn.studies.jain_wallace.stages.STAGE_SPECS``, or the J&W gradient alone for ``grad``) over the
length-sorted, bucketed batches ``jaxattn analyze`` uses: a first pass compiles every bucket shape
(its extra time over a compiled pass is reported as compile time), then compiled passes are timed
until 10 s have run (at least two) and the fastest is reported. Each
stage runs in its own process, so the peak resident memory reported is that stage's own.

The PyTorch column is the original J&W code (BiLSTM) on the same 2-core machine; the targets are 3x for
gradients and leave-one-out and 10x for permutations and the adversarial search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# stage -> (what it computes, PyTorch instances/s, required speed-up)
STAGES = {
    "attention": ("forward pass only (reference: the floor of every stage)", None, None),
    "grad": ("gradient below attention (J&W)", 791.0, 3.0),
    "grad2": ("gradient below + through attention (the `grad` stage)", None, None),
    "loo": ("leave-one-out, every token deleted", 133.0, 3.0),
    "ig": ("integrated gradients, 50 path points", None, None),
    "perm": ("100 permutations, median TVD", 196.0, 10.0),
    "adv": ("5 adversaries x 500 AMSGrad steps", 19.1, 10.0),
    "norm": ("norm-based importance ||a_t W h_t||", None, None),
    "erasure": ("erasure: single weight + 11 rankings removed until the decision flips", None,
                None),
    "eraser": ("ERASER comp./suff., 7 rankings x 5 bins, tokens deleted", None, None),
}


MIN_TIMED_SECONDS = 10.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_split(data: str, n: int, fake: bool, seed: int = 0):
    """The first ``n`` test instances of ``data``, or random ids with SST-2-like lengths."""
    from jaxattn.data.batching import EncodedSplit

    if not fake:
        try:
            from jaxattn.config import DataConfig
            from jaxattn.data.prepare import prepare

            prepared = prepare(DataConfig(name=data))
            test = prepared.splits["test"]
            keep = range(min(n, len(test)))
            split = EncodedSplit([test.tokens[i] for i in keep], test.labels[: len(keep)])
            return split, len(prepared.vocab), f"{data} test"
        except Exception as err:  # noqa: BLE001 - any missing data: fall back to fake ids
            print(f"{data} not available ({err}); using random ids with SST-2-like lengths")
    rng = np.random.default_rng(seed)
    vocab_size = 14_645
    lengths = np.clip(np.round(rng.gamma(4.0, 19.4 / 4.0, n)), 5, 52).astype(int)
    tokens = [np.r_[2, rng.integers(4, vocab_size, size=k), 3].astype(np.int32) for k in lengths]
    return EncodedSplit(tokens, rng.integers(0, 2, n).astype(np.int32)), vocab_size, "random ids"


def measure(stage: str, model, params, split, opts) -> dict:
    import jax

    from jaxattn.explain import importance
    from jaxattn.studies import runner
    from jaxattn.studies.jain_wallace import stages as jw

    if stage == "grad":
        spec = dataclasses.replace(
            jw.STAGE_SPECS["grad"],
            compute=lambda m, p, b, o: {"grad": importance.gradient_importance(m, p, b)},
        )
    else:
        spec = jw.STAGE_SPECS["grad" if stage == "grad2" else stage]
    devices = len(jax.devices())
    batch_size = -(-getattr(opts, spec.batch_size) // devices) * devices
    indices = np.arange(len(split))
    params, batches = runner.stage_batches(split, indices, batch_size, opts.buckets, params)
    batches = list(batches)
    # The importances a stage reads come from other stages; random ones cost the same to use.
    rng = np.random.default_rng(0)
    given = [
        {"given": {k: rng.random(b.tokens.shape, np.float32) for k in spec.needs}}
        if spec.needs else {}
        for b in batches
    ]

    def one_pass() -> tuple[float, float]:
        start, cpu = time.perf_counter(), _cpu_seconds()
        for batch, extra in zip(batches, given):
            jax.block_until_ready(spec.compute(model, params, batch, opts, **extra))
        return time.perf_counter() - start, _cpu_seconds() - cpu

    cold, _ = one_pass()
    # Timed passes until at least MIN_TIMED_SECONDS have run (and at least two): the fastest is
    # reported, as the PyTorch figures are the best of two runs. Sub-second stages are noisy.
    passes = [one_pass()]
    while len(passes) < 2 or sum(p[0] for p in passes) < MIN_TIMED_SECONDS:
        passes.append(one_pass())
    warm, cpu = min(passes)
    return {
        "stage": stage,
        "batch": batch_size,
        "batches": len(batches),
        "seconds": warm,
        "instances_per_second": len(split) / warm,
        "cpu_seconds": cpu,
        "compile_seconds": max(cold - warm, 0.0),
        "timed_passes": len(passes),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stages", default="grad,grad2,loo,perm,adv", help="comma-separated: " + ", ".join(STAGES)
    )
    parser.add_argument("--data", default="sst2", help="data set whose test split is analysed")
    parser.add_argument("--n", type=int, default=1725, help="instances (SST-2 test in J&W: 1,725)")
    parser.add_argument("--fake", action="store_true", help="random ids instead of real data")
    parser.add_argument(
        "--encoder",
        default="bilstm",
        choices=("bilstm", "cnn", "average", "transformer"),
        help="encoder, with additive attention (default bilstm)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="an AnalysisOptions field, e.g. loo_chunk=8",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=os.cpu_count(),
        help="CPU devices to split each batch over (default one per core, as `jaxattn analyze`)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one stage, JSON on stdout
    args = parser.parse_args()
    if not args.child:
        _parent(args)
        return
    from jaxattn.runtime.devices import split_cpu_into_devices

    split_cpu_into_devices(args.devices)  # before JAX creates its CPU backend

    import jax

    from jaxattn.config import ModelConfig, parse_literal
    from jaxattn.data.batching import make_batch
    from jaxattn.models.model import build_model
    from jaxattn.studies.jain_wallace.stages import AnalysisOptions

    overrides = dict(item.split("=", 1) for item in args.set)
    opts = AnalysisOptions(**{k: parse_literal(v) for k, v in overrides.items()})
    split, vocab_size, source = test_split(args.data, args.n, args.fake)
    defaults = ModelConfig()
    model = build_model(
        vocab_size=vocab_size,
        task="binary",
        encoder=args.encoder,
        attention="additive",
        embed_dim=300,
        hidden_size=128,
        cnn_filters=defaults.cnn_filters,
        layers=defaults.layers,
        heads=defaults.heads,
        width=defaults.width,
        ff_size=defaults.ff_size,
    )
    params = model.init(jax.random.key(0), make_batch(split, [0]))
    lengths = split.lengths
    row = measure(args.child, model, params, split, opts)
    row["setup"] = (
        f"encoder: {args.encoder}; data: {source}, {len(split)} instances, mean length {lengths.mean():.1f} "
        f"(max {lengths.max()}); jax {jax.__version__} on {len(jax.devices())} "
        f"{jax.devices()[0].platform} device(s), {os.cpu_count()} cores"
    )
    row["instances"] = len(split)
    row["encoder"] = args.encoder
    print(json.dumps(row))


def _parent(args: argparse.Namespace) -> None:
    """Runs every stage in a child process and prints the table."""
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for stage in args.stages.split(","):
        cmd = [sys.executable, __file__, "--child", stage, "--data", args.data, "--n", str(args.n),
               "--devices", str(args.devices), "--encoder", args.encoder]
        cmd += ["--fake"] * args.fake + [x for item in args.set for x in ("--set", item)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        if len(rows) == 1:
            print(rows[0]["setup"])
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "setup"}), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    header = (
        f"{'stage':9s} {'batch':>5s} {'inst/s':>8s} {'inst/cpu-s':>10s} {'compile s':>9s} "
        f"{'peak MiB':>8s} {'PyTorch':>8s} {'speed-up':>8s} {'target':>6s}  what"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        what, torch_rate, target = STAGES[row["stage"]]
        if args.data != "sst2" or args.fake or args.encoder != "bilstm":
            torch_rate = target = None  # the PyTorch figures are for the SST-2 test set
        rate = row["instances_per_second"]
        ratio = f"{rate / torch_rate:7.2f}x" if torch_rate else f"{'-':>8s}"
        print(
            f"{row['stage']:9s} {row['batch']:5d} {rate:8.1f} "
            f"{row['instances'] / row['cpu_seconds']:10.1f} {row['compile_seconds']:9.1f} "
            f"{row['peak_rss_mib']:8.0f} {torch_rate or '-':>8} {ratio} "
            f"{f'{target:.0f}x' if target else '-':>6s}  {what}"
        )
    print(
        "\ninst/s: wall clock, fastest compiled pass; inst/cpu-s: instances per CPU-second of "
        "this process (independent of other load on the machine); compile s: first pass minus "
        "the fastest; peak MiB: the stage process's maximum resident set size."
    )


if __name__ == "__main__":
    main()
