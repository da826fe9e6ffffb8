"""BERT classifiers under the model contract (:mod:`jaxattn.core.protocol`), so every analysis
and the trainer run on them unchanged. Two heads read the last hidden states:

* :class:`BertClsClassifier` (``model.head = "cls"``): HF's ``BertForSequenceClassification``,
  the pooler (``tanh(dense(h[CLS]))``), dropout, then a linear layer with one logit per class
  (two for a binary task, trained with the mean softmax cross-entropy, as HF's). A base-only
  model (``logits``): no pooling attention, so the stages that need one are skipped with the
  reason.
* :class:`BertAttentionClassifier` (``model.head = "attention"``): Jain & Wallace's additive
  attention pooling over the word pieces, then a linear read-out; the attention is the pooling
  seam (``attend`` / ``decode``, ``affine_decoder``).

Both offer the self-attention seam (``heads=HeadMaps(...)``). ``batch.tokens`` are word-piece ids
([CLS] ... [SEP], :class:`~jaxattn.data.tokenizers.WordPieceTokenizer`), ``batch.valid`` the
positions self-attention may read, ``batch.mask`` the word pieces (what the pooling attention and
the analyses score), ``batch.token_types`` the segments of a joined pair (None: all 0). Params
are ``{"bert": ..., "head": ...}``: the encoder's (:func:`~jaxattn.models.pretrained.hf_files.
load_folder`) and the head's. With ``batch.dropout_key`` (training) BERT's dropout applies
(``config.hidden_dropout`` / ``attention_dropout``, and on the cls head's pooled state); without
it the model is deterministic.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.protocol import Batch, Encoded, HeadMaps, output_distribution
from jaxattn.models.config import HEADS
from jaxattn.models.pretrained.bert import Bert
from jaxattn.models.pretrained.heads import (
    additive_attention,
    additive_decode,
    cls_logits,
    init_additive_head,
)


@dataclasses.dataclass(frozen=True)
class _BertBase:
    bert: Bert
    task: str = "binary"
    num_classes: int = 2
    self_attention_seam: bool = True
    head = ""
    # Positions the head reads of the last layer (Bert.encode_embedded's last_layer_rows);
    # None: all of them.
    last_layer_rows: ClassVar[int | None] = None

    @property
    def num_logits(self) -> int:
        """The attention head's: one sigmoid logit for a binary task (Jain & Wallace's)."""
        return 1 if self.task == "binary" else self.num_classes

    @property
    def num_layers(self) -> int:
        return self.bert.config.num_layers

    def parameter_group(self, path: tuple[str, ...]) -> str:
        """``embeddings``, ``layers`` (stacked ``[L, ...]``, layer ``l`` on axis 0) or ``head``
        (pooler, classifier, attention head): what layer-wise learning rates and frozen
        embeddings act on (:func:`jaxattn.training.optimizers.make_optimizer`)."""
        if path[:2] == ("bert", "embeddings"):
            return "embeddings"
        if path[:2] == ("bert", "layers"):
            return "layers"
        return "head"

    def _bert_params(self, rng: jax.Array) -> dict:
        # Only the cls head reads the pooler.
        return self.bert.init(rng, pooler=self.head == "cls")

    def embed(self, params: dict, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E] word-piece embeddings."""
        return self.bert.embed(params["bert"], tokens)

    def encode_embedded(
        self, params: dict, batch: Batch, embedded: jnp.ndarray, heads: HeadMaps | None = None
    ) -> Encoded:
        out = self.bert.encode_embedded(
            params["bert"], embedded, _types(batch, embedded.shape[:2]), batch.valid, heads,
            dropout_key=batch.dropout_key, last_layer_rows=self.last_layer_rows,
        )
        return BertEncoded(hidden=out.hidden, mask=batch.mask, dropout_key=batch.dropout_key)

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        return output_distribution(logits)

    def hidden_states(self, params: dict, batch: Batch) -> jnp.ndarray:
        """<float32>[B, T, E] the last layer at every position (deterministic), also where
        ``encode_embedded`` computes it at [CLS] alone (the cls head's ``last_layer_rows``)."""
        types = _types(batch, batch.tokens.shape)
        return self.bert.encode(params["bert"], batch.tokens, types, batch.valid).hidden

    def self_attention(self, params: dict, batch: Batch) -> jnp.ndarray:
        """<float32>[L, B, H, T, T] the encoder's own attention probabilities."""
        types = _types(batch, batch.tokens.shape)
        return self.bert.self_attention(params["bert"], batch.tokens, types, batch.valid)


    def layer_inputs(self, params: dict, batch: Batch) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The states entering each layer <float32>[L, B, T, E] and the encoder's own attention
        <float32>[L, B, H, T, T], from one pass (for :meth:`encode_from_layer`)."""
        types = _types(batch, batch.tokens.shape)
        out = self.bert.encode(params["bert"], batch.tokens, types, batch.valid,
                               return_attention=True)
        return out.hidden_states[:-1], out.attentions

    def encode_from_layer(
        self,
        params: dict,
        batch: Batch,
        hidden: jnp.ndarray,
        layer: int,
        maps: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
    ) -> Encoded:
        """:meth:`encode_embedded` restarted at ``layer`` (a Python int,
        :meth:`~jaxattn.models.pretrained.bert.Bert.encode_from`) from ``hidden``
        <float32>[B, T, E] (``layer_inputs(...)[0][layer]``), with ``maps`` <float32>[B, H, T, T]
        in place of that layer's heads ``select`` <bool>[H] (deterministic)."""
        out = self.bert.encode_from(params["bert"], hidden, batch.valid, layer, maps, select,
                                    self.last_layer_rows)
        return BertEncoded(hidden=out, mask=batch.mask)


@struct.dataclass
class BertEncoded(Encoded):
    """:class:`~jaxattn.core.protocol.Encoded` with the batch's dropout key (None outside
    training), for the dropout the cls head applies after the encoder."""

    dropout_key: jax.Array | None = None


#: Folded into the batch's dropout key for the pooled state's dropout (the encoder splits the
#: key itself; a fold-in draws a mask independent of all of those).
POOLED_DROPOUT_STREAM = 0x9E37


def _types(batch: Batch, shape) -> jnp.ndarray:
    if batch.token_types is None:
        return jnp.zeros(shape, jnp.int32)
    return batch.token_types


@dataclasses.dataclass(frozen=True)
class BertClsClassifier(_BertBase):
    """BERT + pooler + dropout + linear layer over [CLS] (``BertForSequenceClassification``):
    one logit per class, two for a binary task (``[B, 2]``, a softmax; the trainer's loss is
    then HF's mean cross-entropy, without J&W's class weights). Params ``{"bert": {...,
    "pooler"}, "head": {"classifier"}}``. The pooled state's dropout (``hidden_dropout``) applies
    when the encoding carries a dropout key (:class:`BertEncoded`, training only).

    The head reads [CLS] alone, so the last layer is computed at [CLS] only (its keys and values
    at every position): ``encode_embedded(...).hidden`` is zero past position 0. The logits are
    HF's; the work is about ``L - 5/6`` layers' of a full pass (MiniLM: 5.2 of 6).
    """

    head = "cls"
    last_layer_rows = 1

    @property
    def num_logits(self) -> int:
        return self.num_classes

    def init(self, rng: jax.Array, batch: Batch | None = None) -> dict:
        k_bert, k_head = jax.random.split(rng)
        size = self.bert.config.hidden_size
        kernel = 0.02 * jax.random.normal(k_head, (size, self.num_logits), jnp.float32)
        return {
            "bert": self._bert_params(k_bert),
            "head": {"classifier": {"kernel": kernel, "bias": jnp.zeros(self.num_logits)}},
        }

    def logits(self, params: dict, enc: Encoded) -> jnp.ndarray:
        key = getattr(enc, "dropout_key", None)
        if key is not None:
            key = jax.random.fold_in(key, POOLED_DROPOUT_STREAM)
        return cls_logits({**params["bert"], **params["head"]}, enc.hidden, key,
                          self.bert.config.hidden_dropout)


@dataclasses.dataclass(frozen=True)
class BertAttentionClassifier(_BertBase):
    """BERT + additive attention pooling + linear read-out (``affine_decoder``). Params
    ``{"bert": ..., "head": {"W", "v", "out"}}``."""

    affine_decoder: bool = True
    head = "attention"

    def init(self, rng: jax.Array, batch: Batch | None = None) -> dict:
        k_bert, k_head = jax.random.split(rng)
        size = self.bert.config.hidden_size
        return {
            "bert": self._bert_params(k_bert),
            "head": init_additive_head(k_head, size, self.num_logits),
        }

    def attend(self, params: dict, enc: Encoded) -> jnp.ndarray:
        return additive_attention(params["head"], enc.hidden, enc.mask)

    def decode(self, params: dict, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return additive_decode(params["head"], enc.hidden, attn)


def bert_classifier(bert: Bert, head: str, task: str, num_classes: int):
    """The classifier ``head`` names (:data:`HEADS`) over ``bert``."""
    if head == "cls":
        return BertClsClassifier(bert, task, num_classes)
    if head == "attention":
        return BertAttentionClassifier(bert, task, num_classes)
    raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
