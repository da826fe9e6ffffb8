"""ERASER faithfulness (DeYoung et al. 2020): comprehensiveness, sufficiency and their AOPC.

For each importance ranking and each bin ``k`` in :data:`BINS`, the rationale ``r`` is the
``max(1, floor(k n))`` highest-scoring of the ``n`` real tokens (ties: earlier first; ferret's
``int(k n)``, with at least one token so that the 1% bin of a short sentence is not empty). With
``y`` the class predicted on the full input and ``p`` its probability:

* comprehensiveness ``p(y|x) - p(y|x without r)``: high when the rationale was needed;
* sufficiency ``p(y|x) - p(y|r)``: low when the rationale alone keeps the decision;
* AOPC: the mean of either over the bins.

Tokens are *deleted*: the kept tokens (with the boundary markers) move left in their original
order and the sequence gets shorter, as if the text had been written without them
(:func:`jaxattn.data.batching.keep_tokens`). Every method x bin x (without r, only r) input of a batch is one vmapped
forward pass; methods are mapped one after another to bound memory. Per-token inputs (the
embeddings, or the ``featurize`` features: the BiLSTM's input projections) are computed once and
their rows gathered, which is what encoding the shorter text computes (as leave-one-out does).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import AttentionModel, Batch, Params, model_logits
from jaxattn.data.batching import keep_tokens, kept_first
from jaxattn.explain.erasure import descending_ranks
from jaxattn.explain.importance import _per_token_inputs
from jaxattn.explain.interventions import instance_keys

BINS = (0.01, 0.05, 0.10, 0.20, 0.50)


def rationale_sizes(mask: jnp.ndarray, bins=BINS) -> jnp.ndarray:
    """<int32>[K, B] tokens in each bin's rationale: ``max(1, floor(k n))``, 0 without tokens."""
    n = mask.sum(axis=-1)
    k = jnp.floor(jnp.asarray(bins)[:, None] * n[None]).astype(jnp.int32)
    return jnp.where(n[None] > 0, jnp.maximum(k, 1), 0)


def random_scores(key: jax.Array, index: jnp.ndarray, steps: int) -> jnp.ndarray:
    """<float32>[B, T] a random ranking per instance (the floor every method should beat)."""
    return jax.vmap(lambda k: jax.random.uniform(k, (steps,)))(instance_keys(key, index))


@functools.partial(jax.jit, static_argnames=("model", "bins"))
def comprehensiveness_sufficiency(
    model: AttentionModel,
    params: Params,
    batch: Batch,
    scores: jnp.ndarray,
    bins: tuple[float, ...] = BINS,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Comprehensiveness and sufficiency of every ranking at every bin.

    Args:
      scores: <float32>[M, B, T] M rankings of the tokens (high = important).
    Returns:
      (comprehensiveness <float32>[M, B, K], sufficiency <float32>[M, B, K], p(y|x) <float32>[B]);
      0 for rows without real tokens.
    """
    query = batch.replace(rationale=None)
    inputs, encoder, _ = _per_token_inputs(model, params, query)

    def output(b: Batch, x: jnp.ndarray) -> jnp.ndarray:
        # The model's own output (a pooling model's decode(attend), a [CLS] head's logits):
        # only tokens are deleted, no attention is read or replaced.
        return model.probs(model_logits(model, params, encoder(b, x)))

    full = output(query, inputs)
    target = jnp.argmax(full, axis=-1)[:, None]
    p_full = jnp.take_along_axis(full, target, axis=-1)[:, 0]
    sizes = rationale_sizes(batch.mask, bins)  # [K, B]
    boundary = batch.valid & ~batch.mask

    def probability(keep):
        rows = jax.vmap(lambda x, order: x[order])(inputs, kept_first(keep))
        probs = output(keep_tokens(query, keep), rows)
        return jnp.take_along_axis(probs, target, axis=-1)[:, 0]

    def one_ranking(s):
        ranks = descending_ranks(s, batch.mask)
        rationale = batch.mask[None] & (ranks[None] < sizes[..., None])  # [K, B, T]
        # [2K, B, T]: without the rationale, then the rationale alone (with the boundary markers)
        keeps = jnp.concatenate([batch.valid[None] & ~rationale, boundary[None] | rationale])
        p = jax.vmap(probability)(keeps)  # [2K, B]
        drop = (p_full[None] - p).T  # [B, 2K]
        real = batch.mask.any(axis=-1)[:, None]
        return jnp.where(real, drop[:, : len(bins)], 0.0), jnp.where(real, drop[:, len(bins):], 0.0)

    comp, suff = jax.lax.map(one_ranking, scores)
    return comp, suff, p_full
