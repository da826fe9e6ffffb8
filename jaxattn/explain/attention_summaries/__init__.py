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

Modules: ``reading`` (the seam, restarts, query rows, target scores), ``maps`` (raw, rollout),
``flow``, ``gradients`` (Chefer, Hao), ``norms`` (Kobayashi); this package re-exports them and
holds the jitted model-level entry points :func:`summarize` and :func:`attribute_attention`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.protocol import Batch, Params
from jaxattn.explain.attention_summaries.flow import (
    FLOW_MAX_LENGTH,
    FLOW_SCALE,
    FlowLengthError,
    attention_flow,
)
from jaxattn.explain.attention_summaries.gradients import (
    AttentionAttribution,
    attention_attribution,
    gradient_weighted,
    gradient_weighted_layers,
    layer_gradients,
)
from jaxattn.explain.attention_summaries.maps import (
    raw_attention,
    raw_attention_layers,
    residual_attention,
    rollout,
    rollout_layers,
)
from jaxattn.explain.attention_summaries.norms import (
    NormInputs,
    NormSummaries,
    bert_norm_inputs,
    norm_based,
    transformer_norm_inputs,
)
from jaxattn.explain.attention_summaries.reading import (
    LogitsFromLayer,
    LogitsGivenMaps,
    layer_logits,
    one_layer_logits,
    predicted_class,
    query_rows,
    read_rows,
    seam_logits,
    target_score,
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


__all__ = [
    "FLOW_MAX_LENGTH",
    "FLOW_SCALE",
    "AttentionAttribution",
    "FlowLengthError",
    "LogitsFromLayer",
    "LogitsGivenMaps",
    "NormInputs",
    "NormSummaries",
    "Summaries",
    "attention_attribution",
    "attention_flow",
    "attribute_attention",
    "bert_norm_inputs",
    "gradient_weighted",
    "gradient_weighted_layers",
    "layer_gradients",
    "layer_logits",
    "norm_based",
    "one_layer_logits",
    "predicted_class",
    "query_rows",
    "raw_attention",
    "raw_attention_layers",
    "read_rows",
    "residual_attention",
    "rollout",
    "rollout_layers",
    "seam_logits",
    "summarize",
    "target_score",
    "transformer_norm_inputs",
]
