"""Erasure against a Python loop that removes one attention weight at a time, under both
limits: up to all n weights (Serrano & Smith's code) and at most n - 1."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxattn.core.metrics import jsd
from jaxattn.core.protocol import encode
from jaxattn.explain import erasure
from tests.helpers import toy_batch, toy_model


def _decide(model, params, enc, row, attn):
    one = jax.tree_util.tree_map(lambda x: None if x is None else x[row : row + 1], enc)
    return np.asarray(model.probs(model.decode(params, one, attn[None])))[0]


def _brute_many(model, params, enc, row, attn, mask, scores, limit):
    """(flipped, count, mass): remove weights high score first until the decision changes;
    ``limit`` "all": the last one too (a zero attention row, so a zero context vector), "n-1":
    at least one weight stays."""
    real = np.flatnonzero(mask)
    order = real[np.argsort(-scores[real], kind="stable")]
    first = np.argmax(_decide(model, params, enc, row, attn))
    removed = np.zeros_like(mask)
    for k, t in enumerate(order if limit == "all" else order[:-1], start=1):
        removed[t] = True
        kept = np.where(removed, 0.0, attn)
        kept = kept / kept.sum() if kept.sum() > 0 else np.zeros_like(attn)
        if np.argmax(_decide(model, params, enc, row, kept)) != first:
            return True, k, attn[removed].sum()
    return False, 0, 0.0


@pytest.mark.parametrize("limit", erasure.LIMITS)
@pytest.mark.parametrize("task,encoder,classes", [("binary", "cnn", 2), ("multiclass", "average", 3),
                                                  ("nli", "cnn", 3)])
def test_erasure_matches_one_at_a_time_loop(task, encoder, classes, limit):
    batch = toy_batch(lengths=(6, 1, 9, 4), seed=4, pair=task == "nli")
    model, params, batch = toy_model(task=task, encoder=encoder, num_classes=classes, batch=batch,
                                     seed=2)
    rng = np.random.default_rng(0)
    given = {"loo": rng.normal(size=batch.tokens.shape).astype(np.float32)}
    single, many, attn = jax.device_get(
        erasure.erasure(model, params, batch, jax.random.key(1), given, limit=limit))
    enc = encode(model, params, batch)
    mask = np.asarray(batch.mask)
    grad = np.asarray(erasure.attention_gradient(model, params, enc, attn))
    names = erasure.ranking_names(tuple(given))
    assert many.count.shape == (len(names), len(mask))
    assert many.flipped.any()  # the comparison below covers flips, not only never-flips
    own = {"attention": attn, "attention_low": -attn, "grad_attention": grad,
           "attention_x_grad": attn * grad, "attention_x_sign_grad": attn * np.sign(grad),
           "loo": given["loo"]}
    for r, name in enumerate(names):
        for i in range(len(mask)):
            if not mask[i].any():
                continue
            n = mask[i].sum()
            if name.startswith("random"):  # the order is random: check it is a valid removal
                assert 0 <= many.count[r, i] <= (n if limit == "all" else n - 1)
                continue
            flipped, count, mass = _brute_many(model, params, enc, i, attn[i], mask[i],
                                               own[name][i], limit)
            assert (many.flipped[r, i], many.count[r, i]) == (flipped, count), (name, i)
            np.testing.assert_allclose(many.mass[r, i], mass, atol=1e-6)
            # the fraction removed before the flip, as the summary computes it
            np.testing.assert_allclose(many.count[r, i] / n, count / n)
    for i in range(len(mask)):
        if not mask[i].any():
            continue
        real = np.flatnonzero(mask[i])
        full = _decide(model, params, enc, i, attn[i])
        top = real[np.argmax(attn[i, real])]
        kept = attn[i].copy()
        kept[top] = 0
        out = _decide(model, params, enc, i, kept / kept.sum() if kept.sum() else kept)
        np.testing.assert_allclose(single.jsd_top[i], jsd(full, out), atol=1e-6)
        if len(real) == 1:
            assert np.isnan(single.jsd_random[i]) and not single.flip_top[i]
        else:
            assert single.flip_top[i] == (np.argmax(out) != np.argmax(full))
            assert np.isfinite(single.jsd_random[i])


def test_the_limits_differ_only_where_the_last_weight_flips_the_decision():
    """"all" and "n-1" agree except where removing the last weight (a zero context) flips the
    decision, which "n-1" reports as never flipping; such instances of length > 1 exist here, so
    the comparison with the loop above covers them."""
    batch = toy_batch(lengths=(6, 1, 9, 4), seed=4)
    model, params, batch = toy_model(task="binary", encoder="cnn", batch=batch, seed=2)
    given = {"loo": np.random.default_rng(0).normal(size=batch.tokens.shape).astype(np.float32)}
    out = {limit: jax.device_get(erasure.erasure(model, params, batch, jax.random.key(1), given,
                                                 limit=limit))[1] for limit in erasure.LIMITS}
    every, most = out["all"], out["n-1"]
    n = np.broadcast_to(np.asarray(batch.mask).sum(-1), every.count.shape)
    last = every.flipped & (every.count == n)
    assert (last & (n > 1)).any()
    assert not most.flipped[last].any() and (most.count[last] == 0).all()
    for field in ("flipped", "count", "mass"):
        np.testing.assert_array_equal(getattr(every, field)[~last], getattr(most, field)[~last])


def test_an_unknown_limit_is_refused():
    with pytest.raises(ValueError, match="'n' is not one of all, n-1"):
        erasure.many_weights(None, np.ones((1, 2)), np.ones((1, 2), bool), np.ones((1, 1, 2)),
                             limit="n")


def test_renormalized_without_is_nan_safe():
    attn = np.asarray([[0.5, 0.5, 0.0]], np.float32)
    out = erasure.renormalized_without(attn, np.asarray([[True, True, False]]))
    assert np.all(np.isfinite(out)) and out.sum() == 0
    np.testing.assert_allclose(
        erasure.renormalized_without(attn, np.asarray([[True, False, False]])), [[0, 1, 0]])
