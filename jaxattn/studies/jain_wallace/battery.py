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

Headline figures for a verdict (``summary.json``):

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

from jaxattn.explain import agreement, erasure, faithfulness, plausibility
from jaxattn.explain.norm_importance import norm_importance
from jaxattn.report.tables import mean_std
from jaxattn.studies.registry import random_key
from jaxattn.studies.runner import Stage
from jaxattn.studies.self_attention.summaries import FLOW, SUMMARY_KEYS, SUMMARY_LABELS

# The importances every faithfulness / plausibility table compares (those computed), in order;
# the summaries of self-attention are there for the models that have the seam.
METHODS = ("attn", "grad", "grad_through", "loo", "ig", "norm", *SUMMARY_KEYS)
# ERASER also ranks by word leave-one-out (word pieces only: its score sits on each word's
# first piece, so a word's summed score is the deletion of the whole word).
ERASER_METHODS = (*METHODS, "loo_words")
# Many-weight erasure's rankings beyond its own: attention flow is left out, as it is NaN on
# rows beyond its length limit and a removal count cannot say "not computed".
ERASURE_RANKINGS = ("loo", "ig", *(k for k in SUMMARY_KEYS if k != FLOW))
RANDOM = "random"
RANDOM_LABEL = "random ranking (floor)"
CHANCE_LABEL = "chance (share of rationale tokens)"
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


# --------------------------------------------------------------------------------------------
# Summaries


def _methods(data, arrays: dict, suffix: str) -> list[str]:
    """The methods with results ``<method>.<suffix>`` in ``arrays``, in display order, random
    last."""
    present = [m for m in (*data.labels_of, RANDOM) if f"{m}.{suffix}" in arrays]
    return present


def _label(data, name: str) -> str:
    return RANDOM_LABEL if name == RANDOM else data.labels_of.get(name, name)


def _rank(values: dict[str, float], name: str, higher_better: bool) -> int | None:
    """1-based place of ``name`` among ``values`` (ignoring NaN)."""
    finite = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    if name not in finite:
        return None
    ordered = sorted(finite, key=lambda k: -finite[k] if higher_better else finite[k])
    return ordered.index(name) + 1


def _summarize_erasure(data) -> dict:
    res = data.stages["erasure"]
    length = data.mask.sum(-1)
    several = length > 1
    diff = res["jsd_top"] - res["jsd_random"]
    single = {
        "jsd_top": agreement.summarize(res["jsd_top"][several]),
        "jsd_random": agreement.summarize(res["jsd_random"][several]),
        "jsd_diff": agreement.summarize(diff[several]),
        "flip_top": float(res["flip_top"][several].mean()) if several.any() else None,
        "flip_random": float(res["flip_random"][several].mean()) if several.any() else None,
        "n": int(several.sum()),
    }
    rankings = [k[: -len(".count")] for k in res if k.endswith(".count")]
    pooled = {"random": [r for r in rankings if r.startswith("random")]}
    groups = {**{r: [r] for r in rankings if not r.startswith("random")}, **pooled}
    many = {}
    for group, names in groups.items():
        flipped = np.concatenate([res[f"{r}.flipped"] for r in names]).astype(bool)
        count = np.concatenate([res[f"{r}.count"] for r in names]).astype(np.float64)
        mass = np.concatenate([res[f"{r}.mass"] for r in names])
        n = np.tile(length, len(names)).astype(np.float64)
        keep = flipped & np.tile(several, len(names))  # Serrano & Smith
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = count / n
            # Mohankumar et al.: never-flipping instances count as 1.0; the length includes the
            # two boundary markers (SOS / EOS) of every jaxattn sequence.
            moh = np.where(flipped, count / (n + 2), 1.0)
        many[group] = {
            "serrano_smith": {
                "fraction": agreement.summarize(fraction[keep]),
                "count": agreement.summarize(count[keep]),
                "mass": agreement.summarize(mass[keep]),
                "share_flipped": float(flipped[np.tile(several, len(names))].mean())
                if several.any() else None,
            },
            "mohankumar": {"fraction": agreement.summarize(moh[n > 0])},
        }
    headline = {
        "flip_top": single["flip_top"],
        "flip_random": single["flip_random"],
        "jsd_diff_mean": single["jsd_diff"]["mean"],
        **{f"fraction_{g}": s["serrano_smith"]["fraction"]["mean"] for g, s in many.items()},
        **{f"mohankumar_{g}": s["mohankumar"]["fraction"]["mean"] for g, s in many.items()},
    }
    # Files of version 1 (no such option) removed at most n - 1 weights.
    meta = getattr(data, "meta", {}).get("erasure", {})
    limit = meta.get("options", {}).get("erasure_limit", "n-1")
    return {"erasure": {"single": single, "many": many, "headline": headline,
                        "erasure_limit": limit}}


def _summarize_eraser(data) -> dict:
    res = data.stages["eraser"]
    imps = data.importances()
    loo = imps.get("loo")
    methods = {}
    for name in _methods(data, res, "comprehensiveness"):
        comp, suff = res[f"{name}.comprehensiveness"], res[f"{name}.sufficiency"]
        real = data.mask.any(-1)
        entry = {
            "label": _label(data, name),
            "comprehensiveness": [agreement.summarize(c) for c in comp[real].T],
            "sufficiency": [agreement.summarize(s) for s in suff[real].T],
            "aopc_comprehensiveness": agreement.summarize(comp[real].mean(-1)),
            "aopc_sufficiency": agreement.summarize(suff[real].mean(-1)),
        }
        if loo is not None and name in imps:  # ferret's taucorr_loo
            entry["taucorr_loo"] = agreement.summarize(
                agreement.kendall_tau(loo, imps[name], data.mask)[0])
        methods[name] = entry
    aopc_c = {m: e["aopc_comprehensiveness"]["mean"] for m, e in methods.items()}
    aopc_s = {m: e["aopc_sufficiency"]["mean"] for m, e in methods.items()}
    headline = {
        "aopc_comprehensiveness": aopc_c,
        "aopc_sufficiency": aopc_s,
        "attention_rank_comprehensiveness": _rank(aopc_c, "attn", higher_better=True),
        "attention_rank_sufficiency": _rank(aopc_s, "attn", higher_better=False),
        "n_methods": len(methods),
    }
    # Files without the option (older) deleted tokens.
    option = getattr(data, "meta", {}).get("eraser", {}).get("options", {}).get("eraser_unit",
                                                                                 "piece")
    unit = faithfulness.resolve_unit(option, data.word_index)
    return {"eraser": {"bins": list(faithfulness.BINS), "methods": methods, "headline": headline,
                       "unit": unit}}


def _summarize_plausibility(data) -> dict:
    res = data.stages["plausibility"]
    methods = {}
    for name in _methods(data, res, "auprc"):
        entry = {"label": _label(data, name)}
        for measure in ("auprc", "p_k", "r_k", "f1_k", "p_5", "r_5", "f1_5"):
            entry[measure] = agreement.summarize(res[f"{name}.{measure}"])
        counts = (int(res[f"{name}.iou_{k}"].sum()) for k in ("matched", "predicted", "gold"))
        defined = np.isfinite(res[f"{name}.p_k"]).any()  # none: not computed on these rows
        entry["iou_f1"] = plausibility.micro_f1(*counts)["f1"] if defined else None
        methods[name] = entry
    auprc = {m: e["auprc"]["mean"] for m, e in methods.items()}
    chance = agreement.summarize(plausibility.chance_auprc(data.rationale, data.mask))
    headline = {"auprc": auprc, "attention_rank_auprc": _rank(auprc, "attn", higher_better=True),
                "iou_f1": {m: e["iou_f1"] for m, e in methods.items()},
                "chance": chance["mean"]}
    methods["chance"] = {"label": CHANCE_LABEL, "auprc": chance}
    return {"plausibility": {"methods": methods, "headline": headline}}


# --------------------------------------------------------------------------------------------
# Tables


def _ms(stats: dict, digits: int = 3) -> str:
    return mean_std(stats.get("mean"), stats.get("std"), digits)


def _erasure_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    er = summary["erasure"]
    single = er["single"]
    rows = [{"zeroed weight": "top", "output JSD": _ms(single["jsd_top"], 4),
             "decision flips": single["flip_top"], "n": single["n"]},
            {"zeroed weight": "random non-top", "output JSD": _ms(single["jsd_random"], 4),
             "decision flips": single["flip_random"], "n": single["n"]},
            {"zeroed weight": "top minus random", "output JSD": _ms(single["jsd_diff"], 4),
             "decision flips": None, "n": single["n"]}]
    many = []
    for name, stats in er["many"].items():
        ss, moh = stats["serrano_smith"], stats["mohankumar"]
        many.append({
            "ranking": RANKING_LABELS.get(name, name),
            "fraction removed (S&S)": _ms(ss["fraction"]),
            "count (S&S)": _ms(ss["count"], 2),
            "attention mass removed (S&S)": _ms(ss["mass"]),
            "share that flips": ss["share_flipped"],
            "n (S&S)": ss["fraction"]["n"],
            "fraction removed (Mohankumar)": _ms(moh["fraction"]),
        })
    return [
        ("Erasure (Serrano & Smith): one attention weight zeroed, hidden states fixed", rows),
        ("Erasure: attention weights removed in ranking order until the decision flips, "
         f"{LIMIT_LABELS.get(er.get('erasure_limit'), er.get('erasure_limit'))}. S&S: "
         "instances longer than 1 that flip; Mohankumar et al.: never-flipping counted as 1.0, "
         "length with SOS/EOS", many),
    ]


LIMIT_LABELS = {
    "all": 'erasure_limit = "all" (up to all n weights, the last leaving a zero context: '
           "Serrano & Smith's code)",
    "n-1": 'erasure_limit = "n-1" (at most n - 1 weights; one always stays)',
}

RANKING_LABELS = {
    "attention": "attention (high first)",
    "attention_low": "attention (low first)",
    "grad_attention": "gradient w.r.t. attention",
    "attention_x_grad": "attention x gradient",
    "attention_x_sign_grad": "attention x sign(gradient)",
    "random": "random (5 orders, pooled)",
    "loo": "leave-one-out",
    "ig": "integrated gradients",
    **{k: v for k, v in SUMMARY_LABELS.items() if k in ERASURE_RANKINGS},
}


UNIT_LABELS = {
    "piece": "top k% of the tokens deleted",
    "word": "top k% of the words deleted, every piece of each, a word scoring the sum of its "
            "pieces",
}


def _eraser_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    er = summary["eraser"]
    bins = [f"{round(100 * b)}%" for b in er["bins"]]
    units = UNIT_LABELS.get(er.get("unit", "piece"), er.get("unit"))
    tables = []
    for measure, title in (
        ("comprehensiveness", "ERASER comprehensiveness p(y|x) - p(y|x without top k%) "
                              f"(higher = more faithful; {units})"),
        ("sufficiency", "ERASER sufficiency p(y|x) - p(y|top k% only) (lower = more faithful; "
                        f"{units})"),
    ):
        rows = []
        for stats in er["methods"].values():
            row = {"importance": stats["label"]}
            row.update({b: _ms(s) for b, s in zip(bins, stats[measure])})
            row["AOPC"] = _ms(stats[f"aopc_{measure}"])
            if measure == "comprehensiveness":
                row["taucorr_loo"] = _ms(stats.get("taucorr_loo", {}))
            row["n"] = stats[f"aopc_{measure}"]["n"]
            rows.append(row)
        tables.append((title, rows))
    return tables


def _plausibility_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    rows = [{
        "importance": s["label"],
        "AUPRC": _ms(s["auprc"]),
        "P@k": _ms(s["p_k"]), "R@k": _ms(s["r_k"]), "F1@k": _ms(s["f1_k"]),
        "F1@5": _ms(s["f1_5"]),
        "IOU F1 (0.5)": "–" if s["iou_f1"] is None else s["iou_f1"],
        "n (AUPRC)": s["auprc"]["n"],
    } if "p_k" in s else {"importance": s["label"], "AUPRC": _ms(s["auprc"]),
                          "n (AUPRC)": s["auprc"]["n"]}
        for s in summary["plausibility"]["methods"].values()]
    return [("Plausibility against the rationale (k = the rationale's length; IOU F1: ERASER "
             "partial match, micro over the set)", rows)]


def _norm_heatmaps(data, row: int) -> dict[str, np.ndarray]:
    return {"norm-based, signed (logit share)": data.stages["norm"]["norm_signed"][row]}


BATTERY_SPECS: dict[str, Stage] = {
    "norm": Stage(
        "norm", norm_scores, ("norm", "norm_signed"), requires=("affine_decoder",),
        importances=(("norm", "norm-based (Kobayashi)"),),
        heatmaps=_norm_heatmaps, heatmaps_after="norm",
    ),
    "erasure": Stage(
        # version 2: many-weight erasure may remove all n weights (erasure_limit, default "all");
        # version 1 stopped at n - 1, so its files are recomputed.
        "erasure", erasure_tests, (), ("seed", "erasure_limit"), "erasure_batch_size",
        version=2, needs=ERASURE_RANKINGS,
        stream=3, requires=POOLING,
        summarize=_summarize_erasure, tables=_erasure_tables,
    ),
    "eraser": Stage(
        # Only tokens are deleted: every model runs it ([CLS] / [SEP] stay, as boundary markers).
        "eraser", eraser_tests, (), ("seed", "eraser_unit"), "eraser_batch_size",
        needs=ERASER_METHODS, stream=4,
        summarize=_summarize_eraser, tables=_eraser_tables,
    ),
    "plausibility": Stage(
        "plausibility", plausibility_tests, (), ("seed",), needs=METHODS, stream=5,
        # version 2: rows where an importance is undefined (NaN at a real token: attention flow
        # beyond its length limit) are left out of its scores; version 1 ranked them.
        version=2,
        applies=_has_rationale, summarize=_summarize_plausibility, tables=_plausibility_tables,
    ),
}
BATTERY_STAGES = tuple(BATTERY_SPECS)
