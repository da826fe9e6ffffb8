"""jaxattn beside a plain PyTorch model of the same shape, in one run: forward and training step.

    python benchmarks/torch_side_by_side.py                 # SST-2 test set and 32 x 200
    python benchmarks/torch_side_by_side.py --passes 5      # more timed passes (best is kept)
    python benchmarks/torch_side_by_side.py --what forward --workloads sst2

Runs only where ``torch`` is importable (the optional extra). Both models are a BiLSTM encoder
(E = 300, 128 per direction) with additive attention and one sigmoid output, over the same
token ids:
- PyTorch: ``nn.Embedding`` + ``nn.LSTM(bidirectional=True)`` over packed sequences (as the
  original J&W code runs it), additive attention, a linear decoder; ``torch.set_num_threads(2)``,
  ``torch.inference_mode()`` for inference, ``Adam(amsgrad=True)`` for training.
- jaxattn: its own model (``build_model``), jitted; inference is the ``attention`` stage's forward
  over the analysis buckets (``jaxattn analyze``'s batches), with and without the per-word input
  projection table (:mod:`jaxattn.models.vocab_features`); training is the trainer's step.

Workloads: the SST-2 test set (1,800 sentences, batch 32, sorted by length: PyTorch packs each
batch to its own lengths, jaxattn pads to its buckets), and 40 batches of 32 x 200 random ids
for both inference and training. Every figure is the best of ``--passes`` timed passes after one
untimed pass that compiles (jaxattn) or warms up (PyTorch). Ratios are jaxattn / PyTorch rates.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

HIDDEN, EMBED, VOCAB_FIXED = 128, 300, 20000


def torch_model(vocab: int):
    import torch
    from torch import nn

    class TorchBiLSTMAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, EMBED, padding_idx=0)
            self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True, bidirectional=True)
            self.w1 = nn.Linear(2 * HIDDEN, HIDDEN)
            self.w2 = nn.Linear(HIDDEN, 1, bias=False)
            self.out = nn.Linear(2 * HIDDEN, 1)

        def forward(self, tokens, lengths, mask):
            packed = nn.utils.rnn.pack_padded_sequence(
                self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
            hidden, _ = nn.utils.rnn.pad_packed_sequence(
                self.lstm(packed)[0], batch_first=True, total_length=tokens.shape[1])
            scores = self.w2(torch.tanh(self.w1(hidden))).squeeze(-1)
            attn = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            return self.out((attn.unsqueeze(-1) * hidden).sum(1)).squeeze(-1)

    return TorchBiLSTMAttention()


def torch_batches(rows: list[np.ndarray], labels: np.ndarray, batch: int):
    """Length-sorted batches, each padded to its own longest row (packing needs no more)."""
    import torch

    order = np.argsort([len(r) for r in rows], kind="stable")
    out = []
    for start in range(0, len(order), batch):
        chosen = order[start:start + batch]
        width = max(len(rows[i]) for i in chosen)
        tokens = np.zeros((len(chosen), width), np.int64)
        for j, i in enumerate(chosen):
            tokens[j, :len(rows[i])] = rows[i]
        lengths = torch.tensor([len(rows[i]) for i in chosen])
        out.append((torch.from_numpy(tokens), lengths, torch.from_numpy(tokens != 0),
                    torch.from_numpy(labels[chosen].astype(np.float32))))
    return out


def best_of(passes: int, run) -> float:
    run()  # compiles / warms up
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_rates(rows, labels, vocab: int, passes: int, train: bool) -> float:
    import torch

    torch.manual_seed(0)
    model = torch_model(vocab)
    batches = torch_batches(rows, labels, 32)
    if not train:
        model.eval()

        def run():
            with torch.inference_mode():
                for tokens, lengths, mask, _ in batches:
                    model(tokens, lengths, mask)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5, amsgrad=True)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")

        def run():
            for tokens, lengths, mask, y in batches:
                optimizer.zero_grad()
                loss_fn(model(tokens, lengths, mask), y).backward()
                optimizer.step()
    return len(rows) / best_of(passes, run)


def jax_rates(rows, labels, vocab: int, passes: int, train: bool, table: bool = False) -> float:
    import jax

    from jaxattn.config import load_config
    from jaxattn.data.batching import EncodedSplit, eval_batches, training_batches
    from jaxattn.models.model import build_model
    from jaxattn.models.vocab_features import with_vocabulary_features
    from jaxattn.studies.jain_wallace.stages import ANALYSIS_BUCKETS, _forward
    from jaxattn.training.objective import AttentionSource
    from jaxattn.training.optimizers import make_optimizer
    from jaxattn.training.trainer import make_train_step

    split = EncodedSplit(tokens=list(rows), labels=np.asarray(labels, np.int32))
    model = build_model(vocab_size=vocab, task="binary", encoder="bilstm", attention="additive",
                        embed_dim=EMBED, hidden_size=HIDDEN)
    if not train:
        batches = list(eval_batches(split, 32, ANALYSIS_BUCKETS))
        params = model.init(jax.random.key(0), batches[0])
        if table:
            model, params = with_vocabulary_features(model, params, vocab)

        def run():
            jax.block_until_ready([_forward(model, params, b) for b in batches])
        return len(rows) / best_of(passes, run)
    cfg = load_config(None, [])
    buckets = (200,) if min(len(r) for r in rows) == 200 else cfg.train.buckets
    batches = list(training_batches(split, 32, np.random.default_rng(0), 0.0, buckets))
    params = model.init(jax.random.key(0), batches[0])
    optimizer = make_optimizer(cfg.train)
    state = [params, optimizer.init(params)]
    step = make_train_step(model, optimizer, AttentionSource())
    pos_weight = np.float32(1.0)

    def run():
        loss = None
        for b in batches:
            state[0], state[1], loss = step(state[0], state[1], b, pos_weight, None)
        jax.block_until_ready(loss)
    return len(rows) / best_of(passes, run)


def workloads(seed: int = 0):
    """name -> (token id rows, labels, vocabulary size)."""
    from jaxattn.config import load_config
    from jaxattn.data.prepare import prepare

    cfg = load_config(None, ["data.name=sst2", "data.embeddings=random"])
    data = prepare(cfg.data)
    test = data.splits["test"]
    rng = np.random.default_rng(seed)
    fixed = [np.r_[2, rng.integers(4, VOCAB_FIXED, size=198), 3].astype(np.int32)
             for _ in range(32 * 40)]
    return {
        "SST-2 test": ([np.asarray(t, np.int32) for t in test.tokens], np.asarray(test.labels),
                       len(data.vocab)),
        "32 x 200": (fixed, rng.integers(0, 2, size=len(fixed)), VOCAB_FIXED),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--what", nargs="+", default=["forward", "train"],
                        choices=["forward", "train"], help="which measurements to make")
    parser.add_argument("--workloads", nargs="+", default=["sst2", "fixed200"],
                        choices=["sst2", "fixed200"])
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed: nothing to compare (pip install 'jaxattn[torch]')")
        return
    torch.set_num_threads(2)
    print("| workload | what | PyTorch /s | jaxattn /s | ratio | jaxattn + table /s | ratio |")
    print("|---|---|---|---|---|---|---|")
    chosen = {"sst2": "SST-2 test", "fixed200": "32 x 200"}
    for name, (rows, labels, vocab) in workloads().items():
        if name not in [chosen[w] for w in args.workloads]:
            continue
        for train in [w == "train" for w in args.what]:
            what = "training step" if train else "forward"
            t = torch_rates(rows, labels, vocab, args.passes, train)
            j = jax_rates(rows, labels, vocab, args.passes, train)
            cells = [f"{t:.0f}", f"{j:.0f}", f"{j / t:.2f}x"]
            if not train:
                jt = jax_rates(rows, labels, vocab, args.passes, train, table=True)
                cells += [f"{jt:.0f}", f"{jt / t:.2f}x"]
            else:
                cells += ["", ""]
            print(f"| {name} | {what} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
