"""Distances between distributions (masked, NaN-safe) and classification scores.

Divergences act on the last axis and treat positions where both inputs are 0 as absent, so a
``0 * log 0`` at a masked position is 0, never NaN (the classic bug of the published W&P code).
All logs are natural: JSD lies in [0, ln 2].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.stats


def _xlogy(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """x * log(y) with 0 where x == 0 (and a zero gradient there), whatever y is."""
    safe_y = jnp.where(x > 0, y, 1.0)
    return jnp.where(x > 0, x * jnp.log(safe_y), 0.0)


def tvd(p: jnp.ndarray, q: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """Total variation distance 0.5 * sum |p - q| (binary outputs [1-a, a] give |a - b|)."""
    return 0.5 * jnp.abs(p - q).sum(axis=axis)


def kl(p: jnp.ndarray, q: jnp.ndarray, axis: int = -1, eps: float = 0.0) -> jnp.ndarray:
    """KL(p || q) = sum p log(p / q); terms with p == 0 are 0.

    ``eps`` (added to q) bounds the divergence where q has (near-)zero mass on p's support.
    """
    return (_xlogy(p, p) - _xlogy(p, q + eps)).sum(axis=axis)


def jsd(p: jnp.ndarray, q: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """Jensen-Shannon divergence in nats, in [0, ln 2]."""
    m = 0.5 * (p + q)
    return jnp.clip(0.5 * kl(p, m, axis) + 0.5 * kl(q, m, axis), 0.0, None)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(labels))) if len(labels) else float("nan")


def f1_score(pred: np.ndarray, labels: np.ndarray, num_classes: int, binary: bool) -> float:
    """F1 of the positive class (``binary``) or the macro average over ``num_classes``."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    classes = [1] if binary else range(num_classes)
    scores = []
    for c in classes:
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def majority_share(labels: np.ndarray) -> float:
    """The share of the most frequent label in <int>[N] ``labels`` (nan when N = 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def classification_scores(probs: np.ndarray, labels: np.ndarray, binary: bool) -> dict[str, float]:
    """accuracy, f1 (positive class if ``binary`` else macro), for binary ROC-AUC, and
    ``majority``: the share of the most frequent gold label, the accuracy of always answering it
    (what a model that learned nothing scores; the verdict compares accuracy with it).

    Args:
      probs: <float>[N, K] output distributions (binary: K = 2).
      labels: <int>[N] gold labels.
    """
    probs = np.asarray(probs)
    pred = probs.argmax(axis=-1)
    out = {
        "accuracy": accuracy(pred, labels),
        "f1": f1_score(pred, labels, probs.shape[-1], binary),
        "n": int(len(labels)),
        "majority": majority_share(labels),
    }
    if binary:
        out["auc"] = roc_auc(probs[:, 1], labels)
    return out
