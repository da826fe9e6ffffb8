"""The ``summaries`` stage: token importances read off a model's self-attention maps.

For a model with the self-attention seam (the BERT classifiers, jaxattn's Transformer) each batch
gives one <float32>[B, T] importance per summary of :mod:`jaxattn.explain.attention_summaries`,
read at the query row (:func:`query_of`: [CLS] for a [CLS] head, the mean over the positions
otherwise):

=============  ===============================================================================
sa_raw         the last layer's attention, mean over heads
sa_rollout     attention rollout (Abnar & Zuidema 2020), residual 0.5
sa_flow        attention flow (Abnar & Zuidema 2020), exact max-flow; NaN for a row longer than
               :data:`FLOW_LIMIT` positions (the solver's graph grows as ``L T^2`` per token)
sa_chefer      gradient-weighted attention rollout (Chefer et al. 2021), predicted class
sa_norm        ``||sum_h a f_h(x)||`` of the last layer (Kobayashi et al. 2020)
sa_norm_ln     the same with the residual and the LayerNorm after it (Kobayashi et al. 2021);
               post-LN models only (BERT), absent for pre-LN ones
sa_attr        attention attribution (Hao et al. 2021), summed over layers and heads
=============  ===============================================================================

plus ``sa_raw_layers`` <float32>[B, L, T] (every layer's raw attention, heatmap rows) and
``sa_random`` (a random ranking from the stage's own stream of the seed, the floor of the
stage's table). The maps <float32>[L, B, H, T, T] live only inside one jitted call per batch
shape; only their [B, T] readings (and, for flow, the head-mean maps on the host for the
solver) leave it. Values are 0 off the real tokens (``mask``), as every importance's are.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.protocol import has_self_attention
from jaxattn.explain import attention_summaries as S
from jaxattn.explain.faithfulness import random_scores
from jaxattn.models.vocab_features import VocabularyFeatures
from jaxattn.runtime.memory import SAVED_PER_MAP, pass_bytes, passes_at_once, shape_of
from jaxattn.studies.registry import random_key
from jaxattn.studies.self_attention import summaries_report as report
from jaxattn.studies.stage import Stage

#: Importance key -> label, in display order.
SUMMARY_LABELS = {
    "sa_raw": "self-attention, last layer (query row)",
    "sa_rollout": "attention rollout",
    "sa_flow": "attention flow",
    "sa_chefer": "gradient-weighted attention (Chefer)",
    "sa_norm": "norm-based attention (Kobayashi 2020)",
    "sa_norm_ln": "norm + residual + LayerNorm (Kobayashi 2021)",
    "sa_attr": "attention attribution (Hao)",
}
SUMMARY_KEYS = tuple(SUMMARY_LABELS)
FLOW = "sa_flow"
LAYERS = "sa_raw_layers"
RANDOM = "sa_random"
BEYOND = "sa_flow_beyond_limit"
QUERY = "sa_query_first"  # <bool>[B] the [CLS] row was read (else the mean over positions)

#: Longest row (positions, boundary markers included) whose flow is solved.
FLOW_LIMIT = S.FLOW_MAX_LENGTH
RESIDUAL = 0.5  # Abnar & Zuidema's share of the identity (the residual connection)
ATTRIBUTION_STEPS = 20  # Hao et al.'s Riemann steps
SETTINGS = (("residual", RESIDUAL), ("flow_limit", FLOW_LIMIT),
            ("attribution_steps", ATTRIBUTION_STEPS))


def unwrapped(model, params):
    """The model and params the seam belongs to: analyses may run on a
    :class:`~jaxattn.models.vocab_features.VocabularyFeatures` wrapper of a Transformer, which
    computes the same outputs but does not pass given maps through."""
    if isinstance(model, VocabularyFeatures):
        return model.model, params["model"]
    return model, params


def query_of(model) -> str:
    """``"first"`` for a [CLS] head (its output reads position 0), else ``"mean"`` (a pooling
    head reads every position)."""
    return "first" if getattr(model, "head", "") == "cls" else "mean"


def norm_inputs(model, params, batch) -> S.NormInputs | None:
    """The norm-based summaries' inputs of a BERT classifier or jaxattn's Transformer; None for
    another seam model (its norm rows are then absent)."""
    if hasattr(model, "bert"):
        return S.bert_norm_inputs(model, params, batch)
    network = getattr(model, "network", None)
    if getattr(network, "encoder", None) == "transformer" and not network.pair:
        return S.transformer_norm_inputs(model, params, batch)
    return None


@functools.partial(jax.jit, static_argnames=("model", "query", "chunk"))
def _norms_and_maps(model, params, batch, query: str, chunk: int) -> tuple[dict, jnp.ndarray]:
    """(the last layer's norm-based summaries <float32>[B, T], the residual-mixed head-mean maps
    ``A~`` <float32>[L, B, T, T] for the flow solver: mixed here, in the bucket's shape, so the
    host's per-row slices compile nothing). The norms are of the last layer alone, ``chunk``
    queries at a time, and of the [CLS] query alone when that is the row read."""
    maps = model.self_attention(params, batch)
    out = {}
    inputs = norm_inputs(model, params, batch)
    if inputs is not None:
        last = jax.tree.map(lambda x: x[-1:], inputs)
        rows, layer = S.query_rows(batch.valid, query), maps[-1:]
        if query == "first":
            rows, layer = rows[:, :1], layer[..., :1, :]
            last = last.replace(residual=last.residual[:, :, :1])
        norms = S.norm_based(layer, last, batch.valid, rows, chunk)
        out["sa_norm"] = norms.attention[0]
        if norms.residual_ln is not None:
            out["sa_norm_ln"] = norms.residual_ln[0]
    return out, S.residual_attention(maps, RESIDUAL)


def _norm_chunk(model, params, batch, memory: float) -> int:
    """Queries whose ``[B, T, W]`` contributions :func:`_norms_and_maps` computes at once."""
    rows, tokens = batch.tokens.shape
    inputs = shape_of("norm_inputs", lambda p, b: norm_inputs(model, p, b), model, params, batch)
    if inputs is None:
        return tokens
    width = inputs.transformed.shape[-1]
    # a query's [T, W] contributions, counted as a differentiated pass counts its maps
    return passes_at_once(tokens, rows, SAVED_PER_MAP * tokens * width * 4, memory)


def _jitted(model, params, batch, query: str, memory: float) -> tuple[dict, jnp.ndarray]:
    """({key: <float32>[B, T] or [B, L, T]}, residual-mixed maps): the explain layer's jitted entry
    points (:func:`~jaxattn.explain.attention_summaries.summarize`, ``attribute_attention``),
    one program each per batch shape. The layers (Chefer) and the attribution's steps (Hao) are
    differentiated as many at once as ``memory`` GiB allow (:mod:`jaxattn.runtime.memory`)."""
    rows, row_bytes = batch.tokens.shape[0], pass_bytes(model, params, batch)
    layers = int(shape_of("self_attention", model.self_attention, model, params, batch).shape[0])
    read = S.summarize(model, params, batch, query, RESIDUAL,
                       chunk=passes_at_once(layers, rows, row_bytes, memory))
    attribution = S.attribute_attention(
        model, params, batch, query, steps=ATTRIBUTION_STEPS, keep_maps=False,
        chunk=passes_at_once(ATTRIBUTION_STEPS, rows, row_bytes, memory))
    out, mixed = _norms_and_maps(model, params, batch, query,
                                 _norm_chunk(model, params, batch, memory))
    out.update({
        "sa_raw": read.raw,
        LAYERS: jnp.swapaxes(read.raw_layers, 0, 1),
        "sa_rollout": read.rollout,
        "sa_chefer": read.gradient_weighted,
        "sa_attr": attribution.total,
    })
    return out, mixed


def row_lengths(valid: np.ndarray) -> np.ndarray:
    """<int>[B] one past each row's last valid position (0 for an empty row)."""
    valid = np.asarray(valid, bool)
    last = np.where(valid.any(-1), valid.shape[-1] - np.argmax(valid[:, ::-1], -1), 0)
    return last.astype(int)


def flow_rows(mixed, valid, rows, mask, limit: int = FLOW_LIMIT):
    """(<float32>[B, T] attention flow, <bool>[B] beyond the limit) from the residual-mixed maps
    ``mixed`` <float32>[L, B, T, T] (:func:`~jaxattn.explain.attention_summaries.
    residual_attention`). Each row is solved on its
    own positions (padding cut off), so a short row in a long bucket is solved; a row longer
    than ``limit`` is NaN."""
    mixed, valid, rows = (np.asarray(x) for x in (mixed, valid, rows))
    lengths = row_lengths(valid)
    beyond = lengths > limit
    out = np.zeros(valid.shape, np.float32)
    out[beyond] = np.nan
    ok = np.flatnonzero(~beyond & (lengths > 0))
    if len(ok):
        m = int(lengths[ok].max())
        flow = S.attention_flow(mixed[:, ok, :m, :m], valid[ok, :m], rows[ok, :m], None,
                                max_length=limit)
        out[ok, :m] = np.where(np.asarray(mask)[ok, :m], flow, 0.0)
    return out, beyond


def summaries(model, params, batch, opts) -> dict:
    model, params = unwrapped(model, params)
    query = query_of(model)
    out, mixed = _jitted(model, params, batch, query, opts.gradient_memory)
    real = np.asarray(batch.mask, bool)
    out = {k: np.where(real[:, None] if np.ndim(v) == 3 else real, np.asarray(v), 0.0)
           .astype(np.float32) for k, v in out.items()}
    rows = S.query_rows(batch.valid, query)
    out[FLOW], out[BEYOND] = flow_rows(mixed, batch.valid, rows, batch.mask)
    noise = random_scores(random_key(opts.seed, "summaries"), batch.index, batch.tokens.shape[1])
    out[RANDOM] = np.where(np.asarray(batch.mask), np.asarray(noise), 0.0).astype(np.float32)
    out[QUERY] = np.full(batch.tokens.shape[0], query == "first")
    return out


def _has_layers(model, params, batch) -> bool:
    model, params = unwrapped(model, params)
    if not has_self_attention(model):
        return False
    return int(jax.eval_shape(model.self_attention, params, batch).shape[0]) > 0


def _heatmaps(data, row: int) -> dict[str, np.ndarray]:
    layers = data.stages["summaries"][LAYERS][row]  # [L, T]
    return {f"self-attention, layer {layer + 1} (query row)": values
            for layer, values in enumerate(layers)}


SUMMARIES_STAGE = Stage(
    "summaries",
    summaries,
    (*SUMMARY_KEYS, LAYERS, RANDOM),
    ("seed",),
    "summaries_batch_size",
    importances=tuple(SUMMARY_LABELS.items()),
    requires=("self_attention_seam",),
    applies=_has_layers,
    summarize=functools.partial(report.summarize, keys=SUMMARY_KEYS, random=RANDOM,
                                beyond=BEYOND, query=QUERY, limit=FLOW_LIMIT),
    tables=report.tables,
    heatmaps=_heatmaps,
    heatmaps_after="sa_raw",
    verdict=report.verdict_rows,
    settings=SETTINGS,
    description="summaries of self-attention: raw, rollout, flow, gradient-weighted (Chefer), "
                "norm-based (Kobayashi 2020 / 2021), attribution (Hao); models with the seam",
)
