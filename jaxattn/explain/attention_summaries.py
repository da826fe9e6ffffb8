"""Token importances read off self-attention maps: raw attention, rollout, flow, gradient-weighted
attention, norm-based attention and attention attribution.

Every summary is a pure function of the maps ``<float32>[L, B, H, T, T]`` (row ``[l, b, h, i]``
is where query ``i`` attends in layer ``l``, head ``h``) and, where the output matters, of a
callable ``logits_given_maps(maps, select) -> <float32>[B, C]`` that encodes with ``maps`` in
place of the (layer, head) pairs ``select <bool>[L, H]`` picks (the self-attention seam of
:class:`jaxattn.core.protocol.HeadMaps`). :func:`seam_logits` builds that callable for any model
with the seam (jaxattn's Transformer, the BERT classifier), so the summaries are model-agnostic.

A token importance ``<float32>[B, T]`` is read from one row of a ``[T, T]`` matrix, or a weighted
mean of rows: ``rows <float32>[B, T]`` (:func:`query_rows`: the first position ([CLS]), a given
position, or the mean over valid positions). Positions outside ``valid`` get 0.

Sources: rollout and flow, Abnar & Zuidema 2020 ("Quantifying attention flow in transformers");
gradient-weighted attention, Chefer, Gur & Wolf 2021 ("Generic attention-model explainability for
interpreting bi-modal and encoder-decoder transformers"); norm-based, Kobayashi et al. 2020
("Attention is not only a weight") and 2021 ("Incorporating residual and normalization layers
into analysis of masked language models"); attention attribution, Hao et al. 2021
("Self-attention attribution"). docs/pages/self_attention.md states each formula.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
from flax import struct

from jaxattn.core.errors import JaxattnError
from jaxattn.core.protocol import (
    Batch,
    HeadMaps,
    Params,
    has_self_attention_seam,
    has_traced_layer_restart,
    model_logits,
    output_distribution,
)
from jaxattn.models.pretrained.bert import layer_norm
from jaxattn.models.transformer import LAYER_NORM_EPS as TRANSFORMER_LN_EPS
from jaxattn.models.transformer import TransformerBlock
from jaxattn.runtime.memory import sum_in_chunks

LogitsGivenMaps = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
#: ``(layer, layer_maps <float32>[B, H, T, T]) -> <float32>[B, C]``: :func:`one_layer_logits`.
LogitsFromLayer = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]

#: Longest input :func:`attention_flow` solves; beyond it the exact max-flow is refused.
FLOW_MAX_LENGTH = 64

#: Capacities are rounded to multiples of ``1 / FLOW_SCALE`` for the integer max-flow solver.
FLOW_SCALE = 2**24


class FlowLengthError(JaxattnError, ValueError):
    """An input too long for the exact attention flow."""


# ------------------------------------------------------------------------------------------------
# The model-agnostic interface


def seam_logits(model, params: Params, batch: Batch) -> LogitsGivenMaps:
    """``logits_given_maps(maps, select=None) -> <float32>[B, C]`` for a model with the
    self-attention seam: its own output on ``batch`` with ``maps`` <float32>[L, B, H, T, T] used
    for the (layer, head) pairs ``select`` <bool>[L, H] picks (all of them when None).

    Raises:
      TypeError: ``model`` does not offer the self-attention seam.
    """
    if not has_self_attention_seam(model):
        raise TypeError(
            f"{type(model).__name__} does not offer the self-attention seam "
            "(self_attention_seam = True and self_attention)"
        )
    embedded = model.embed(params, batch.tokens)

    def logits_given_maps(maps: jnp.ndarray, select: jnp.ndarray | None = None) -> jnp.ndarray:
        if select is None:
            select = jnp.ones((maps.shape[0], maps.shape[2]), bool)
        enc = model.encode_embedded(params, batch, embedded, heads=HeadMaps(maps, select))
        return model_logits(model, params, enc)

    return logits_given_maps


def one_layer_logits(logits_given_maps: LogitsGivenMaps, maps: jnp.ndarray) -> LogitsFromLayer:
    """``from_layer(layer, layer_maps) -> <float32>[B, C]`` through the seam: the output with
    every head of ``layer`` (an int, traced or not) given ``layer_maps`` <float32>[B, H, T, T]
    and every other layer computing its own (``maps`` <float32>[L, B, H, T, T] is only a
    placeholder for those). Each call runs the whole encoder."""
    n_layers, _, n_heads = maps.shape[:3]

    def from_layer(layer, layer_maps: jnp.ndarray) -> jnp.ndarray:
        select = jnp.broadcast_to((jnp.arange(n_layers) == layer)[:, None], (n_layers, n_heads))
        return logits_given_maps(jax.lax.dynamic_update_index_in_dim(maps, layer_maps, layer, 0),
                                 select)

    return from_layer


def layer_logits(
    model, params: Params, batch: Batch
) -> tuple[jnp.ndarray, LogitsFromLayer | None]:
    """(the model's maps <float32>[L, B, H, T, T], ``from_layer``): :func:`one_layer_logits`'s
    callable restarted at the given layer, for a model that restarts at a traced layer
    (:func:`~jaxattn.core.protocol.has_traced_layer_restart`): the states entering each layer
    come from the one pass that gives the maps, and a call runs layers ``layer..L-1`` only, so
    the per-layer gradients of Chefer's and Hao's summaries cost ``(L + 1) / 2L`` of full
    passes. ``from_layer`` is None for another model (callers go through the seam)."""
    if has_traced_layer_restart(model):
        states, maps = model.layer_inputs(params, batch)
        every_head = jnp.ones(maps.shape[2], bool)

        def from_layer(layer, layer_maps: jnp.ndarray) -> jnp.ndarray:
            enc = model.encode_from_layer(params, batch, states[layer], layer, layer_maps,
                                          every_head)
            return model_logits(model, params, enc)

        return maps, from_layer
    return model.self_attention(params, batch), None


def query_rows(valid: jnp.ndarray, query: str | int = "first") -> jnp.ndarray:
    """<float32>[B, T] weights over query rows, zero off ``valid`` <bool>[B, T].

    ``query``: ``"first"`` (position 0, the [CLS] of BERT), an int position, or ``"mean"`` (the
    mean over valid positions). A row with no valid position gets all zeros.
    """
    valid = jnp.asarray(valid, bool)
    t = valid.shape[-1]
    if query == "mean":
        w = valid.astype(jnp.float32)
        return w / jnp.maximum(w.sum(-1, keepdims=True), 1.0)
    position = 0 if query == "first" else int(query)
    if not -t <= position < t:
        raise ValueError(f"query row {position} is outside inputs of length {t}")
    return jnp.where(valid, jax.nn.one_hot(position % t, t, dtype=jnp.float32)[None], 0.0)


def _read(matrix: jnp.ndarray, rows: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
    """``sum_i rows[b, i] matrix[..., b, i, j]`` for [..., B, T, T], zero off ``valid``."""
    read = jnp.einsum("bi,...bij->...bj", rows, matrix)
    return jnp.where(jnp.broadcast_to(valid, read.shape), read, 0.0)


def target_score(
    logits: jnp.ndarray, target: jnp.ndarray, output: str = "logit"
) -> jnp.ndarray:
    """<float32>[B] the score of class ``target`` <int32>[B] in ``logits`` <float32>[B, C]:
    its logit (``output="logit"``; a binary model's single logit ``z`` counts as ``+z`` for
    class 1 and ``-z`` for class 0) or its probability (``"prob"``)."""
    if output == "prob":
        probs = output_distribution(logits)
        return jnp.take_along_axis(probs, target[:, None], axis=-1)[:, 0]
    if output != "logit":
        raise ValueError(f"output must be 'logit' or 'prob', not {output!r}")
    if logits.shape[-1] == 1:
        return jnp.where(target == 1, logits[:, 0], -logits[:, 0])
    return jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]


def predicted_class(logits: jnp.ndarray) -> jnp.ndarray:
    """<int32>[B] the argmax of the output distribution of ``logits``."""
    return jnp.argmax(output_distribution(logits), axis=-1).astype(jnp.int32)


# ------------------------------------------------------------------------------------------------
# Raw attention, rollout


def raw_attention_layers(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray
) -> jnp.ndarray:
    """<float32>[L, B, T]: each layer's head-averaged attention, read at ``rows``."""
    return _read(maps.mean(axis=2), rows, valid)


def raw_attention(maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, T]: the last layer's head-averaged attention, read at ``rows``."""
    return raw_attention_layers(maps[-1:], valid, rows)[0]


def residual_attention(maps: jnp.ndarray, residual: float = 0.5) -> jnp.ndarray:
    """<float32>[L, B, T, T] ``(1 - residual) mean_h A + residual I``, rows renormalised (Abnar &
    Zuidema's account of the residual connection). Padding rows become identity rows."""
    t = maps.shape[-1]
    mixed = (1.0 - residual) * maps.mean(axis=2) + residual * jnp.eye(t, dtype=maps.dtype)[None, None]
    total = mixed.sum(-1, keepdims=True)
    return mixed / jnp.where(total > 0, total, 1.0)


def rollout_layers(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray, residual: float = 0.5
) -> jnp.ndarray:
    """<float32>[L, B, T]: row ``l`` is the rollout through layers 1..l+1,
    ``rows . A~_{l+1} ... A~_1`` (:func:`residual_attention`)."""
    mixed = residual_attention(maps, residual)

    def step(product, layer):
        product = jnp.einsum("bij,bjk->bik", layer, product)
        return product, product

    eye = jnp.broadcast_to(jnp.eye(maps.shape[-1], dtype=maps.dtype), mixed.shape[1:])
    _, products = jax.lax.scan(step, eye, mixed)
    return _read(products, rows, valid)


def rollout(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray, residual: float = 0.5
) -> jnp.ndarray:
    """<float32>[B, T] attention rollout: ``rows . A~_L ... A~_1``."""
    return rollout_layers(maps, valid, rows, residual)[-1]


# ------------------------------------------------------------------------------------------------
# Attention flow


def attention_flow(
    maps,
    valid,
    rows,
    residual: float | None = 0.5,
    max_length: int = FLOW_MAX_LENGTH,
    max_edges: int = 2_000_000,
) -> np.ndarray:
    """<float32>[B, T] attention flow: the maximum flow from the output to each input token.

    The graph has a node per (level, position), levels 0 (inputs) to L, and an edge from
    ``(l + 1, i)`` to ``(l, j)`` of capacity ``A~_l[i, j]`` (:func:`residual_attention`; pass
    ``residual=0`` for the bare head-averaged attention). A source feeds level ``L``'s position
    ``i`` with capacity ``rows[b, i]``; the flow of token ``j`` is the maximum flow from the
    source to ``(0, j)``. With one-hot ``rows`` this is the flow from that output node, as the
    paper computes it. ``residual=None``: ``maps`` are ``A~`` already, <float>[L, B, T, T] (mixed
    inside a caller's jitted program, where the bucket's shape is fixed: slicing a row's
    positions off the padded ``A~`` afterwards gives the same rows).

    Solved with :func:`scipy.sparse.csgraph.maximum_flow` on capacities rounded to multiples of
    ``1 / FLOW_SCALE`` (2^-24): exact for those capacities, so within ``k 2^-25`` of the flow of
    the given ones, ``k`` the number of edges of a minimum cut. Runs on the host (not jittable);
    many instances and tokens share one solver call as disjoint parts of one graph (a maximum
    flow of a disjoint union is a maximum flow on each part), up to ``max_edges`` edges a call.

    Raises:
      FlowLengthError: inputs are longer than ``max_length`` (the graph has ``L T^2`` edges per
        token and instance; use :func:`rollout` there).
    """
    if residual is not None:
        maps = residual_attention(jnp.asarray(maps), residual)
    mixed = np.asarray(maps, np.float64)  # [L, B, T, T]
    valid = np.asarray(valid, bool)
    rows = np.asarray(rows, np.float64)
    n_layers, b, t, _ = mixed.shape
    if t > max_length:
        raise FlowLengthError(
            f"attention flow: inputs of length {t} exceed max_length {max_length} (exact max-flow "
            f"over {n_layers * t * t} edges per token); use rollout or pass a larger max_length"
        )
    caps = np.rint(mixed * FLOW_SCALE).astype(np.int64)  # [L, B, T, T]
    feed = np.rint(np.where(valid, rows, 0.0) * FLOW_SCALE).astype(np.int64)  # [B, T]
    jobs = [(i, j) for i in range(b) for j in range(t) if valid[i, j] and feed[i].any()]
    out = np.zeros((b, t), np.float64)
    if not jobs:
        return out.astype(np.float32)
    nodes = (n_layers + 1) * t
    # Within one part: level-(l+1) node i -> level-l node j, for every layer, query and key.
    level, query, key = np.meshgrid(np.arange(n_layers), np.arange(t), np.arange(t), indexing="ij")
    edge_from = ((level + 1) * t + query).ravel()
    edge_to = (level * t + key).ravel()
    per_part = edge_from.size + 2 * t
    chunk = max(1, max_edges // per_part)
    for start in range(0, len(jobs), chunk):
        part = jobs[start : start + chunk]
        instance = np.asarray([i for i, _ in part])
        sink_token = np.asarray([j for _, j in part])
        n = len(part)
        offset = 2 + np.arange(n)[:, None] * nodes  # node 0: source, node 1: sink
        tails = [
            (offset + edge_from[None]).ravel(),
            np.zeros(n * t, np.int64),
            (offset[:, 0] + sink_token),
        ]
        heads = [
            (offset + edge_to[None]).ravel(),
            (offset + n_layers * t + np.arange(t)[None]).ravel(),
            np.ones(n, np.int64),
        ]
        capacity = [
            caps[:, instance].transpose(1, 0, 2, 3).reshape(n, -1).ravel(),
            feed[instance].ravel(),
            np.full(n, 2 * FLOW_SCALE, np.int64),
        ]
        tail, head, cap = (np.concatenate(x) for x in (tails, heads, capacity))
        keep = cap > 0
        graph = scipy.sparse.csr_array(
            (cap[keep].astype(np.int32), (tail[keep], head[keep])),
            shape=(2 + n * nodes, 2 + n * nodes),
        )
        flow = scipy.sparse.csgraph.maximum_flow(graph, 0, 1).flow
        # Each part's flow is what reaches the sink from its own token node.
        into_sink = np.asarray(flow[:, [1]].todense()).ravel()
        out[instance, sink_token] = into_sink[offset[:, 0] + sink_token] / FLOW_SCALE
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Gradients w.r.t. the maps through the seam


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
    (None: all ``L``); through a restart (:func:`layer_logits`) one layer at a time, since its
    skipped layers need an unbatched layer index (``chunk`` then has no use). ``False``: one
    backward pass with every layer given, so later attention is held fixed.
    """
    n_layers, _, n_heads = maps.shape[:3]

    if not downstream:
        def score(full):
            return target_score(logits_given_maps(full, jnp.ones((n_layers, n_heads), bool)),
                                target, output).sum()

        return jax.grad(score)(maps)
    if from_layer is None:
        from_layer, chunk = one_layer_logits(logits_given_maps, maps), chunk or n_layers
    else:
        chunk = None

    def one_layer(layer):
        return jax.grad(lambda m: target_score(from_layer(layer, m), target, output).sum())(
            maps[layer])

    return jax.lax.map(one_layer, jnp.arange(n_layers), batch_size=chunk)


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
    return _read(relevances, rows, valid)


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
    backward pass over ``[B, H, T, T]`` maps. Layers are a ``lax.map``, each through
    ``from_layer`` (:func:`layer_logits`'s restart at that layer; None: the seam,
    :func:`one_layer_logits`). ``keep_maps=False`` returns only the readings (``maps``
    None), so the ``[L, B, H, T, T]`` result is never formed.
    """
    if rule == "right":
        alphas = jnp.arange(1, steps + 1, dtype=maps.dtype) / steps
    elif rule == "midpoint":
        alphas = (jnp.arange(steps, dtype=maps.dtype) + 0.5) / steps
    else:
        raise ValueError(f"rule must be 'right' or 'midpoint', not {rule!r}")
    if target is None:
        target = predicted_class(logits_given_maps(maps, None))
    from_layer = from_layer or one_layer_logits(logits_given_maps, maps)

    def one_layer(layer):
        own = maps[layer]

        def score(m):
            return target_score(from_layer(layer, m), target, output)

        summed = sum_in_chunks(lambda a: jax.grad(lambda m: score(m).sum())(a * own), alphas,
                               chunk or steps)
        gap = score(own) - score(jnp.zeros_like(own))
        attribution = own * summed / steps
        tokens = _read(attribution.sum(axis=1), rows, valid)
        return (attribution if keep_maps else None), tokens, gap

    attributions, tokens, gaps = jax.lax.map(one_layer, jnp.arange(maps.shape[0]))
    return AttentionAttribution(
        maps=attributions, tokens=tokens, total=tokens.sum(axis=0), gap=gaps
    )


# ------------------------------------------------------------------------------------------------
# Norm-based (Kobayashi et al.)


@struct.dataclass
class NormInputs:
    """What the norm-based summaries need besides the maps, layer by layer.

    Attributes:
      transformed: <float32>[L, B, H, T, W] ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h``: each key's
        value vector of head ``h`` passed through that head's slice of the output projection.
      residual: <float32>[L, B, T, W] what the residual connection adds at each query (the
        attention block's input stream).
      out_bias: <float32>[L, W] the output projection's bias ``b_O``.
      ln_scale: <float32>[L, W] the LayerNorm applied to ``residual + attention`` (post-LN
        models), or None when none is (pre-LN: the stream goes on un-normalised).
      ln_eps: that LayerNorm's epsilon.
    """

    transformed: jnp.ndarray
    residual: jnp.ndarray
    out_bias: jnp.ndarray
    ln_scale: jnp.ndarray | None = None
    ln_eps: float = struct.field(pytree_node=False, default=1e-12)


@struct.dataclass
class NormSummaries:
    """Attributes (each <float32>[L, B, T], read at the query ``rows``; [B, T] is ``[-1]``):
    attention: ``||sum_h a^h_ij f_h(x_j)||`` (Kobayashi et al. 2020).
    residual: ``||sum_h a^h_ij f_h(x_j) + [i = j] x_i||`` (the residual connection added).
    residual_ln: ``||g(sum_h a^h_ij f_h(x_j) + [i = j] x_i)||`` with ``g(z) = gamma * (z -
      mean z) / s_i`` the following LayerNorm's share of each term (Kobayashi et al. 2021),
      ``s_i`` the standard deviation of the whole sum at query ``i``; None for pre-LN models.
    """

    attention: jnp.ndarray
    residual: jnp.ndarray
    residual_ln: jnp.ndarray | None


def norm_based(
    maps: jnp.ndarray, inputs: NormInputs, valid: jnp.ndarray, rows: jnp.ndarray,
    chunk: int | None = None,
) -> NormSummaries:
    """Norm-based attention of every layer (see :class:`NormSummaries`).

    Each (query, key) pair's contribution is a ``W``-vector, ``[B, T, T, W]`` per layer: the
    layers are computed one after another and the queries ``chunk`` at a time (None: all),
    each block's norms added into the reading at once, so memory stays at ``[B, chunk, T, W]``.
    The queries may be the first ``Q <= T`` only (``maps`` <float32>[L, B, H, Q, T],
    ``inputs.residual`` [L, B, Q, W], ``rows`` [B, Q]) when the reading weighs no other: the
    [CLS] row is one query, not ``T``.
    """
    t, queries_in = maps.shape[-1], maps.shape[-2]
    chunk = min(chunk or queries_in, queries_in)
    blocks = -(-queries_in // chunk)
    padded = blocks * chunk  # queries padded to whole blocks; a padded query has weight 0
    weights = jnp.pad(rows, ((0, 0), (0, padded - queries_in)))
    with_ln = inputs.ln_scale is not None
    ln_scale = inputs.ln_scale if with_ln else jnp.zeros_like(inputs.out_bias)

    def one_layer(layer):
        layer_maps, transformed, residual, out_bias, scale = layer
        layer_maps = jnp.pad(layer_maps, ((0, 0), (0, 0), (0, padded - queries_in), (0, 0)))
        residual = jnp.pad(residual, ((0, 0), (0, padded - queries_in), (0, 0)))

        def block(read, start):
            queries = jax.lax.dynamic_slice_in_dim(layer_maps, start, chunk, axis=2)
            # [B, q, j, W]: key j's contribution to query q, summed over heads.
            parts = jnp.einsum("bhqj,bhjw->bqjw", queries, transformed)
            own = (start + jnp.arange(chunk))[:, None] == jnp.arange(t)[None, :]  # [q, j]: q = j
            stream = jax.lax.dynamic_slice_in_dim(residual, start, chunk, axis=1)  # [B, q, W]
            with_residual = parts + own[None, :, :, None] * stream[:, :, None, :]
            norms = [jnp.linalg.norm(parts, axis=-1), jnp.linalg.norm(with_residual, axis=-1)]
            if with_ln:
                total = with_residual.sum(axis=2) + out_bias[None, None]  # [B, q, W]
                std = jnp.sqrt(total.var(axis=-1) + inputs.ln_eps)  # [B, q]
                centred = with_residual - with_residual.mean(axis=-1, keepdims=True)
                scaled = centred * scale[None, None, None] / std[..., None, None]
                norms.append(jnp.linalg.norm(scaled, axis=-1))
            w = jax.lax.dynamic_slice_in_dim(weights, start, chunk, axis=1)  # [B, q]
            return tuple(r + jnp.einsum("bq,bqj->bj", w, n) for r, n in zip(read, norms)), None

        zeros = tuple(jnp.zeros(valid.shape, maps.dtype) for _ in range(3 if with_ln else 2))
        read, _ = jax.lax.scan(block, zeros, jnp.arange(blocks) * chunk)
        return tuple(jnp.where(valid, r, 0.0) for r in read)

    read = jax.lax.map(one_layer, (maps, inputs.transformed, inputs.residual, inputs.out_bias,
                                   ln_scale))
    return NormSummaries(
        attention=read[0], residual=read[1], residual_ln=read[2] if with_ln else None
    )


def transformer_norm_inputs(model, params: Params, batch: Batch) -> NormInputs:
    """:class:`NormInputs` of jaxattn's Transformer passage encoder (``model.network``; pre-LN,
    so ``ln_scale`` is None). Each block's values are read from ``LN1(x)``, its residual is the
    block's input stream ``x``; the stream is recomputed block by block (dropout off)."""
    encoder = params["text_encoder"]
    settings = model.network.settings
    valid = jnp.asarray(batch.valid, bool)
    features = model.featurize(params, model.embed(params, batch.tokens))
    x = features + encoder["positions"][None, : features.shape[1]]
    block = TransformerBlock(settings.width, settings.heads, settings.ff_size)
    norm = nn.LayerNorm(epsilon=TRANSFORMER_LN_EPS)
    transformed, residual, out_bias = [], [], []
    names = sorted((k for k in encoder if k.startswith("blocks_")), key=lambda k: int(k[7:]))
    for name in names:
        p = encoder[name]
        attn = p["attention"]
        normed = norm.apply({"params": p["norm1"]}, x)
        residual.append(x)
        transformed.append(_head_outputs(normed, attn["value"], attn["out"]["kernel"],
                                         settings.heads))
        out_bias.append(attn["out"]["bias"])
        x, _ = block.apply({"params": p}, x, valid)
    return NormInputs(
        transformed=jnp.stack(transformed),
        residual=jnp.stack(residual),
        out_bias=jnp.stack(out_bias),
        ln_scale=None,
    )


def _head_outputs(normed, value, out_kernel, heads):
    """<float32>[B, H, T, W] ``(x W_V + b_V)_h W_O[h]`` per head."""
    b, t, w = normed.shape
    size = w // heads
    v = (normed @ value["kernel"] + value["bias"][None, None]).reshape(b, t, heads, size)
    per_head = out_kernel.reshape(heads, size, w)
    return jnp.einsum("bthd,hdw->bhtw", v, per_head)


def bert_norm_inputs(classifier, params: Params, batch: Batch) -> NormInputs:
    """:class:`NormInputs` of a BERT classifier's encoder (``classifier.bert``; params under
    ``"bert"``). Post-LN: ``ln_scale`` is each layer's ``attn_ln``; pre-LN: None, and the values
    are read from ``attn_ln`` of the stream."""
    bert = classifier.bert
    c = bert.config
    p = params["bert"]
    types = jnp.zeros(batch.tokens.shape, jnp.int32)
    out = bert.encode(p, batch.tokens, types, batch.valid)
    streams = out.hidden_states[:-1]  # [L, B, T, E] each layer's input
    layers = p["layers"]

    def per_layer(h, lp):
        a_in = layer_norm(h, lp["attn_ln"], c.layer_norm_eps) if c.pre_ln else h
        return _head_outputs(a_in, lp["value"], lp["attn_out"]["kernel"], c.num_heads)

    transformed = jax.vmap(per_layer)(streams, layers)
    return NormInputs(
        transformed=transformed,
        residual=streams,
        out_bias=layers["attn_out"]["bias"],
        ln_scale=None if c.pre_ln else layers["attn_ln"]["scale"],
        ln_eps=c.layer_norm_eps,
    )


# ------------------------------------------------------------------------------------------------
# Model-level entry points (jitted; the model is static)


@struct.dataclass
class Summaries:
    """Every jitted summary of one batch. Each <float32>[B, T] unless said.

    Attributes:
      raw: last layer's head-averaged attention at the query rows.
      raw_layers: <float32>[L, B, T] the same for every layer.
      rollout: attention rollout.
      rollout_layers: <float32>[L, B, T] rollout through layers 1..l.
      gradient_weighted: Chefer et al.'s relevance.
      gradient_weighted_layers: <float32>[L, B, T].
    """

    raw: jnp.ndarray
    raw_layers: jnp.ndarray
    rollout: jnp.ndarray
    rollout_layers: jnp.ndarray
    gradient_weighted: jnp.ndarray
    gradient_weighted_layers: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("model", "query", "residual", "chunk"))
def summarize(
    model, params: Params, batch: Batch, query: str | int = "first", residual: float = 0.5,
    chunk: int | None = None,
) -> Summaries:
    """Raw attention, rollout and gradient-weighted attention of a seam model on ``batch``
    (target: the predicted class; ``chunk`` layers differentiated at once, None: all). Flow,
    norms and attribution have their own calls."""
    maps, from_layer = layer_logits(model, params, batch)
    rows = query_rows(batch.valid, query)
    raw_layers = raw_attention_layers(maps, batch.valid, rows)
    rolled = rollout_layers(maps, batch.valid, rows, residual)
    chefer = gradient_weighted_layers(seam_logits(model, params, batch), maps, batch.valid, rows,
                                      chunk=chunk, from_layer=from_layer)
    return Summaries(
        raw=raw_layers[-1],
        raw_layers=raw_layers,
        rollout=rolled[-1],
        rollout_layers=rolled,
        gradient_weighted=chefer[-1],
        gradient_weighted_layers=chefer,
    )


@functools.partial(jax.jit, static_argnames=("model", "query", "steps", "rule", "output",
                                             "chunk", "keep_maps"))
def attribute_attention(
    model,
    params: Params,
    batch: Batch,
    query: str | int = "first",
    steps: int = 20,
    rule: str = "right",
    output: str = "prob",
    chunk: int | None = None,
    keep_maps: bool = True,
) -> AttentionAttribution:
    """:func:`attention_attribution` of a seam model on ``batch`` (target: the predicted class)."""
    maps, from_layer = layer_logits(model, params, batch)
    return attention_attribution(
        seam_logits(model, params, batch), maps, batch.valid, query_rows(batch.valid, query),
        steps=steps, rule=rule, output=output, chunk=chunk, keep_maps=keep_maps,
        from_layer=from_layer,
    )
