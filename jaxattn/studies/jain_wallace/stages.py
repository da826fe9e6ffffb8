"""The Jain & Wallace stages: one pure per-batch function and one :class:`Stage` each.

=========  ===================================================================================
attention  the model's attention and output distribution (always run; the others refer to it)
grad       gradient importance below attention (J&W) and through it
loo        leave-one-out: output TVD when each token is deleted
loo_words  leave-one-out of whole words: every piece of a word deleted at once (data of word
           pieces only); the score sits on the word's first piece, so the per-word sum of the
           reports is the word's own deletion
ig         integrated gradients (zero baseline on the real tokens)
perm       attention permuted over the real tokens P times; per instance the median output TVD
adv        K adversarial attentions per instance; max JSD within epsilon
self_attn  a Transformer's self-attention per layer: the attention each real token receives,
           averaged over heads and real query positions (only models with self-attention layers)
summaries  token importances summarising self-attention (raw, rollout, flow, Chefer, Kobayashi,
           Hao; :mod:`jaxattn.studies.self_attention.summaries`; models with the seam)
=========  ===================================================================================

plus the post-2019 stages of :mod:`.battery` (norm, erasure, eraser, plausibility). What
``perm``, ``adv`` and ``self_attn`` add to the report is :mod:`.stage_reports`.

Each is registered in :mod:`jaxattn.studies.registry`; a stage of your own is one
:class:`Stage` passed to :func:`register_stage` or to ``jaxattn.analyze(..., stages=[...])``
(``examples/custom_stage.py``): its summary, table rows, figures, heatmap rows and verdict row
ride along on it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import (
    AttentionModel,
    Batch,
    Params,
    forward,
    has_pooling_attention,
    has_self_attention,
    predict_logits,
)
from jaxattn.explain import importance, interventions
from jaxattn.explain.faithfulness import has_multi_piece_words
from jaxattn.runtime.memory import deletion_rows_cap, pass_bytes, passes_at_once
from jaxattn.studies import registry
from jaxattn.studies.jain_wallace import stage_reports as reports
from jaxattn.studies.jain_wallace.battery import BATTERY_SPECS, POOLING
from jaxattn.studies.self_attention import heads as head_stages
from jaxattn.studies.self_attention.summaries import SUMMARIES_STAGE
from jaxattn.studies.stage import Stage

# Finer than the training buckets: leave-one-out and the adversarial search pay for every padded
# position, and one more compilation per bucket is cheap next to that.
ANALYSIS_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@dataclasses.dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of the J&W analyses (``**options``). Batch sizes count instances."""

    # Small batches keep each step's arrays in cache: on a 2-core CPU (one device per core) with
    # the BiLSTM these were the fastest sizes per stage (benchmarks/analysis_speed.py).
    batch_size: int = 32  # attention, grad
    loo_batch_size: int = 16
    # Deleted positions evaluated at once (x loo_batch_size sequences), fewer at long inputs for
    # a self-attention model (jaxattn.runtime.memory.deletion_rows_cap: speed, not results).
    loo_chunk: int = 1
    ig_batch_size: int = 32
    ig_steps: int = 50
    # Path points evaluated at once (x ig_batch_size sequences): on CPU 2 ran 1.13x to 1.26x
    # faster than 10 for MiniLM and 1.16x for the BiLSTM, in less memory (benchmarks/RESULTS.md).
    ig_chunk: int = 2  # at most
    # GiB that a batch or a chunk of differentiated passes (IG's path points, the attention
    # summaries' layers and attribution steps) may hold for a self-attention model: both shrink
    # at long inputs (jaxattn.runtime.memory). Memory and speed only, not results.
    gradient_memory: float = 2.0
    perm_batch_size: int = 16
    num_permutations: int = 100
    adv_batch_size: int = 32
    num_adversaries: int = 5
    adv_steps: int = 500
    adv_learning_rate: float = 0.01
    epsilon: float = 0.05
    erasure_batch_size: int = 32
    # Many-weight erasure may remove up to all n weights ("all", Serrano & Smith's code: the last
    # removal leaves a zero context) or at most n - 1 ("n-1"); jaxattn.explain.erasure.LIMITS.
    erasure_limit: str = "all"
    eraser_batch_size: int = 16
    # ERASER's rationales: of whole words ("word": every piece of a chosen word deleted), of
    # tokens ("piece"), or "auto": words when some word spans several pieces, else tokens.
    eraser_unit: str = "auto"
    summaries_batch_size: int = 8  # the attention summaries hold [L, B, H, T, T] maps per batch
    topk: int = 5
    # Head-level stages (jaxattn.studies.self_attention.heads): heads replaces each (layer,
    # head)'s attention by the kinds named; permutations per instance (J&W use 100 for pooling
    # attention); interventions per vmapped slice (memory, not results).
    heads_batch_size: int = 16
    head_interventions: str = "uniform,permute,donor,zero"
    head_permutations: int = 20
    heads_chunk: int = 12
    # head_adv: J&W's search on the layers named ("last", "all" or 1-based "1,6"), all heads of
    # a layer at once ("layer") or one head at a time ("head"), for the instances whose split
    # row is below head_adv_instances (a few minutes for MiniLM on 2 CPU cores).
    head_adv_batch_size: int = 8
    head_adv_layers: str = "last"
    head_adv_scope: str = "layer"
    head_adv_instances: int = 16
    head_adv_steps: int = 100
    seed: int = 0
    samples: int = 20
    buckets: tuple[int, ...] = ANALYSIS_BUCKETS
    # At most this many of ``buckets`` are compiled for, those that pad the analysed rows least
    # (jaxattn.studies.buckets): each bucket is one more program per stage.
    max_buckets: int = 3


@functools.partial(jax.jit, static_argnames=("model",))
def _forward(model: AttentionModel, params: Params, batch: Batch):
    logits, attn = forward(model, params, batch)
    return model.probs(logits), attn


@functools.partial(jax.jit, static_argnames=("model",))
def _outputs(model, params: Params, batch: Batch):
    return model.probs(predict_logits(model, params, batch))


def attention_outputs(model, params, batch, opts):
    """The output distribution, and the pooling attention of a model that has one (a base-only
    model, e.g. a [CLS] head, gives ``probs`` alone: the report then has no attention rows)."""
    if not has_pooling_attention(model):
        return {"probs": _outputs(model, params, batch)}
    probs, attn = _forward(model, params, batch)
    return {"probs": probs, "attn": attn}


def gradients(model, params, batch, opts):
    below, through = importance.gradient_importances(model, params, batch)
    return {"grad": below, "grad_through": through}


def leave_one_out(model, params, batch, opts):
    return {"loo": importance.leave_one_out(
        model, params, batch, chunk=opts.loo_chunk,
        max_rows=deletion_rows_cap(model, params, batch))}


def leave_one_out_words(model, params, batch, opts):
    return {"loo_words": importance.leave_one_out_words(
        model, params, batch, chunk=opts.loo_chunk,
        max_rows=deletion_rows_cap(model, params, batch))}


def _has_word_pieces(model, params, batch) -> bool:
    """Whether some word of ``batch`` spans several pieces (else word LOO is token LOO)."""
    return has_multi_piece_words(batch.word_index)


@functools.partial(jax.jit, static_argnames=("model", "steps", "chunk"))
def _integrated_gradients(model, params, batch, steps: int, chunk: int):
    # One program per bucket: normalising outside the jit compiled several small ones more.
    scores = importance.integrated_gradients(model, params, batch, steps, chunk)
    return importance.normalize_magnitude(scores, batch.mask), scores


def integrated_gradients(model, params, batch, opts):
    chunk = passes_at_once(opts.ig_chunk, batch.tokens.shape[0],
                           pass_bytes(model, params, batch), opts.gradient_memory)
    ig, signed = _integrated_gradients(model, params, batch, opts.ig_steps, chunk)
    return {"ig": ig, "ig_signed": signed}


def random_key(opts: AnalysisOptions, name: str) -> jax.Array:
    """Stage ``name``'s own stream of the analysis seed (:func:`registry.random_key`)."""
    return registry.random_key(opts.seed, name)


def permutations(model, params, batch, opts):
    res = interventions.permute_attention(
        model, params, batch, random_key(opts, "perm"), opts.num_permutations
    )
    return {"perm_tvd": res.tvd, "median_tvd": res.median_tvd}


def adversaries(model, params, batch, opts):
    res = interventions.search_adversarial_attention(
        model,
        params,
        batch,
        random_key(opts, "adv"),
        num_adversaries=opts.num_adversaries,
        steps=opts.adv_steps,
        learning_rate=opts.adv_learning_rate,
        epsilon=opts.epsilon,
    )
    return {
        "adv_attn": res.attn,
        "adv_tvd": res.tvd,
        "adv_jsd": res.jsd,
        "max_jsd": res.max_jsd,
        "found": res.found,
        "best_attn": res.best_attn,
        "best_tvd": res.best_tvd,
    }


def received_attention(maps: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """The attention each real token receives in one instance, layer by layer.

    Args:
      maps: <float32>[L, heads, T, T] self-attention, ``maps[l, h, q, k]`` the weight query ``q``
        gives key ``k``.
      mask: <bool>[T] real tokens.
    Returns:
      <float32>[L, T]: at a real key ``k``, the mean of ``maps[l, h, q, k]`` over heads ``h`` and
      real queries ``q``; 0 at other positions (boundary markers, padding) and for an instance
      without real tokens. Not renormalised: a layer's row sums to the share of attention the
      real queries give to real keys (the rest goes to the boundary markers).
    """
    real = mask.astype(maps.dtype)
    per_query = maps.mean(axis=1)  # [L, T, T]
    received = jnp.einsum("q,lqk->lk", real, per_query) / jnp.maximum(real.sum(), 1.0)
    return received * real[None]


@functools.partial(jax.jit, static_argnames=("model",))
def _received(model: AttentionModel, params: Params, batch: Batch) -> jnp.ndarray:
    maps = model.self_attention(params, batch)  # [L, B, heads, T, T]
    return jax.vmap(received_attention, in_axes=(1, 0))(maps, batch.mask)  # [B, L, T]


def self_attention_received(model, params, batch, opts):
    return {"self_attn": _received(model, params, batch)}


def self_attention_layers(model: AttentionModel, params: Params, batch: Batch) -> int:
    """The number of self-attention layers ``model`` gives for ``batch`` (0 without
    ``self_attention``); only shapes are evaluated."""
    if not has_self_attention(model):
        return 0
    return int(jax.eval_shape(model.self_attention, params, batch).shape[0])


def _has_self_attention(model, params, batch) -> bool:
    return self_attention_layers(model, params, batch) > 0


STAGE_SPECS: dict[str, Stage] = {
    "attention": Stage(
        "attention", attention_outputs, ("attn",), importances=(("attn", "attention"),),
    ),
    "grad": Stage(
        "grad",
        gradients,
        ("grad", "grad_through"),
        importances=(
            ("grad", "gradient (below attention)"),
            ("grad_through", "gradient (through attention)"),
        ),
    ),
    "loo": Stage(
        "loo", leave_one_out, ("loo",), (), "loo_batch_size",
        importances=(("loo", "leave-one-out"),), rows_apart=True,
    ),
    "loo_words": Stage(
        "loo_words", leave_one_out_words, ("loo_words",), (), "loo_batch_size",
        importances=(("loo_words", "leave-one-out (whole words)"),), rows_apart=True,
        applies=_has_word_pieces,
        skip_note="every word is a single token (a word vocabulary): word leave-one-out is "
                  "leave-one-out",
    ),
    "ig": Stage(
        "ig", integrated_gradients, ("ig", "ig_signed"), ("ig_steps",), "ig_batch_size",
        importances=(("ig", "integrated gradients"),),
    ),
    "perm": Stage(
        "perm", permutations, (), ("num_permutations", "seed"), "perm_batch_size", stream=1,
        requires=POOLING, summarize=reports.summarize_perm, tables=reports.perm_tables,
        figures=reports.perm_figures, facts=reports.perm_facts,
    ),
    "adv": Stage(
        "adv",
        adversaries,
        ("adv_attn", "best_attn"),
        ("num_adversaries", "adv_steps", "adv_learning_rate", "epsilon", "seed"),
        "adv_batch_size",
        stream=2,
        requires=POOLING,
        summarize=reports.summarize_adv,
        tables=reports.adv_tables,
        figures=reports.adv_figures,
        facts=reports.adv_facts,
        heatmaps=reports.adv_heatmaps,
    ),
    "self_attn": Stage(
        "self_attn",
        self_attention_received,
        ("self_attn",),
        requires=("self_attention",),
        applies=_has_self_attention,
        summarize=reports.summarize_self_attn,
        tables=reports.self_attn_tables,
        heatmaps=reports.self_attn_heatmaps,
        heatmaps_after="attn",
    ),
    # Before the battery: erasure, eraser and plausibility score its importances too.
    "summaries": SUMMARIES_STAGE,
    **BATTERY_SPECS,
    **head_stages.HEAD_SPECS,
}
_DESCRIPTIONS = {
    "attention": "the model's attention and output distribution (always run)",
    "grad": "gradient importance below attention (J&W) and through it",
    "loo": "leave-one-out: output TVD when each token is deleted",
    "loo_words": "leave-one-out of whole words (every piece of a word deleted; word pieces only)",
    "ig": "integrated gradients (zero baseline on the real tokens)",
    "perm": "attention permuted P times over the real tokens; median output TVD",
    "adv": "K adversarial attentions per instance; max JSD within epsilon",
    "self_attn": "self-attention each token receives, per layer (models with self-attention)",
    "norm": "norm-based importance (Kobayashi et al. 2020; affine decoders)",
    "erasure": "attention weights erased until the decision flips (Serrano & Smith 2019)",
    "eraser": "ERASER comprehensiveness, sufficiency and AOPC of every importance",
    "plausibility": "every importance against the human rationale (data with rationales)",
    **head_stages.DESCRIPTIONS,
}
for _name, _stage in STAGE_SPECS.items():
    registry.register_stage(dataclasses.replace(
        _stage, description=_DESCRIPTIONS.get(_name, _stage.description)))
# A stage the model cannot run (its ``requires`` not offered: perm, adv, erasure, eraser,
# norm without the pooling seam; or its ``applies`` False: self_attn without self-attention
# layers) is skipped, whether chosen or by default. grad, loo and ig need only the base contract.
# The registry itself: stages registered later (a user's) are seen wherever this is read.
STAGE_SPECS = registry.REGISTRY
providers = registry.providers
importance_labels = registry.importance_labels
list_stages = registry.list_stages
register_stage = registry.register_stage
