"""The BERT layers' building blocks, each computing what its PyTorch counterpart in Hugging Face's
``BertModel`` computes: the padded keys' score bias, dropout, LayerNorm, the exact GELU and a
dense layer. Pure functions of arrays and plain parameter dicts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def padded_key_bias(valid: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, 1, 1, T] HF's extended attention mask: ``finfo.min`` added to the scores of
    padded keys (``valid`` <bool>[B, T] False)."""
    return jnp.where(valid, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)[:, None, None, :]


def pad_rows(h: jnp.ndarray, positions: int) -> jnp.ndarray:
    """<float32>[B, Q, E] -> [B, positions, E], zero past the ``Q`` computed rows."""
    return jnp.pad(h, ((0, 0), (0, positions - h.shape[1]), (0, 0)))


def dropout(key: jax.Array | None, x: jnp.ndarray, rate: float) -> jnp.ndarray:
    """Inverted dropout of ``x`` at ``rate`` (kept values scaled by ``1 / (1 - rate)``, as
    ``torch.nn.Dropout`` in training mode); ``x`` itself without a key or at rate 0."""
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def layer_norm(x: jnp.ndarray, ln: dict, eps: float) -> jnp.ndarray:
    """LayerNorm over the last axis with biased variance, as ``torch.nn.LayerNorm``."""
    mean = x.mean(axis=-1, keepdims=True)
    var = jnp.square(x - mean).mean(axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(var + eps)
    return normed * lead(ln["scale"], x.ndim) + lead(ln["bias"], x.ndim)


def gelu(x: jnp.ndarray) -> jnp.ndarray:
    """The exact (erf) GELU in HF's and PyTorch's form, ``x / 2 * (1 + erf(x / sqrt 2))``.

    ``jax.nn.gelu(x, approximate=False)`` is the same function written with ``erfc``, which
    XLA's CPU backend evaluates at about twice the cost of ``erf``; the two agree to float32
    rounding (a few 1e-7)."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(np.sqrt(0.5))))


def dense(x: jnp.ndarray, p: dict) -> jnp.ndarray:
    """``x @ kernel + bias`` over the last axis."""
    return x @ p["kernel"] + lead(p["bias"], x.ndim)


def lead(vector: jnp.ndarray, ndim: int) -> jnp.ndarray:
    """``vector`` [N] with leading unit axes up to ``ndim`` (explicit, for strict rank rules)."""
    return vector.reshape((1,) * (ndim - 1) + vector.shape)
