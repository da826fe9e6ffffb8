"""Norm-based importance (after Kobayashi et al. 2020): how much each attended token adds to the
logits, not only how much attention it gets.

For a decoder affine in the attention, ``logits = W sum_t a_t h_t + b``, token ``t`` contributes
the vector ``a_t W h_t``. Its norm ``||a_t W h_t||`` is the importance (one logit:
``a_t |w . h_t|``), and the signed ``a_t (w . h_t)`` of the predicted class's logit decomposes that
logit exactly: summed over the real tokens it is the logit minus the bias ``b``.

``W h_t`` is read off the model's own ``decode`` (:func:`jaxattn.explain.interventions.attention_slope`),
so this works for any :class:`~jaxattn.core.protocol.AttentionModel` that declares
``affine_decoder``. Models whose decoder is not affine in the attention (jaxattn's pair models:
``tanh`` of the attended premise and the query) have no such decomposition; for them the ``norm``
stage does not apply and is skipped.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.protocol import AttentionModel, Batch, Params, encode, has_affine_decoder
from jaxattn.explain.interventions import attention_slope


@struct.dataclass
class NormImportance:
    """Attributes:
    norm: <float32>[B, T] ``||a_t W h_t||`` (0 at non-real positions).
    signed: <float32>[B, T] ``a_t (w_y . h_t)`` for the logit of the predicted class ``y``
      (binary: the one logit), 0 at non-real positions.
    bias: <float32>[B] ``b_y``; ``signed.sum(-1) + bias`` is the logit of ``y``.
    """

    norm: jnp.ndarray
    signed: jnp.ndarray
    bias: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("model",))
def norm_importance(model: AttentionModel, params: Params, batch: Batch) -> NormImportance:
    """Norm-based importance of every real token of ``batch`` (see the module docstring).

    Raises:
      ValueError: ``model`` does not declare an affine decoder.
    """
    if not has_affine_decoder(model):
        raise ValueError(f"{type(model).__name__}: norm-based importance needs an affine decoder")
    enc = encode(model, params, batch)
    attn = model.attend(params, enc)
    bias, slope = attention_slope(model, params, enc)  # [B, C], [B, T, C]
    real = batch.mask
    contribution = jnp.where(real[..., None], attn[..., None] * slope, 0.0)  # [B, T, C]
    logits = bias + contribution.sum(axis=1)
    target = jnp.argmax(model.probs(logits), axis=-1)
    # Binary models have one logit: its decomposition is the predicted class's up to the sign.
    column = target if logits.shape[-1] > 1 else jnp.zeros_like(target)
    signed = jnp.take_along_axis(contribution, column[:, None, None], axis=-1)[..., 0]
    norm = jnp.sqrt(jnp.square(contribution).sum(axis=-1))
    return NormImportance(
        norm=jnp.where(real, norm, 0.0),
        signed=signed,
        bias=jnp.take_along_axis(bias, column[:, None], axis=-1)[:, 0],
    )
