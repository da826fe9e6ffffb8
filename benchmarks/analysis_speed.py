"""Speed of the J&W analyses in instances per second, compilation excluded (reported apart).

    python benchmarks/analysis_speed.py                       # SST-2 test, 1,725 sentences
    python benchmarks/analysis_speed.py --stages grad,loo     # some stages only
    python benchmarks/analysis_speed.py --fake                # random ids, SST-2-like lengths
    python benchmarks/analysis_speed.py --set loo_chunk=8 --set adv_batch_size=256

Model: BiLSTM (embeddings 300-d, 128 per direction, H = 256) with additive attention and random
parameters (the speed does not depend on training). Every stage runs the pipeline's own code
(``jaxattn.analysis.jain_wallace.STAGE_SPECS``, or the J&W gradient alone for ``grad``) over the
length-sorted, bucketed batches ``jaxattn analyze`` uses: a first pass compiles every bucket shape
(its extra time over the second pass is reported as compile time), the second pass is timed.

The PyTorch column is the original J&W code on the same 2-core machine; the targets are 3x for
gradients and leave-one-out and 10x for permutations and the adversarial search.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
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
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sst2_like_split(n: int, fake: bool, seed: int = 0):
    """The first ``n`` SST-2 test sentences, or random ids with SST-2-like lengths."""
    from jaxattn.data.batching import EncodedSplit

    if not fake:
        try:
            from jaxattn.config import DataConfig
            from jaxattn.data.prepare import prepare

            prepared = prepare(DataConfig(name="sst2"))
            test = prepared.splits["test"]
            keep = range(min(n, len(test)))
            split = EncodedSplit([test.tokens[i] for i in keep], test.labels[: len(keep)])
            return split, len(prepared.vocab), "SST-2 test"
        except Exception as err:  # noqa: BLE001 - any missing data: fall back to fake ids
            print(f"SST-2 not available ({err}); using random ids with SST-2-like lengths")
    rng = np.random.default_rng(seed)
    vocab_size = 14_645
    lengths = np.clip(np.round(rng.gamma(4.0, 19.4 / 4.0, n)), 5, 52).astype(int)
    tokens = [np.r_[2, rng.integers(4, vocab_size, size=k), 3].astype(np.int32) for k in lengths]
    return EncodedSplit(tokens, rng.integers(0, 2, n).astype(np.int32)), vocab_size, "random ids"


def measure(stage: str, model, params, split, opts) -> dict:
    import jax

    from jaxattn import importance
    from jaxattn.analysis import jain_wallace as jw

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
    params, batches = jw.stage_batches(split, indices, batch_size, opts, params)
    batches = list(batches)

    def one_pass() -> tuple[float, float]:
        start, cpu = time.perf_counter(), _cpu_seconds()
        for batch in batches:
            jax.block_until_ready(spec.compute(model, params, batch, opts))
        return time.perf_counter() - start, _cpu_seconds() - cpu

    cold, _ = one_pass()
    warm, cpu = one_pass()
    return {
        "stage": stage,
        "batch": batch_size,
        "batches": len(batches),
        "seconds": warm,
        "instances_per_second": len(split) / warm,
        "cpu_seconds": cpu,
        "compile_seconds": max(cold - warm, 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stages", default="grad,grad2,loo,perm,adv", help="comma-separated: " + ", ".join(STAGES)
    )
    parser.add_argument("--n", type=int, default=1725, help="instances (SST-2 test in J&W: 1,725)")
    parser.add_argument("--fake", action="store_true", help="random ids instead of SST-2")
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
        default=1,
        help="CPU devices to split each batch over (one thread each)",
    )
    args = parser.parse_args()
    if args.devices > 1:  # must be set before JAX creates its CPU backend
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.devices}"
        )

    import jax

    from jaxattn.analysis.jain_wallace import AnalysisOptions
    from jaxattn.config import _parse_literal
    from jaxattn.data.batching import make_batch
    from jaxattn.models.model import build_model

    overrides = dict(item.split("=", 1) for item in args.set)
    opts = AnalysisOptions(**{k: _parse_literal(v) for k, v in overrides.items()})
    split, vocab_size, source = sst2_like_split(args.n, args.fake)
    model = build_model(
        vocab_size=vocab_size,
        task="binary",
        encoder="bilstm",
        attention="additive",
        embed_dim=300,
        hidden_size=128,
    )
    params = model.init(jax.random.key(0), make_batch(split, [0]))
    lengths = split.lengths
    print(
        f"data: {source}, {len(split)} instances, mean length {lengths.mean():.1f} "
        f"(max {lengths.max()}); jax {jax.__version__} on {len(jax.devices())} "
        f"{jax.devices()[0].platform} device(s), "
        f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}"
    )
    rows = [measure(stage, model, params, split, opts) for stage in args.stages.split(",")]
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    header = (
        f"{'stage':9s} {'batch':>5s} {'inst/s':>8s} {'inst/cpu-s':>10s} {'compile s':>9s} "
        f"{'PyTorch':>8s} {'speed-up':>8s} {'target':>6s}  what"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        what, torch_rate, target = STAGES[row["stage"]]
        rate = row["instances_per_second"]
        ratio = f"{rate / torch_rate:7.2f}x" if torch_rate else f"{'-':>8s}"
        print(
            f"{row['stage']:9s} {row['batch']:5d} {rate:8.1f} "
            f"{len(split) / row['cpu_seconds']:10.1f} {row['compile_seconds']:9.1f} "
            f"{torch_rate or '-':>8} {ratio} {f'{target:.0f}x' if target else '-':>6s}  {what}"
        )
    print(
        "\ninst/s: wall clock, second pass (compiled); inst/cpu-s: instances per CPU-second of "
        "this process (independent of other load on the machine); compile s: first pass minus "
        "second."
    )


if __name__ == "__main__":
    main()
