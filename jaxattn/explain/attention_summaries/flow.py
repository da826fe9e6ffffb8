"""Attention flow (Abnar & Zuidema 2020): exact max-flow through the layered attention graph,
on the host."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from jaxattn.core.errors import JaxattnError
from jaxattn.explain.attention_summaries.maps import residual_attention

#: Longest input :func:`attention_flow` solves; beyond it the exact max-flow is refused.
FLOW_MAX_LENGTH = 64

#: Capacities are rounded to multiples of ``1 / FLOW_SCALE`` for the integer max-flow solver.
FLOW_SCALE = 2**24


class FlowLengthError(JaxattnError, ValueError):
    """An input too long for the exact attention flow."""



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
