"""Interventions on attention with the encoder's hidden states held fixed (J&W section 4).

Attention is an argument of ``decode`` (:class:`~jaxattn.core.protocol.AttentionModel`), so every
intervention is a transform over that argument with ``enc`` computed once:

- :func:`permute_attention`: shuffle the attention weights over each instance's real tokens ``P``
  times and decode all ``P`` at once;
- :func:`search_adversarial_attention`: optimise ``K`` maximally different attention
  distributions per instance that keep the output (nearly) unchanged, all steps inside one
  ``lax.scan`` under one ``jit``.

Output distributions come from :meth:`Model.probs` (binary ``[1 - p, p]``), so TVD is
``|delta p|`` for binary models and half the L1 distance otherwise. Randomness is drawn per
instance from ``fold_in(key, batch.index)``: an instance gets the same permutations / initial
adversaries whatever batch it lands in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxattn.core.metrics import jsd, tvd
from jaxattn.core.protocol import (
    AttentionModel,
    Batch,
    Encoded,
    Params,
    encode,
    has_affine_decoder,
)
from jaxattn.models.attention import masked_softmax


def instance_keys(key: jax.Array, index: jnp.ndarray) -> jax.Array:
    """One PRNG key per row, from the row's position in its split (<int32>[B] ``index``)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(index)


# Up to this length rows are argsorted by counting pairwise comparisons (O(T^2) vectorised work),
# which is an order of magnitude faster than XLA's comparison sort on CPU for short rows.
PAIRWISE_SORT_MAX_LENGTH = 128


def argsort_rows(keys: jnp.ndarray) -> jnp.ndarray:
    """``jnp.argsort(keys, axis=-1, stable=True)`` for <float32>[R, T] keys; <int32>[R, T]."""
    t = keys.shape[-1]
    if t > PAIRWISE_SORT_MAX_LENGTH:
        return jnp.argsort(keys, axis=-1, stable=True)
    position = jnp.arange(t)
    earlier = position[None, None, :] < position[None, :, None]  # [1, i, j]: j < i
    before = (keys[:, None, :] < keys[:, :, None]) | (
        (keys[:, None, :] == keys[:, :, None]) & earlier
    )  # [R, i, j]: j sorts before i
    rank = before.sum(axis=-1)  # [R, T] a bijection onto 0..T-1
    return (position[None, None, :] * (rank[:, None, :] == position[None, :, None])).sum(-1)


def permutation_indices(key: jax.Array, mask: jnp.ndarray, num_permutations: int) -> jnp.ndarray:
    """Random permutations of one row's real positions; other positions map to themselves.

    Args:
      key: a PRNG key for this row.
      mask: <bool>[T] real tokens.
    Returns:
      <int32>[P, T] source positions: ``attn[perm]`` moves the real weights among real tokens.
    """
    t = mask.shape[-1]
    position = jnp.arange(t)
    # Sorting by these keys lists the real positions first (shuffled / in order), then the rest
    # in order; pairing the two sorted lists maps each real slot to a random real source.
    rest = (t + position).astype(jnp.float32)
    shuffled = argsort_rows(
        jnp.where(mask[None], jax.random.uniform(key, (num_permutations, t)), rest[None])
    )
    in_order = argsort_rows(jnp.where(mask, position, rest)[None])
    return jnp.take_along_axis(shuffled, argsort_rows(in_order.astype(jnp.float32)), axis=-1)


def attention_slope(
    model: AttentionModel, params: Params, enc: Encoded
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(bias <float32>[B, C], slope <float32>[B, T, C]) of a decoder affine in the attention.

    For ``logits = W sum_t a_t h_t + b`` these are ``b`` (all attention zero) and ``W h_t`` (all
    attention on token ``t``, minus ``b``), read off ``decode`` alone. Only meaningful when the
    model declares ``affine_decoder``.
    """
    steps = enc.mask.shape[-1]
    zero = jnp.zeros(enc.mask.shape, enc.hidden.dtype)
    bias = model.decode(params, enc, zero)  # [B, C]
    one_hot = jnp.eye(steps, dtype=zero.dtype)[:, None, :]  # [T, 1, T]
    per_token = jax.vmap(lambda a: model.decode(params, enc, a + zero))(one_hot)  # [T, B, C]
    return bias, jnp.swapaxes(per_token, 0, 1) - bias[:, None, :]


def attention_decoder(
    model: AttentionModel, params: Params, enc: Encoded
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """The model's output distribution as a function of the attention, with ``enc`` held fixed.

    Returns:
      ``decode(attn <float32>[B, S, T]) -> <float32>[B, S, K]`` for ``S`` attentions per row.

    A decoder affine in the attention (``logits = W sum_t a_t h_t + b``; a model declares it with
    ``affine_decoder = True``) gives for any attention ``b + sum_t a_t (l_t - b)`` where ``l_t``
    are the logits of all attention on token ``t``: computed once here from ``decode``, they turn
    each of the many decodes of an intervention into a ``T x C`` weighted sum instead of
    ``T x H``. Other decoders (e.g. a ``tanh`` of attended premise and query) are decoded in full.
    """
    if not has_affine_decoder(model):

        def decode_in_full(attn):
            return jax.vmap(
                lambda a: model.probs(model.decode(params, enc, a)), in_axes=1, out_axes=1
            )(attn)

        return decode_in_full
    bias, slope = attention_slope(model, params, enc)

    def decode_affine(attn):
        return model.probs(bias[:, None, :] + jnp.einsum("bst,btc->bsc", attn, slope))

    return decode_affine


@struct.dataclass
class PermutationResult:
    """Attributes:
    tvd: <float32>[B, P] output TVD of each permutation from the original output.
    median_tvd: <float32>[B] median over the permutations (J&W's statistic).
    """

    tvd: jnp.ndarray
    median_tvd: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("model", "num_permutations"))
def permute_attention(
    model: AttentionModel,
    params: Params,
    batch: Batch,
    key: jax.Array,
    num_permutations: int = 100,
) -> PermutationResult:
    """Decodes ``num_permutations`` random permutations of each instance's attention."""
    enc = encode(model, params, batch)
    attn = model.attend(params, enc)
    probs = model.probs(model.decode(params, enc, attn))
    perms = jax.vmap(permutation_indices, in_axes=(0, 0, None))(
        instance_keys(key, batch.index), enc.mask, num_permutations
    )  # [B, P, T]
    permuted = jnp.take_along_axis(attn[:, None, :], perms, axis=-1)
    out = attention_decoder(model, params, enc)(permuted)  # [B, P, K]
    distances = tvd(out, probs[:, None])
    return PermutationResult(tvd=distances, median_tvd=jnp.median(distances, axis=-1))


def mean_pairwise_jsd(attn: jnp.ndarray) -> jnp.ndarray:
    """Mean JSD over all ``K x K`` ordered pairs (self-pairs included, as 0) of <f32>[..., K, T].

    Only the ``K (K - 1) / 2`` distinct pairs are computed; JSD is symmetric.
    """
    k = attn.shape[-2]
    first, second = jnp.triu_indices(k, 1)
    return 2.0 * jsd(attn[..., first, :], attn[..., second, :]).sum(axis=-1) / (k * k)


@struct.dataclass
class AdversarialResult:
    """Attributes:
    attn: <float32>[B, K, T] the K adversarial attention distributions.
    tvd: <float32>[B, K] their output TVD from the original output.
    jsd: <float32>[B, K] their JSD from the original attention (nats).
    max_jsd: <float32>[B] "max JSD within epsilon": the largest JSD among the original attention
      (JSD 0) and the adversaries with TVD <= epsilon.
    found: <bool>[B] whether any adversary has TVD <= epsilon.
    best_attn: <float32>[B, T] the attention achieving ``max_jsd`` (the original if none).
    best_tvd: <float32>[B] its output TVD.
    """

    attn: jnp.ndarray
    tvd: jnp.ndarray
    jsd: jnp.ndarray
    max_jsd: jnp.ndarray
    found: jnp.ndarray
    best_attn: jnp.ndarray
    best_tvd: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("model", "num_adversaries", "steps"))
def search_adversarial_attention(
    model: AttentionModel,
    params: Params,
    batch: Batch,
    key: jax.Array,
    num_adversaries: int = 5,
    steps: int = 500,
    learning_rate: float = 0.01,
    penalty: float = 500.0,
    tolerance: float = 0.01,
    epsilon: float = 0.05,
    init_scale: float = 3.0,
) -> AdversarialResult:
    """J&W's multi-adversary search with the model frozen and the hidden states fixed.

    Each adversary is a masked log-attention initialised at ``log(1 / len) + init_scale * N(0, 1)``.
    Per instance the loss is ``sum_k [-JSD(adv_k, attn) + penalty * relu(TVD(y_k, y) -
    tolerance)] - mean_{k, l} JSD(adv_k, adv_l)``, minimised with AMSGrad (``learning_rate``) for
    ``steps`` steps. The batch loss is the sum over instances; AMSGrad acts elementwise, so this
    is the same as optimising every instance on its own. Then the original attention joins the
    candidates with JSD 0, candidates with TVD > ``epsilon`` are dropped and the rest's largest
    JSD is ``max_jsd``.
    """
    enc = jax.lax.stop_gradient(encode(model, params, batch))
    attn = model.attend(params, enc)
    probs = model.probs(model.decode(params, enc, attn))
    mask = enc.mask[:, None, :]
    length = jnp.maximum(mask.sum(axis=-1, keepdims=True), 1)
    noise = jax.vmap(lambda k: jax.random.normal(k, (num_adversaries, mask.shape[-1])))(
        instance_keys(key, batch.index)
    )
    log_attn = jnp.where(mask, -jnp.log(length) + init_scale * noise, 0.0)
    decode = attention_decoder(model, params, enc)

    def loss(log_attn):
        adv = masked_softmax(log_attn, mask)
        out = decode(adv)
        per_adversary = -jsd(adv, attn[:, None]) + penalty * jax.nn.relu(
            tvd(out, probs[:, None]) - tolerance
        )
        return per_adversary.sum() - mean_pairwise_jsd(adv).sum()

    log_attn = amsgrad_descent(loss, log_attn, learning_rate, steps)
    adv = masked_softmax(log_attn, mask)
    adv_tvd = tvd(decode(adv), probs[:, None])
    adv_jsd = jsd(adv, attn[:, None])
    best = best_within_epsilon(attn, adv, adv_tvd, adv_jsd, epsilon)
    return AdversarialResult(attn=adv, tvd=adv_tvd, jsd=adv_jsd, max_jsd=best.max_jsd,
                             found=best.found, best_attn=best.best, best_tvd=best.best_tvd)


def amsgrad_descent(loss: Callable, init: jnp.ndarray, learning_rate: float,
                    steps: int) -> jnp.ndarray:
    """``init`` after ``steps`` AMSGrad steps on ``loss`` (one ``lax.scan``)."""
    optimizer = optax.amsgrad(learning_rate)

    def step(carry, _):
        x, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss)(x), opt_state, x)
        return (optax.apply_updates(x, updates), opt_state), None

    (x, _), _ = jax.lax.scan(step, (init, optimizer.init(init)), None, length=steps)
    return x


@struct.dataclass
class BestCandidate:
    """The J&W choice among the original and K adversaries: the largest JSD within epsilon.

    Attributes:
      max_jsd: <float32>[B] the chosen candidate's JSD (0 when only the original qualifies).
      found: <bool>[B] whether any adversary kept the output within epsilon.
      best: <float32>[B, ...] the chosen candidate (the original when none is found).
      best_tvd: <float32>[B] its output TVD.
    """

    max_jsd: jnp.ndarray
    found: jnp.ndarray
    best: jnp.ndarray
    best_tvd: jnp.ndarray


def best_within_epsilon(original: jnp.ndarray, adv: jnp.ndarray, adv_tvd: jnp.ndarray,
                        adv_jsd: jnp.ndarray, epsilon: float) -> BestCandidate:
    """``original`` [B, ...] and ``adv`` [B, K, ...] with their TVD / JSD [B, K]: candidate 0 is
    the original (JSD 0, TVD 0, always within epsilon); those with TVD > ``epsilon`` drop out."""
    within = adv_tvd <= epsilon
    scores = jnp.concatenate([jnp.zeros_like(adv_jsd[:, :1]), jnp.where(within, adv_jsd, -1.0)], 1)
    best = jnp.argmax(scores, axis=-1)
    candidates = jnp.concatenate([original[:, None], adv], axis=1)
    candidate_tvd = jnp.concatenate([jnp.zeros_like(adv_tvd[:, :1]), adv_tvd], axis=1)
    chosen = best.reshape(best.shape + (1,) * (candidates.ndim - 1))
    return BestCandidate(
        max_jsd=jnp.take_along_axis(scores, best[:, None], axis=1)[:, 0],
        found=within.any(axis=-1),
        best=jnp.take_along_axis(candidates, chosen, axis=1)[:, 0],
        best_tvd=jnp.take_along_axis(candidate_tvd, best[:, None], axis=1)[:, 0],
    )
