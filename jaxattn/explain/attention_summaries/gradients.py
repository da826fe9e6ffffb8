"""Summaries from gradients with respect to the maps: gradient-weighted attention (Chefer, Gur
& Wolf 2021) and attention attribution (Hao et al. 2021)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.explain.attention_summaries.reading import (
    LogitsFromLayer,
    LogitsGivenMaps,
    one_layer_logits,
    predicted_class,
    read_rows,
    target_score,
)
from jaxattn.runtime.memory import sum_in_chunks


def layer_gradients(
    logits_given_maps: LogitsGivenMaps,
    maps: jnp.ndarray,
    target: jnp.ndarray,
    output: str = "logit",
    downstream: bool = True,
    chunk: int | None = None,
    from_layer: LogitsFromLayer | None = None,
) -> jnp.ndarray:
    """<float32>[L, B, H, T, T] the gradient of the target score (:func:`target_score`) w.r.t.
    each layer's attention probabilities, at ``maps``.

    ``downstream=True`` (what a hook on the probabilities gives, as in Chefer et al.): layer
    ``l``'s gradient is taken with only layer ``l`` given, so later layers recompute their
    attention from the changed stream (``L`` backward passes). Through the seam
    (:func:`one_layer_logits`) when ``from_layer`` is None, ``chunk`` layers at a time, vmapped
    (None: all ``L``); through a restart (:func:`layer_logits`) one layer at a time, each
    restarted at its own static layer (:func:`each_layer`; ``chunk`` then has no use).
    ``False``: one backward pass with every layer given, so later attention is held fixed.
    """
    n_layers, _, n_heads = maps.shape[:3]

    if not downstream:
        def score(full):
            return target_score(logits_given_maps(full, jnp.ones((n_layers, n_heads), bool)),
                                target, output).sum()

        return jax.grad(score)(maps)
    restart = from_layer is not None
    from_layer = from_layer or one_layer_logits(logits_given_maps, maps)

    def one_layer(layer):
        return jax.grad(lambda m: target_score(from_layer(layer, m), target, output).sum())(
            maps[layer])

    return each_layer(one_layer, n_layers, restart, chunk or n_layers)


def each_layer(one_layer, n_layers: int, restart: bool, batch_size: int | None = None):
    """``one_layer(l)`` for ``l = 0..n_layers-1``, stacked along a new first axis (a pytree; None
    leaves stay None).

    ``restart=True`` (``one_layer`` goes through a model's restart, :func:`layer_logits`): ``l``
    is a Python int, so each restart is traced at its own static layer and runs layers
    ``l..L-1`` in one scan. A ``lax.map`` over a traced layer index would go through a
    ``lax.switch`` per layer, whose outputs XLA copies, under reverse mode every saved residual:
    Hao's attribution of 32 SST-2 sentences at 32 pieces on MiniLM took 62.8 s that way and
    40.1 s this way, warm (``benchmarks/RESULTS.md``); the restarts take longer to compile than
    one program. ``False`` (through the seam, where every layer is one program): a ``lax.map``
    over the layer index, ``batch_size`` layers vmapped at a time (None: one at a time)."""
    if restart:
        outs = [one_layer(layer) for layer in range(n_layers)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return jax.lax.map(one_layer, jnp.arange(n_layers), batch_size=batch_size)


def gradient_weighted_layers(
    logits_given_maps: LogitsGivenMaps,
    maps: jnp.ndarray,
    valid: jnp.ndarray,
    rows: jnp.ndarray,
    target: jnp.ndarray | None = None,
    downstream: bool = True,
    chunk: int | None = None,
    from_layer: LogitsFromLayer | None = None,
) -> jnp.ndarray:
    """<float32>[L, B, T] Chefer et al.'s relevance after each layer, read at ``rows``:
    ``R_0 = I``, ``R_l = R_{l-1} + mean_h((grad A_l * A_l)^+) R_{l-1}``, gradients of the target
    class logit (the predicted class when ``target`` is None; :func:`layer_gradients`, ``chunk``
    layers differentiated at once, through ``from_layer``)."""
    if target is None:
        target = predicted_class(logits_given_maps(maps, None))
    grads = layer_gradients(logits_given_maps, maps, target, "logit", downstream, chunk,
                            from_layer)
    weighted = jnp.clip(grads * maps, 0.0, None).mean(axis=2)  # [L, B, T, T]

    def step(relevance, layer):
        relevance = relevance + jnp.einsum("bij,bjk->bik", layer, relevance)
        return relevance, relevance

    eye = jnp.broadcast_to(jnp.eye(maps.shape[-1], dtype=maps.dtype), weighted.shape[1:])
    _, relevances = jax.lax.scan(step, eye, weighted)
    return read_rows(relevances, rows, valid)


def gradient_weighted(
    logits_given_maps: LogitsGivenMaps,
    maps: jnp.ndarray,
    valid: jnp.ndarray,
    rows: jnp.ndarray,
    target: jnp.ndarray | None = None,
    downstream: bool = True,
    chunk: int | None = None,
    from_layer: LogitsFromLayer | None = None,
) -> jnp.ndarray:
    """<float32>[B, T] gradient-weighted attention rollout (Chefer et al. 2021), after the last
    layer; see :func:`gradient_weighted_layers`. The read row includes the query itself (1 from
    the identity start): drop it where only the other tokens are ranked."""
    return gradient_weighted_layers(logits_given_maps, maps, valid, rows, target, downstream,
                                    chunk, from_layer)[-1]


# ------------------------------------------------------------------------------------------------
# Attention attribution (integrated gradients over the maps)


@struct.dataclass
class AttentionAttribution:
    """Attributes:
    maps: <float32>[L, B, H, T, T] ``A_l * (1/m) sum_k grad F(alpha_k A_l)``, layer by layer;
      None when not kept (``keep_maps=False``: only their readings are wanted).
    tokens: <float32>[L, B, T] ``maps`` summed over heads and read at the query ``rows``.
    total: <float32>[B, T] ``tokens`` summed over layers.
    gap: <float32>[L, B] ``F(A) - F(0 A_l)`` for each layer: what ``maps[l].sum()`` approximates
      (completeness).
    """

    maps: jnp.ndarray | None
    tokens: jnp.ndarray
    total: jnp.ndarray
    gap: jnp.ndarray


def attention_attribution(
    logits_given_maps: LogitsGivenMaps,
    maps: jnp.ndarray,
    valid: jnp.ndarray,
    rows: jnp.ndarray,
    target: jnp.ndarray | None = None,
    steps: int = 20,
    rule: str = "right",
    output: str = "prob",
    chunk: int | None = None,
    keep_maps: bool = True,
    from_layer: LogitsFromLayer | None = None,
) -> AttentionAttribution:
    """Hao et al.'s attention attribution: integrated gradients w.r.t. one layer's attention
    maps at a time, scaled from 0 to ``A_l`` while the other layers compute their own.

    ``Attr_l = A_l * (1/m) sum_{k} dF(alpha_k A_l) / dA_l`` over ``m = steps`` points,
    ``alpha_k = k / m`` (``rule="right"``, the paper's Riemann sum) or ``(k - 1/2) / m``
    (``"midpoint"``), ``F`` the target class probability (``output="prob"``, the paper's) or
    logit. The points are differentiated ``chunk`` at a time (vmapped through the seam; None:
    all ``m`` at once) and summed as they go, which bounds memory: each point holds a whole
    backward pass over ``[B, H, T, T]`` maps. Layers go through ``from_layer``
    (:func:`layer_logits`'s restart at that layer, one static restart each; None: the seam,
    :func:`one_layer_logits`, in a ``lax.map``; :func:`each_layer`). ``keep_maps=False`` returns
    only the readings (``maps`` None), so the ``[L, B, H, T, T]`` result is never formed.
    """
    if rule == "right":
        alphas = jnp.arange(1, steps + 1, dtype=maps.dtype) / steps
    elif rule == "midpoint":
        alphas = (jnp.arange(steps, dtype=maps.dtype) + 0.5) / steps
    else:
        raise ValueError(f"rule must be 'right' or 'midpoint', not {rule!r}")
    if target is None:
        target = predicted_class(logits_given_maps(maps, None))
    restart = from_layer is not None
    from_layer = from_layer or one_layer_logits(logits_given_maps, maps)

    def one_layer(layer):
        own = maps[layer]

        def score(m):
            return target_score(from_layer(layer, m), target, output)

        summed = sum_in_chunks(lambda a: jax.grad(lambda m: score(m).sum())(a * own), alphas,
                               chunk or steps)
        gap = score(own) - score(jnp.zeros_like(own))
        attribution = own * summed / steps
        tokens = read_rows(attribution.sum(axis=1), rows, valid)
        return (attribution if keep_maps else None), tokens, gap

    attributions, tokens, gaps = each_layer(one_layer, maps.shape[0], restart)
    return AttentionAttribution(
        maps=attributions, tokens=tokens, total=tokens.sum(axis=0), gap=gaps
    )
