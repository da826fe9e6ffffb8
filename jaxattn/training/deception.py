"""How deceptive a model's attention is (Pruthi et al. 2020): the measures of their Table 3.

For a split whose impermissible tokens are its rationale mask (the synthetic task's planted class
words, SST+distractors' SST sentence):

* ``accuracy``: on the full inputs;
* ``attention_mass``: the attention on the impermissible tokens, mean over the split;
* ``accuracy_without``: with the impermissible tokens deleted from every input, which says
  whether the model still *uses* them (near chance for a model that needs them).

Whether gradient, leave-one-out and integrated gradients still rank the impermissible tokens on
top is the rationale AUPRC of ``jaxattn analyze`` (``summary.json: rationale.auprc``; equal to
``sklearn.metrics.average_precision_score`` per instance).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from jaxattn.core.errors import RunError
from jaxattn.core.protocol import AttentionModel, Batch, Params, forward
from jaxattn.data.batching import EncodedSplit, eval_batches
from jaxattn.training.trainer import predict


@functools.partial(jax.jit, static_argnums=0)
def _masses(model: AttentionModel, params: Params, batch: Batch) -> jax.Array:
    """<float32>[B] attention on the rationale (impermissible) tokens of each row."""
    _, attn = forward(model, params, batch)
    return (attn * (batch.rationale & batch.mask)).sum(axis=1)


def without_impermissible(split: EncodedSplit) -> EncodedSplit:
    """``split`` with every impermissible (rationale) token deleted; SOS/EOS stay."""
    keep = [~r for r in split.rationales]
    return dataclasses.replace(
        split,
        tokens=[t[k] for t, k in zip(split.tokens, keep)],
        rationales=[r[k] for r, k in zip(split.rationales, keep)],
    )


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == labels))


def deception_scores(
    model: AttentionModel, params: Params, split: EncodedSplit, batch_size: int = 256
) -> dict[str, float]:
    """``{accuracy, attention_mass, accuracy_without, impermissible_share, n}`` on ``split``
    (``impermissible_share``: the mean fraction of real tokens that are impermissible)."""
    if split.rationales is None:
        raise RunError("deception scores need a split whose rationale marks the impermissible tokens")
    masses = np.zeros(len(split), np.float64)
    for batch in eval_batches(split, batch_size):
        real = batch.index >= 0
        masses[batch.index[real]] = np.asarray(_masses(model, params, batch))[real]
    share = np.mean([r.sum() / max(len(r) - 2, 1) for r in split.rationales])
    return {
        "accuracy": _accuracy(predict(model, params, split, batch_size), split.labels),
        "attention_mass": float(masses.mean()),
        "accuracy_without": _accuracy(
            predict(model, params, without_impermissible(split), batch_size), split.labels
        ),
        "impermissible_share": float(share),
        "n": len(split),
    }
