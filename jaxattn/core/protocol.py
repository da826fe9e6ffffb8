"""The model contract every analysis is written against: a base, and optional seams.

A model is anything that offers these pure functions of a params pytree (in the manner of optax's
``GradientTransformation``, a tuple of pure functions; a frozen dataclass of them, or a class
with these methods, satisfies the protocols structurally).

**The base** (:class:`BaseModel`), which every model offers::

    init(rng, batch)                    -> params
    embed(params, tokens)               <int32>[B, T]            -> <float32>[B, T, E]
    encode_embedded(params, batch, e)   passage embeddings e      -> Encoded(hidden, mask, ...)
    logits(params, enc)                 Encoded                   -> <float32>[B, C] its output
    probs(logits)                       logits                    -> <float32>[B, K] outputs

and a ``task`` (``binary``: one sigmoid logit, ``probs`` gives ``[1 - p, p]``; ``multiclass``,
``nli``, ``qa``: softmax over C classes). Gradients w.r.t. the inputs are ``jax.grad`` over
``encode_embedded`` then ``logits``; leave-one-out and integrated gradients need no more. A
classifier that reads a [CLS] / first-position vector is a base-only model.

**The pooling seam** (:class:`AttentionModel`): attention over the tokens is an argument::

    attend(params, enc)                 Encoded                   -> <float32>[B, T] attention
    decode(params, enc, attn)           any [B, T] distribution   -> <float32>[B, C] logits

with ``logits(params, enc) == decode(params, enc, attend(params, enc))``; a pooling model may
leave ``logits`` out and it is derived (:func:`model_logits`). Permuting, replacing, erasing or
optimising attention is then a transform over the ``attn`` argument of ``decode`` with ``enc``
held fixed (:func:`has_pooling_attention`).

**The self-attention seam** (:func:`has_self_attention_seam`): ``self_attention_seam = True``,
``self_attention(params, batch) -> <float32>[L, B, heads, T, T]`` (the maps the model computes
itself, each query row a distribution over ``batch.valid`` keys) and
``encode_embedded(params, batch, embedded, heads=HeadMaps(maps, select))``, which encodes with
``maps`` in place of the (layer, head) pairs ``select`` picks while every other head computes its
own on the residual stream the replaced ones changed. Permuting, zeroing or swapping a head's
attention is then a vmapped transform over ``maps``; ``heads=None`` is the plain encoding.

Rules the analyses rely on:

* ``embed`` is per token: row ``t`` of its output depends on ``tokens[:, t]`` alone (positions,
  context and the query belong in ``encode_embedded``). Leave-one-out deletes a token by
  deleting its column of :class:`Batch` and its row of the embeddings.
* ``encode_embedded`` reads ``batch.valid`` (which positions hold input) and ``batch.mask``
  (which of them are real tokens, the only places attention may go), never special token ids:
  those stay inside :mod:`jaxattn.data`. A pair model also reads ``batch.query`` /
  ``batch.query_valid`` itself.
* ``Encoded.hidden`` at masked positions does not affect ``decode``.
* Randomness at training time (dropout) comes from ``batch.dropout_key`` only; without it the
  model is deterministic, as every analysis needs.

Optional, for speed (the analyses fall back to the generic path when absent):

* ``featurize(params, embedded) -> features <float32>[B, T, ...]`` and
  ``encode_features(params, batch, features) -> Encoded`` with
  ``encode_embedded == encode_features . featurize``, where **each token's features are an
  affine function of that token's embedding alone** (no neighbours, no position). Leave-one-out
  then computes the features once and deletes a row; gradient x input stops its backward pass at
  the features, since for affine ``f``: ``grad_e . e = grad_f . (f(e) - f(0))``.
* ``affine_decoder = True`` (pooling models) declares that ``decode(params, enc, attn)`` is
  affine in ``attn`` for a fixed ``enc`` (a linear read-out of ``sum_t attn_t hidden_t``);
  interventions then decode many attentions as ``T x C`` weighted sums instead of full decodes.
* ``layer_inputs`` and ``encode_from_layer`` beside the self-attention seam: the encoder
  restarted at a layer from the states entering it (:func:`has_layer_restart`), so that an
  intervention on a head of layer ``l``, and the per-layer gradients of Chefer's and Hao's
  summaries, recompute only layers ``l..L-1``.
* ``self_attention`` without the seam: the maps for inspection beside the pooling attention
  (``L = 0`` for a model without self-attention; :func:`has_self_attention`).
* ``hidden_states(params, batch) -> <float32>[B, T, H]``: the last hidden states at every
  position, for a model whose ``encode_embedded`` computes its last layer only where its head
  reads (a [CLS] classifier); what reads every token's state (conicity) goes through
  :func:`final_hidden`.

:func:`jaxattn.core.checks.check_model` checks the base and :func:`capabilities` names the seams
a model offers.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

Params = Any  # a pytree of arrays

TASKS = ("binary", "multiclass", "nli", "qa")


@struct.dataclass
class Batch:
    """The inputs of a model: padded token ids with their masks, and the training targets.

    Attributes:
      tokens: <int32>[B, T] token ids (what :meth:`AttentionModel.embed` reads).
      mask: <bool>[B, T] real tokens: where attention may go and what the analyses score.
      valid: <bool>[B, T] positions that hold input (real tokens and any boundary markers);
        False is padding.
      labels: <int32>[B] gold labels.
      weights: <float32>[B] 1 for real rows, 0 for rows that only pad the batch.
      index: <int32>[B] position of the row in its split, -1 for padding rows.
      query: <int32>[B, Tq] hypothesis / question ids (pair tasks) or None.
      query_valid: <bool>[B, Tq] positions of ``query`` that hold input, or None.
      candidates: <bool>[B, C] answers allowed for the row (QA) or None.
      rationale: <bool>[B, T] human / planted rationale on real tokens or None.
      token_types: <int32>[B, T] segment ids of a pair joined into one sequence (BERT's
        token types: 0 for the text, 1 for the query after it), or None (all 0).
      dropout_key: <uint32>[2] a PRNG key for training-time randomness (dropout), set by the
        trainer per batch; None everywhere else (evaluation, every analysis): deterministic.
      word_index: <int32>[B, T] the word of each position (an index into the row's words, a
        joined query's words after them), -1 where there is none (boundary markers, padding);
        or None. A word vocabulary's tokens are each their own word; WordPiece splits a word
        into several pieces, which share its index. Deleting a whole word deletes them all
        (:mod:`jaxattn.explain.deletion`).
    """

    tokens: jnp.ndarray
    mask: jnp.ndarray
    valid: jnp.ndarray
    labels: jnp.ndarray
    weights: jnp.ndarray
    index: jnp.ndarray
    query: jnp.ndarray | None = None
    query_valid: jnp.ndarray | None = None
    candidates: jnp.ndarray | None = None
    rationale: jnp.ndarray | None = None
    dropout_key: jnp.ndarray | None = None
    token_types: jnp.ndarray | None = None
    word_index: jnp.ndarray | None = None


# The fields of a Batch with a token axis (axis 1), which a token deletion shortens.
TOKEN_FIELDS = ("tokens", "mask", "valid", "rationale", "token_types", "word_index")

Inputs = Batch


def delete_position(values: jnp.ndarray, position: jnp.ndarray) -> jnp.ndarray:
    """Removes column ``position`` from every row: [B, T, ...] -> [B, T - 1, ...].

    A gather of shifted indices, so it can be vmapped over positions.
    """
    keep = jnp.arange(values.shape[1] - 1)
    return values[:, keep + (keep >= position)]


def delete_token(batch: Batch, position: jnp.ndarray) -> Batch:
    """``batch`` with column ``position`` deleted from every token-aligned field."""
    return batch.replace(
        **{
            name: delete_position(getattr(batch, name), position)
            for name in TOKEN_FIELDS
            if getattr(batch, name) is not None
        }
    )


@struct.dataclass
class Encoded:
    """What the encoder hands to scoring and decoding; attention transforms hold it fixed.

    Attributes:
      hidden: <float32>[B, T, H] per-token states.
      mask: <bool>[B, T] real tokens (attention may only go there).
      query: <float32>[B, Hq] question / hypothesis summary (pair tasks) or None.
      candidates: <bool>[B, C] allowed answers (QA) or None.
    """

    hidden: jnp.ndarray
    mask: jnp.ndarray
    query: jnp.ndarray | None = None
    candidates: jnp.ndarray | None = None


@struct.dataclass
class HeadMaps:
    """Self-attention given by the caller for chosen (layer, head) pairs: the self-attention
    seam's argument (see :func:`has_self_attention_seam`).

    Attributes:
      maps: <float32>[L, B, H, T, T] attention probabilities, each query row a distribution over
        the key columns of ``batch.valid``; only the selected pairs are read.
      select: <bool>[L, H] the pairs whose attention is ``maps``; every other head computes its
        own on the residual stream the replaced heads changed.
    """

    maps: jnp.ndarray
    select: jnp.ndarray


@runtime_checkable
class BaseModel(Protocol):
    """What every model offers (see the module docstring): enough for gradient, leave-one-out
    and integrated-gradients importance.

    Implementations should be hashable (a frozen dataclass), so that the analyses can take them
    as a static argument of ``jax.jit``.
    """

    task: str

    def init(self, rng: jax.Array, batch: Batch) -> Params:
        """Fresh parameters for inputs shaped like ``batch``."""

    def embed(self, params: Params, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E], each row from its own token alone."""

    def encode_embedded(self, params: Params, batch: Batch, embedded: jnp.ndarray) -> Encoded:
        """Encodes the passage embeddings <float32>[B, T, E] of ``batch`` (and its query)."""

    def logits(self, params: Params, enc: Encoded) -> jnp.ndarray:
        """<float32>[B, C] the model's own output for ``enc``."""

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, K] the output distribution of ``logits``."""


@runtime_checkable
class AttentionModel(Protocol):
    """A model with the pooling seam: attention over the tokens is an explicit argument of
    ``decode`` (see the module docstring). ``logits`` may be left out: it is
    ``decode(params, enc, attend(params, enc))`` (:func:`model_logits`).

    Implementations should be hashable (a frozen dataclass), so that the analyses can take them
    as a static argument of ``jax.jit``.
    """

    task: str

    def init(self, rng: jax.Array, batch: Batch) -> Params:
        """Fresh parameters for inputs shaped like ``batch``."""

    def embed(self, params: Params, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E], each row from its own token alone."""

    def encode_embedded(self, params: Params, batch: Batch, embedded: jnp.ndarray) -> Encoded:
        """Encodes the passage embeddings <float32>[B, T, E] of ``batch`` (and its query)."""

    def attend(self, params: Params, enc: Encoded) -> jnp.ndarray:
        """<float32>[B, T] the model's own attention over ``enc.mask``."""

    def decode(self, params: Params, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, C] logits given any attention ``attn`` <float32>[B, T]."""

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, K] the output distribution of ``logits``."""


@runtime_checkable
class FeaturizedModel(AttentionModel, Protocol):
    """An :class:`AttentionModel` with the per-token affine fast path (see the module docstring)."""

    def featurize(self, params: Params, embedded: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, T, E] -> per-token features <float32>[B, T, ...], affine per token."""

    def encode_features(self, params: Params, batch: Batch, features: jnp.ndarray) -> Encoded:
        """Encodes given :meth:`featurize` output of ``batch``'s passage."""


def has_pooling_attention(model: Any) -> bool:
    """Whether ``model`` offers the pooling seam (``attend`` and ``decode``)."""
    return callable(getattr(model, "attend", None)) and callable(getattr(model, "decode", None))


def has_features(model: Any) -> bool:
    """Whether ``model`` offers the ``featurize`` / ``encode_features`` fast path."""
    return callable(getattr(model, "featurize", None)) and callable(
        getattr(model, "encode_features", None)
    )


def has_affine_decoder(model: Any) -> bool:
    """Whether ``model`` declares ``decode`` affine in the attention (``affine_decoder``)."""
    return bool(getattr(model, "affine_decoder", False)) and has_pooling_attention(model)


def has_self_attention(model: Any) -> bool:
    """Whether ``model`` offers ``self_attention`` (it may still give zero layers)."""
    return callable(getattr(model, "self_attention", None))


def has_self_attention_seam(model: Any) -> bool:
    """Whether ``model`` declares ``self_attention_seam = True``: ``encode_embedded(params, batch,
    embedded, heads=HeadMaps(...))`` then encodes with the given maps for the selected (layer,
    head) pairs, and ``self_attention`` gives the maps it computes itself."""
    return bool(getattr(model, "self_attention_seam", False)) and has_self_attention(model)


def has_layer_restart(model: Any) -> bool:
    """Whether a model with the self-attention seam can restart its encoder at a layer:
    ``layer_inputs(params, batch) -> (states <float32>[L, B, T, E], maps <float32>[L, B, H, T,
    T])`` (the states entering each layer and its own attention, one pass) and
    ``encode_from_layer(params, batch, states[l], l, maps=<float32>[B, H, T, T],
    select=<bool>[H]) -> Encoded`` (``l`` static; layer ``l``'s heads ``select`` use ``maps``,
    every later head its own). A head intervention at layer ``l`` then runs only layers ``l..L-1``.
    """
    return (has_self_attention_seam(model) and callable(getattr(model, "layer_inputs", None))
            and callable(getattr(model, "encode_from_layer", None)))


# Capability name -> predicate; what :func:`capabilities` reports and stages may require.
CAPABILITIES = {
    "pooling": has_pooling_attention,
    "self_attention_seam": has_self_attention_seam,
    "self_attention": has_self_attention,
    "layer_restart": has_layer_restart,
    "features": has_features,
    "affine_decoder": has_affine_decoder,
}


def capabilities(model: Any) -> tuple[str, ...]:
    """The optional seams and fast paths ``model`` offers, names of :data:`CAPABILITIES`."""
    return tuple(name for name, offers in CAPABILITIES.items() if offers(model))


def is_binary(model: BaseModel) -> bool:
    """Binary models give one sigmoid logit; ``probs`` turns it into ``[1 - p, p]``."""
    return model.task == "binary"


def encode(model: BaseModel, params: Params, batch: Batch) -> Encoded:
    """``encode_embedded`` of ``batch``'s own embeddings."""
    return model.encode_embedded(params, batch, model.embed(params, batch.tokens))


def final_hidden(model: BaseModel, params: Params, batch: Batch) -> jnp.ndarray:
    """<float32>[B, T, H] the last hidden states at every position: the model's
    ``hidden_states`` where it offers one, else ``encode(...).hidden``."""
    states = getattr(model, "hidden_states", None)
    if callable(states):
        return states(params, batch)
    return encode(model, params, batch).hidden


def model_logits(model: BaseModel, params: Params, enc: Encoded) -> jnp.ndarray:
    """<float32>[B, C] the model's own output for ``enc``: its ``logits``, or for a pooling model
    without one ``decode(enc, attend(enc))``."""
    if callable(getattr(model, "logits", None)):
        return model.logits(params, enc)
    return model.decode(params, enc, model.attend(params, enc))


def predict_logits(model: BaseModel, params: Params, batch: Batch) -> jnp.ndarray:
    """<float32>[B, C] the model's own output for ``batch`` (any model)."""
    return model_logits(model, params, encode(model, params, batch))


def require_pooling(model: Any, what: str) -> None:
    """A TypeError naming ``what`` unless ``model`` offers the pooling seam."""
    if not has_pooling_attention(model):
        raise TypeError(
            f"{what} needs the pooling seam (attend and decode), which "
            f"{type(model).__name__} does not offer"
        )


def forward(
    model: AttentionModel, params: Params, batch: Batch, attn: jnp.ndarray | None = None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Logits <float32>[B, C] and the attention used (the model's own when ``attn`` is None);
    pooling models only (:func:`predict_logits` serves any model)."""
    require_pooling(model, "forward")
    enc = encode(model, params, batch)
    if attn is None:
        attn = model.attend(params, enc)
    return model.decode(params, enc, attn), attn


def output_distribution(logits: jnp.ndarray) -> jnp.ndarray:
    """Logits [..., C] -> probabilities [..., K]: a single logit is a sigmoid over two classes."""
    if logits.shape[-1] == 1:
        p = jax.nn.sigmoid(logits)
        return jnp.concatenate([1.0 - p, p], axis=-1)
    return jax.nn.softmax(logits, axis=-1)
