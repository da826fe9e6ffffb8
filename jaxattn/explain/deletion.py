"""Deleting units of tokens (one token, or every piece of a word) and scoring the output change.

A *unit* is a set of positions of one row that are deleted together: ``units`` <int32>[B, T]
gives each position its unit id (-1: never deleted). Leave-one-out over tokens gives every real
token a unit of its own; leave-one-out over words gives the pieces of a word their word's index
(``Batch.word_index``), so that deleting the word removes all of its pieces at once.

Deleting unit ``u`` of row ``b`` keeps that row's other positions, moved left in their original
order (:func:`jaxattn.data.batching.keep_tokens`): the row becomes the text written without the
unit, padded to the same width. Per-token inputs (the embeddings, or the ``featurize`` features)
are computed once and their rows gathered, which is exactly what re-encoding the shorter text
computes, as in ERASER (:mod:`jaxattn.explain.faithfulness`).

Only the (row, unit) pairs that exist are computed. They are enumerated with a static size
(``jnp.nonzero(..., size=B * T)``), cut into chunks of ``chunk`` pairs, each chunk one batch of
``chunk`` shortened rows through the model (``lax.map`` over the chunks, to bound memory), and
the chunks past the real number of pairs are skipped (``lax.cond``). On a batch of mixed lengths
this is the sum of the rows' lengths, not ``B`` times the padded width.

A unit's score sits at its *first* position, 0 at its other positions: summing a row's scores
over each word's pieces (the rule of :func:`jaxattn.data.tokenizers.sum_over_words`) then gives
the score of deleting the whole word, not a sum of its pieces' deletions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxattn.core.metrics import tvd
from jaxattn.core.protocol import BaseModel, Batch, Params, has_features, model_logits
from jaxattn.data.batching import keep_tokens, kept_first


def per_token_inputs(model: BaseModel, params: Params, batch: Batch):
    """(per-token inputs [B, T, ...], their encoder ``(batch, inputs) -> Encoded``, and the
    part of the inputs that is linear in the embeddings).

    With the fast path these are the features (``f(e)``, linear part ``f(e) - f(0)``); without,
    the embeddings themselves.
    """
    embedded = model.embed(params, batch.tokens)
    if not has_features(model):
        return embedded, lambda b, x: model.encode_embedded(params, b, x), embedded
    features = model.featurize(params, embedded)
    offset = model.featurize(params, jnp.zeros_like(embedded[:1, :1]))  # f(0), [1, 1, ...]
    return features, lambda b, x: model.encode_features(params, b, x), features - offset


def token_units(batch: Batch) -> jnp.ndarray:
    """<int32>[B, T] every real token its own unit (its position), -1 elsewhere."""
    position = jnp.arange(batch.tokens.shape[1], dtype=jnp.int32)[None]
    return jnp.where(batch.mask, position, -1)


def word_units(batch: Batch) -> jnp.ndarray:
    """<int32>[B, T] the word of each real token (``batch.word_index``), -1 elsewhere; each
    real token its own word when the batch has no word index."""
    if batch.word_index is None:
        return token_units(batch)
    return jnp.where(batch.mask, batch.word_index, -1).astype(jnp.int32)


def same_unit(units: jnp.ndarray) -> jnp.ndarray:
    """<bool>[B, T, T] whether positions ``p`` and ``q`` of a row belong to the same unit."""
    return (units[:, :, None] == units[:, None, :]) & (units[:, :, None] >= 0)


def first_of_unit(units: jnp.ndarray) -> jnp.ndarray:
    """<bool>[B, T] the first position of every unit (where its score is kept)."""
    t = units.shape[1]
    earlier = jnp.arange(t)[None, :] < jnp.arange(t)[:, None]  # [p, q]: q before p
    return (units >= 0) & ~(same_unit(units) & earlier[None]).any(axis=-1)


@functools.partial(jax.jit, static_argnames=("model", "chunk"))
def unit_deletion(
    model: BaseModel, params: Params, batch: Batch, units: jnp.ndarray, chunk: int = 64
) -> jnp.ndarray:
    """Output change when each unit of each row is deleted (the row gets shorter).

    Args:
      units: <int32>[B, T] the unit of each position, -1 for positions never deleted
        (boundary markers, padding). A unit's positions need not be adjacent.
      chunk: (row, unit) pairs run through the model at once (memory, not results).
    Returns:
      <float32>[B, T] at the first position of each unit the TVD between the output
      distributions with and without the unit (binary: ``|delta p|``); 0 elsewhere.
    """
    b, t = batch.tokens.shape
    plain = batch.replace(rationale=None, dropout_key=None)
    inputs, encoder, _ = per_token_inputs(model, params, plain)

    def output(rows: Batch, x: jnp.ndarray) -> jnp.ndarray:
        return model.probs(model_logits(model, params, encoder(rows, x)))

    probs = output(plain, inputs)
    first = first_of_unit(units)
    count = first.sum()
    chunks = -(-(b * t) // chunk)
    rows, positions = jnp.nonzero(first, size=chunks * chunk, fill_value=0)

    def chunk_tvd(k, r, p):
        def deleted():
            sub = jax.tree_util.tree_map(lambda x: x[r], plain)  # [chunk, T] rows of the pairs
            keep = sub.valid & (units[r] != units[r, p][:, None])
            x = jax.vmap(lambda x, order: x[order])(inputs[r], kept_first(keep))
            return tvd(output(keep_tokens(sub, keep), x), probs[r])

        return jax.lax.cond(k * chunk < count, deleted, lambda: jnp.zeros((chunk,), probs.dtype))

    scores = jax.lax.map(
        lambda a: chunk_tvd(*a),
        (jnp.arange(chunks), rows.reshape(chunks, chunk), positions.reshape(chunks, chunk)),
    ).reshape(-1)
    real = jnp.arange(chunks * chunk) < count
    return jnp.zeros((b, t), probs.dtype).at[rows, positions].add(jnp.where(real, scores, 0.0))


def spread_over_units(scores: jnp.ndarray, units: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, T] each position carrying its unit's score (the sum of ``scores`` over the
    unit's positions: its first position's score for the output of :func:`unit_deletion`)."""
    return jnp.einsum("bpq,bq->bp", same_unit(units).astype(scores.dtype), scores)
