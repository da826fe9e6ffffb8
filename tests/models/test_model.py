"""Shapes, masks and the decode == forward contract for every encoder x attention x task."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.data.batching import with_tokens
from jaxattn.models.attention import masked_softmax, uniform_attention
from tests.helpers import toy_batch, toy_model

COMBOS = list(
    itertools.product(
        ("bilstm", "cnn", "average", "transformer"),
        ("additive", "dot"),
        (("binary", 2), ("multiclass", 4), ("nli", 3), ("qa", 5)),
    )
)


@pytest.mark.parametrize("encoder,attention,task", COMBOS)
def test_shapes_masks_and_decode_equals_forward(encoder, attention, task):
    task, classes = task
    model, params, batch = toy_model(task, encoder, attention, num_classes=classes)
    logits, attn = model.forward(params, batch)
    b, t = batch.tokens.shape
    assert logits.shape == (b, 1 if task == "binary" else classes)
    assert attn.shape == (b, t)
    mask = np.asarray(batch.mask)
    attn = np.asarray(attn)
    # Padding, SOS and EOS get exactly zero; real tokens sum to one; empty rows are all zero.
    assert np.all(attn[~mask] == 0.0)
    real_rows = mask.any(axis=1)
    np.testing.assert_allclose(attn[real_rows].sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(attn[~real_rows] == 0.0)
    assert np.all(np.isfinite(np.asarray(logits)))
    enc = model.encode(params, batch)
    assert enc.hidden.shape[:2] == (b, t)
    np.testing.assert_array_equal(
        np.asarray(model.decode(params, enc, jnp.asarray(attn))), np.asarray(logits)
    )
    probs = np.asarray(model.probs(logits))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average", "transformer"])
def test_hidden_states_do_not_depend_on_padding(encoder):
    """Extra padding (a longer bucket) must not change a row's hidden states or output."""
    model, params, batch = toy_model("binary", encoder)
    wider = with_tokens(batch, np.pad(batch.tokens, ((0, 0), (0, 9))))
    l1, a1 = model.forward(params, batch)
    l2, a2 = model.forward(params, wider)
    np.testing.assert_allclose(np.asarray(l1), np.asarray(l2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(a1), np.asarray(a2)[:, : a1.shape[1]], rtol=1e-5, atol=1e-7
    )


def test_bilstm_backward_direction_starts_at_last_real_token():
    """The backward state at a row's last real token (EOS) sees nothing after it: the same for
    a row and the same row followed by more padding, and equal to running the reversed row alone."""
    model, params, batch = toy_model("binary", "bilstm")
    enc = model.encode(params, batch)
    h = enc.hidden.shape[-1] // 2
    row = batch.tokens[1]
    n = int((row != 0).sum())
    alone = with_tokens(batch, row[None, :n])
    enc_alone = model.encode(params, alone)
    np.testing.assert_allclose(
        np.asarray(enc.hidden[1, :n, h:]),
        np.asarray(enc_alone.hidden[0, :, h:]),
        rtol=1e-5,
        atol=1e-6,
    )
    # The forward direction at step t depends only on tokens <= t: changing the last token leaves
    # earlier forward states unchanged but changes the backward state at position 0.
    changed = batch.tokens.copy()
    changed[1, n - 2] = 7 if changed[1, n - 2] != 7 else 8
    enc2 = model.encode(params, with_tokens(batch, changed))
    np.testing.assert_allclose(
        np.asarray(enc.hidden[1, : n - 2, :h]), np.asarray(enc2.hidden[1, : n - 2, :h])
    )
    assert not np.allclose(np.asarray(enc.hidden[1, 0, h:]), np.asarray(enc2.hidden[1, 0, h:]))


def test_masked_softmax_is_nan_safe_with_zero_gradients_at_masked_positions():
    scores = jnp.array([[1.0, 2.0, -jnp.inf, 0.5], [0.0, 0.0, 0.0, 0.0]])
    mask = jnp.array([[True, True, False, True], [False, False, False, False]])
    attn = masked_softmax(scores, mask)
    assert np.all(np.asarray(attn[1]) == 0.0)
    assert attn[0, 2] == 0.0
    expected = np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum()
    np.testing.assert_allclose(np.asarray(attn[0, [0, 1, 3]]), expected, rtol=1e-6)
    grad = jax.grad(lambda s: (masked_softmax(s, mask) * jnp.arange(4.0)[None, :]).sum())(scores)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert grad[0, 2] == 0.0 and np.all(np.asarray(grad[1]) == 0.0)


def test_uniform_attention():
    mask = jnp.array([[False, True, True, False], [False, False, False, False]])
    np.testing.assert_array_equal(
        np.asarray(uniform_attention(mask)), [[0, 0.5, 0.5, 0], [0, 0, 0, 0]]
    )


def test_qa_non_candidates_get_zero_probability():
    batch = toy_batch(pair=True, num_answers=5)
    cands = np.ones((batch.tokens.shape[0], 5), bool)
    cands[:, 3] = False
    model, params, batch = toy_model(
        "qa", "bilstm", num_classes=5, batch=batch.replace(candidates=cands)
    )
    probs = np.asarray(model.probs(model.forward(params, batch)[0]))
    assert np.all(probs[:, 3] == 0.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    "encoder,attention",
    [("bilstm", "additive"), ("cnn", "dot"), ("average", "additive"), ("transformer", "dot")],
)
def test_gradients_match_finite_differences(encoder, attention):
    """d output / d embeddings from jax.grad vs central differences, in float64."""
    jax.config.update("jax_enable_x64", True)
    try:
        model, params, batch = toy_model("binary", encoder, attention)
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
        emb = model.embed(params, batch.tokens).astype(jnp.float64)

        def out(e):
            enc = model.encode_embedded(params, batch, e)
            return model.decode(params, enc, model.attend(params, enc))[:, 0].sum()

        grad = np.asarray(jax.grad(out)(emb))
        rng = np.random.default_rng(0)
        for _ in range(6):
            r, t = rng.integers(0, 3), rng.integers(1, 4)
            k = rng.integers(0, emb.shape[-1])
            step = np.zeros(emb.shape)
            step[r, t, k] = 1e-5
            fd = (out(emb + step) - out(emb - step)) / 2e-5
            np.testing.assert_allclose(grad[r, t, k], float(fd), rtol=1e-5, atol=1e-9)
    finally:
        jax.config.update("jax_enable_x64", False)
