"""What the battery's stages (:mod:`.battery`) add to the report: the summaries of erasure,
ERASER and plausibility (with each method's rank among the importances and the random floor),
their tables and the norm-based heatmap row."""

from __future__ import annotations

import numpy as np

from jaxattn.explain import agreement, faithfulness, plausibility
from jaxattn.report.tables import mean_std
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


def summarize_erasure(data) -> dict:
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


def summarize_eraser(data) -> dict:
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


def summarize_plausibility(data) -> dict:
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


def erasure_tables(summary: dict) -> list[tuple[str, list[dict]]]:
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


def eraser_tables(summary: dict) -> list[tuple[str, list[dict]]]:
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


def plausibility_tables(summary: dict) -> list[tuple[str, list[dict]]]:
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


def norm_heatmaps(data, row: int) -> dict[str, np.ndarray]:
    return {"norm-based, signed (logit share)": data.stages["norm"]["norm_signed"][row]}
