"""Per-word encoder features computed once for the vocabulary, gathered per token at analysis time.

At analysis time the embeddings and the encoder's per-token input layer are frozen, and that
layer is affine in each token's embedding alone (``featurize``; for the BiLSTM ``E @ W_ih + b``,
both directions' gates). So ``featurize(embed(v))`` can be computed once for every word ``v`` of
the vocabulary and every batch gathers its rows, leaving the recurrence (or the Transformer's
layers) as the only per-token matmuls.

:func:`with_vocabulary_features` wraps a :class:`~jaxattn.core.protocol.FeaturizedModel` into one
whose "embedding" of a token is its features' linear part ``f(e) - f(0)`` (flattened to
``[B, T, F]``) and whose ``featurize`` adds ``f(0)`` back. Every analysis then computes exactly
what it computed on the original model:
- the encoder sees ``f(e)``, as before;
- gradient x input is ``grad_f . (f(e) - f(0))`` on both (the fast path already stopped at the
  features), and ``grad_e . e`` equals it for an affine ``f``;
- integrated gradients' path ``alpha * e`` maps onto ``alpha * (f(e) - f(0)) + f(0) = f(alpha e)``;
- leave-one-out deletes a row of features.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import (
    AttentionModel,
    Batch,
    Encoded,
    HeadMaps,
    Params,
    has_features,
    has_pooling_attention,
)

# A table larger than this (bytes) is not built: gathering it would cost more memory than it saves.
MAX_TABLE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class VocabularyFeatures:
    """``model`` with its per-token features gathered from a table (see the module docstring).

    Its params are ``{"model": <the model's params>, "linear": <float32>[V, F] f(e_v) - f(0),
    "offset": <float32>[F] f(0)}`` (:func:`with_vocabulary_features` builds them).
    """

    model: AttentionModel
    feature_shape: tuple[int, ...]  # one token's features, as ``model.featurize`` gives them

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def affine_decoder(self) -> bool:
        return bool(getattr(self.model, "affine_decoder", False))

    def init(self, rng: jax.Array, batch: Batch) -> Params:
        raise TypeError("VocabularyFeatures wraps trained parameters; build it with "
                        "with_vocabulary_features(model, params, vocab_size)")

    def embed(self, params: Params, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> the tokens' linear feature parts <float32>[B, T, F]."""
        return jnp.take(params["linear"], tokens, axis=0)

    def featurize(self, params: Params, embedded: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, T, F] -> the model's features <float32>[B, T, *feature_shape]."""
        offset = params["offset"]
        features = embedded + offset.reshape((1,) * (embedded.ndim - 1) + offset.shape)
        return features.reshape(features.shape[:-1] + self.feature_shape)

    @property
    def self_attention_seam(self) -> bool:
        """The wrapped model's self-attention seam, passed through (``heads=``)."""
        return bool(getattr(self.model, "self_attention_seam", False))

    def encode_features(
        self, params: Params, batch: Batch, features: jnp.ndarray, heads: HeadMaps | None = None
    ) -> Encoded:
        if heads is None:
            return self.model.encode_features(params["model"], batch, features)
        return self.model.encode_features(params["model"], batch, features, heads=heads)

    def encode_embedded(
        self, params: Params, batch: Batch, embedded: jnp.ndarray, heads: HeadMaps | None = None
    ) -> Encoded:
        return self.encode_features(params, batch, self.featurize(params, embedded), heads)

    def attend(self, params: Params, enc: Encoded) -> jnp.ndarray:
        return self.model.attend(params["model"], enc)

    def decode(self, params: Params, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return self.model.decode(params["model"], enc, attn)

    def logits(self, params: Params, enc: Encoded) -> jnp.ndarray:
        return self.decode(params, enc, self.attend(params, enc))

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        return self.model.probs(logits)

    def self_attention(self, params: Params, batch: Batch) -> jnp.ndarray:
        if not callable(getattr(self.model, "self_attention", None)):
            b, t = batch.tokens.shape
            return jnp.zeros((0, b, 0, t, t), jnp.float32)
        return self.model.self_attention(params["model"], batch)


def vocabulary_table(
    model: AttentionModel, params: Params, vocab_size: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(``f(e_v) - f(0)`` <float32>[V, F], ``f(0)`` <float32>[F]) for every word id ``v``."""
    ids = jnp.arange(vocab_size, dtype=jnp.int32)[None]  # [1, V]
    features = model.featurize(params, model.embed(params, ids))[0]  # [V, ...]
    offset = model.featurize(params, jnp.zeros_like(model.embed(params, ids[:, :1])))[0]  # [1, ...]
    return (features - offset).reshape(vocab_size, -1), offset.reshape(-1)


def with_vocabulary_features(
    model: AttentionModel, params: Params, vocab_size: int
) -> tuple[AttentionModel, Params]:
    """(the wrapped model, its params), or ``(model, params)`` unchanged for a model without the
    ``featurize`` fast path or the pooling seam (the wrapper offers both), or whose table would
    exceed :data:`MAX_TABLE_BYTES`."""
    if not has_features(model) or not has_pooling_attention(model):
        return model, params
    probe = jax.eval_shape(
        lambda p: model.featurize(p, model.embed(p, jnp.zeros((1, 1), jnp.int32))), params)
    per_token = probe.dtype.itemsize * math.prod(probe.shape)
    if vocab_size * per_token > MAX_TABLE_BYTES:
        return model, params
    linear, offset = jax.jit(vocabulary_table, static_argnums=(0, 2))(model, params, vocab_size)
    wrapped = VocabularyFeatures(model, tuple(int(n) for n in probe.shape[2:]))
    return wrapped, {"model": params, "linear": linear, "offset": offset}
