"""Interventions on single self-attention heads through the seam of
:class:`jaxattn.core.protocol.HeadMaps`: what the output does when one (layer, head)'s attention
is replaced while every other head computes its own on the changed stream.

- :func:`intervene_heads` (one kind) and :func:`intervene_heads_all` (several, one program):
  for every (layer, head), replace that head's maps by uniform attention over the valid keys,
  by ``P`` permutations of the valid keys (J&W's permutation, per head), by a donor head's maps,
  or by zeros (Michel et al. 2019's head masking), and measure the output's TVD and JSD from the
  original and whether the decision flips. All ``L * H`` heads and all kinds are one jitted
  program: per layer a ``vmap`` over interventions chunked with ``lax.map``, the encoder
  restarted at that layer where the model can (:func:`layer_runner`); only ``[B, L, H]``
  statistics leave it.
- :func:`search_adversarial_heads`: J&W's adversarial search for one head's (or one layer's)
  attention that differs most (JSD, averaged over the valid query rows) from its own while the
  output stays within ``epsilon`` (TVD), as :func:`jaxattn.explain.interventions.
  search_adversarial_attention` does for pooling attention.

Randomness is drawn per instance from ``fold_in(key, batch.index)``, so an instance gets the same
permutations and initial adversaries whatever batch it lands in.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.metrics import jsd, tvd
from jaxattn.core.protocol import Batch, Params, has_layer_restart, model_logits
from jaxattn.explain.attention_summaries import seam_logits
from jaxattn.explain.interventions import (
    amsgrad_descent,
    best_within_epsilon,
    instance_keys,
    permutation_indices,
)
from jaxattn.models.attention import masked_softmax

KINDS = ("uniform", "permute", "donor", "zero")


def uniform_maps(valid: jnp.ndarray, queries: int | None = None) -> jnp.ndarray:
    """<float32>[B, T, T]: every query row uniform over the row's valid keys (<bool>[B, T])."""
    v = jnp.asarray(valid, jnp.float32)
    rows = v / jnp.maximum(v.sum(-1, keepdims=True), 1.0)
    t = valid.shape[-1] if queries is None else queries
    return jnp.broadcast_to(rows[:, None, :], (valid.shape[0], t, valid.shape[-1]))


def permute_keys(head_maps: jnp.ndarray, perms: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, T, T] maps, <int32>[B, P, T] key permutations -> <float32>[P, B, T, T] with
    column ``k`` of permutation ``p`` taken from column ``perms[b, p, k]`` (every query row
    permuted alike)."""
    return jnp.take_along_axis(head_maps[None], jnp.swapaxes(perms, 0, 1)[:, :, None, :], axis=-1)


@struct.dataclass
class HeadEffects:
    """Each <float32>[B, L, H]: the intervened head's effect on the output distribution.

    Attributes:
      tvd: TVD from the original output (for ``permute``: the median over permutations, J&W's).
      jsd: JSD from the original output (nats; ``permute``: median).
      flip: 1 where the decision (argmax) changes (``permute``: the fraction of permutations).
    """

    tvd: jnp.ndarray
    jsd: jnp.ndarray
    flip: jnp.ndarray


def layer_runner(model, params: Params, batch: Batch):
    """``(maps, run)`` for a model with the self-attention seam: its own maps <float32>[L, B, H,
    T, T] and ``run(layer, layer_maps, select) -> <float32>[B, K]``, its output distribution with
    ``layer_maps`` <float32>[B, H, T, T] in place of the heads ``select`` <bool>[H] of ``layer``
    (a Python int). With :func:`~jaxattn.core.protocol.has_layer_restart` the states entering
    each layer are computed once and ``run`` executes layers ``layer..L-1`` only; otherwise it
    re-runs the whole encoder through the seam."""
    if has_layer_restart(model):
        states, maps = model.layer_inputs(params, batch)

        def run(layer: int, layer_maps: jnp.ndarray, select: jnp.ndarray) -> jnp.ndarray:
            enc = model.encode_from_layer(params, batch, states[layer], layer, layer_maps, select)
            return model.probs(model_logits(model, params, enc))

        return maps, run
    maps = model.self_attention(params, batch)
    logits_given = seam_logits(model, params, batch)
    none = jnp.zeros((maps.shape[0], maps.shape[2]), bool)

    def run(layer: int, layer_maps: jnp.ndarray, select: jnp.ndarray) -> jnp.ndarray:
        full = maps.at[layer].set(layer_maps)
        return model.probs(logits_given(full, none.at[layer].set(select)))

    return maps, run


@functools.partial(
    jax.jit, static_argnames=("model", "kinds", "num_permutations", "chunk")
)
def intervene_heads_all(
    model,
    params: Params,
    batch: Batch,
    kinds: tuple[str, ...] = KINDS,
    key: jax.Array | None = None,
    num_permutations: int = 20,
    donor: jnp.ndarray | None = None,
    chunk: int | None = None,
) -> dict[str, HeadEffects]:
    """Replaces each head's attention in turn, in every way of ``kinds``, and measures the
    output change: ``{kind: HeadEffects}`` (arguments as :func:`intervene_heads`).

    Layer by layer (a Python loop: each layer's program restarts the encoder there, see
    :func:`layer_runner`), the layer's ``H * V`` interventions (``V``: one per kind, ``P`` for
    ``permute``) are one ``lax.map`` whose slices of ``chunk`` are vmapped; each leaves only its
    ``[B]`` statistics, so memory is that of ``chunk`` encodings whatever ``H``, ``V`` and ``P``,
    and all kinds share one program per layer (compiled once).
    """
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds or len(set(kinds)) < len(kinds):
        raise ValueError(f"kinds must be distinct names of {KINDS}, not {kinds!r}")
    maps, run = layer_runner(model, params, batch)
    n_layers, b, n_heads, t, _ = maps.shape
    # The untouched output through the same path the interventions take (identical ops, so an
    # intervention that changes nothing measures exactly 0).
    original = run(n_layers - 1, maps[-1], jnp.zeros(n_heads, bool))
    decision = jnp.argmax(original, axis=-1)
    single = [kind for kind in kinds if kind != "permute"]  # one map per head each
    permute = "permute" in kinds
    variants = len(single) + (num_permutations if permute else 0)
    if permute:
        if key is None:
            raise ValueError("kind 'permute' needs a key")
        perms = jax.vmap(permutation_indices, in_axes=(0, 0, None))(
            instance_keys(key, batch.index), jnp.asarray(batch.valid, bool), num_permutations
        )  # [B, P, T]
    if "donor" in kinds:
        if donor is None:
            raise ValueError("kind 'donor' needs a donor (layer, head)")
        donors = jnp.broadcast_to(jnp.asarray(donor, jnp.int32), (n_layers, n_heads, 2))

    def layer_effects(layer: int):
        def replacement(head, v):  # [B, T, T] variant v of head's maps
            own = maps[layer, :, head]
            candidates = []
            for kind in single:
                if kind == "uniform":
                    candidates.append(uniform_maps(batch.valid, t))
                elif kind == "zero":
                    candidates.append(jnp.zeros_like(own))
                else:
                    candidates.append(maps[donors[layer, head, 0], :, donors[layer, head, 1]])
            if permute:
                p = jnp.maximum(v - len(single), 0)
                candidates.append(permute_keys(own, perms[:, p][:, None])[0])
            return jnp.stack(candidates)[jnp.minimum(v, len(candidates) - 1)]

        def effect(item):
            head, v = item // variants, item % variants
            # Only the selected head's maps are read, so one [B, T, T] map is broadcast to all.
            new = jnp.broadcast_to(replacement(head, v)[:, None], maps.shape[1:])
            out = run(layer, new, jnp.arange(n_heads) == head)
            flips = (jnp.argmax(out, axis=-1) != decision).astype(jnp.float32)
            return tvd(out, original), jsd(out, original), flips

        results = jax.lax.map(effect, jnp.arange(n_heads * variants), batch_size=chunk)
        return [x.reshape(n_heads, variants, b) for x in results]  # 3 x [H, V, B]

    per_layer = [layer_effects(layer) for layer in range(n_layers)]
    stats = [jnp.stack([x[i] for x in per_layer]).transpose(3, 0, 1, 2) for i in range(3)]
    out = {}  # each stat [B, L, H, V]
    for j, kind in enumerate(single):
        out[kind] = HeadEffects(*(x[..., j] for x in stats))
    if permute:
        distance, divergence, flips = (x[..., len(single):] for x in stats)
        out["permute"] = HeadEffects(tvd=jnp.median(distance, -1), jsd=jnp.median(divergence, -1),
                                     flip=flips.mean(-1))
    return out


def intervene_heads(
    model,
    params: Params,
    batch: Batch,
    kind: str = "uniform",
    key: jax.Array | None = None,
    num_permutations: int = 20,
    donor: jnp.ndarray | None = None,
    chunk: int | None = None,
) -> HeadEffects:
    """Replaces each head's attention in turn and measures the output change (one kind of
    :func:`intervene_heads_all`, which computes several in one program).

    Args:
      model: a model with the self-attention seam (static).
      kind: ``uniform`` (1/n over the valid keys of every query row), ``permute``
        (``num_permutations`` permutations of the valid keys, the same for every head of an
        instance), ``donor`` (the maps of head ``donor``), ``zero`` (all zeros: the head adds only
        its output bias).
      key: PRNG key for ``permute``.
      donor: <int32>[2] or [L, H, 2] the (layer, head) whose maps replace each head's.
      chunk: interventions per vmapped slice (``lax.map`` batch size); None: all of a layer's at
        once (``H``, or ``H * P`` for ``permute``).
    Returns:
      :class:`HeadEffects` of <float32>[B, L, H] arrays.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return intervene_heads_all(model, params, batch, (kind,), key, num_permutations, donor,
                               chunk)[kind]


# ------------------------------------------------------------------------------------------------
# Adversarial search over one head's (or one layer's) attention


def map_jsd(p: jnp.ndarray, q: jnp.ndarray, rows: jnp.ndarray, heads: jnp.ndarray) -> jnp.ndarray:
    """Mean JSD over the chosen heads and query rows between maps [..., H, T, T].

    Args:
      rows: <float32>[..., T] weights of the query rows (the valid ones).
      heads: <bool>[H] heads that count.
    Returns:
      <float32>[...] ``sum_{h in heads, i} rows_i JSD(p[h, i], q[h, i]) / (|heads| sum_i rows_i)``.
    """
    per_row = jsd(p, q)  # [..., H, T]
    h = heads.astype(per_row.dtype)
    total = jnp.einsum("...hi,...i,h->...", per_row, rows, h)
    return total / jnp.maximum(rows.sum(-1) * h.sum(), 1e-12)


@struct.dataclass
class AdversarialHeadResult:
    """Attributes:
    tvd: <float32>[B, K] each adversary's output TVD from the original output.
    jsd: <float32>[B, K] its mean JSD (over the heads in scope and the valid query rows) from
      the original maps.
    max_jsd: <float32>[B] the largest JSD among the original (0) and the adversaries with
      TVD <= epsilon.
    found: <bool>[B] whether any adversary is within epsilon.
    best_maps: <float32>[B, H, T, T] the layer's maps achieving ``max_jsd`` (heads out of scope:
      their own).
    best_tvd: <float32>[B] its output TVD.
    """

    tvd: jnp.ndarray
    jsd: jnp.ndarray
    max_jsd: jnp.ndarray
    found: jnp.ndarray
    best_maps: jnp.ndarray
    best_tvd: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("model", "layer", "scope", "num_adversaries", "steps"))
def search_adversarial_heads(
    model,
    params: Params,
    batch: Batch,
    key: jax.Array,
    layer: int,
    head: int | jnp.ndarray = 0,
    scope: str = "head",
    num_adversaries: int = 5,
    steps: int = 300,
    learning_rate: float = 0.01,
    penalty: float = 500.0,
    tolerance: float = 0.01,
    epsilon: float = 0.05,
    init_scale: float = 3.0,
) -> AdversarialHeadResult:
    """J&W's multi-adversary search for the maps of head ``(layer, head)`` (``scope="head"``) or
    of every head of ``layer`` (``scope="layer"``; ``head`` ignored), the model frozen.

    Each adversary is a log-map per head in scope, masked to the valid keys, initialised at
    ``log(1 / n) + init_scale * N(0, 1)``; the loss per instance is ``sum_k [-JSD_k + penalty *
    relu(TVD_k - tolerance)] - mean_{k, l} JSD(adv_k, adv_l)`` (JSD as :func:`map_jsd`),
    minimised with AMSGrad for ``steps`` steps inside one ``lax.scan``. ``layer`` is static (the
    encoder restarts there, :func:`layer_runner`); ``head`` is traced: one program serves every
    head of a layer.
    """
    if scope not in ("head", "layer"):
        raise ValueError(f"scope must be 'head' or 'layer', not {scope!r}")
    maps, run = layer_runner(model, params, batch)
    maps = jax.lax.stop_gradient(maps)
    n_layers, b, n_heads, t, _ = maps.shape
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is not in [0, {n_layers})")
    original = run(n_layers - 1, maps[-1], jnp.zeros(n_heads, bool))
    in_scope = (
        jnp.ones(n_heads, bool) if scope == "layer" else jnp.arange(n_heads) == head
    )
    own = maps[layer]  # [B, H, T, T]
    valid = jnp.asarray(batch.valid, bool)
    rows = valid.astype(jnp.float32)  # the valid query rows count alike
    keys_mask = valid[:, None, None, None, :]  # [B, 1, 1, 1, T] over [B, K, H, T, T]
    length = jnp.maximum(valid.sum(-1), 1)[:, None, None, None, None]
    noise = jax.vmap(lambda k: jax.random.normal(k, (num_adversaries, n_heads, t, t)))(
        instance_keys(key, batch.index)
    )
    log_maps = jnp.where(keys_mask, -jnp.log(length) + init_scale * noise, 0.0)

    def decode(adv):  # [B, K, H, T, T] -> [B, K, C']
        def one(m):
            return run(layer, m, in_scope)

        return jax.vmap(one, in_axes=1, out_axes=1)(adv)

    def divergence(adv):  # [B, K]
        return map_jsd(adv, own[:, None], rows[:, None], in_scope)

    def diversity(adv):  # [B]: mean over K x K ordered pairs (self-pairs 0)
        first, second = jnp.triu_indices(num_adversaries, 1)
        pair = map_jsd(adv[:, first], adv[:, second], rows[:, None], in_scope)
        return 2.0 * pair.sum(-1) / num_adversaries**2

    def loss(log_maps):
        adv = masked_softmax(log_maps, keys_mask)
        out = decode(adv)
        per_adversary = -divergence(adv) + penalty * jax.nn.relu(
            tvd(out, original[:, None]) - tolerance
        )
        return per_adversary.sum() - diversity(adv).sum()

    log_maps = amsgrad_descent(loss, log_maps, learning_rate, steps)
    adv = masked_softmax(log_maps, keys_mask)
    adv = jnp.where(in_scope[None, None, :, None, None], adv, own[:, None])
    adv_tvd = tvd(decode(adv), original[:, None])
    adv_jsd = divergence(adv)
    best = best_within_epsilon(own, adv, adv_tvd, adv_jsd, epsilon)
    return AdversarialHeadResult(tvd=adv_tvd, jsd=adv_jsd, max_jsd=best.max_jsd,
                                 found=best.found, best_maps=best.best, best_tvd=best.best_tvd)
