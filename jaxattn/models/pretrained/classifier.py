"""A BERT encoder with Jain & Wallace's additive attention head as a
:class:`jaxattn.core.protocol.AttentionModel`, so every analysis runs on it unchanged.

``batch.tokens`` are word-piece ids ([CLS] ... [SEP], as :func:`~jaxattn.models.pretrained.
hf_files.tokenize` gives them), ``batch.valid`` the positions self-attention may read and
``batch.mask`` the real tokens (word pieces) the pooling attention goes to. A single text has
token type 0 everywhere. Params are ``{"bert": ..., "head": ...}``: put the params of
:func:`~jaxattn.models.pretrained.hf_files.load_folder` under ``"bert"`` to start from pretrained
weights. Dropout is not modelled (``batch.dropout_key`` is not read).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import Batch, Encoded, HeadMaps, output_distribution
from jaxattn.models.pretrained.bert import (
    Bert,
    additive_attention,
    additive_decode,
    init_additive_head,
)


@dataclasses.dataclass(frozen=True)
class BertAttentionClassifier:
    """BERT + additive attention pooling + linear read-out (``affine_decoder``), with the
    self-attention seam (``self_attention_seam``)."""

    bert: Bert
    task: str = "binary"
    num_classes: int = 2
    affine_decoder: bool = True
    self_attention_seam: bool = True

    @property
    def num_logits(self) -> int:
        return 1 if self.task == "binary" else self.num_classes

    def init(self, rng: jax.Array, batch: Batch | None = None) -> dict:
        k_bert, k_head = jax.random.split(rng)
        size = self.bert.config.hidden_size
        return {
            "bert": self.bert.init(k_bert, pooler=False),
            "head": init_additive_head(k_head, size, self.num_logits),
        }

    def embed(self, params: dict, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E] word-piece embeddings."""
        return self.bert.embed(params["bert"], tokens)

    def encode_embedded(
        self, params: dict, batch: Batch, embedded: jnp.ndarray, heads: HeadMaps | None = None
    ) -> Encoded:
        types = jnp.zeros(embedded.shape[:2], jnp.int32)
        out = self.bert.encode_embedded(params["bert"], embedded, types, batch.valid, heads)
        return Encoded(hidden=out.hidden, mask=batch.mask)

    def attend(self, params: dict, enc: Encoded) -> jnp.ndarray:
        return additive_attention(params["head"], enc.hidden, enc.mask)

    def decode(self, params: dict, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return additive_decode(params["head"], enc.hidden, attn)

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        return output_distribution(logits)

    def self_attention(self, params: dict, batch: Batch) -> jnp.ndarray:
        """<float32>[L, B, H, T, T] the encoder's own attention probabilities."""
        types = jnp.zeros(batch.tokens.shape, jnp.int32)
        return self.bert.self_attention(params["bert"], batch.tokens, types, batch.valid)
