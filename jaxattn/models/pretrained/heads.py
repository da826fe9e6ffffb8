"""The two classification heads over a BERT's last hidden states, as pure functions of their
params: :func:`cls_logits` (HF's ``BertForSequenceClassification``: the pooler, then a linear
layer) and Jain & Wallace's additive (tanh) attention pooling (:func:`additive_attention`,
:func:`additive_decode`), whose attention is an argument of the decoder."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.models.attention import masked_softmax
from jaxattn.models.pretrained.ops import dense, dropout

Params = Any


def cls_logits(
    params: Params, hidden: jnp.ndarray, dropout_key: jax.Array | None = None,
    rate: float = 0.0,
) -> jnp.ndarray:
    """``BertForSequenceClassification``'s head: <float32>[B, T, E] -> logits <float32>[B, C],
    a linear layer (``params["classifier"]``) over the pooled [CLS] state, with dropout at
    ``rate`` on the pooled state when ``dropout_key`` is given (HF's ``classifier_dropout``,
    by default ``hidden_dropout_prob``)."""
    pooled = dropout(dropout_key, jnp.tanh(dense(hidden[:, 0], params["pooler"])), rate)
    return dense(pooled, params["classifier"])


def init_additive_head(
    rng: jax.Array, hidden_size: int, num_classes: int, attention_size: int | None = None
) -> Params:
    """Params of the additive attention head: ``W`` {kernel [E, A], bias [A]}, ``v`` [A] and
    ``out`` {kernel [E, C], bias [C]}; ``A`` is ``E // 2`` by default, as Jain & Wallace's."""
    size = attention_size or hidden_size // 2
    k1, k2, k3 = jax.random.split(rng, 3)

    def uniform(key, shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound)

    return {
        "W": {"kernel": uniform(k1, (hidden_size, size), hidden_size), "bias": jnp.zeros(size)},
        "v": uniform(k2, (size,), size),
        "out": {
            "kernel": uniform(k3, (hidden_size, num_classes), hidden_size),
            "bias": jnp.zeros(num_classes),
        },
    }


def additive_attention(params: Params, hidden: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Jain & Wallace's attention: ``softmax_t(v . tanh(W h_t + b))`` over ``mask``.

    Args:
      hidden: <float32>[B, T, E] last hidden states.
      mask: <bool>[B, T] real tokens (word pieces, not [CLS] / [SEP] / padding).
    Returns:
      <float32>[B, T], zero off ``mask``.
    """
    scores = jnp.tanh(dense(hidden, params["W"])) @ params["v"]
    return masked_softmax(scores, mask)


def additive_decode(params: Params, hidden: jnp.ndarray, attn: jnp.ndarray) -> jnp.ndarray:
    """Logits <float32>[B, C] of ``sum_t attn_t hidden_t`` for any attention <float32>[B, T];
    affine in ``attn``."""
    return dense(jnp.einsum("bt,bte->be", attn, hidden), params["out"])
