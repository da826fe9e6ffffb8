"""How many differentiated passes an analysis may evaluate at once within a memory budget.

Integrated gradients (over the embeddings or over the attention maps) and the per-layer gradients
of the attention summaries vmap several backward passes over a batch. For a Transformer each pass
keeps its self-attention maps' worth of activations several times over, ``L x H x T^2`` floats
per row, so a chunk that suits sentences exhausts memory at 512-piece reviews; at sentence
lengths the states that grow with ``T`` (queries, keys, values, the feed-forward's, ``L x T x E``
floats each) weigh more. The stages therefore cap their chunks by what a chunk would hold:
``passes x rows x pass_bytes`` within ``AnalysisOptions.gradient_memory`` GiB, where
:func:`pass_bytes` is ``SAVED_PER_MAP x`` the maps ``+ SAVED_PER_HIDDEN x`` the hidden states of
one row. Models without self-attention keep the chunk asked for.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import encode, has_self_attention

#: Activations kept by one differentiated pass per row: ``SAVED_PER_MAP`` times its attention
#: maps plus ``SAVED_PER_HIDDEN`` times its hidden states (``L x T x E``). Fitted to IG's peak
#: memory on all-MiniLM-L6-v2 at two widths (``benchmarks/analysis_memory.py``: 16.8 MiB per
#: pass and row at 64 pieces, 316.7 at 512; 2.9 and 24.1), rounded up.
SAVED_PER_MAP = 3.0
SAVED_PER_HIDDEN = 25.0


_SHAPES: dict = {}


def shape_of(name: str, fn, model, params, batch):
    """``jax.eval_shape(fn, params, batch)`` (``fn`` one of ``model``'s computations, ``name``
    naming it), remembered per (name, model, the batch's shapes): the stages ask once per batch,
    and tracing the model again each time would cost as much as a small compilation."""
    leaves, tree = jax.tree.flatten(batch)
    key = (name, model, tree, tuple((x.shape, x.dtype) for x in leaves))
    try:
        if key in _SHAPES:
            return _SHAPES[key]
    except TypeError:  # a model that cannot be hashed: traced every time
        return jax.eval_shape(fn, params, batch)
    out = _SHAPES[key] = jax.eval_shape(fn, params, batch)
    return out


def attention_bytes(model, params, batch) -> int:
    """Bytes of one row's self-attention maps, ``L x H x T x T`` floats; 0 for a model without
    self-attention. Shapes only: nothing is computed."""
    if not has_self_attention(model):
        return 0
    maps = shape_of("self_attention", model.self_attention, model, params, batch)  # [L, B, H, T, T]
    per_row = maps.size // maps.shape[1] if maps.ndim == 5 and maps.shape[1] else 0
    return int(per_row) * maps.dtype.itemsize


def pass_bytes(model, params, batch) -> float:
    """Bytes one differentiated pass keeps per row of ``batch``: ``SAVED_PER_MAP`` x its
    attention maps (:func:`attention_bytes`) + ``SAVED_PER_HIDDEN`` x its hidden states, one
    ``[T, E]`` per layer; 0 for a model without self-attention. Shapes only."""
    maps = attention_bytes(model, params, batch)
    if not maps:
        return 0.0
    layers = shape_of("self_attention", model.self_attention, model, params, batch).shape[0]
    hidden = shape_of("encode", lambda p, b: encode(model, p, b), model, params, batch).hidden
    per_layer = hidden.size // hidden.shape[0] * hidden.dtype.itemsize if hidden.shape[0] else 0
    return SAVED_PER_MAP * maps + SAVED_PER_HIDDEN * layers * per_layer


#: Bytes of self-attention maps (all layers) that one call of a deletion analysis (leave-one-out)
#: may run through the model at once. On all-MiniLM-L6-v2 at 512 pieces on 2 CPU cores a chunk of
#: 1 or 2 shortened rows took 174 and 191 ms per row and 3, 4 or 8 rows 300 to 346 ms
#: (benchmarks/RESULTS.md, "Leave-one-out at 512 pieces"); at 256 pieces 2 to 16 rows took 74 to
#: 85 ms. 160 MiB allows 2 rows at 512 pieces, 8 at 256 and 135 at 64.
DELETION_MAP_BYTES = 160 * 2**20


def deletion_rows_cap(model, params, batch) -> int | None:
    """The most shortened rows one deletion call may run: as many as hold at most
    :data:`DELETION_MAP_BYTES` of attention maps (:func:`attention_bytes` each), at least 1;
    ``None`` (no cap) for a model without self-attention. Speed only, not results."""
    per_row = attention_bytes(model, params, batch)
    return max(1, DELETION_MAP_BYTES // per_row) if per_row else None


def passes_at_once(requested: int, rows: int, row_bytes: float, gib: float) -> int:
    """``requested`` capped so that ``passes x rows`` differentiated rows keeping ``row_bytes``
    each (:func:`pass_bytes`) hold at most ``gib`` GiB; at least 1."""
    if row_bytes <= 0 or rows <= 0:
        return max(1, requested)
    fit = int(gib * 2**30 // (rows * row_bytes))
    return max(1, min(requested, fit))


def sum_in_chunks(fn, points: jnp.ndarray, chunk: int):
    """``sum_k fn(points[k])`` (a pytree of arrays), ``fn`` vmapped over ``chunk`` points at a
    time at most and the chunks added up in a ``lax.scan``: the memory of ``chunk`` evaluations,
    not of all of them. The points are spread evenly over the fewest chunks, and the last chunk
    padded with repeats of the last point, weighted 0 (at most ``chunks - 1`` wasted evaluations,
    not up to ``chunk - 1``)."""
    n = points.shape[0]
    chunks = -(-n // max(1, min(chunk, n)))
    chunk = -(-n // chunks)  # as even as the chunks go: 20 points at most 8 a time are 7, 7, 6
    padded = jnp.concatenate([points, jnp.repeat(points[-1:], chunks * chunk - n, axis=0)])
    weights = (jnp.arange(chunks * chunk) < n).astype(jnp.float32).reshape(chunks, chunk)

    def add(total, xs):
        values = jax.vmap(fn)(xs[0])
        return jax.tree.map(
            lambda t, v: t + jnp.tensordot(xs[1].astype(v.dtype), v, axes=1), total, values
        ), None

    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, points[0]))
    total, _ = jax.lax.scan(add, zeros, (padded.reshape(chunks, chunk, *points.shape[1:]), weights))
    return total
