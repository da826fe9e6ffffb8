"""The model-agnostic interface of the summaries: a model's output given maps (the
self-attention seam, or a restart at one layer), the query rows a summary is read at, and the
scores gradients are taken of."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import (
    Batch,
    HeadMaps,
    Params,
    has_layer_restart,
    has_self_attention_seam,
    model_logits,
    output_distribution,
)

LogitsGivenMaps = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
#: ``(layer, layer_maps <float32>[B, H, T, T]) -> <float32>[B, C]``: :func:`one_layer_logits`.
LogitsFromLayer = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]



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
    callable restarted at the given layer (a Python int), for a model that restarts at a layer
    (:func:`~jaxattn.core.protocol.has_layer_restart`): the states entering each layer
    come from the one pass that gives the maps, and a call runs layers ``layer..L-1`` only, so
    the per-layer gradients of Chefer's and Hao's summaries cost ``(L + 1) / 2L`` of full
    passes. ``from_layer`` is None for another model (callers go through the seam)."""
    if has_layer_restart(model):
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


def read_rows(matrix: jnp.ndarray, rows: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
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
