"""Token importance of a trained model: input gradients, leave-one-out and integrated gradients.

Every function is one jitted program over a whole :class:`~jaxattn.data.batching.Batch`
(``model`` is a static argument) and returns ``<float32>[B, T]`` aligned with ``batch.tokens``,
exactly 0 at positions that are not real tokens (SOS, EOS, padding). For pair tasks (NLI, QA) only
the premise / passage tokens are scored; the query is held fixed.

The target of the gradients is the probability of the class the model predicts on the unchanged
input. For binary models the published code differentiated the sigmoid output ``p`` whatever the
prediction; ``|d(1 - p)| = |dp|``, so the scores are the same. QA and NLI models differentiate the
predicted class's softmax probability, as the published code did.

What this module does not hold: attention interventions (:mod:`jaxattn.interventions`) and the
agreement measures between importances (:mod:`jaxattn.agreement`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxattn.data.batching import Batch
from jaxattn.metrics import tvd
from jaxattn.models.model import Model, Params
from jaxattn.models.network import Encoded


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


def _query_embedded(model: Model, params: Params, batch: Batch) -> jnp.ndarray | None:
    return model.embed(params, batch.query) if model.network.pair else None


def _class_probability(
    model: Model,
    params: Params,
    batch: Batch,
    embedded: jnp.ndarray,
    query_embedded: jnp.ndarray | None,
    target: jnp.ndarray,
) -> jnp.ndarray:
    """<float32>[B] probability of class ``target`` <int32>[B] given passage ``embedded``."""
    enc = model.encode_embedded(params, batch, embedded, query_embedded)
    probs = model.probs(model.decode(params, enc, model.attend(params, enc)))
    return jnp.take_along_axis(probs, target[:, None], axis=-1)[:, 0]


def predicted_class(model: Model, params: Params, batch: Batch) -> jnp.ndarray:
    """<int32>[B] the class the model predicts (binary: 1 iff p > 0.5)."""
    logits, _ = model.forward(params, batch)
    return jnp.argmax(model.probs(logits), axis=-1)


def _predicted_probability(model: Model, params: Params, enc: Encoded, hold_attention: bool):
    """Sum over rows of the predicted class's probability, from the encoder's output ``enc``.

    The predicted class is a constant of the differentiation. With ``hold_attention`` so is the
    attention distribution (``stop_gradient``): the gradient then flows through the hidden
    states only, "below" attention. Rows are independent, so the gradient of the sum is every
    row's own gradient.
    """
    attn = model.attend(params, enc)
    if hold_attention:
        attn = jax.lax.stop_gradient(attn)
    probs = model.probs(model.decode(params, enc, attn))
    target = jnp.argmax(jax.lax.stop_gradient(probs), axis=-1)
    return jnp.take_along_axis(probs, target[:, None], axis=-1).sum()


def _input_gradients(
    model: Model, params: Params, batch: Batch, holds: tuple[bool, ...]
) -> jnp.ndarray:
    """<float32>[len(holds), B, T] ``grad . embedding`` for each attention setting in ``holds``.

    One forward pass through the encoder serves every setting, and their backward passes run as
    one batched pullback. The pullback stops at the encoder's per-token features, which are
    affine in the embeddings (:mod:`jaxattn.models.encoders`): ``grad_e . e`` is then
    ``grad_f . (f(e) - f(0))``.
    """
    embedded = model.embed(params, batch.tokens)
    features = model.featurize(params, embedded)
    offset = model.featurize(params, jnp.zeros_like(embedded[:1, :1]))  # f(0), [1, 1, ...]
    query_embedded = _query_embedded(model, params, batch)

    def encode(feats):
        enc = model.encode_features(params, batch, feats, query_embedded)
        return enc.hidden, enc  # only the hidden states depend on the passage features

    hidden, pullback, enc = jax.vjp(encode, features, has_aux=True)

    def hidden_gradient(hold: bool) -> jnp.ndarray:
        def probability(h):
            return _predicted_probability(model, params, enc.replace(hidden=h), hold)

        return jax.grad(probability)(hidden)

    cotangents = jnp.stack([hidden_gradient(hold) for hold in holds])
    (grads,) = jax.vmap(pullback)(cotangents)  # [S, B, T, ...]
    linear_part = features - offset
    scores = (grads * linear_part[None]).reshape(*grads.shape[:3], -1).sum(axis=-1)
    return jnp.where(batch.mask[None], scores, 0.0)


@functools.partial(jax.jit, static_argnames=("model", "hold_attention"))
def gradient_times_input(
    model: Model, params: Params, batch: Batch, hold_attention: bool = True
) -> jnp.ndarray:
    """Signed ``grad . embedding`` per token of the predicted-class probability.

    This is the gradient w.r.t. the one-hot input at the token that is there.

    Args:
      hold_attention: True differentiates "below" attention (attention held fixed, the J&W
        setting); False differentiates through the attention layer too.
    Returns:
      <float32>[B, T], 0 at non-real positions.
    """
    return _input_gradients(model, params, batch, (hold_attention,))[0]


def gradient_importance(
    model: Model, params: Params, batch: Batch, through_attention: bool = False
) -> jnp.ndarray:
    """J&W gradient importance: ``|grad . embedding|`` normalised to sum 1 over real tokens.

    Returns:
      <float32>[B, T]; below attention by default, through it with ``through_attention``.
    """
    scores = gradient_times_input(model, params, batch, hold_attention=not through_attention)
    return normalize_magnitude(scores, batch.mask)


@functools.partial(jax.jit, static_argnames=("model",))
def gradient_importances(
    model: Model, params: Params, batch: Batch
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`gradient_importance` below and through attention, sharing one forward pass.

    Returns:
      (below, through), each <float32>[B, T].
    """
    below, through = _input_gradients(model, params, batch, (True, False))
    return normalize_magnitude(below, batch.mask), normalize_magnitude(through, batch.mask)


@functools.partial(jax.jit, static_argnames=("model", "steps", "chunk"))
def integrated_gradients(
    model: Model, params: Params, batch: Batch, steps: int = 50, chunk: int = 10
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
    query_embedded = _query_embedded(model, params, batch)
    target = predicted_class(model, params, batch)
    real = batch.mask[..., None]
    # Midpoints of the path, padded to whole chunks with points of weight 0.
    chunks = -(-steps // chunk)
    point = jnp.arange(chunks * chunk, dtype=embedded.dtype)
    alphas = ((point + 0.5) / steps).reshape(chunks, chunk)
    weights = (point < steps).astype(embedded.dtype).reshape(chunks, chunk)

    def path_attribution(alpha):
        def total_probability(emb):
            return _class_probability(model, params, batch, emb, query_embedded, target).sum()

        grad = jax.grad(total_probability)(jnp.where(real, alpha * embedded, embedded))
        return (grad * embedded).sum(axis=-1)  # [B, T]

    def add_chunk(total, chunk_points):
        alpha, weight = chunk_points
        return total + jnp.tensordot(weight, jax.vmap(path_attribution)(alpha), axes=1), None

    total, _ = jax.lax.scan(
        add_chunk, jnp.zeros(batch.tokens.shape, embedded.dtype), (alphas, weights)
    )
    return jnp.where(batch.mask, total / steps, 0.0)


def integrated_gradients_importance(
    model: Model, params: Params, batch: Batch, steps: int = 50, chunk: int = 10
) -> jnp.ndarray:
    """``|integrated gradients|`` normalised to sum 1 over real tokens; <float32>[B, T]."""
    return normalize_magnitude(integrated_gradients(model, params, batch, steps, chunk), batch.mask)


def delete_position(values: jnp.ndarray, position: jnp.ndarray) -> jnp.ndarray:
    """Removes column ``position`` from every row: [B, T, ...] -> [B, T - 1, ...].

    A gather of shifted indices, so it can be vmapped over positions.
    """
    keep = jnp.arange(values.shape[1] - 1)
    return values[:, keep + (keep >= position)]


@functools.partial(jax.jit, static_argnames=("model", "chunk"))
def leave_one_out(model: Model, params: Params, batch: Batch, chunk: int = 4) -> jnp.ndarray:
    """Output change when each real token is deleted (the sequence gets one shorter).

    Each position is deleted from every row and the model is re-run on the shorter batch. The
    encoder's per-token features (:meth:`Model.featurize`: the BiLSTM's input projections, the
    Average encoder's whole token layer) are computed once and the deleted token's row dropped,
    which is exactly what re-encoding the shorter text would compute. Positions are vmapped
    ``chunk`` at a time (``lax.map``) to bound memory, and chunks past the batch's last real token
    are skipped (``lax.cond``). Deleting a position that is not a real token of its row is
    computed but masked out.

    Returns:
      <float32>[B, T] TVD between the output distributions with and without the token
      (binary: ``|delta p|``), 0 at non-real positions.
    """
    features = model.featurize(params, model.embed(params, batch.tokens))
    query_embedded = _query_embedded(model, params, batch)

    def output(b: Batch, feats: jnp.ndarray) -> jnp.ndarray:
        enc = model.encode_features(params, b, feats, query_embedded)
        return model.probs(model.decode(params, enc, model.attend(params, enc)))

    probs = output(batch, features)
    steps = batch.tokens.shape[1]
    last = jnp.max(jnp.where(batch.mask, jnp.arange(steps)[None], 0))  # batch's last real token

    def deleted_probs(position):
        shorter = batch.replace(tokens=delete_position(batch.tokens, position), rationale=None)
        return output(shorter, delete_position(features, position))

    def chunk_probs(positions):
        return jax.lax.cond(
            positions[0] <= last,
            lambda: jax.vmap(deleted_probs)(positions),
            lambda: jnp.broadcast_to(probs, positions.shape + probs.shape),
        )

    count = steps - 2  # positions 1 .. T-2 (SOS and the last column hold no real token)
    chunks = -(-count // chunk)
    positions = jnp.minimum(jnp.arange(chunks * chunk) + 1, count).reshape(chunks, chunk)
    changed = jax.lax.map(chunk_probs, positions).reshape(chunks * chunk, *probs.shape)[:count]
    scores = jnp.pad(tvd(changed, probs[None]).T, ((0, 0), (1, 1)))
    return jnp.where(batch.mask, scores, 0.0)
