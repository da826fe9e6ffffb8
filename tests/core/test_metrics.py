"""Classification scores and divergences against sklearn / scipy on random cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from jaxattn.core import metrics

sk = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_classification_scores_equal_sklearn(k, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    if seed == 0:  # tied scores: AUC counts a tie one half, as sklearn does
        probs = np.round(probs, 1)
        probs /= probs.sum(-1, keepdims=True)
    got = metrics.classification_scores(probs, labels, binary=k == 2)
    pred = probs.argmax(-1)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(labels, pred))
    f1 = (sk.f1_score(labels, pred, pos_label=1, zero_division=0) if k == 2 else
          sk.f1_score(labels, pred, average="macro", labels=range(k), zero_division=0))
    assert got["f1"] == pytest.approx(f1)
    assert got["n"] == n
    assert got["majority"] == pytest.approx(
        sk.accuracy_score(labels, np.full(n, np.bincount(labels).argmax())))
    if k == 2 and len(set(labels)) == 2:
        assert got["auc"] == pytest.approx(sk.roc_auc_score(labels, probs[:, 1]))


def test_majority_share_of_no_labels_is_nan():
    assert np.isnan(metrics.majority_share(np.zeros(0, int)))
    assert metrics.majority_share(np.array([2, 2, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(3))
def test_divergences_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(6), 2)
    p[2] = 0.0  # a zero of p: its KL term is 0, never NaN
    p /= p.sum()
    assert float(metrics.kl(p, q)) == pytest.approx(scipy.stats.entropy(p, q), rel=1e-5)
    # scipy's Jensen-Shannon *distance* is the square root of the divergence
    assert float(metrics.jsd(p, q)) == pytest.approx(
        scipy.spatial.distance.jensenshannon(p, q) ** 2, rel=1e-5)
    assert float(metrics.tvd(p, q)) == pytest.approx(0.5 * np.abs(p - q).sum(), rel=1e-6)
