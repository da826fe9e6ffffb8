"""Bring your own model: a Flax module defined here, outside jaxattn, through the whole battery.

The model is a small Transformer-free attention classifier of its own design: embeddings, a
causal running mean of the embeddings as context, additive attention pooling and a tanh decoder.
It satisfies :class:`jaxattn.AttentionModel` with five pure functions (plus ``init`` and
``task``); jaxattn trains it with its own trainer and writes the Jain & Wallace report.

    python examples/custom_model.py --out runs/custom            # the synthetic planted task
    python examples/custom_model.py --data sst2 --out runs/sst2  # a real data set
    python examples/custom_model.py --wp 4 --out runs/custom     # and the W&P suite, 4 seeds
    jaxattn wp --run runs/custom --model examples/custom_model.py:rebuild   # the same, later

It has no ``featurize`` fast path and no ``affine_decoder``, so the analyses take their generic
paths (leave-one-out re-encodes each shortened text; interventions decode in full).
"""

from __future__ import annotations

import argparse
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

import jaxattn


class RunningMeanNet(nn.Module):
    """Embed -> tanh(W [e_t; mean_{s <= t} e_s]) -> additive attention -> tanh decoder."""

    vocab_size: int
    width: int = 64

    def setup(self):
        self.embedder = nn.Embed(self.vocab_size, self.width)
        self.mix = nn.Dense(self.width)
        self.key = nn.Dense(self.width // 2)
        self.score_w = nn.Dense(1, use_bias=False)
        self.hidden_out = nn.Dense(self.width)
        self.out = nn.Dense(1)

    def embed(self, tokens):
        return self.embedder(tokens)

    def encode(self, embedded, valid, mask):
        v = valid[..., None].astype(embedded.dtype)
        running = jnp.cumsum(embedded * v, axis=1) / jnp.maximum(jnp.cumsum(v, axis=1), 1.0)
        hidden = jnp.tanh(self.mix(jnp.concatenate([embedded, running], axis=-1))) * v
        return jaxattn.Encoded(hidden=hidden, mask=mask)

    def score(self, hidden, mask):
        scores = self.score_w(jnp.tanh(self.key(hidden)))[..., 0]
        return jnp.where(mask, scores, -jnp.inf)

    def decode(self, hidden, attn):
        return self.out(jnp.tanh(self.hidden_out(jnp.einsum("bt,bth->bh", attn, hidden))))

    def __call__(self, tokens, valid, mask):
        enc = self.encode(self.embed(tokens), valid, mask)
        attn = jax.nn.softmax(self.score(enc.hidden, mask), axis=-1)
        return self.decode(enc.hidden, attn)


@dataclasses.dataclass(frozen=True)
class RunningMeanModel:
    """The protocol's pure functions over :class:`RunningMeanNet` (hashable: a jit static)."""

    net: RunningMeanNet
    task: str = "binary"

    def init(self, rng, batch):
        return self.net.init(rng, batch.tokens, batch.valid, batch.mask)["params"]

    def embed(self, params, tokens):
        return self.net.apply({"params": params}, tokens, method=RunningMeanNet.embed)

    def encode_embedded(self, params, batch, embedded):
        return self.net.apply(
            {"params": params}, embedded, batch.valid, batch.mask, method=RunningMeanNet.encode
        )

    def attend(self, params, enc):
        scores = self.net.apply({"params": params}, enc.hidden, enc.mask,
                                method=RunningMeanNet.score)
        return jaxattn.masked_softmax(scores, enc.mask)  # NaN-safe; padding rows get zeros

    def decode(self, params, enc, attn):
        return self.net.apply({"params": params}, enc.hidden, attn, method=RunningMeanNet.decode)

    def probs(self, logits):
        p = jax.nn.sigmoid(logits)
        return jnp.concatenate([1.0 - p, p], axis=-1)


def rebuild(data: str = "synthetic", limit_train: int = 0, epochs: int = 4,
            buckets: tuple[int, ...] = ()):
    """The model, the prepared data and the training settings, as ``main`` trains them (what
    ``jaxattn wp --model examples/custom_model.py:rebuild`` calls, with the defaults);
    ``buckets``: the padded lengths of the batches (empty: the trainer's)."""
    prepared = jaxattn.prepare_data(jaxattn.DataConfig(name=data, limit_train=limit_train))
    model = jaxattn.check_model(RunningMeanModel(RunningMeanNet(vocab_size=len(prepared.vocab))))
    padding = {"buckets": tuple(buckets)} if buckets else {}
    return model, prepared, jaxattn.TrainConfig(epochs=epochs, **padding)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="a data set name (binary task)")
    parser.add_argument("--out", default="runs/custom_model")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=500, help="instances to analyse")
    parser.add_argument("--limit-train", type=int, default=0, help="training examples (0: all)")
    parser.add_argument("--buckets", type=int, nargs="+", default=[], metavar="LENGTH",
                        help="padded lengths of the batches (default: the trainer's, 16 to 1024); "
                        "each is a program to compile, so one suits a quick small run")
    parser.add_argument("--wp", type=int, default=0, metavar="SEEDS",
                        help="also run the Wiegreffe & Pinter suite with this many extra seeds "
                        "(0: not)")
    args = parser.parse_args(argv)

    model, data, config = rebuild(args.data, args.limit_train, args.epochs, args.buckets)
    params, metrics = jaxattn.train(model, data, config, out=args.out)
    print(f"test: {metrics['test']}")
    report = jaxattn.analyze(model, params, data, out=f"{args.out}/analysis", limit=args.limit,
                             setting={"encoder": "running mean (custom)", "attention": "additive",
                                      "embeddings": "random", "selection": "dev"})
    print(f"report: {report}")
    if args.wp:
        # Uniform attention, seeds, adversaries and the diagnostic MLP, retrained with `config`;
        # the J&W report above is rewritten with the W&P rows in its verdict.
        wp = jaxattn.wiegreffe_pinter(model, params, data, out=f"{args.out}/wp", config=config,
                                      seeds=args.wp,
                                      setting={"encoder": "running mean (custom)",
                                               "attention": "additive"})
        print(f"W&P report: {wp}")


if __name__ == "__main__":
    main()
