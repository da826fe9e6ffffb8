"""Attention interventions: permutations and the adversarial search, against plain recomputation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.data.batching import with_tokens
from jaxattn.explain import interventions
from jaxattn.models.model import build_model
from tests.helpers import synthetic_test_batch


def _np_jsd(p, q):
    m = 0.5 * (p + q)

    def kl(a, b):
        keep = a > 0
        return np.sum(a[keep] * np.log(a[keep] / b[keep]))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@pytest.fixture(scope="module")
def setup():
    vocab, split, batch = synthetic_test_batch(6, seed=5)  # 6 rows and one padding row
    models = {}
    for task in ("binary", "nli"):
        b = batch
        if task == "nli":
            query = np.asarray(batch.tokens[:, :5]).copy()
            query[:, 4] = 3
            b = with_tokens(batch, batch.tokens, query)
        # Interventions act on the decoder with the hidden states fixed: any encoder will do.
        model = build_model(
            vocab_size=len(vocab),
            task=task,
            num_classes=3,
            encoder="average",
            embed_dim=16,
            hidden_size=8,
        )
        models[task] = (model, jax.jit(model.init)(jax.random.key(7), b), b)
    return models


@pytest.mark.parametrize("length", [20, 200])  # pairwise counting / comparison sort
def test_argsort_rows_is_a_stable_argsort(length):
    keys = np.random.default_rng(length).integers(0, 6, (9, length)).astype(np.float32)  # ties
    got = np.asarray(interventions.argsort_rows(jnp.asarray(keys)))
    np.testing.assert_array_equal(got, np.argsort(keys, axis=-1, kind="stable"))


def test_permutation_indices_shuffle_real_positions_only():
    mask = jnp.asarray([False, True, True, True, True, True, False, False])
    perms = np.asarray(interventions.permutation_indices(jax.random.key(0), mask, 50))
    assert perms.shape == (50, 8)
    for perm in perms:
        assert sorted(perm[1:6]) == [1, 2, 3, 4, 5]
        np.testing.assert_array_equal(perm[[0, 6, 7]], [0, 6, 7])
    assert len({tuple(p) for p in perms}) > 30  # 120 possible orders: not all the same


@pytest.mark.parametrize("task", ["binary", "nli"])
def test_permutation_median_tvd_matches_numpy(setup, task):
    model, params, batch = setup[task]
    key = jax.random.key(11)
    res = interventions.permute_attention(model, params, batch, key, num_permutations=6)
    enc = model.encode(params, batch)
    attn = np.asarray(model.attend(params, enc))
    probs = np.asarray(model.probs(model.decode(params, enc, attn)))
    keys = interventions.instance_keys(key, batch.index)
    decode = jax.jit(lambda a: model.probs(model.decode(params, enc, a)))
    expected = np.zeros((7, 6))
    for row in range(7):
        perms = np.asarray(interventions.permutation_indices(keys[row], enc.mask[row], 6))
        for p, perm in enumerate(perms):
            shuffled = attn.copy()
            shuffled[row] = attn[row][perm]
            out = np.asarray(decode(shuffled))[row]
            expected[row, p] = 0.5 * np.abs(out - probs[row]).sum()
    np.testing.assert_allclose(res.tvd, expected, atol=1e-6)
    np.testing.assert_allclose(res.median_tvd, np.median(expected, axis=-1), atol=1e-6)


def test_permutations_do_not_depend_on_the_batch(setup):
    model, params, batch = setup["binary"]
    key = jax.random.key(3)
    full = interventions.permute_attention(model, params, batch, key, num_permutations=6)
    rows = np.asarray([4, 2, 0, 1, 3, 5, 6])  # the same instances in another order
    shuffled = jax.tree_util.tree_map(lambda x: None if x is None else x[rows], batch)
    again = interventions.permute_attention(model, params, shuffled, key, num_permutations=6)
    np.testing.assert_allclose(np.asarray(again.tvd), np.asarray(full.tvd)[rows], atol=1e-6)


def test_mean_pairwise_jsd_matches_all_pairs():
    attn = np.random.default_rng(0).dirichlet(np.ones(6), (3, 4)).astype(np.float32)  # [B, K, T]
    got = np.asarray(interventions.mean_pairwise_jsd(attn))
    a = np.asarray(attn, np.float64)
    expected = [
        np.mean([[_np_jsd(a[b, i], a[b, j]) for j in range(4)] for i in range(4)]) for b in range(3)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("task", ["binary", "nli"])
def test_adversarial_search_reports_what_a_separate_decode_sees(setup, task):
    model, params, batch = setup[task]
    res = interventions.search_adversarial_attention(
        model, params, batch, jax.random.key(2), num_adversaries=3, steps=40, epsilon=0.05
    )
    enc = model.encode(params, batch)
    attn = np.asarray(model.attend(params, enc), np.float64)
    probs = np.asarray(model.probs(model.decode(params, enc, attn)), np.float64)
    adv = np.asarray(res.attn, np.float64)
    mask = np.asarray(enc.mask)
    decode = jax.jit(lambda a: model.probs(model.decode(params, enc, a)))
    assert adv.shape == (7, 3, mask.shape[1])
    assert np.all(adv[np.broadcast_to(~mask[:, None], adv.shape)] == 0)
    np.testing.assert_allclose(adv[:6].sum(-1), 1.0, atol=1e-5)
    for row in range(6):
        candidates = [0.0]
        for k in range(3):
            adv_attn = np.asarray(attn, np.float32).copy()
            adv_attn[row] = adv[row, k]
            out = np.asarray(decode(adv_attn), np.float64)[row]
            tvd = 0.5 * np.abs(out - probs[row]).sum()
            div = _np_jsd(adv[row, k], attn[row])
            assert res.tvd[row, k] == pytest.approx(tvd, abs=1e-5)
            assert res.jsd[row, k] == pytest.approx(div, abs=1e-5)
            if tvd <= 0.05:
                candidates.append(div)
        assert res.max_jsd[row] == pytest.approx(max(candidates), abs=1e-5)
        assert bool(res.found[row]) == (len(candidates) > 1)
        assert res.best_tvd[row] <= 0.05 + 1e-6
        assert _np_jsd(np.asarray(res.best_attn[row], np.float64), attn[row]) == pytest.approx(
            float(res.max_jsd[row]), abs=1e-5
        )
    assert float(res.max_jsd[:6].max()) > 0.05  # the search moved away from the original
    assert res.max_jsd[6] == 0 and np.all(np.isfinite(res.tvd[6]))  # padding row: nothing to move


def test_adversarial_constraint_drops_candidates_beyond_epsilon(setup):
    model, params, batch = setup["binary"]
    # With epsilon = 0 only an exact output match survives: the original attention.
    res = interventions.search_adversarial_attention(
        model, params, batch, jax.random.key(2), num_adversaries=3, steps=40, epsilon=0.0
    )
    moved = np.asarray(res.tvd[:6]) > 0
    assert moved.all()
    np.testing.assert_array_equal(res.max_jsd[:6], 0.0)
    assert not np.asarray(res.found[:6]).any()
    enc = model.encode(params, batch)
    np.testing.assert_allclose(res.best_attn[:6], model.attend(params, enc)[:6], atol=1e-7)
