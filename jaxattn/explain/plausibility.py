"""Plausibility: how well an importance agrees with a human / planted rationale (ERASER's
measures, DeYoung et al. 2020, ``rationale_benchmark/metrics.py``).

Every function takes ``scores`` <float>[N, T] (importance aligned with the tokens), ``rationale``
<bool>[N, T] and ``mask`` <bool>[N, T] (real tokens), all on the host (NumPy, vectorised over
instances), and looks at each instance's real tokens only.

* :func:`auprc`: average precision per instance (``sklearn``'s definition), NaN for an instance
  with a single label (no rationale token, or every token in it), as ERASER skips them.
* :func:`chance_auprc`: the AUPRC of knowing nothing, :data:`CHANCE_DEFINITION`.
* :func:`~jaxattn.explain.agreement.topk_prf`: token precision / recall / F1 of the ``k`` top-scoring tokens.
* :func:`iou_f1`: ERASER's partial-match F1: the predicted tokens and the rationale are split into
  contiguous spans; a predicted span counts as a match when its IOU with some rationale span is at
  least ``threshold`` (0.5); precision = matches / predicted spans and recall = matches /
  rationale spans, both over the whole set (micro), as ERASER computes them.
"""

from __future__ import annotations

import numpy as np

from jaxattn.explain.agreement import average_precision, top_k_mask, topk_prf, undefined_rows


def _positives(rationale: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask, bool)
    return np.asarray(rationale, bool) & mask, mask


def auprc(scores: np.ndarray, rationale: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """<float64>[N] AUPRC of ``scores`` for the rationale tokens; NaN for single-label instances."""
    positive, mask = _positives(rationale, mask)
    single = (positive.sum(-1) == 0) | (positive.sum(-1) == mask.sum(-1))
    return np.where(single, np.nan, average_precision(scores, positive, mask))


CHANCE_DEFINITION = (
    "chance AUPRC: the share of rationale tokens among an instance's tokens, i.e. the AUPRC of "
    "scores that tie every token (the precision of a token picked at random), averaged over "
    "the same instances as the methods; a single random ranking (the random row) scores above "
    "it by luck of the draw"
)


def chance_auprc(rationale: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """<float64>[N] the share of rationale tokens among each instance's real tokens (the AUPRC
    of scores that tie every token); NaN where :func:`auprc` is NaN (single-label instances)."""
    positive, mask = _positives(rationale, mask)
    n_pos, n = positive.sum(-1), mask.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos == 0) | (n_pos == n), np.nan, n_pos / n)


def spans(marked: np.ndarray) -> np.ndarray:
    """<int64>[N, T] the contiguous runs of ``marked`` <bool>[N, T] numbered 1, 2, ... per row
    (0 where unmarked)."""
    marked = np.asarray(marked, bool)
    starts = marked & ~np.pad(marked, ((0, 0), (1, 0)))[:, :-1]
    return np.cumsum(starts, axis=-1) * marked


def iou_matches(
    predicted: np.ndarray, rationale: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance (matched predicted spans, predicted spans, rationale spans), each <int>[N].

    Args:
      predicted, rationale: <bool>[N, T] token selections.
    """
    pid, gid = spans(predicted), spans(rationale)
    n, steps = pid.shape
    width = steps + 1
    row = np.arange(n)[:, None]
    p_len = np.bincount((row * width + pid).ravel(), minlength=n * width).reshape(n, width)
    g_len = np.bincount((row * width + gid).ravel(), minlength=n * width).reshape(n, width)
    both = (pid > 0) & (gid > 0)
    pairs, inter = np.unique(
        (np.broadcast_to(row, pid.shape)[both] * width + pid[both]) * width + gid[both],
        return_counts=True,
    )
    r, s, g = pairs // (width * width), pairs // width % width, pairs % width
    iou = inter / (p_len[r, s] + g_len[r, g] - inter)
    best = np.zeros((n, width))
    np.maximum.at(best, (r, s), iou)
    return (best[:, 1:] >= threshold).sum(-1), pid.max(-1), gid.max(-1)


def micro_f1(matched: int, predicted: int, gold: int) -> dict[str, float]:
    """Precision matches / predicted, recall matches / gold and their F1 (0 when undefined)."""
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def iou_f1(
    predicted: np.ndarray, rationale: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """ERASER's partial-match (IOU) precision, recall and F1 over the whole set (micro)."""
    counts = (int(v.sum()) for v in iou_matches(predicted, rationale, threshold))
    return {**micro_f1(*counts), "threshold": threshold}


def plausibility(scores: np.ndarray, rationale: np.ndarray, mask: np.ndarray) -> dict:
    """Every measure of one importance, per instance (<[N]> each): ``auprc``; ``p_k``, ``r_k``,
    ``f1_k`` at k = the rationale's length and ``p_5``, ``r_5``, ``f1_5``; and the counts of
    :func:`iou_matches` for the top-k tokens at k = the rationale's length (``iou_matched``,
    ``iou_predicted``, ``iou_gold``), which :func:`micro_f1` turns into the set's IOU F1.
    Instances whose scores are not defined (NaN at a real token) get NaN measures and zero
    counts: they are left out of every figure, the set's IOU F1 included."""
    positive, mask = _positives(rationale, mask)
    out = {"auprc": auprc(scores, positive, mask)}
    for name, k in (("k", None), ("5", 5)):
        out[f"p_{name}"], out[f"r_{name}"], out[f"f1_{name}"] = topk_prf(scores, positive, mask, k)
    k_eff = np.minimum(positive.sum(-1), mask.sum(-1))
    predicted = top_k_mask(np.asarray(scores), mask, k_eff)
    counts = iou_matches(predicted, positive)
    defined = ~undefined_rows(scores, mask)
    out["iou_matched"], out["iou_predicted"], out["iou_gold"] = (c * defined for c in counts)
    return out
