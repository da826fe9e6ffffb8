"""Attention scorers and the NaN-safe masked softmax.

A scorer maps ``hidden <float32>[B, T, H]``, ``mask <bool>[B, T]`` and an optional
``query <float32>[B, Hq]`` to unnormalised ``scores <float32>[B, T]`` that are ``-inf`` at masked
positions; :func:`masked_softmax` turns them into a distribution over real tokens.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp


def masked_softmax(scores: jnp.ndarray, mask: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """Softmax over ``mask``-ed positions; exactly 0 elsewhere, and all-zero for empty rows.

    Rows with no real token (batch padding) get zeros rather than NaN, and gradients at masked
    positions are zero, not NaN.
    """
    masked = jnp.where(mask, scores, -jnp.inf)
    top = jnp.max(masked, axis=axis, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    exp = jnp.where(mask, jnp.exp(jnp.where(mask, scores, top) - top), 0.0)
    total = exp.sum(axis=axis, keepdims=True)
    return exp / jnp.where(total > 0, total, 1.0)


def uniform_attention(mask: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, T]: 1/len over real tokens, 0 elsewhere (W&P's uniform baseline)."""
    m = mask.astype(jnp.float32)
    return m / jnp.maximum(m.sum(axis=-1, keepdims=True), 1.0)


class AdditiveAttention(nn.Module):
    """``w2 . tanh(W1 h_t + b1 [+ W1q q])`` with W1: H -> H/2 and w2 without bias."""

    @nn.compact
    def __call__(self, hidden, mask, query=None):
        size = hidden.shape[-1] // 2
        proj = nn.Dense(size, name="W1")(hidden)
        if query is not None:
            proj = proj + nn.Dense(size, use_bias=False, name="W1q")(query)[:, None, :]
        scores = nn.Dense(1, use_bias=False, name="w2")(jnp.tanh(proj))[..., 0]
        return jnp.where(mask, scores, -jnp.inf)


class DotAttention(nn.Module):
    """Scaled dot product: ``w . h_t / sqrt(H)`` with a learned ``w``, or ``h_t . q / sqrt(H)``."""

    @nn.compact
    def __call__(self, hidden, mask, query=None):
        size = hidden.shape[-1]
        if query is None:
            scores = nn.Dense(1, use_bias=False, name="w")(hidden)[..., 0]
        else:
            if query.shape[-1] != size:
                raise ValueError(f"dot attention needs query size {size}, got {query.shape[-1]}")
            scores = jnp.einsum("bth,bh->bt", hidden, query)
        return jnp.where(mask, scores / math.sqrt(size), -jnp.inf)


def make_attention(kind: str, name: str = "attention") -> nn.Module:
    if kind == "additive":
        return AdditiveAttention(name=name)
    if kind == "dot":
        return DotAttention(name=name)
    raise ValueError(f"unknown attention {kind!r}")
