"""Plausibility measures against sklearn and hand-worked cases."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from jaxattn.explain import plausibility as pl


def test_auprc_matches_sklearn_and_skips_single_label_instances():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((30, 12)), 1)  # ties
    rationale = rng.random((30, 12)) < 0.3
    mask = np.zeros((30, 12), bool)
    for i, n in enumerate(rng.integers(1, 13, 30)):
        mask[i, :n] = True
    rationale[0, :] = True  # every real token in the rationale: skipped
    rationale[1, :] = False  # none: skipped
    got = pl.auprc(scores, rationale, mask)
    for i in range(30):
        y = rationale[i, mask[i]]
        if y.all() or not y.any():
            assert np.isnan(got[i])
        else:
            np.testing.assert_allclose(got[i], average_precision_score(y, scores[i, mask[i]]))
    assert np.isfinite(got).sum() > 20


def test_topk_prf_hand_worked():
    scores = np.asarray([[0.9, 0.1, 0.8, 0.3, 7.0]])
    rationale = np.asarray([[1, 1, 0, 0, 1]], bool)
    mask = np.asarray([[1, 1, 1, 1, 0]], bool)  # the last column is not a real token
    p, r, f1 = pl.topk_prf(scores, rationale, mask)  # k = 2: tokens 0 and 2, one hit
    np.testing.assert_allclose([p[0], r[0], f1[0]], [0.5, 0.5, 0.5])
    p, r, f1 = pl.topk_prf(scores, rationale, mask, k=5)  # k capped at 4 real tokens: 2 hits
    np.testing.assert_allclose([p[0], r[0], f1[0]], [0.5, 1.0, 2 / 3])


def test_iou_f1_hand_worked():
    gold = np.asarray([[1, 1, 0, 0, 1, 1, 1, 0],
                       [0, 0, 0, 0, 1, 1, 1, 0]], bool)
    pred = np.asarray([[1, 0, 0, 0, 0, 1, 1, 1],  # IOU 1/2 with {0,1}, 2/4 with {4,5,6}: 2 matches
                       [0, 0, 1, 1, 1, 0, 0, 0]], bool)  # IOU 1/5 with {4,5,6}: no match
    np.testing.assert_array_equal(pl.spans(gold)[0], [1, 1, 0, 0, 2, 2, 2, 0])
    matched, n_pred, n_gold = pl.iou_matches(pred, gold)
    np.testing.assert_array_equal(matched, [2, 0])
    np.testing.assert_array_equal(n_pred, [2, 1])
    np.testing.assert_array_equal(n_gold, [2, 1])
    out = pl.iou_f1(pred, gold)
    np.testing.assert_allclose([out["precision"], out["recall"], out["f1"]], [2 / 3, 2 / 3, 2 / 3])
    strict = pl.iou_f1(pred, gold, threshold=0.6)
    assert strict["f1"] == 0.0


def test_plausibility_keys():
    rng = np.random.default_rng(1)
    scores, rationale = rng.random((4, 6)), rng.random((4, 6)) < 0.5
    out = pl.plausibility(scores, rationale, np.ones((4, 6), bool))
    assert {"auprc", "p_k", "r_k", "f1_k", "p_5", "r_5", "f1_5", "iou_matched"} <= set(out)
    assert all(len(v) == 4 for v in out.values())
    np.testing.assert_allclose(out["p_k"], out["r_k"])  # k = the rationale's length


def test_chance_auprc_is_the_auprc_of_tied_scores_and_the_share_of_rationale_tokens():
    rng = np.random.default_rng(3)
    mask = np.arange(9)[None, :] < rng.integers(2, 10, size=(40, 1))
    rationale = (rng.random((40, 9)) < 0.3) & mask
    rationale[0] = mask[0]  # every token: single-label, NaN like auprc
    rationale[1] = False  # none
    chance = pl.chance_auprc(rationale, mask)
    tied = pl.auprc(np.ones(mask.shape), rationale, mask)
    for i in range(40):
        y = rationale[i][mask[i]]
        if y.all() or not y.any():
            assert np.isnan(chance[i]) and np.isnan(tied[i])
            continue
        assert chance[i] == y.sum() / len(y)
        assert np.isclose(tied[i], average_precision_score(y, np.ones(len(y))))
        assert np.isclose(chance[i], tied[i])


def test_rows_an_importance_was_not_computed_on_are_left_out_of_every_measure():
    """Attention flow is NaN on rows beyond its length limit: those rows get no AUPRC, no
    top-k figures and no IOU spans, while NaN at padding changes nothing."""
    from jaxattn.explain import agreement

    rng = np.random.default_rng(2)
    scores, rationale = rng.random((3, 6)), rng.random((3, 6)) < 0.5
    rationale[:, :2] = [True, False]  # two labels in every row
    mask = np.ones((3, 6), bool)
    mask[2, 5] = False
    before = pl.plausibility(scores, rationale, mask)
    scores[1, 3] = np.nan  # not computed on row 1
    scores[2, 5] = np.nan  # padding: row 2 is still defined
    after = pl.plausibility(scores, rationale, mask)
    np.testing.assert_array_equal(agreement.undefined_rows(scores, mask), [False, True, False])
    for key, values in after.items():
        keep = [0, 2]
        np.testing.assert_array_equal(values[keep], before[key][keep])
        if key.startswith("iou_"):
            assert values[1] == 0
        else:
            assert np.isnan(values[1]), key
    assert np.isnan(agreement.topk_f1(scores, rationale, mask)[1])
    assert np.isnan(agreement.average_precision(scores, rationale, mask)[1])
