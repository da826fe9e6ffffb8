"""The BERT building blocks against their definitions (PyTorch's formulas in float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

from jaxattn.models.pretrained import ops


def test_gelu_is_the_exact_erf_form_and_its_gradient():
    x = np.linspace(-9.0, 9.0, 2001)
    want = 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    got = np.asarray(ops.gelu(jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-6)
    np.testing.assert_allclose(
        got, np.asarray(jax.nn.gelu(jnp.asarray(x, jnp.float32), approximate=False)), atol=4e-6
    )
    dwant = 0.5 * (1.0 + erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)
    dgot = jax.vmap(jax.grad(ops.gelu))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(dgot, np.float64), dwant, rtol=0, atol=2e-6)


def test_layer_norm_uses_the_biased_variance_and_eps_inside_the_root():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(4, 5, 8))
    ln = {"scale": rng.normal(size=8), "bias": rng.normal(size=8)}
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    want = want * ln["scale"] + ln["bias"]
    got = ops.layer_norm(jnp.asarray(x, jnp.float32),
                     {k: jnp.asarray(v, jnp.float32) for k, v in ln.items()}, 1e-5)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_dense_is_x_kernel_plus_bias():
    rng = np.random.default_rng(1)
    x, k, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 6)), rng.normal(size=6)
    got = ops.dense(jnp.asarray(x, jnp.float32), {"kernel": jnp.asarray(k, jnp.float32),
                                              "bias": jnp.asarray(b, jnp.float32)})
    np.testing.assert_allclose(np.asarray(got), x @ k + b, rtol=1e-5, atol=1e-5)


def test_dropout_keeps_one_minus_rate_scaled_up_and_is_a_function_of_the_key():
    x = jnp.ones((200, 500), jnp.float32)
    assert ops.dropout(None, x, 0.1) is x and ops.dropout(jax.random.key(0), x, 0.0) is x
    out = np.asarray(ops.dropout(jax.random.key(0), x, 0.1))
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.9, rtol=1e-6)  # inverted dropout's scale
    assert abs(kept.mean() - 0.9) < 0.005  # 100,000 draws: the std of the mean is 0.001
    np.testing.assert_array_equal(out, np.asarray(ops.dropout(jax.random.key(0), x, 0.1)))
    assert (np.asarray(ops.dropout(jax.random.key(1), x, 0.1)) != out).any()


def test_padded_keys_get_the_float32_minimum_and_rows_pad_with_zeros():
    valid = jnp.asarray([[True, True, False]])
    bias = np.asarray(ops.padded_key_bias(valid))
    assert bias.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(bias[0, 0, 0], [0.0, 0.0, np.finfo(np.float32).min])
    h = jnp.ones((2, 1, 4))
    padded = np.asarray(ops.pad_rows(h, 3))
    assert padded.shape == (2, 3, 4) and (padded[:, 0] == 1).all() and (padded[:, 1:] == 0).all()
