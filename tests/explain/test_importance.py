"""Token importance: gradients against finite differences, LOO against a per-token loop, IG."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.protocol import delete_position
from jaxattn.data.batching import with_tokens
from jaxattn.explain import importance
from jaxattn.models.model import build_model
from tests.helpers import synthetic_test_batch


@pytest.fixture(scope="module")
def data():
    return synthetic_test_batch(5, seed=3)  # 5 rows and one padding row


def _model(vocab, batch, task="binary", encoder="cnn", seed=0):
    """A tiny model; the CNN is contextual (so attention and deletions interact) and compiles
    much faster than the BiLSTM, which one test covers."""
    model = build_model(
        vocab_size=len(vocab),
        task=task,
        num_classes=3,
        encoder=encoder,
        embed_dim=16,
        hidden_size=8,
        cnn_filters=4,
        width=8,
        heads=2,
        ff_size=16,
    )
    return model, jax.jit(model.init)(jax.random.key(seed), batch)  # one compile, not eager ops


def _pair_batch(batch, task):
    """The batch with a query (the first 6 columns of the text) and, for QA, candidates."""
    query = np.asarray(batch.tokens[:, :6]).copy()
    query[:, 5] = 3  # EOS
    candidates = np.ones((len(query), 3), bool) if task == "qa" else None
    if candidates is not None:
        candidates[:, 2] = False
    return with_tokens(batch, batch.tokens, query).replace(candidates=candidates)


@contextlib.contextmanager
def float64():
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def _probability_of(model, params, batch, embedded, target, attn=None):
    enc = model.encode_embedded(params, batch, embedded)
    attn = model.attend(params, enc) if attn is None else attn
    probs = model.probs(model.decode(params, enc, attn))
    return probs[jnp.arange(len(target)), target]


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average", "transformer"])
def test_gradient_times_input_matches_finite_differences(data, encoder):
    """Scaling one token's embedding by (1 + s) moves the output by s * grad . embedding."""
    vocab, _, batch = data
    model, params = _model(vocab, batch, encoder=encoder)
    with float64():
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        embedded = jax.jit(model.embed)(params, batch.tokens)
        target = jax.jit(lambda p: importance.predicted_class(model, p, batch))(params)
        # Held attention is a constant: the model's own attention on the unchanged input.
        own = jax.jit(lambda p: model.attend(p, model.encode(p, batch)))(params)

        @jax.jit
        def held(s, row, pos):
            scaled = embedded.at[row, pos].multiply(1.0 + s)
            return _probability_of(model, params, batch, scaled, target, own)[row]

        @jax.jit
        def through(s, row, pos):
            scaled = embedded.at[row, pos].multiply(1.0 + s)
            return _probability_of(model, params, batch, scaled, target)[row]

        h = 1e-6
        for hold_attention, prob in ((True, held), (False, through)):
            got = np.asarray(importance.gradient_times_input(model, params, batch, hold_attention))
            assert got.dtype == np.float64
            for row, pos in [(0, 1), (0, 4), (2, 3), (4, 7)]:
                numeric = (prob(h, row, pos) - prob(-h, row, pos)) / (2 * h)
                assert got[row, pos] == pytest.approx(float(numeric), rel=1e-5, abs=1e-10)


def test_gradient_importances_on_the_bilstm(data):
    """Both settings from one program: distributions over real tokens, and different."""
    vocab, _, batch = data
    model, params = _model(vocab, batch, encoder="bilstm")
    below, through = (np.asarray(x) for x in importance.gradient_importances(model, params, batch))
    raw = np.abs(np.asarray(importance.gradient_times_input(model, params, batch)))
    mask = np.asarray(batch.mask)
    for scores in (below, through):
        assert np.all(scores[~mask] == 0) and np.all(scores >= 0)
        np.testing.assert_allclose(scores[:5].sum(-1), 1.0, rtol=1e-5)
        assert scores[5].sum() == 0  # the padding row
    np.testing.assert_allclose(below[:5], raw[:5] / raw[:5].sum(-1, keepdims=True), atol=1e-6)
    assert not np.allclose(below, through)  # the attention layer depends on the input


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average", "transformer"])
def test_leave_one_out_matches_a_per_token_loop(data, encoder):
    """Deleting a row of per-token features equals re-encoding the shorter text."""
    vocab, split, batch = data
    model, params = _model(vocab, batch, seed=1, encoder=encoder)
    got = np.asarray(importance.leave_one_out(model, params, batch, chunk=3))
    mask = np.asarray(batch.mask)
    assert np.all(got[~mask] == 0)
    width = batch.tokens.shape[1]
    probs_of = jax.jit(
        lambda tokens: model.probs(model.forward(params, with_tokens(batch, tokens))[0])
    )

    def padded(ids):  # one row per batch slot, so one compilation serves every deletion
        out = np.zeros(batch.tokens.shape, np.int32)
        out[:, : len(ids)] = ids
        return out

    for row in range(3):
        ids = split.tokens[row]
        full = np.asarray(probs_of(padded(ids)))[0]
        for pos in range(1, len(ids) - 1):
            shorter = np.delete(ids, pos)
            assert len(shorter) < width
            probs = np.asarray(probs_of(padded(shorter)))[0]
            assert got[row, pos] == pytest.approx(0.5 * np.abs(probs - full).sum(), abs=2e-6)


def test_integrated_gradients_complete_the_output_difference(data):
    vocab, _, batch = data
    model, params = _model(vocab, batch, seed=2)
    ig = np.asarray(importance.integrated_gradients(model, params, batch, steps=64, chunk=16))
    mask = np.asarray(batch.mask)
    assert np.all(ig[~mask] == 0)
    embedded = jax.jit(model.embed)(params, batch.tokens)
    target = jax.jit(lambda p: importance.predicted_class(model, p, batch))(params)
    prob = jax.jit(lambda emb: _probability_of(model, params, batch, emb, target))
    at_input = prob(embedded)
    at_baseline = prob(jnp.where(batch.mask[..., None], 0.0, embedded))
    np.testing.assert_allclose(ig.sum(-1)[:5], np.asarray(at_input - at_baseline)[:5], atol=2e-4)
    normed = np.asarray(importance.integrated_gradients_importance(model, params, batch, 64, 16))
    np.testing.assert_allclose(normed[:5].sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("task", ["nli", "qa"])
def test_pair_models_score_passage_tokens_only(data, task):
    vocab, _, batch = data
    batch = _pair_batch(batch, task)
    model, params = _model(vocab, batch, task=task, encoder="average")
    mask = np.asarray(batch.mask)
    outputs = [*importance.gradient_importances(model, params, batch)]
    if task == "nli":
        outputs.append(importance.leave_one_out(model, params, batch))
    for scores in outputs:
        scores = np.asarray(scores)
        assert scores.shape == mask.shape
        assert np.all(np.isfinite(scores))
        assert np.all(scores[~mask] == 0)
        assert np.all(scores[:5].sum(-1) > 0)


def test_delete_position_shortens_every_row():
    tokens = jnp.asarray([[2, 10, 11, 12, 3], [2, 20, 21, 3, 0]])
    np.testing.assert_array_equal(
        delete_position(tokens, 2), [[2, 10, 12, 3], [2, 20, 3, 0]]
    )


def test_integrated_gradients_do_not_depend_on_the_chunking(data):
    vocab, _, batch = data
    model, params = _model(vocab, batch, encoder="average")
    whole = importance.integrated_gradients(model, params, batch, steps=6, chunk=6)
    ragged = importance.integrated_gradients(model, params, batch, steps=6, chunk=4)  # 4 + 2
    np.testing.assert_allclose(ragged, whole, atol=1e-7)
