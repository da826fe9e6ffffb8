"""The report pieces of the ``summaries`` stage: its summary, the table "which summary of
attention is most faithful on this model", and its verdict rows.

Every figure is per word where the data has word pieces (a word's importance is the sum of its
pieces', :meth:`~jaxattn.studies.jain_wallace.summary.AnalysisData.word_values`): Kendall tau
against gradient and leave-one-out importance (and word leave-one-out, whose per-word value is
the deletion of the whole word), and AUPRC against the rationale. ERASER comprehensiveness /
sufficiency come from the ``eraser`` stage, which deletes whole words on word pieces (the top k%
of the words, each scoring the sum of its pieces) unless its ``eraser_unit`` option says
pieces. Rows whose attention flow was not solved (longer than the flow limit) are
NaN there and left out of every mean; the stage's summary says how many.
"""

from __future__ import annotations

import numpy as np

from jaxattn.explain import agreement
from jaxattn.report.published import SELF_ATTENTION_PUBLISHED
from jaxattn.report.tables import mean_std
from jaxattn.report.verdict_summaries import summary_rows

RULE = "a word's importance is the sum of its pieces'"
BASELINES = ("grad", "loo", "loo_words", "ig")
# The importances every method's per-word tau is taken with (those computed). Word LOO deletes
# whole words: its per-word value is the word's own deletion score.
REFERENCES = ("grad", "loo", "loo_words")
RANDOM_LABEL = "random ranking (floor)"
FLOW_WHY = ("the exact max-flow graph has L T^2 edges per token and instance (L layers, T "
            "positions), so rows longer than the limit are not solved; their flow is NaN and "
            "left out of every figure (use rollout there)")
TITLE = "Which summary of attention is most faithful on this model"


def per_word(data, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(<float64>[N, W] per-word values, <bool>[N, W] word mask); the tokens themselves when
    every token is a word."""
    if data.word_index is None:
        return np.asarray(values, np.float64), np.asarray(data.mask, bool)
    return data.word_values(values)


def _scored(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """<bool>[N] rows whose values are finite on every real position."""
    return np.all(np.isfinite(values) | ~mask, axis=-1)


def tau(data, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """<float64>[N] per-word Kendall tau-b of ``a`` and ``b``; NaN where either is not finite."""
    (wa, mask), (wb, _) = per_word(data, a), per_word(data, b)
    ok = _scored(wa, mask) & _scored(wb, mask)
    values, _ = agreement.kendall_tau(np.where(mask, np.nan_to_num(wa), 0.0),
                                      np.where(mask, np.nan_to_num(wb), 0.0), mask)
    return np.where(ok, values, np.nan)


def auprc(data, values: np.ndarray) -> np.ndarray | None:
    """<float64>[N] per-word AUPRC against the rationale (None without one); NaN for unscored
    rows and single-label ones."""
    if data.rationale is None:
        return None
    words, mask = per_word(data, values)
    rationale = (data.word_rationale() if data.word_index is not None
                 else np.asarray(data.rationale, bool))
    positive = rationale & mask
    single = (positive.sum(-1) == 0) | (positive.sum(-1) == mask.sum(-1))
    out = agreement.average_precision(np.nan_to_num(words), positive, mask)
    return np.where(single | ~_scored(words, mask), np.nan, out)


def summarize(data, keys, random: str, beyond: str, query: str, limit: int) -> dict:
    """``summary["self_attention_summaries"]``: per method (every summary present, gradient,
    LOO, IG, random) its label, per-word tau with gradient and LOO and per-word AUPRC."""
    res = data.stages["summaries"]
    imps = data.importances()
    scored = {k: imps[k] for k in (*keys, *BASELINES) if k in imps}
    scored["random"] = res[random]
    methods = {}
    for name, values in scored.items():
        entry = {"label": RANDOM_LABEL if name == "random" else data.labels_of.get(name, name),
                 "summary": name in keys}
        for other in REFERENCES:
            ref = imps.get(other)
            if ref is not None and other != name:
                entry[f"tau_{other}"] = agreement.summarize(tau(data, values, ref))
        found = auprc(data, values)
        if found is not None:
            entry["auprc"] = agreement.summarize(found)
        methods[name] = entry
    n_beyond = int(np.asarray(res[beyond]).sum())
    return {"self_attention_summaries": {
        "query": "[CLS] (first position)" if bool(np.asarray(res[query]).all()) else
                 "mean over the positions",
        "rule": RULE,
        "methods": methods,
        "flow": {"limit": limit, "beyond_limit": n_beyond, "n": int(len(res[beyond])),
                 "why": FLOW_WHY},
        "published": [dict(p) for p in SELF_ATTENTION_PUBLISHED],
    }}


def _ms(stats: dict | None, digits: int = 3) -> str | None:
    return None if not stats else mean_std(stats.get("mean"), stats.get("std"), digits)


def _eraser_of(summary: dict, name: str) -> dict:
    return (summary.get("eraser") or {}).get("methods", {}).get(name, {})


def faithfulness_rows(summary: dict) -> list[dict]:
    """One row per method: tau with gradient / LOO (per word), ERASER AOPC, AUPRC (per word)."""
    block = summary["self_attention_summaries"]
    words = "loo_words" in block["methods"]
    rows = []
    for name, m in block["methods"].items():
        eraser = _eraser_of(summary, name)
        label = m["label"]
        if name == "grad":
            label += " (its tau with LOO: the gradient~LOO baseline)"
        row = {
            "importance": label,
            "tau vs gradient (per word)": _ms(m.get("tau_grad"), 2) or "–",
            "tau vs LOO (per word)": _ms(m.get("tau_loo"), 2) or "–",
        }
        if words:
            row["tau vs word LOO (per word)"] = _ms(m.get("tau_loo_words"), 2) or "–"
        row |= {
            "ERASER comprehensiveness AOPC (higher better)":
                _ms(eraser.get("aopc_comprehensiveness")) or "eraser not run",
            "ERASER sufficiency AOPC (lower better)":
                _ms(eraser.get("aopc_sufficiency")) or "eraser not run",
        }
        if "auprc" in m:
            row["AUPRC vs rationale (per word)"] = _ms(m["auprc"])
        n = (m.get("tau_loo") or m.get("tau_grad") or {}).get("n")
        row["n (tau)"] = n
        rows.append(row)
    return rows


def tables(summary: dict) -> list[tuple[str, list[dict]]]:
    block = summary["self_attention_summaries"]
    flow = block["flow"]
    deletes = ("whole words" if (summary.get("eraser") or {}).get("unit") == "word"
               else "word pieces")
    title = (f"{TITLE} (query row: {block['query']}; per word: {block['rule']}, word LOO's the "
             f"deletion of the whole word; ERASER deletes {deletes}; the random row's ERASER "
             "figures are the eraser stage's own random ranking)")
    limits = [{"summary": "attention flow", "length limit (positions)": flow["limit"],
               "rows beyond the limit": flow["beyond_limit"], "rows": flow["n"],
               "why": flow["why"]}]
    published = [{"source": p["source"], "summaries": p["summaries"], "finding": p["finding"],
                  "comparability": p["comparability"]} for p in block.get("published", [])]
    return [(title, faithfulness_rows(summary)),
            ("Attention flow: rows beyond its length limit", limits),
            ("Published comparison points for the summaries of attention", published)]


def verdict_rows(evidence):
    return summary_rows(evidence)
