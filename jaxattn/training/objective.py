"""What a training step minimises: the logits of a batch under the attention an
:class:`AttentionSource` picks, and the loss over them.

The attention the decoder sees is ``learned`` (the model's own), ``uniform`` (frozen at 1/len
over real tokens) or ``imposed`` (another trained model's attention on the same batch, held
fixed). All go through the same step; only the attention argument of ``decode`` differs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxattn.core.errors import ConfigError
from jaxattn.core.protocol import (
    AttentionModel,
    Batch,
    Encoded,
    Params,
    encode,
    has_pooling_attention,
    is_binary,
    model_logits,
)
from jaxattn.models.attention import uniform_attention


@dataclasses.dataclass(frozen=True)
class AttentionSource:
    """Which attention the decoder is given: ``learned``, ``uniform`` or ``imposed`` (from
    ``model``)."""

    mode: str = "learned"
    model: AttentionModel | None = None  # the imposing model (mode == "imposed")


#: The model's own attention: what every plain run trains with.
LEARNED = AttentionSource()


def source_logits(
    model: AttentionModel,
    params: Params,
    enc: Encoded,
    batch: Batch,
    source: AttentionSource,
    source_params: Params | None,
) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """(logits <float32>[B, C], the attention decoded with): a pooling model decodes with the
    attention ``source`` picks; a base-only model (a [CLS] head) gives its own ``logits`` and no
    attention (``source`` must then be ``learned``)."""
    if not has_pooling_attention(model):
        if source.mode != "learned":
            raise ConfigError(f"train.attention = {source.mode!r} needs the pooling seam, which "
                              f"{type(model).__name__} does not offer", key="train.attention")
        return model_logits(model, params, enc), None
    attn = attention_for(model, params, enc, batch, source, source_params)
    return model.decode(params, enc, attn), attn


def attention_for(
    model: AttentionModel,
    params: Params,
    enc: Encoded,
    batch: Batch,
    source: AttentionSource,
    source_params: Params | None,
) -> jnp.ndarray:
    """<float32>[B, T] the attention to decode with under ``source``."""
    if source.mode == "learned":
        return model.attend(params, enc)
    if source.mode == "uniform":
        return uniform_attention(enc.mask)
    if source.mode == "imposed":
        src = source.model
        return jax.lax.stop_gradient(src.attend(source_params, encode(src, source_params, batch)))
    raise ValueError(f"unknown attention source {source.mode!r}")


def positive_class_weight(labels: np.ndarray) -> float:
    """J&W's weight on positive examples, N / sum(y) - 1 (= #neg / #pos)."""
    labels = np.asarray(labels)
    return float(len(labels) / max(labels.sum(), 1) - 1.0)


def batch_loss(
    model: AttentionModel, logits: jnp.ndarray, batch: Batch, pos_weight: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(objective, the per-instance losses summed over the batch's real rows).

    The objective is J&W's for a binary model with one sigmoid logit: class-weighted BCE summed
    over the batch; else (several classes, or a binary task read by two logits, as HF's
    ``BertForSequenceClassification``) the mean softmax cross-entropy, unweighted. The sum is
    what the history logs (divided by the split's size: a mean per instance for every task).
    """
    w = batch.weights
    if is_binary(model) and logits.shape[-1] == 1:
        y = batch.labels.astype(jnp.float32)
        per = optax.sigmoid_binary_cross_entropy(logits[:, 0], y)
        per = per * jnp.where(batch.labels == 1, pos_weight, 1.0)
        return (per * w).sum(), (per * w).sum()
    per = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    return (per * w).sum() / jnp.maximum(w.sum(), 1.0), (per * w).sum()
