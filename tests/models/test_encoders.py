"""The BiLSTM recurrence's hand-written backward pass against autodiff and finite differences;
every encoder's features affine per token."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxattn.models.lstm import _lstm_scan, lstm_recurrence


def _inputs(dtype, steps=7, batch=3, h=4, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    proj = jax.random.normal(k1, (steps, 2, batch, 4 * h), dtype)
    w_hh = 0.5 * jax.random.normal(k2, (2, h, 4 * h), dtype)
    lengths = jnp.array([steps, 3, 1])[:batch]
    t = jnp.arange(steps)[:, None]
    valid = jnp.stack([t < lengths[None], (steps - 1 - t) < lengths[None]], axis=1)
    return proj, valid, w_hh


def _autodiff_recurrence(proj, valid, w_hh):
    h_last, outs = _lstm_scan(proj, valid, w_hh, keep_residuals=False)
    return outs, h_last


def _loss(recurrence, proj, valid, w_hh):
    outs, h_last = recurrence(proj, valid, w_hh)
    # Non-linear in both outputs so every cotangent entry differs.
    return jnp.sum(jnp.sin(outs) * jnp.arange(outs.size).reshape(outs.shape) / outs.size) + jnp.sum(
        h_last**3
    )


def test_forward_equals_the_plain_scan():
    proj, valid, w_hh = _inputs(jnp.float32)
    for a, b in zip(lstm_recurrence(proj, valid, w_hh), _autodiff_recurrence(proj, valid, w_hh)):
        np.testing.assert_array_equal(a, b)


def test_backward_equals_autodiff_of_the_scan():
    proj, valid, w_hh = _inputs(jnp.float32)
    ours = jax.grad(lambda p, w: _loss(lstm_recurrence, p, valid, w), argnums=(0, 1))(proj, w_hh)
    ref = jax.grad(lambda p, w: _loss(_autodiff_recurrence, p, valid, w), argnums=(0, 1))(
        proj, w_hh
    )
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Steps outside a row carry no gradient into its input projections.
    d_proj = np.asarray(ours[0])
    assert np.all(d_proj[~np.asarray(valid)] == 0.0)


def test_backward_matches_finite_differences_in_float64():
    jax.config.update("jax_enable_x64", True)
    try:
        proj, valid, w_hh = _inputs(jnp.float64, seed=1)
        check_grads(
            lambda p, w: _loss(lstm_recurrence, p, valid, w),
            (proj, w_hh),
            order=1,
            modes=["rev"],
            atol=1e-6,
            rtol=1e-6,
        )
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("seeds", [3])
def test_backward_under_vmap(seeds):
    """Seed stacks vmap the whole training step, the custom backward included."""
    proj, valid, w_hh = _inputs(jnp.float32)
    stack = jnp.stack([w_hh * (1 + 0.1 * s) for s in range(seeds)])
    grad = jax.grad(lambda w: _loss(lstm_recurrence, proj, valid, w))
    batched = jax.vmap(grad)(stack)
    for s in range(seeds):
        np.testing.assert_allclose(batched[s], grad(stack[s]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["bilstm", "cnn", "average", "transformer"])
def test_features_are_affine_per_token_and_compose_to_the_encoder(kind):
    """The contract leave-one-out and gradient x input rely on."""
    from jaxattn.models.encoders import EncoderSettings, make_encoder

    k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
    x, y = jax.random.normal(k1, (2, 6, 5)), jax.random.normal(k2, (2, 6, 5))
    tokens = jnp.array([[2, 7, 8, 9, 10, 3], [2, 7, 8, 3, 0, 0]])
    encoder = make_encoder(
        kind, 5, EncoderSettings(hidden_size=4, cnn_filters=3, width=8, heads=2, ff_size=16), "enc"
    )
    params = encoder.init(k3, x, tokens)

    def featurize(e):
        return encoder.apply(params, e, method=encoder.featurize)

    np.testing.assert_allclose(
        featurize(0.3 * x + 0.7 * y), 0.3 * featurize(x) + 0.7 * featurize(y), atol=1e-5
    )
    # Per token: changing one token's embedding changes only that token's row of features.
    changed = np.asarray(featurize(x.at[:, 2].add(1.0)) - featurize(x))
    assert np.all(changed[:, [0, 1, 3, 4, 5]] == 0.0)
    whole = encoder.apply(params, x, tokens)
    staged = encoder.apply(params, featurize(x), tokens, method=encoder.contextualize)
    for a, b in zip(whole, staged):
        np.testing.assert_array_equal(a, b)
