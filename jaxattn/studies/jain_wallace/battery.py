"""The post-2019 stages of the J&W battery: norm-based importance, erasure, ERASER faithfulness
and plausibility (one compute function and one :class:`Stage` each, as in :mod:`.stages`).

============  ================================================================================
norm          norm-based importance ``||a_t W h_t||`` (models with an affine decoder only)
erasure       Serrano & Smith: zero the top / a random attention weight; remove weights in a
              ranking's order until the decision flips, up to all n weights
              (``erasure_limit = "all"``, their code's convention, the default) or n - 1
              (``"n-1"``)
eraser        ERASER comprehensiveness / sufficiency at 1..50% and their AOPC, every importance
              (the summaries of self-attention included) and a random floor; ferret's
              ``taucorr_loo``; tokens are only deleted, so every model runs it
plausibility  AUPRC, top-k token P/R/F1 and IOU F1 against the data's rationale (data sets with
              rationales only)
============  ================================================================================

What they add to the report is :mod:`.battery_report`; its headline figures for a verdict
(``summary.json``):

* ``erasure.headline``: ``flip_top`` / ``flip_random`` (share of instances whose decision flips
  when the top / a random weight is zeroed), ``jsd_diff_mean``, and per ranking the Serrano &
  Smith fraction removed before a flip (``fraction_<ranking>``, mean over flipping instances;
  lower = the ranking finds the decisive tokens sooner) and Mohankumar et al.'s
  (``mohankumar_<ranking>``, never-flipping instances counted as 1.0);
* ``eraser.headline``: ``attention_rank_comprehensiveness`` / ``attention_rank_sufficiency``
  (1 = best of ``n_methods``, random floor included), ``aopc_comprehensiveness`` and
  ``aopc_sufficiency`` per method;
* ``plausibility.headline``: ``auprc`` per method (``random`` the floor) and
  ``attention_rank_auprc``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.explain import erasure, faithfulness, plausibility
from jaxattn.explain.norm_importance import norm_importance
from jaxattn.studies.jain_wallace import battery_report as report
from jaxattn.studies.jain_wallace.battery_report import (
    ERASER_METHODS,
    ERASURE_RANKINGS,
    METHODS,
    RANDOM,
)
from jaxattn.studies.registry import random_key
from jaxattn.studies.stage import Stage

# The stages that read, replace or decode through the pooling attention require its seam
# (ERASER only deletes tokens: it runs on any model).
POOLING = ("pooling",)


def _key(opts, name: str) -> jax.Array:
    return random_key(opts.seed, name)


def _random_scores(opts, name: str, batch) -> jnp.ndarray:
    return faithfulness.random_scores(_key(opts, name), batch.index, batch.tokens.shape[1])


# --------------------------------------------------------------------------------------------
# Computations


def norm_scores(model, params, batch, opts):
    res = norm_importance(model, params, batch)
    return {"norm": res.norm, "norm_signed": res.signed}


def erasure_tests(model, params, batch, opts, given):
    single, many, _ = erasure.erasure(model, params, batch, _key(opts, "erasure"), given,
                                      limit=opts.erasure_limit)
    out = {"jsd_top": single.jsd_top, "jsd_random": single.jsd_random,
           "flip_top": single.flip_top, "flip_random": single.flip_random}
    for r, name in enumerate(erasure.ranking_names(tuple(given))):
        out[f"{name}.flipped"], out[f"{name}.count"] = many.flipped[r], many.count[r]
        out[f"{name}.mass"] = many.mass[r]
    return out


def unscored(scores, mask) -> np.ndarray:
    """<bool>[B] rows a ranking leaves unscored (not finite on a real token: attention flow
    beyond its length limit)."""
    scores, mask = np.asarray(scores), np.asarray(mask, bool)
    return ~np.all(np.isfinite(scores) | ~mask, axis=-1)


def eraser_tests(model, params, batch, opts, given):
    names = [*sorted(given), RANDOM]
    missing = [unscored(given[n], batch.mask) for n in sorted(given)]
    scores = jnp.stack([*(jnp.nan_to_num(given[n]) for n in sorted(given)),
                        _random_scores(opts, "eraser", batch)])
    # "auto" deletes words wherever the batch knows them: on words of one token each that is
    # deleting tokens, number for number, and every batch shares one program.
    unit = "piece" if opts.eraser_unit == "piece" or batch.word_index is None else "word"
    comp, suff, p_full = faithfulness.comprehensiveness_sufficiency(model, params, batch, scores,
                                                                    unit=unit)
    comp, suff = np.asarray(comp), np.asarray(suff)
    out = {"p_full": p_full}
    for m, name in enumerate(names):
        gone = missing[m][:, None] if m < len(missing) else False
        out[f"{name}.comprehensiveness"] = np.where(gone, np.nan, comp[m])
        out[f"{name}.sufficiency"] = np.where(gone, np.nan, suff[m])
    return out


def plausibility_tests(model, params, batch, opts, given):
    """Per-instance plausibility (NumPy on the host: a few comparisons per token)."""
    scored = {**given, RANDOM: _random_scores(opts, "plausibility", batch)}
    rationale, mask = np.asarray(batch.rationale), np.asarray(batch.mask)
    out = {}
    for name, scores in scored.items():
        gone = unscored(scores, mask)
        measures = plausibility.plausibility(np.nan_to_num(np.asarray(scores)), rationale, mask)
        for measure, values in measures.items():
            if measure.startswith("iou_"):  # span counts: an unscored row counts nothing
                out[f"{name}.{measure}"] = np.where(gone, 0, values)
            else:
                out[f"{name}.{measure}"] = np.where(gone, np.nan, values)
    return out


def _has_rationale(model, params, batch) -> bool:
    return batch.rationale is not None


BATTERY_SPECS: dict[str, Stage] = {
    "norm": Stage(
        "norm", norm_scores, ("norm", "norm_signed"), requires=("affine_decoder",),
        importances=(("norm", "norm-based (Kobayashi)"),),
        heatmaps=report.norm_heatmaps, heatmaps_after="norm",
    ),
    "erasure": Stage(
        # version 2: many-weight erasure may remove all n weights (erasure_limit, default "all");
        # version 1 stopped at n - 1, so its files are recomputed.
        "erasure", erasure_tests, (), ("seed", "erasure_limit"), "erasure_batch_size",
        version=2, needs=ERASURE_RANKINGS,
        stream=3, requires=POOLING,
        summarize=report.summarize_erasure, tables=report.erasure_tables,
    ),
    "eraser": Stage(
        # Only tokens are deleted: every model runs it ([CLS] / [SEP] stay, as boundary markers).
        "eraser", eraser_tests, (), ("seed", "eraser_unit"), "eraser_batch_size",
        needs=ERASER_METHODS, stream=4,
        summarize=report.summarize_eraser, tables=report.eraser_tables,
    ),
    "plausibility": Stage(
        "plausibility", plausibility_tests, (), ("seed",), needs=METHODS, stream=5,
        # version 2: rows where an importance is undefined (NaN at a real token: attention flow
        # beyond its length limit) are left out of its scores; version 1 ranked them.
        version=2,
        applies=_has_rationale, summarize=report.summarize_plausibility, tables=report.plausibility_tables,
    ),
}
BATTERY_STAGES = tuple(BATTERY_SPECS)
