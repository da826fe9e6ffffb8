"""Erasure against a Python loop that removes one attention weight at a time."""

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


def _brute_many(model, params, enc, row, attn, mask, scores):
    """(flipped, count, mass): remove weights high score first until the decision changes."""
    real = np.flatnonzero(mask)
    order = real[np.argsort(-scores[real], kind="stable")]
    first = np.argmax(_decide(model, params, enc, row, attn))
    removed = np.zeros_like(mask)
    for k, t in enumerate(order[:-1], start=1):  # at least one weight stays
        removed[t] = True
        kept = np.where(removed, 0.0, attn)
        if np.argmax(_decide(model, params, enc, row, kept / kept.sum())) != first:
            return True, k, attn[removed].sum()
    return False, 0, 0.0


@pytest.mark.parametrize("task,encoder,classes", [("binary", "cnn", 2), ("multiclass", "average", 3),
                                                  ("nli", "cnn", 3)])
def test_erasure_matches_one_at_a_time_loop(task, encoder, classes):
    batch = toy_batch(lengths=(6, 1, 9, 4), seed=4, pair=task == "nli")
    model, params, batch = toy_model(task=task, encoder=encoder, num_classes=classes, batch=batch,
                                     seed=2)
    rng = np.random.default_rng(0)
    given = {"loo": rng.normal(size=batch.tokens.shape).astype(np.float32)}
    single, many, attn = jax.device_get(
        erasure.erasure(model, params, batch, jax.random.key(1), given))
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
            if name.startswith("random"):  # the order is random: check it is a valid removal
                assert 0 <= many.count[r, i] < mask[i].sum()
                continue
            flipped, count, mass = _brute_many(model, params, enc, i, attn[i], mask[i], own[name][i])
            assert (many.flipped[r, i], many.count[r, i]) == (flipped, count), (name, i)
            np.testing.assert_allclose(many.mass[r, i], mass, atol=1e-6)
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


def test_renormalized_without_is_nan_safe():
    attn = np.asarray([[0.5, 0.5, 0.0]], np.float32)
    out = erasure.renormalized_without(attn, np.asarray([[True, True, False]]))
    assert np.all(np.isfinite(out)) and out.sum() == 0
    np.testing.assert_allclose(
        erasure.renormalized_without(attn, np.asarray([[True, False, False]])), [[0, 1, 0]])
