"""Agreement measures: equal to scipy / sklearn on each instance's real tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from jaxattn.explain import agreement


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    n, t = 12, 15
    a = rng.random((n, t))
    b = a + rng.normal(0, 0.3, (n, t))
    a[3, 2:6] = 0.5  # ties
    b[3, 3:5] = 0.1
    lengths = rng.integers(2, t - 1, n)
    lengths[5] = 1  # too short for a correlation
    mask = np.zeros((n, t), bool)
    for i, length in enumerate(lengths):
        mask[i, 1 : length + 1] = True
    a[~mask] = 99.0  # values outside the mask must not matter
    return a, b, mask


def _real(x, mask, i):
    return x[i][mask[i]]


def test_kendall_tau_equals_scipy(pairs):
    a, b, mask = pairs
    tau, p = agreement.kendall_tau(a, b, mask)
    for i in range(len(a)):
        if mask[i].sum() < 2:
            assert math.isnan(tau[i]) and math.isnan(p[i])
            continue
        ref = scipy.stats.kendalltau(_real(a, mask, i), _real(b, mask, i))
        assert tau[i] == ref.statistic
        assert p[i] == ref.pvalue


def test_kendall_tau_of_a_constant_vector_is_nan():
    a = np.array([[0.0, 0.3, 0.3, 0.3, 0.0]])
    b = np.array([[0.0, 0.1, 0.5, 0.2, 0.0]])
    mask = np.array([[False, True, True, True, False]])
    tau, p = agreement.kendall_tau(a, b, mask)
    assert math.isnan(tau[0]) and math.isnan(p[0])


def test_rank_and_value_correlations_equal_scipy(pairs):
    a, b, mask = pairs
    spearman = agreement.spearman(a, b, mask)
    pearson = agreement.pearson(a, b, mask)
    weighted = agreement.weighted_tau(a, b, mask)
    for i in range(len(a)):
        x, y = _real(a, mask, i), _real(b, mask, i)
        if len(x) < 2:
            assert math.isnan(spearman[i]) and math.isnan(pearson[i]) and math.isnan(weighted[i])
            continue
        assert spearman[i] == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
        assert pearson[i] == pytest.approx(scipy.stats.pearsonr(x, y).statistic, abs=1e-12)
        assert weighted[i] == pytest.approx(scipy.stats.weightedtau(x, y).statistic, abs=1e-12)


def test_distribution_jsd_normalises_first(pairs):
    a, b, mask = pairs
    got = agreement.distribution_jsd(a, b, mask)
    for i in range(len(a)):
        p = np.abs(_real(a, mask, i))
        q = np.abs(_real(b, mask, i))
        p, q = p / p.sum(), q / q.sum()
        m = (p + q) / 2
        expected = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
        assert got[i] == pytest.approx(expected, abs=1e-6)
    assert agreement.distribution_jsd(a, a, mask) == pytest.approx(np.zeros(len(a)), abs=1e-7)


def test_topk_overlap_counts_shared_top_tokens():
    a = np.array([[0, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 0, 0, 0]], float)
    b = np.array([[0, 1, 4, 5, 2, 3, 0], [0, 3, 2, 1, 0, 0, 0]], float)
    mask = np.array([[0, 1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0, 0]], bool)
    # k = 2. Row 0: top of a {1, 2}, of b {3, 2} -> 1/2. Row 1: a {3, 2}, b {1, 2} -> 1/2.
    np.testing.assert_allclose(agreement.topk_overlap(a, b, mask, k=2), [0.5, 0.5])
    # k = 4. Row 0: a {1, 2, 3, 4}, b {3, 2, 5, 4} -> 3/4. Row 1 has 3 tokens: k = 3, all shared.
    np.testing.assert_allclose(agreement.topk_overlap(a, b, mask, k=4), [0.75, 1.0])


def test_average_precision_equals_sklearn_with_ties(pairs):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    a, _, mask = pairs
    rng = np.random.default_rng(1)
    scores = np.round(a, 1)  # many ties
    rationale = rng.random(a.shape) < 0.3
    rationale[:, 1] = True  # at least one rationale token per instance
    got = agreement.average_precision(scores, rationale, mask, chunk=5)
    for i in range(len(a)):
        ref = sklearn_metrics.average_precision_score(
            _real(rationale, mask, i), _real(scores, mask, i)
        )
        assert got[i] == pytest.approx(ref, abs=1e-12)
    none = agreement.average_precision(scores, np.zeros_like(rationale), mask)
    assert np.isnan(none).all()


def test_topk_f1_against_the_rationale():
    scores = np.array([[0, 0.5, 0.1, 0.3, 0.05, 0], [0, 0.2, 0.3, 0.1, 0, 0]])
    rationale = np.array([[0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]], bool)
    mask = np.array([[0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0]], bool)
    # Row 0, k = 2 rationale tokens: top-2 = {1, 3}, one hit -> F1 = 2 * 1 / (2 + 2).
    f1 = agreement.topk_f1(scores, rationale, mask)
    assert f1[0] == pytest.approx(0.5) and math.isnan(f1[1])
    # k = 1: top-1 = {1}, a hit -> precision 1, recall 1/2 -> F1 2/3.
    assert agreement.topk_f1(scores, rationale, mask, k=1)[0] == pytest.approx(2 / 3)


def test_summaries_by_class():
    values = np.array([0.1, 0.3, np.nan, 0.5, 0.7, 0.9])
    pvalues = np.array([0.01, 0.2, np.nan, 0.04, 0.5, 0.05])
    predicted = np.array([0, 0, 0, 1, 1, 1])
    gold = np.array([0, 1, 1, 1, 1, 1])
    out = agreement.summarize_by_class(values, predicted, gold, ("neg", "pos"), pvalues)
    assert out["overall"]["n"] == 5
    assert out["overall"]["mean"] == pytest.approx(0.5)
    assert out["overall"]["std"] == pytest.approx(np.std([0.1, 0.3, 0.5, 0.7, 0.9]))
    assert out["overall"]["frac_significant"] == pytest.approx(3 / 5)
    assert out["by_predicted"]["0"] == pytest.approx(
        {"name": "neg", "mean": 0.2, "std": 0.1, "median": 0.2, "n": 2, "frac_significant": 0.5}
    )
    assert out["by_predicted"]["1"]["frac_significant"] == pytest.approx(2 / 3)
    assert out["by_gold"]["1"]["n"] == 4
    assert out["by_gold"]["0"]["mean"] == pytest.approx(0.1)
    assert "frac_significant" not in agreement.summarize(values)


def test_agreement_measures_has_every_measure(pairs):
    a, b, mask = pairs
    out = agreement.agreement_measures(a, b, mask, k=3)
    assert set(out) == {
        "kendall",
        "kendall_p",
        "spearman",
        "pearson",
        "weighted_tau",
        "jsd",
        "topk_overlap",
    }
    assert all(v.shape == (len(a),) for v in out.values())
