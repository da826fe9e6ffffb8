"""Token importance of a trained model: input gradients, leave-one-out and integrated gradients.

Every function is one jitted program over a whole :class:`~jaxattn.core.protocol.Batch` for any
model of the contract (:class:`~jaxattn.core.protocol.BaseModel`, a static argument; the pooling
seam is not needed: the output is the model's ``logits``) and returns ``<float32>[B, T]``
aligned with ``batch.tokens``, exactly 0 where ``batch.mask`` is False (boundary markers,
padding). For pair tasks (NLI, QA) only the premise / passage tokens are scored; the query is
held fixed. Models with the ``featurize`` fast path get it; the others take the generic path
(gradients w.r.t. the embeddings, leave-one-out by re-encoding the shortened inputs).

The target of the gradients is the probability of the class the model predicts on the unchanged
input. For binary models the published code differentiated the sigmoid output ``p`` whatever the
prediction; ``|d(1 - p)| = |dp|``, so the scores are the same. QA and NLI models differentiate the
predicted class's softmax probability, as the published code did.

What this module does not hold: attention interventions (:mod:`jaxattn.explain.interventions`) and the
agreement measures between importances (:mod:`jaxattn.explain.agreement`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import (
    BaseModel,
    Batch,
    Encoded,
    Params,
    has_pooling_attention,
    model_logits,
    predict_logits,
)
from jaxattn.explain.deletion import per_token_inputs as _per_token_inputs
from jaxattn.explain.deletion import token_units, unit_deletion, word_units
from jaxattn.runtime.memory import sum_in_chunks


def normalize_magnitude(scores: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """``|scores|`` over real tokens, normalised to sum 1 per row (all-zero rows stay 0).

    Args:
      scores: <float32>[B, T] signed attributions.
      mask: <bool>[B, T] real tokens.
    Returns:
      <float32>[B, T] non-negative, summing to 1 over each row's real tokens.
    """
    magnitude = jnp.where(mask, jnp.abs(scores), 0.0)
    total = magnitude.sum(axis=-1, keepdims=True)
    return magnitude / jnp.where(total > 0, total, 1.0)


def _class_probability(
    model: BaseModel,
    params: Params,
    batch: Batch,
    embedded: jnp.ndarray,
    target: jnp.ndarray,
) -> jnp.ndarray:
    """<float32>[B] probability of class ``target`` <int32>[B] given passage ``embedded``."""
    enc = model.encode_embedded(params, batch, embedded)
    probs = model.probs(model_logits(model, params, enc))
    return jnp.take_along_axis(probs, target[:, None], axis=-1)[:, 0]


def predicted_class(model: BaseModel, params: Params, batch: Batch) -> jnp.ndarray:
    """<int32>[B] the class the model predicts (binary: 1 iff p > 0.5)."""
    return jnp.argmax(model.probs(predict_logits(model, params, batch)), axis=-1)


def _predicted_probability(
    model: BaseModel, params: Params, enc: Encoded, hold_attention: bool
):
    """Sum over rows of the predicted class's probability, from the encoder's output ``enc``.

    The predicted class is a constant of the differentiation. With ``hold_attention`` so is the
    attention distribution (``stop_gradient``): the gradient then flows through the hidden
    states only, "below" attention. Rows are independent, so the gradient of the sum is every
    row's own gradient. A model without the pooling seam has no attention to hold: both
    settings are the gradient of its ``logits``.
    """
    if has_pooling_attention(model):
        attn = model.attend(params, enc)
        if hold_attention:
            attn = jax.lax.stop_gradient(attn)
        probs = model.probs(model.decode(params, enc, attn))
    else:
        probs = model.probs(model_logits(model, params, enc))
    target = jnp.argmax(jax.lax.stop_gradient(probs), axis=-1)
    return jnp.take_along_axis(probs, target[:, None], axis=-1).sum()


def _input_gradients(
    model: BaseModel, params: Params, batch: Batch, holds: tuple[bool, ...]
) -> jnp.ndarray:
    """<float32>[len(holds), B, T] ``grad . embedding`` for each attention setting in ``holds``.

    One forward pass through the encoder serves every setting, and their backward passes run as
    one batched pullback. With the ``featurize`` fast path the pullback stops at the per-token
    features, which are affine in the embeddings: ``grad_e . e`` is then
    ``grad_f . (f(e) - f(0))``.
    """
    inputs, encoder, linear_part = _per_token_inputs(model, params, batch)

    def encode(x):
        enc = encoder(batch, x)
        return enc.hidden, enc  # only the hidden states depend on the passage inputs

    hidden, pullback, enc = jax.vjp(encode, inputs, has_aux=True)

    def hidden_gradient(hold: bool) -> jnp.ndarray:
        def probability(h):
            return _predicted_probability(model, params, enc.replace(hidden=h), hold)

        return jax.grad(probability)(hidden)

    cotangents = jnp.stack([hidden_gradient(hold) for hold in holds])
    (grads,) = jax.vmap(pullback)(cotangents)  # [S, B, T, ...]
    scores = (grads * linear_part[None]).reshape(*grads.shape[:3], -1).sum(axis=-1)
    return jnp.where(batch.mask[None], scores, 0.0)


@functools.partial(jax.jit, static_argnames=("model", "hold_attention"))
def gradient_times_input(
    model: BaseModel, params: Params, batch: Batch, hold_attention: bool = True
) -> jnp.ndarray:
    """Signed ``grad . embedding`` per token of the predicted-class probability.

    This is the gradient w.r.t. the one-hot input at the token that is there.

    Args:
      hold_attention: True differentiates "below" attention (attention held fixed, the J&W
        setting); False differentiates through the attention layer too. A model without the pooling seam
        has no attention to hold: both give the gradient of its ``logits``.
    Returns:
      <float32>[B, T], 0 at non-real positions.
    """
    return _input_gradients(model, params, batch, (hold_attention,))[0]


def gradient_importance(
    model: BaseModel, params: Params, batch: Batch, through_attention: bool = False
) -> jnp.ndarray:
    """J&W gradient importance: ``|grad . embedding|`` normalised to sum 1 over real tokens.

    Returns:
      <float32>[B, T]; below attention by default, through it with ``through_attention``.
    """
    scores = gradient_times_input(model, params, batch, hold_attention=not through_attention)
    return normalize_magnitude(scores, batch.mask)


@functools.partial(jax.jit, static_argnames=("model",))
def gradient_importances(
    model: BaseModel, params: Params, batch: Batch
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`gradient_importance` below and through attention, sharing one forward pass.

    Returns:
      (below, through), each <float32>[B, T].
    """
    below, through = _input_gradients(model, params, batch, (True, False))
    return normalize_magnitude(below, batch.mask), normalize_magnitude(through, batch.mask)


@functools.partial(jax.jit, static_argnames=("model", "steps", "chunk"))
def integrated_gradients(
    model: BaseModel, params: Params, batch: Batch, steps: int = 50, chunk: int = 10
) -> jnp.ndarray:
    """Integrated gradients of the predicted-class probability along the passage embeddings.

    The baseline zeroes the embeddings of the real tokens (SOS, EOS, padding and the query stay
    as they are), so the attributions of the real tokens sum to ``f(input) - f(baseline)``
    up to the quadrature error. The path integral is the midpoint rule with ``steps`` points,
    evaluated ``chunk`` points at a time (vmapped) and summed as it goes, to bound memory. The
    attention is recomputed along the path: this explains the whole model.

    Returns:
      <float32>[B, T] signed attributions, 0 at non-real positions.
    """
    embedded = model.embed(params, batch.tokens)
    target = predicted_class(model, params, batch)
    real = batch.mask[..., None]
    alphas = (jnp.arange(steps, dtype=embedded.dtype) + 0.5) / steps  # the path's midpoints

    def path_attribution(alpha):
        def total_probability(emb):
            return _class_probability(model, params, batch, emb, target).sum()

        grad = jax.grad(total_probability)(jnp.where(real, alpha * embedded, embedded))
        return (grad * embedded).sum(axis=-1)  # [B, T]

    total = sum_in_chunks(path_attribution, alphas, chunk)
    return jnp.where(batch.mask, total / steps, 0.0)


def integrated_gradients_importance(
    model: BaseModel, params: Params, batch: Batch, steps: int = 50, chunk: int = 10
) -> jnp.ndarray:
    """``|integrated gradients|`` normalised to sum 1 over real tokens; <float32>[B, T]."""
    return normalize_magnitude(integrated_gradients(model, params, batch, steps, chunk), batch.mask)


# Jitted whole, so that the units are computed inside the one program per shape.
@functools.partial(jax.jit, static_argnames=("model", "chunk", "max_rows"))
def leave_one_out(
    model: BaseModel, params: Params, batch: Batch, chunk: int = 4, max_rows: int | None = None
) -> jnp.ndarray:
    """Output change when each real token is deleted (the sequence gets one shorter).

    Each real token of each row is deleted from its row alone and the model re-run on the
    shorter text (:func:`~jaxattn.explain.deletion.unit_deletion`, every token its own unit).
    Per-token inputs (the embeddings, or the ``featurize`` features on the fast path: the
    BiLSTM's input projections, the Average encoder's whole token layer) are computed once and
    the deleted token's row dropped, which is exactly what re-encoding the shorter text would
    compute. Only the (row, real token) pairs are computed, ``chunk x B`` of them at a time (the
    memory of deleting ``chunk`` positions from every row; at most ``max_rows``), so padding
    costs nothing.

    Returns:
      <float32>[B, T] TVD between the output distributions with and without the token
      (binary: ``|delta p|``), 0 at non-real positions.
    """
    return unit_deletion(model, params, batch, token_units(batch),
                         chunk=_rows_per_call(batch, chunk, max_rows))


def _rows_per_call(batch: Batch, chunk: int, max_rows: int | None) -> int:
    rows = chunk * batch.tokens.shape[0]
    return rows if max_rows is None else max(1, min(rows, max_rows))


@functools.partial(jax.jit, static_argnames=("model", "chunk", "max_rows"))
def leave_one_out_words(
    model: BaseModel, params: Params, batch: Batch, chunk: int = 4, max_rows: int | None = None
) -> jnp.ndarray:
    """Output change when each word is deleted: every piece of the word at once
    (``batch.word_index``; a word vocabulary's tokens are each a word, so this is
    :func:`leave_one_out`), ``chunk x B`` (at most ``max_rows``) shortened rows at a time.

    Returns:
      <float32>[B, T] the TVD of deleting each word at the word's first piece, 0 at its other
      pieces and at non-real positions: summing over each word's pieces (the per-word rule of
      the reports) gives the word's own deletion score, not a sum of its pieces' deletions.
    """
    return unit_deletion(model, params, batch, word_units(batch),
                         chunk=_rows_per_call(batch, chunk, max_rows))
