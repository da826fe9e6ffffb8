"""Summaries of the maps alone: raw attention and attention rollout (Abnar & Zuidema 2020)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxattn.explain.attention_summaries.reading import read_rows


def raw_attention_layers(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray
) -> jnp.ndarray:
    """<float32>[L, B, T]: each layer's head-averaged attention, read at ``rows``."""
    return read_rows(maps.mean(axis=2), rows, valid)


def raw_attention(maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, T]: the last layer's head-averaged attention, read at ``rows``."""
    return raw_attention_layers(maps[-1:], valid, rows)[0]


def residual_attention(maps: jnp.ndarray, residual: float = 0.5) -> jnp.ndarray:
    """<float32>[L, B, T, T] ``(1 - residual) mean_h A + residual I``, rows renormalised (Abnar &
    Zuidema's account of the residual connection). Padding rows become identity rows."""
    t = maps.shape[-1]
    mixed = (1.0 - residual) * maps.mean(axis=2) + residual * jnp.eye(t, dtype=maps.dtype)[None, None]
    total = mixed.sum(-1, keepdims=True)
    return mixed / jnp.where(total > 0, total, 1.0)


def rollout_layers(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray, residual: float = 0.5
) -> jnp.ndarray:
    """<float32>[L, B, T]: row ``l`` is the rollout through layers 1..l+1,
    ``rows . A~_{l+1} ... A~_1`` (:func:`residual_attention`)."""
    mixed = residual_attention(maps, residual)

    def step(product, layer):
        product = jnp.einsum("bij,bjk->bik", layer, product)
        return product, product

    eye = jnp.broadcast_to(jnp.eye(maps.shape[-1], dtype=maps.dtype), mixed.shape[1:])
    _, products = jax.lax.scan(step, eye, mixed)
    return read_rows(products, rows, valid)


def rollout(
    maps: jnp.ndarray, valid: jnp.ndarray, rows: jnp.ndarray, residual: float = 0.5
) -> jnp.ndarray:
    """<float32>[B, T] attention rollout: ``rows . A~_L ... A~_1``."""
    return rollout_layers(maps, valid, rows, residual)[-1]
