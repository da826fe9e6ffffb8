"""The Orthogonal LSTM: orthogonality on real tokens, a brute-force loop, padding, the plain case."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.models.lstm import BiLSTMEncoder
from jaxattn.models.ortho_lstm import ORTHO_EPS, RecurrentEncoder
from tests.helpers import toy_batch, toy_model

H = 6


def _inputs(seed=0):
    batch = toy_batch(lengths=(6, 3, 9), seed=seed)
    emb = jax.random.normal(jax.random.key(seed), batch.tokens.shape + (5,))
    return emb, jnp.asarray(batch.valid)


def _loop_reference(params, emb, valid, direction):
    """One direction of the Orthogonal LSTM for each row, step by step in numpy (float64)."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    w_ih, w_hh, b = (np.asarray(params[k][direction], np.float64) for k in ("w_ih", "w_hh", "bias"))
    emb, valid = np.asarray(emb, np.float64), np.asarray(valid)
    out = np.zeros(emb.shape[:2] + (H,))
    for r in range(emb.shape[0]):
        n = int(valid[r].sum())
        order = range(n) if direction == 0 else range(n - 1, -1, -1)
        h, c, states = np.zeros(H), np.zeros(H), []
        for t in order:
            g = emb[r, t] @ w_ih + h @ w_hh + b
            i, f, gg, o = sig(g[:H]), sig(g[H:2 * H]), np.tanh(g[2 * H:3 * H]), sig(g[3 * H:])
            c = f * c + i * gg
            h = o * np.tanh(c)
            m = np.mean(states, axis=0) if states else np.zeros(H)
            h = h - (h @ m) / (m @ m + ORTHO_EPS) * m
            states.append(h)
            out[r, t] = h
    return out


@pytest.mark.parametrize("directions", [1, 2])
def test_matches_a_step_by_step_loop(directions):
    emb, valid = _inputs()
    enc = RecurrentEncoder(5, H, directions, ortho=True)
    params = enc.init(jax.random.key(1), emb, valid)["params"]
    hidden, summary = enc.apply({"params": params}, emb, valid)
    assert hidden.shape == emb.shape[:2] + (directions * H,)
    for d in range(directions):
        want = _loop_reference(params, emb, valid, d)
        np.testing.assert_allclose(hidden[..., d * H:(d + 1) * H], want, atol=2e-5)
    last = jnp.asarray(valid).sum(1) - 1
    np.testing.assert_allclose(summary[:, :H], hidden[jnp.arange(len(last)), last, :H], atol=1e-6)


def test_each_state_is_orthogonal_to_the_mean_of_the_previous_ones():
    emb, valid = _inputs(seed=3)
    enc = RecurrentEncoder(5, H, 2, ortho=True)
    hidden, _ = enc.apply(enc.init(jax.random.key(2), emb, valid), emb, valid)
    hidden, valid = np.asarray(hidden, np.float64), np.asarray(valid)
    dots, cosines = [], []
    for r in range(hidden.shape[0]):
        n = int(valid[r].sum())
        for d, order in ((0, list(range(n))), (1, list(range(n - 1, -1, -1)))):
            states = hidden[r, order, d * H:(d + 1) * H]
            for k in range(1, n):
                m = states[:k].mean(axis=0)
                h = states[k]
                dots.append(abs(h @ m))
                cosines.append(abs(h @ m) / (np.linalg.norm(h) * np.linalg.norm(m)))
    assert len(dots) > 20
    # h . m = (h' . m) * eps / (m . m + eps): zero but for the 1e-6 and float32 rounding.
    assert max(dots) < 1e-5, max(dots)
    assert max(cosines) < 1e-3, max(cosines)
    # The plain LSTM's states are far from orthogonal to their running mean: the test can fail.
    plain = RecurrentEncoder(5, H, 2, ortho=False)
    ph, _ = plain.apply(plain.init(jax.random.key(2), emb, valid), emb, valid)
    ph = np.asarray(ph, np.float64)
    m = ph[0, :3, :H].mean(0)
    assert abs(ph[0, 3, :H] @ m) / (np.linalg.norm(ph[0, 3, :H]) * np.linalg.norm(m)) > 1e-2


def test_padding_does_not_change_a_rows_states():
    emb, valid = _inputs()
    enc = RecurrentEncoder(5, H, 2, ortho=True)
    params = enc.init(jax.random.key(1), emb, valid)
    hidden, _ = enc.apply(params, emb, valid)
    wide = jnp.concatenate([emb, jax.random.normal(jax.random.key(9), (4, 5, 5))], axis=1)
    wide_valid = jnp.concatenate([valid, jnp.zeros((4, 5), bool)], axis=1)
    wide_hidden, _ = enc.apply(params, wide, wide_valid)
    np.testing.assert_allclose(wide_hidden[:, : emb.shape[1]], hidden, atol=1e-6)
    assert float(jnp.abs(wide_hidden[:, emb.shape[1]:]).max()) == 0.0


def test_without_orthogonalisation_it_is_the_bilstm():
    emb, valid = _inputs()
    params = BiLSTMEncoder(5, H).init(jax.random.key(4), emb, valid)
    want, want_summary = BiLSTMEncoder(5, H).apply(params, emb, valid)
    got, got_summary = RecurrentEncoder(5, H, 2, ortho=False).apply(params, emb, valid)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got_summary, want_summary, atol=1e-5)


@pytest.mark.parametrize("encoder", ["ortho_lstm", "diversity_lstm"])
def test_registered_encoders_give_finite_gradients(encoder):
    model, params, batch = toy_model(encoder=encoder)

    def loss(p):
        logits, _ = model.forward(p, batch)
        return jnp.sum(logits**2)

    grads = jax.grad(loss)(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)
