"""Attention erasure (Serrano & Smith 2019, "Is attention interpretable?").

With the hidden states held fixed, chosen attention weights are set to 0 and the rest
L1-renormalised, then the output is decoded again (no re-encoding):

* single weight: the output JSD after zeroing the top weight, and after zeroing one random
  non-top weight, and whether either flips the decision;
* many weights: weights are removed in a ranking's order until the decision flips; per instance
  the number of weights removed, that number as a fraction of the length, and the attention mass
  removed. How far removal may go is the ``limit`` (:data:`LIMITS`):

  - ``"all"`` (Serrano & Smith's code, the default): up to all ``n`` weights of an instance of
    ``n`` real tokens; with every weight removed the decoder sees a zero context vector (a
    decoder ``W c + b`` outputs its bias ``b`` alone), so an instance that flips only when the
    last weight goes counts as flipping at ``n``;
  - ``"n-1"``: at least one weight stays (nothing is left to renormalise otherwise), so an
    instance flips after at most ``n - 1`` removals or never.

Every removal prefix of every row is decoded at once (the prefixes as ``[B, T, T]`` attentions
through :func:`jaxattn.explain.interventions.attention_decoder`, ``T x C`` weighted sums for an affine
decoder); rankings are mapped one after another to bound memory. No Python loop over tokens.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.metrics import jsd
from jaxattn.core.protocol import AttentionModel, Batch, Encoded, Params, encode
from jaxattn.explain.interventions import attention_decoder, instance_keys

# How many of an instance's n weights many-weight erasure may remove (module docstring).
LIMITS = ("all", "n-1")


def renormalized_without(attn: jnp.ndarray, removed: jnp.ndarray) -> jnp.ndarray:
    """``attn`` [..., T] with the ``removed`` [..., T] weights zeroed and the rest summing to 1.

    A row with nothing left stays all zero (never NaN).
    """
    kept = jnp.where(removed, 0.0, attn)
    total = kept.sum(axis=-1, keepdims=True)
    return kept / jnp.where(total > 0, total, 1.0)


def descending_ranks(scores: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """<int32>[B, T] each real token's place when the row is sorted by ``scores`` high first
    (ties: earlier position first); non-real positions rank after every real token."""
    order = jnp.argsort(jnp.where(mask, -scores, jnp.inf), axis=-1, stable=True)
    return jnp.argsort(order, axis=-1, stable=True).astype(jnp.int32)


@struct.dataclass
class SingleErasure:
    """Attributes (all <[B]>):
    jsd_top: output JSD after zeroing the top attention weight.
    jsd_random: after zeroing one random non-top weight (NaN with one real token).
    flip_top / flip_random: whether the decision changed (False with one real token).
    """

    jsd_top: jnp.ndarray
    jsd_random: jnp.ndarray
    flip_top: jnp.ndarray
    flip_random: jnp.ndarray


@struct.dataclass
class ManyErasure:
    """Attributes (all <[R, B]>, one row per ranking):
    flipped: whether the decision flipped within the limit (all n weights removed, or n - 1).
    count: weights removed when it first flipped (0 if it never did).
    mass: the attention (of the original distribution) on the removed weights (0 if never).
    """

    flipped: jnp.ndarray
    count: jnp.ndarray
    mass: jnp.ndarray


def single_weight(
    decode, attn: jnp.ndarray, mask: jnp.ndarray, key: jax.Array, index: jnp.ndarray
) -> SingleErasure:
    """Zeroes the top weight, then one random real non-top weight (drawn per instance from
    ``key`` and its ``index``), and compares each output with the unchanged one.

    Args:
      decode: ``attn <float32>[B, S, T] -> probs <float32>[B, S, K]`` with the encoding fixed.
      attn: <float32>[B, T]; mask: <bool>[B, T] real tokens.
    """
    position = jnp.arange(attn.shape[-1])
    top = jnp.argmax(jnp.where(mask, attn, -jnp.inf), axis=-1)
    noise = jax.vmap(lambda k: jax.random.uniform(k, attn.shape[-1:]))(instance_keys(key, index))
    others = mask & (position[None] != top[:, None])
    rand = jnp.argmax(jnp.where(others, noise, -1.0), axis=-1)
    removed = jnp.stack([position[None] == top[:, None], position[None] == rand[:, None]], 1)
    probs = decode(jnp.concatenate([attn[:, None], renormalized_without(attn[:, None], removed)], 1))
    changed = jsd(probs[:, :1], probs[:, 1:])  # [B, 2]
    flips = jnp.argmax(probs[:, 1:], -1) != jnp.argmax(probs[:, :1], -1)
    several = others.any(axis=-1)
    return SingleErasure(
        jsd_top=changed[:, 0],
        jsd_random=jnp.where(several, changed[:, 1], jnp.nan),
        flip_top=flips[:, 0] & several,
        flip_random=flips[:, 1] & several,
    )


def many_weights(
    decode, attn: jnp.ndarray, mask: jnp.ndarray, rankings: jnp.ndarray, limit: str = "all"
) -> ManyErasure:
    """Removes weights in each ranking's order until the decision flips.

    Args:
      decode: as in :func:`single_weight`.
      attn: <float32>[B, T]; mask: <bool>[B, T] real tokens.
      rankings: <float32>[R, B, T] scores, removed high first.
      limit: ``"all"`` (up to all n weights; the last removal leaves a zero context) or
        ``"n-1"`` (one weight always stays).
    """
    if limit not in LIMITS:
        raise ValueError(f"erasure limit {limit!r} is not one of {', '.join(LIMITS)}")
    steps = attn.shape[-1]
    length = mask.sum(axis=-1)
    original = jnp.argmax(decode(attn[:, None])[:, 0], axis=-1)  # [B]
    removals = jnp.arange(1, steps + 1)  # prefix k removes the k highest-ranked weights

    def one_ranking(scores):
        ranks = descending_ranks(scores, mask)  # [B, T]
        removed = ranks[:, None, :] < removals[None, :, None]  # [B, K, T]
        decided = jnp.argmax(decode(renormalized_without(attn[:, None], removed)), axis=-1)
        allowed = length[:, None] if limit == "all" else length[:, None] - 1
        flips = (decided != original[:, None]) & (removals[None] <= allowed)  # [B, K]
        flipped = flips.any(axis=-1)
        count = jnp.where(flipped, jnp.argmax(flips, axis=-1) + 1, 0)
        mass = jnp.where(mask & (ranks < count[:, None]), attn, 0.0).sum(axis=-1)
        return flipped, count, mass

    flipped, count, mass = jax.lax.map(one_ranking, rankings)
    return ManyErasure(flipped=flipped, count=count, mass=mass)


def attention_gradient(model: AttentionModel, params: Params, enc: Encoded, attn: jnp.ndarray):
    """<float32>[B, T] gradient of the predicted class's probability w.r.t. the attention."""
    target = jnp.argmax(model.probs(model.decode(params, enc, attn)), axis=-1)

    def probability(a):
        probs = model.probs(model.decode(params, enc, a))
        return jnp.take_along_axis(probs, target[:, None], axis=-1).sum()

    return jax.grad(probability)(attn)


# The rankings computed here; others (leave-one-out, integrated gradients, ...) are given.
OWN_RANKINGS = ("attention", "attention_low", "grad_attention", "attention_x_grad",
                "attention_x_sign_grad")
NUM_RANDOM = 5


def ranking_names(given: tuple[str, ...]) -> tuple[str, ...]:
    """The ranking names :func:`erasure` reports, in order, for the given score keys."""
    return (*OWN_RANKINGS, *(f"random{i}" for i in range(NUM_RANDOM)), *sorted(given))


@functools.partial(jax.jit, static_argnames=("model", "limit"))
def erasure(
    model: AttentionModel,
    params: Params,
    batch: Batch,
    key: jax.Array,
    given: dict[str, jnp.ndarray],
    limit: str = "all",
) -> tuple[SingleErasure, ManyErasure, jnp.ndarray]:
    """Single- and many-weight erasure of ``batch`` (see the module docstring).

    Args:
      key: randomness of the random non-top weight and the random orders (per instance, from
        ``batch.index``).
      given: further rankings <float32>[B, T] by name (removed high first).
      limit: many-weight erasure's :data:`LIMITS` (``"all"``: up to every weight).
    Returns:
      (single, many with rankings in :func:`ranking_names` order, the attention <float32>[B, T]).
    """
    enc = encode(model, params, batch)
    attn = model.attend(params, enc)
    decode = attention_decoder(model, params, enc)
    mask = batch.mask
    single = single_weight(decode, attn, mask, jax.random.fold_in(key, 0), batch.index)
    grad = attention_gradient(model, params, enc, attn)
    keys = instance_keys(jax.random.fold_in(key, 1), batch.index)
    noise = jax.vmap(lambda k: jax.random.uniform(k, (NUM_RANDOM, attn.shape[-1])))(keys)
    rankings = jnp.stack(
        [attn, -attn, grad, attn * grad, attn * jnp.sign(grad), *jnp.swapaxes(noise, 0, 1),
         *(given[name] for name in sorted(given))]
    )
    return single, many_weights(decode, attn, mask, rankings, limit), attn
