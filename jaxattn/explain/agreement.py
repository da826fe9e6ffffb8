"""How far two token-importance vectors agree, per instance, and summaries over instances.

Every measure takes ``a``, ``b`` <float>[N, T] (importance aligned with the tokens; e.g. attention
and gradient) and ``mask`` <bool>[N, T] (real tokens) and returns one value per instance, computed
over that instance's real tokens only. Instances where a measure is undefined (fewer than two real
tokens, a constant vector) get NaN and are left out of the summaries.

- rank agreement: Kendall tau-b with its p-value (scipy's, as J&W), Spearman, weighted tau;
- value agreement: Pearson, JSD between the importances normalised to distributions, top-k
  overlap;
- agreement with a human / planted rationale: average precision (AUPRC) and F1 of the top-k
  tokens (k = the number of rationale tokens unless given).

:func:`summarize_by_class` gives mean / std / n (and the fraction with p <= 0.05 for Kendall tau)
overall, per predicted class and per gold class.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.stats

from jaxattn.core.metrics import jsd
from jaxattn.explain.kendall import kendall_tau_b

SIGNIFICANCE = 0.05


def _rows(a: np.ndarray, b: np.ndarray, mask: np.ndarray):
    """Yields each instance's real-token values of ``a`` and ``b``."""
    a, b, mask = np.asarray(a), np.asarray(b), np.asarray(mask, bool)
    for row_a, row_b, row_mask in zip(a, b, mask):
        yield row_a[row_mask], row_b[row_mask]


def _per_row_scipy(
    fn: Callable, a: np.ndarray, b: np.ndarray, mask: np.ndarray, outputs: int
) -> tuple[np.ndarray, ...]:
    """Applies a scipy statistic to each instance (NaN where it has fewer than 2 tokens)."""
    out = np.full((outputs, len(a)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs: scipy warns and returns NaN
        for i, (x, y) in enumerate(_rows(a, b, mask)):
            if len(x) >= 2:
                res = fn(x, y)
                out[:, i] = res[:outputs] if outputs > 1 else res[0]
    return tuple(out)


def kendall_tau(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and its two-sided p-value per instance, exactly ``scipy.stats.kendalltau``.

    Returns:
      (tau <float64>[N], p <float64>[N]).
    """
    return kendall_tau_b(a, b, mask)  # vectorised over rows; tested equal to scipy's


def weighted_tau(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``scipy.stats.weightedtau`` per instance (hyperbolic weights: the top ranks count most)."""
    (tau,) = _per_row_scipy(lambda x, y: (scipy.stats.weightedtau(x, y)[0],), a, b, mask, 1)
    return tau


def _masked_pearson(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float64)
    n = m.sum(axis=-1)
    safe_n = np.maximum(n, 1)
    xc = (x - (x * m).sum(-1, keepdims=True) / safe_n[:, None]) * m
    yc = (y - (y * m).sum(-1, keepdims=True) / safe_n[:, None]) * m
    denom = np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(-1) / denom
    return np.where((n >= 2) & (denom > 0), np.clip(r, -1.0, 1.0), np.nan)


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation over real tokens per instance; <float64>[N]."""
    mask = np.asarray(mask, bool)
    return _masked_pearson(np.asarray(a, np.float64), np.asarray(b, np.float64), mask)


def _masked_ranks(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average ranks among each row's real tokens (ties share their mean rank); 0 elsewhere."""
    ranks = scipy.stats.rankdata(np.where(mask, x, np.nan), axis=-1, nan_policy="omit")
    return np.where(mask, ranks, 0.0)


def spearman(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per instance (Pearson of the average ranks); <float64>[N]."""
    mask = np.asarray(mask, bool)
    ra = _masked_ranks(np.asarray(a, np.float64), mask)
    rb = _masked_ranks(np.asarray(b, np.float64), mask)
    return _masked_pearson(ra, rb, mask)


def as_distribution(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``|scores|`` over real tokens normalised to sum 1 per row (zero rows stay zero)."""
    magnitude = np.where(mask, np.abs(np.asarray(scores, np.float64)), 0.0)
    total = magnitude.sum(axis=-1, keepdims=True)
    return magnitude / np.where(total > 0, total, 1.0)


def distribution_jsd(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """JSD (nats, in [0, ln 2]) between the two importances normalised to distributions."""
    mask = np.asarray(mask, bool)
    out = np.asarray(jsd(as_distribution(a, mask), as_distribution(b, mask)), np.float64)
    return np.where(mask.sum(-1) >= 1, out, np.nan)


def _top_k(scores: np.ndarray, mask: np.ndarray, k: np.ndarray) -> np.ndarray:
    """<bool>[N, T]: each row's ``k[n]`` highest-scoring real tokens (ties: earlier first)."""
    order = np.argsort(-np.where(mask, scores, -np.inf), axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(scores.shape[-1])[None, :], axis=-1)
    return (rank < k[:, None]) & mask


def top_k_mask(scores: np.ndarray, mask: np.ndarray, k: np.ndarray) -> np.ndarray:
    """<bool>[N, T]: each row's ``k[n]`` highest-scoring real tokens (ties: earlier first)."""
    return _top_k(np.asarray(scores), np.asarray(mask, bool), np.asarray(k))


def topk_overlap(a: np.ndarray, b: np.ndarray, mask: np.ndarray, k: int = 5) -> np.ndarray:
    """Fraction of the top-``k`` tokens of ``a`` that are also top-``k`` of ``b``.

    ``k`` is capped at the instance's length, so texts of at most ``k`` tokens give 1.
    """
    mask = np.asarray(mask, bool)
    k_eff = np.minimum(k, mask.sum(-1))
    both = _top_k(np.asarray(a), mask, k_eff) & _top_k(np.asarray(b), mask, k_eff)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k_eff > 0, both.sum(-1) / k_eff, np.nan)


def undefined_rows(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """<bool>[N] instances whose ``scores`` <float>[N, T] are NaN at some real token (``mask``):
    an importance not computed there (attention flow beyond its length limit), to be left out
    rather than ranked."""
    return np.isnan(np.where(np.asarray(mask, bool), np.asarray(scores, np.float64), 0.0)).any(-1)


def average_precision(
    scores: np.ndarray, rationale: np.ndarray, mask: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Area under the precision-recall curve of ``scores`` for the rationale tokens, per instance.

    Equal to ``sklearn.metrics.average_precision_score`` (tied scores form one threshold): the
    mean over rationale tokens of the precision among tokens scoring at least as high. NaN for
    instances without rationale tokens and for :func:`undefined_rows`.

    Args:
      scores: <float>[N, T] importance.
      rationale: <bool>[N, T] human / planted rationale.
      mask: <bool>[N, T] real tokens.
    """
    scores, mask = np.asarray(scores, np.float64), np.asarray(mask, bool)
    positive = np.asarray(rationale, bool) & mask
    out = np.full(len(scores), np.nan)
    for start in range(0, len(scores), chunk):  # bounds the [n, T, T] comparison in memory
        s, m, pos = (x[start : start + chunk] for x in (scores, mask, positive))
        at_least = (s[:, None, :] >= s[:, :, None]) & m[:, None, :]  # [n, i, j]: s_j >= s_i
        precision = (at_least & pos[:, None, :]).sum(-1) / np.maximum(at_least.sum(-1), 1)
        n_pos = pos.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = np.where(
                n_pos > 0, (precision * pos).sum(-1) / n_pos, np.nan
            )
    return np.where(undefined_rows(scores, mask), np.nan, out)


def topk_prf(
    scores: np.ndarray, rationale: np.ndarray, mask: np.ndarray, k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, F1) <float64>[N] of each instance's top-``k`` tokens (``k=None``: the
    rationale's length; capped at the instance's length). NaN without rationale tokens, and
    where the scores are not defined (:func:`undefined_rows`)."""
    mask = np.asarray(mask, bool)
    positive = np.asarray(rationale, bool) & mask
    n_pos = positive.sum(-1)
    k_eff = np.minimum(n_pos if k is None else np.full(len(mask), k), mask.sum(-1))
    hits = (_top_k(np.asarray(scores), mask, k_eff) & positive).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(k_eff > 0, hits / np.maximum(k_eff, 1), 0.0)
        recall = hits / n_pos
        f1 = np.where(hits > 0, 2 * precision * recall / (precision + recall), 0.0)
    none = (n_pos == 0) | undefined_rows(scores, mask)
    return tuple(np.where(none, np.nan, v) for v in (precision, recall, f1))


def topk_f1(
    scores: np.ndarray, rationale: np.ndarray, mask: np.ndarray, k: int | None = None
) -> np.ndarray:
    """F1 of the ``k`` top-scoring tokens against the rationale, per instance (the F1 of
    :func:`topk_prf`; with ``k=None`` precision = recall)."""
    return topk_prf(scores, rationale, mask, k)[2]


def agreement_measures(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, k: int = 5
) -> dict[str, np.ndarray]:
    """Every pairwise measure of this module, per instance: ``kendall`` (+ ``kendall_p``),
    ``spearman``, ``pearson``, ``weighted_tau``, ``jsd``, ``topk_overlap``."""
    tau, p = kendall_tau(a, b, mask)
    return {
        "kendall": tau,
        "kendall_p": p,
        "spearman": spearman(a, b, mask),
        "pearson": pearson(a, b, mask),
        "weighted_tau": weighted_tau(a, b, mask),
        "jsd": distribution_jsd(a, b, mask),
        "topk_overlap": topk_overlap(a, b, mask, k),
    }


def summarize(values: np.ndarray, pvalues: np.ndarray | None = None) -> dict[str, float]:
    """mean, std (population), median and n over the finite values; with ``pvalues`` also
    ``frac_significant``, the fraction of those instances with p <= 0.05."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    if pvalues is not None:
        finite &= np.isfinite(np.asarray(pvalues, np.float64))
    v = values[finite]
    out = {
        "mean": float(v.mean()) if len(v) else float("nan"),
        "std": float(v.std()) if len(v) else float("nan"),
        "median": float(np.median(v)) if len(v) else float("nan"),
        "n": int(len(v)),
    }
    if pvalues is not None:
        p = np.asarray(pvalues, np.float64)[finite]
        out["frac_significant"] = float((p <= SIGNIFICANCE).mean()) if len(p) else float("nan")
    return out


def summarize_by_class(
    values: np.ndarray,
    predicted: np.ndarray,
    gold: np.ndarray,
    class_names: Sequence[str],
    pvalues: np.ndarray | None = None,
) -> dict:
    """``{"overall": s, "by_predicted": {c: s}, "by_gold": {c: s}}`` with ``s`` from
    :func:`summarize` plus the class ``name``; classes are keyed by index (as text) and only those
    with instances appear."""
    values = np.asarray(values, np.float64)
    out: dict = {"overall": summarize(values, pvalues), "by_predicted": {}, "by_gold": {}}
    for key, classes in (("by_predicted", predicted), ("by_gold", gold)):
        classes = np.asarray(classes)
        for c in np.unique(classes):
            rows = classes == c
            stats = summarize(values[rows], None if pvalues is None else np.asarray(pvalues)[rows])
            out[key][str(int(c))] = {"name": str(class_names[int(c)]), **stats}
    return out
