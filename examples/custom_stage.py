"""Add an analysis of your own: occlusion-window importance as a jaxattn stage, with a verdict row.

Token t's importance is how much the predicted class's probability falls when the embeddings of
the real tokens within ``WIDTH`` of t are zeroed, every window at once in one vmapped program.
The stage runs, caches, shows in the report's heatmaps and adds its row to the verdict like a
built-in one.

    python examples/custom_stage.py --out runs/occlusion
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxattn
from jaxattn.report.evidence import AGAINST, NOT_RUN, SUPPORTS, Row

WIDTH = 1  # tokens each side of t


def occlusion(model, params, batch, opts):
    """{"occlusion": <float32>[B, T]}: the probability drop per window, normalised on real tokens."""
    embedded = model.embed(params, batch.tokens)
    probs = model.probs(jaxattn.forward(model, params, batch)[0])
    target = jnp.argmax(probs, axis=-1)
    position = jnp.arange(batch.tokens.shape[1])

    def drop(t):
        window = (jnp.abs(position - t) <= WIDTH)[None, :, None] & batch.mask[..., None]
        enc = model.encode_embedded(params, batch, jnp.where(window, 0.0, embedded))
        p = model.probs(model.decode(params, enc, model.attend(params, enc)))
        return jnp.take_along_axis(probs - p, target[:, None], axis=1)[:, 0]

    scores = jnp.where(batch.mask, jax.vmap(drop, out_axes=1)(position), 0.0)
    return {"occlusion": jnp.abs(scores) / jnp.maximum(jnp.abs(scores).sum(1, keepdims=True), 1e-12)}


def summarize(data):
    tau, _ = jaxattn.kendall_tau(data.stages["occlusion"]["occlusion"], data.attn, data.mask)
    return {"occlusion": {"tau_attn": float(np.nanmean(tau)), "width": WIDTH}}


def verdict(ev):
    tau = (ev.jw or {}).get("occlusion", {}).get("tau_attn")
    status = NOT_RUN if tau is None else SUPPORTS if tau >= 0.5 else AGAINST
    return Row("Occlusion vs attention", "-" if tau is None else f"mean tau {tau:.2f}", "0.5",
               f"attention and occlusion rank tokens {'alike' if status == SUPPORTS else 'apart'}",
               status, "examples/custom_stage.py")


STAGE = jaxattn.Stage("occlusion", occlusion, ("occlusion",), version=1,
                      importances=(("occlusion", f"occlusion (window {2 * WIDTH + 1})"),),
                      summarize=summarize, verdict=verdict, settings=(("width", WIDTH),),
                      description="probability drop when a window of tokens is zeroed")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/occlusion")
    parser.add_argument("--limit", type=int, default=200, help="instances to analyse")
    parser.add_argument("--set", action="append", default=[], help="config KEY=VALUE")
    args = parser.parse_args(argv)
    jaxattn.train_run(jaxattn.load_config(None, ["train.epochs=2", *args.set]), args.out)
    print("report:", jaxattn.analyze_run(args.out, only=[STAGE, "grad"], limit=args.limit))


if __name__ == "__main__":
    main()
