"""Peak memory of each analysis stage on all-MiniLM-L6-v2 at a given width, one process per stage.

    python benchmarks/analysis_memory.py --width 512 --stages attention,grad,ig,summaries,heads

Each stage runs in a fresh process on one batch of the size ``jaxattn analyze`` gives it
(``AnalysisOptions``'s ``*_batch_size``, capped at long inputs by ``gradient_memory``,
:func:`jaxattn.studies.runner.rows_within_memory`; ``--rows`` sets it) of ``--width`` word
pieces, every position a real piece: the shape a long review (ERASER movies, IMDB) gives. The
weights are the packaged MiniLM's with a fresh attention-pooling head (``--head cls`` for the
[CLS] head); what is measured does not depend on the values. Reported: the process's peak
resident memory (``os.wait4``'s ``ru_maxrss``) and its wall time (compilation included). The
``attention`` stage (one forward pass) is the floor: the weights, the runtime and XLA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT_STAGES = "attention,grad,loo,ig,summaries,heads,eraser"


def child(stage_name: str, width: int, rows: int | None, head: str, out: str) -> None:
    import jax
    import numpy as np

    from jaxattn.core.protocol import Batch
    from jaxattn.models.pretrained import load_folder, minilm_folder
    from jaxattn.models.pretrained.classifier import bert_classifier
    from jaxattn.runtime.memory import pass_bytes, passes_at_once
    from jaxattn.studies.jain_wallace.stages import AnalysisOptions
    from jaxattn.studies.registry import get_stage

    loaded = load_folder(minilm_folder())
    model = bert_classifier(loaded.model, head, "binary", 2)
    params = model.init(jax.random.key(0))
    params["bert"] = loaded.params
    stage = get_stage(stage_name)
    opts = AnalysisOptions()
    rng = np.random.default_rng(0)

    def batch_of(n: int) -> Batch:
        tokens = rng.integers(1000, loaded.model.config.vocab_size, size=(n, width))
        tokens = tokens.astype(np.int32)
        tokens[:, 0], tokens[:, -1] = 101, 102  # [CLS] ... [SEP]
        valid = np.ones((n, width), bool)
        mask = valid.copy()
        mask[:, [0, -1]] = False
        word_index = np.where(mask, np.cumsum(mask, axis=1) - 1, -1).astype(np.int32)
        return Batch(tokens=tokens, mask=mask, valid=valid, labels=np.zeros(n, np.int32),
                     weights=np.ones(n, np.float32), index=np.arange(n, dtype=np.int32),
                     token_types=np.zeros_like(tokens), word_index=word_index)

    # What analyze forms: the stage's batch size, capped as the runner caps it at this width.
    n = rows or min(getattr(opts, stage.batch_size),
                    passes_at_once(1 << 30, 1, pass_bytes(model, params, batch_of(1)),
                                   opts.gradient_memory))
    batch = batch_of(n)
    given = {}
    if stage.needs:  # e.g. eraser: every importance it ranks, here random ones
        given = {key: rng.random((n, width)).astype(np.float32) * batch.mask
                 for key in stage.needs}
    start = time.perf_counter()
    kwargs = {"given": given} if stage.needs else {}
    result = stage.compute(model, params, batch, opts, **kwargs)
    jax.block_until_ready(result)
    seconds = time.perf_counter() - start
    with open(out, "w") as f:
        json.dump({"rows": n, "seconds": seconds}, f)


def measure(stage: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        cmd = [sys.executable, __file__, "--child", stage, "--width", str(args.width),
               "--head", args.head, "--json", result]
        if args.rows:
            cmd += ["--rows", str(args.rows)]
        with open(os.path.join(tmp, "stderr"), "w+") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
            if os.waitstatus_to_exitcode(status) != 0:
                err.seek(0)
                tail = err.read()[-2000:]
                return {"stage": stage, "error": tail.strip().splitlines()[-1] if tail else
                        f"exit status {os.waitstatus_to_exitcode(status)}",
                        "peak_rss_mib": usage.ru_maxrss / 1024}
        with open(result) as f:
            out = json.load(f)
    return {"stage": stage, **out, "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=512, help="word pieces per row")
    ap.add_argument("--rows", type=int, default=None,
                    help="rows per batch (default: each stage's own default batch size)")
    ap.add_argument("--head", choices=("attention", "cls"), default="attention")
    ap.add_argument("--stages", default=DEFAULT_STAGES)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.width, args.rows, args.head, args.json)
        return
    print(f"| stage | rows x {args.width} pieces | peak RSS (MiB) | wall (s, cold) |")
    print("|---|---|---|---|")
    for stage in args.stages.split(","):
        r = measure(stage, args)
        if "error" in r:
            print(f"| {stage} | - | {r['peak_rss_mib']:.0f} | failed: {r['error']} |", flush=True)
        else:
            print(f"| {stage} | {r['rows']} | {r['peak_rss_mib']} | {r['seconds']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
