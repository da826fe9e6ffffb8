"""ERASER comprehensiveness / sufficiency against explicit shortened inputs built one by one."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxattn.core.protocol import forward
from jaxattn.data.batching import with_tokens
from jaxattn.explain import faithfulness
from tests.helpers import toy_batch, toy_model

_forward = jax.jit(forward, static_argnums=0)  # one compilation for every one-row input


def _row(batch, row):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[row : row + 1], batch)


def _probability(model, params, batch, row, ids, target):
    """p(target) for row ``row`` of ``batch`` rewritten as the token ids ``ids`` (one row)."""
    one = _row(batch, row)
    tokens = np.zeros((1, one.tokens.shape[1]), np.int32)
    tokens[0, : len(ids)] = ids
    logits, _ = _forward(model, params, with_tokens(one, tokens, one.query))
    return float(np.asarray(model.probs(logits))[0, target])


@pytest.mark.parametrize("task,encoder,classes", [("binary", "bilstm", 2), ("nli", "cnn", 3)])
def test_matches_explicit_shortened_inputs(task, encoder, classes):
    batch = toy_batch(lengths=(12, 1, 20, 4), seed=5, pair=task == "nli")
    model, params, batch = toy_model(task=task, encoder=encoder, num_classes=classes, batch=batch,
                                     seed=1)
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(2, *batch.tokens.shape)).astype(np.float32)
    scores[1] = np.round(scores[1])  # ties: earlier position first
    comp, suff, p_full = jax.device_get(
        faithfulness.comprehensiveness_sufficiency(model, params, batch, scores))
    tokens, mask = np.asarray(batch.tokens), np.asarray(batch.mask)
    for i in range(len(tokens)):
        real = np.flatnonzero(mask[i])
        if not len(real):
            assert not comp[:, i].any() and not suff[:, i].any()
            continue
        full = np.asarray(model.probs(_forward(model, params, _row(batch, i))[0]))[0]
        y = int(np.argmax(full))
        np.testing.assert_allclose(p_full[i], full[y], rtol=1e-5)
        row = tokens[i][tokens[i] != 0]  # SOS, real tokens, EOS
        for m in range(len(scores)):
            order = real[np.argsort(-scores[m, i, real], kind="stable")]
            for b, frac in enumerate(faithfulness.BINS):
                k = max(1, int(frac * len(real)))
                r = set(order[:k].tolist())
                kept = [t for pos, t in zip(range(len(row)), row) if pos not in r]
                only = [t for pos, t in zip(range(len(row)), row) if pos in r or not mask[i, pos]]
                want_c = full[y] - _probability(model, params, batch, i, kept, y)
                want_s = full[y] - _probability(model, params, batch, i, only, y)
                np.testing.assert_allclose(comp[m, i, b], want_c, atol=2e-6)
                np.testing.assert_allclose(suff[m, i, b], want_s, atol=2e-6)


def test_rationale_sizes():
    mask = np.zeros((3, 40), bool)
    mask[0, :1], mask[1, :30] = True, True
    sizes = np.asarray(faithfulness.rationale_sizes(mask))
    np.testing.assert_array_equal(sizes[:, 0], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(sizes[:, 1], [1, 1, 3, 6, 15])
    np.testing.assert_array_equal(sizes[:, 2], [0, 0, 0, 0, 0])


def test_shortened_inputs_run_at_a_few_widths_ending_at_the_full_one():
    assert faithfulness.narrow_widths(32) == (8, 16, 24, 32)
    assert faithfulness.narrow_widths(512) == (32, 64, 128, 256, 384, 512)
    for steps in range(1, 70):
        widths = faithfulness.narrow_widths(steps)
        assert widths[-1] == steps and list(widths) == sorted(set(widths)) and len(widths) <= 6
