"""The planted-shortcut test (Bastings et al. 2022): does each salience method rank first the
word the model was trained to rely on?

On data whose rationale marks a planted shortcut word (``sst2_shortcut``, the single-token
variant of :mod:`jaxattn.data.corpora.sst2_shortcut`; ``synthetic``'s planted class words), the
stage ``shortcut``

* checks reliance: the model's accuracy on the instances that carry the planted word, with it
  (the ``attention`` stage's outputs) and without it (the same rows with the planted positions
  deleted, :func:`~jaxattn.data.batching.keep_tokens`: the text as it was before planting). The
  drop says whether the model relies on the shortcut; below ``RELIANCE_DROP`` the ranks test
  little, as Bastings et al. note (a method cannot be blamed for missing a word the model
  ignores);
* ranks the planted word under every token importance the analysis computed (``needs``: every
  importance key registered before this stage, read per piece in the stage file; the summary
  reads every importance present, so later ones count too), per word: a word's importance is the
  sum of its pieces' (:meth:`AnalysisData.word_values`). Per instance with ``k >= 1`` planted
  words among ``n`` words:

  - ``rank``: 1 + the number of unplanted words scoring at least as high as the best planted
    word (1 = top; ties count against the method);
  - ``p_at_1``: 1 when ``rank`` is 1, else 0 (precision at 1 of the top word);
  - ``auprc``: average precision of the scores for the planted words
    (:func:`jaxattn.explain.agreement.average_precision`; ``1 / rank`` for one planted word);

  with a random ranking's expectations beside them (``k/n``, ``(n + 1)/(k + 1)``, ``k/n``).

The verdict row says whether the model relies on the shortcut and which method ranks it first
most often. Bastings et al. found that no method finds the shortcut reliably in every setting:
gradient-based methods often did better than attention, and the results varied across models
and shortcut types; this stage lets a run check its own.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxattn.core.protocol import predict_logits
from jaxattn.data.batching import keep_tokens
from jaxattn.explain import agreement
from jaxattn.report.evidence import (
    AGAINST,
    INCOMPLETE,
    NOT_APPLICABLE,
    SUPPORTS,
    Evidence,
    Row,
    analyze_command,
    get_path,
    href,
    not_run,
    number,
)
from jaxattn.report.tables import format_value, mean_std
from jaxattn.studies import registry
from jaxattn.studies.jain_wallace import stages as _builtin  # noqa: F401  (registers the keys)
from jaxattn.studies.stage import Stage

NAME = "shortcut"
RELIANCE_DROP = 0.05  # accuracy drop (with minus without the word) that counts as reliance
# Attention counts as finding the shortcut as often as the others when its P@1 is within this of
# their median: a model that relies on one planted word can let every method find it almost
# always, and a hundredth apart is no difference to read.
MARGIN = 0.05
MEASURES = ("p_at_1", "rank", "auprc")
SOURCE = "Bastings et al. 2022"


# --------------------------------------------------------------------------------------------
# The measures


def shortcut_ranks(scores: np.ndarray, planted: np.ndarray, mask: np.ndarray) -> dict:
    """Where each instance's planted tokens stand in ``scores``.

    Args:
      scores: <float>[N, T] importance (high = important).
      planted: <bool>[N, T] the planted positions.
      mask: <bool>[N, T] the tokens that are ranked.
    Returns:
      ``{"rank", "p_at_1", "auprc"}``, each <float64>[N] (see the module docstring), NaN where
      an instance has no planted token.
    """
    scores = np.asarray(scores, np.float64)
    mask = np.asarray(mask, bool)
    planted = np.asarray(planted, bool) & mask
    has = planted.any(-1)
    best = np.where(planted, scores, -np.inf).max(-1, initial=-np.inf)
    above = (mask & ~planted & (scores >= best[:, None])).sum(-1)
    rank = np.where(has, 1.0 + above, np.nan)
    p_at_1 = np.where(has, (rank == 1).astype(np.float64), np.nan)
    return {"rank": rank, "p_at_1": p_at_1, "auprc": agreement.average_precision(scores, planted,
                                                                                mask)}


def chance_ranks(planted: np.ndarray, mask: np.ndarray) -> dict:
    """A random ranking's expected ``p_at_1`` (k/n), ``rank`` ((n + 1)/(k + 1)) and, as the
    plausibility stage's chance, ``auprc`` (k/n), per instance <float64>[N] (NaN without a
    planted token)."""
    k = (np.asarray(planted, bool) & np.asarray(mask, bool)).sum(-1).astype(np.float64)
    n = np.asarray(mask, bool).sum(-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(k > 0, k / n, np.nan)
        rank = np.where(k > 0, (n + 1) / (k + 1), np.nan)
    return {"p_at_1": share, "rank": rank, "auprc": share}


def _word_level(data, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-word values and word mask: pieces summed into their words, or the tokens themselves
    under a word vocabulary."""
    if data.word_index is None:
        return np.asarray(values, np.float64), data.mask
    return data.word_values(values)


# --------------------------------------------------------------------------------------------
# The computation


@functools.partial(jax.jit, static_argnames=("model",))
def _probs_without(model, params, batch):
    removed = keep_tokens(batch, ~(batch.rationale & batch.mask))
    return model.probs(predict_logits(model, params, removed))


def shortcut_tests(model, params, batch, opts, given):
    """Per row: the output distribution with the planted tokens deleted, and the piece-level
    measures of every given importance (NumPy on the host)."""
    out = {"probs_removed": _probs_without(model, params, batch)}
    planted, mask = np.asarray(batch.rationale), np.asarray(batch.mask)
    for key, scores in given.items():
        for measure, values in shortcut_ranks(np.asarray(scores), planted, mask).items():
            out[f"{key}.{measure}"] = values
    return out


def _has_planted(model, params, batch) -> bool:
    return batch.rationale is not None


# --------------------------------------------------------------------------------------------
# Summary, tables, verdict


def summarize_shortcut(data) -> dict:
    """``{"shortcut": {...}}``: reliance, per-word measures per importance, chance, headline."""
    res = data.stages[NAME]
    planted_pieces = data.rationale & data.mask
    has = planted_pieces.any(-1)
    planted, word_mask = _word_level(data, planted_pieces.astype(np.float64))
    planted = planted > 0
    labels = np.asarray(data.labels)
    with_word = data.probs.argmax(-1) == labels
    without = res["probs_removed"].argmax(-1) == labels
    n = int(has.sum())
    acc_with = float(with_word[has].mean()) if n else None
    acc_without = float(without[has].mean()) if n else None
    drop = None if n == 0 else acc_with - acc_without
    changed = (data.probs.argmax(-1) != res["probs_removed"].argmax(-1))[has]
    reliance = {
        "accuracy_with": acc_with, "accuracy_without": acc_without, "drop": drop,
        "predictions_changed": float(changed.mean()) if n else None, "n": n,
        "relies": None if drop is None else bool(drop >= RELIANCE_DROP),
        "threshold": RELIANCE_DROP,
    }
    methods = {}
    for key, values in data.importances().items():
        words, _ = _word_level(data, values)
        ranks = shortcut_ranks(words, planted, word_mask)
        methods[key] = {"label": data.labels_of.get(key, key),
                        **{m: agreement.summarize(ranks[m][has]) for m in MEASURES}}
    chance = chance_ranks(planted, word_mask)
    p1 = {key: m["p_at_1"]["mean"] for key, m in methods.items()}
    finite = {k: v for k, v in p1.items() if v is not None and np.isfinite(v)}
    first = max(finite, key=lambda k: (finite[k], -methods[k]["rank"]["mean"])) if finite else None
    attn_rank = None
    if "attn" in finite:
        attn_rank = 1 + sum(v > finite["attn"] for k, v in finite.items() if k != "attn")
    return {NAME: {
        "level": "word (a word's importance is the sum of its pieces')",
        "reliance": reliance,
        "methods": methods,
        "chance": {m: agreement.summarize(chance[m][has]) for m in MEASURES},
        "headline": {"p_at_1": p1, "most_often_first": first, "attention_rank_p_at_1": attn_rank,
                     "n_methods": len(finite)},
    }}


def _shortcut_facts(data, row: int) -> list[str]:
    if not (data.rationale[row] & data.mask[row]).any():
        return []
    probs = data.stages[NAME]["probs_removed"][row]
    top = int(probs.argmax())
    return [f"without the planted word: predicted {data.class_names[top]} (p {probs[top]:.3f})"]


def _shortcut_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    sc = summary[NAME]
    rel = sc["reliance"]
    reliance = [{
        "accuracy with the planted word": rel["accuracy_with"],
        "accuracy without it": rel["accuracy_without"],
        "drop": rel["drop"],
        "predictions changed": rel["predictions_changed"],
        "relies (drop >= threshold)": rel["relies"],
        "threshold": rel["threshold"],
        "n": rel["n"],
    }]
    def row(label: str, stats: dict) -> dict:
        def ms(measure: str, digits: int) -> str:
            mean, std = stats[measure]["mean"], stats[measure].get("std")
            return format_value(mean, digits) if std is None else mean_std(mean, std, digits)

        return {"importance": label, "P@1": ms("p_at_1", 3), "mean rank (1 = top)": ms("rank", 2),
                "AUPRC": ms("auprc", 3), "n": stats["rank"]["n"]}

    rows = [row(m["label"], m) for m in sc["methods"].values()]
    chance = {m: {"mean": s["mean"], "n": s["n"]} for m, s in sc["chance"].items()}
    rows.append(row("chance (random ranking)", chance))
    return [
        ("Planted shortcut: reliance (accuracy on the planted instances with and without the "
         "planted word)", reliance),
        ("Planted shortcut: where each importance ranks the planted word, per word", rows),
    ]


def shortcut_verdict(ev: Evidence) -> Row:
    test = "planted shortcut: is it ranked first?"
    compared = "the other importance methods' precision at 1, and chance"
    sc = get_path(ev.jw, NAME)
    if not sc:
        return not_run(test, compared, SOURCE, analyze_command(ev, NAME))
    link = href(ev.jw_page, f"stage-{NAME}")
    rel, head, methods = sc["reliance"], sc["headline"], sc["methods"]
    if rel["n"] == 0:
        return Row(test, "–", compared, "no analysed instance carries a planted word",
                   NOT_APPLICABLE, SOURCE, link)
    first = head["most_often_first"]
    p1 = {k: v for k, v in head["p_at_1"].items() if v is not None}
    label = methods[first]["label"] if first else "none"
    figure = (f"accuracy {number(rel['accuracy_with'], '.1f', 100)}% with the planted word, "
              f"{number(rel['accuracy_without'], '.1f', 100)}% without; ranked first most often "
              f"by {label} (P@1 {number(p1.get(first), '.2f')})")
    if "attn" in p1:
        figure += f"; attention P@1 {p1['attn']:.2f}"
    figure += f"; chance {number(sc['chance']['p_at_1']['mean'], '.2f')}"
    if not rel["relies"]:
        return Row(test, figure, compared,
                   f"the model does not rely on the shortcut (accuracy drop "
                   f"{number(rel['drop'], '.1f', 100)} points < {RELIANCE_DROP * 100:.0f}): the "
                   "ranks test little", NOT_APPLICABLE, SOURCE, link)
    relies = f"the model relies on the shortcut (drop {number(rel['drop'], '.1f', 100)} points)"
    if "attn" not in p1:
        return Row(test, figure, compared, f"{relies}; no pooling attention to judge",
                   NOT_APPLICABLE, SOURCE, link)
    others = [v for k, v in p1.items() if k != "attn"]
    if not others:
        return Row(test, figure, compared, f"{relies}; no other method to compare with",
                   INCOMPLETE, SOURCE, link)
    middle = float(np.median(others))
    if p1["attn"] >= middle - MARGIN:
        status, reading = SUPPORTS, ("attention ranks it first about as often as, or more "
                                     "often than,")
    else:
        status, reading = AGAINST, "attention ranks it first less often than"
    reading += f" the typical other method (their median P@1 {middle:.2f}; margin {MARGIN})"
    return Row(test, figure, compared, f"{relies}; {reading}", status, SOURCE, link)


SHORTCUT_STAGE = registry.register_stage(Stage(
    NAME,
    shortcut_tests,
    (),
    (),
    version=1,
    applies=_has_planted,
    # Only where asked (--only shortcut): on human rationales (eraser_movies) its reading as a
    # planted shortcut would not hold, and plausibility already measures them.
    by_default=False,
    skip_note="the data carries no planted positions (no rationale)",
    needs=tuple(registry.importance_labels()),
    summarize=summarize_shortcut,
    tables=_shortcut_tables,
    facts=_shortcut_facts,
    verdict=shortcut_verdict,
    description="planted shortcut (Bastings et al. 2022): reliance and each importance's rank "
                "of the planted word",
))
