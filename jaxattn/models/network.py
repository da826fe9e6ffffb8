"""The Flax module behind every model: embedder, encoder(s), attention scorer and decoder.

It exposes one method per stage (``embed``, ``featurize``, ``encode_features``, ``score``,
``decode``, and ``encode_embedded`` = the middle two, plus ``self_attention`` for the
Transformer's maps) so that :mod:`jaxattn.models.model` can offer them as separate pure functions
of the parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxattn.core.protocol import Encoded, HeadMaps
from jaxattn.models.attention import make_attention, masked_softmax
from jaxattn.models.encoders import EncoderSettings, encoder_output_size, make_encoder

# Logit given to answers that are not candidates: exp() underflows to exactly 0 in float32, while
# staying finite so that log-probabilities and their gradients never become NaN.
NON_CANDIDATE_LOGIT = -1e9
#: The pooling attention scorer's module name: its parameters are the params subtree under this
#: root key (the training default exempts exactly that subtree from weight decay; a Transformer
#: encoder's own self-attention layers live under ``text_encoder``/``query_encoder``).
SCORER = "attention"


class AttentionNetwork(nn.Module):
    """Embed -> encode -> score -> softmax -> decode, for single texts and (premise, query) pairs.

    Attributes:
      vocab_size, embed_dim: embedding table shape.
      encoder, attention: registry names (``bilstm|cnn|average|transformer``, ``additive|dot``).
      num_outputs: 1 for binary (a sigmoid logit), else the number of classes / answers.
      pair: whether a second encoder of the same kind reads ``batch.query``.
      settings: the encoders' sizes (:class:`~jaxattn.models.encoders.EncoderSettings`).

    Inputs arrive as masks (``mask``: real tokens; ``valid``: positions holding input), never as
    special token ids.
    """

    vocab_size: int
    embed_dim: int = 300
    encoder: str = "bilstm"
    attention: str = "additive"
    num_outputs: int = 1
    pair: bool = False
    settings: EncoderSettings = EncoderSettings()

    def _encoder(self, name: str) -> nn.Module:
        return make_encoder(self.encoder, self.embed_dim, self.settings, name)

    def setup(self):
        self.embedder = nn.Embed(
            self.vocab_size, self.embed_dim, embedding_init=nn.initializers.normal(1.0)
        )
        self.text_encoder = self._encoder("text_encoder")
        self.scorer = make_attention(self.attention, SCORER)
        size = encoder_output_size(self.encoder, self.settings)
        if self.pair:
            self.query_encoder = self._encoder("query_encoder")
            self.decoder_p = nn.Dense(size // 2, name="decoder_p")
            self.decoder_q = nn.Dense(size // 2, use_bias=False, name="decoder_q")
        self.decoder_out = nn.Dense(self.num_outputs, name="decoder_out")

    def embed(self, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E]; encoders ignore what padding positions hold."""
        return self.embedder(tokens)

    def featurize(self, embedded):
        """Per-token features of the passage (see :mod:`jaxattn.models.encoders`)."""
        return self.text_encoder.featurize(embedded)

    def encode_features(
        self,
        features,
        mask,
        valid,
        query_embedded=None,
        query_valid=None,
        candidates=None,
        heads: HeadMaps | None = None,
    ):
        """``heads``: self-attention given for chosen heads of the passage encoder (Transformer
        only; the query encoder always computes its own)."""
        if heads is None:
            hidden, _ = self.text_encoder.contextualize(features, valid)
        else:
            hidden, _ = self.text_encoder.contextualize(features, valid, heads)
        return Encoded(hidden=hidden, mask=mask, query=self._query(query_embedded, query_valid),
                       candidates=candidates)

    def encode_embedded(
        self, embedded, mask, valid, query_embedded=None, query_valid=None, candidates=None
    ):
        return self.encode_features(
            self.featurize(embedded), mask, valid, query_embedded, query_valid, candidates
        )

    def _query(self, query_embedded, query_valid):
        """The query encoder's summary of a pair's query; None for single texts."""
        if not self.pair:
            return None
        return self.query_encoder(query_embedded, query_valid)[1]

    def layer_states(self, tokens, valid):
        """The passage Transformer's states entering each layer and its maps (see
        :meth:`~jaxattn.models.transformer.TransformerEncoder.layer_states`)."""
        return self.text_encoder.layer_states(self.featurize(self.embed(tokens)), valid)

    def encode_from_layer(
        self, x, layer: int, given, select, mask, valid, query_embedded=None, query_valid=None,
        candidates=None,
    ):
        """:meth:`encode_features` with the passage Transformer restarted at ``layer`` from the
        states ``x`` entering it (see ``TransformerEncoder.contextualize_from``)."""
        hidden, _ = self.text_encoder.contextualize_from(x, valid, layer, given, select)
        return Encoded(hidden=hidden, mask=mask, query=self._query(query_embedded, query_valid),
                       candidates=candidates)

    def self_attention(self, tokens, valid) -> None:
        """Runs the passage encoder so that a Transformer sows its per-layer attention maps
        (``intermediates/text_encoder/self_attention``; apply with ``mutable=["intermediates"]``)."""
        self.text_encoder(self.embed(tokens), valid)

    def score(self, enc: Encoded) -> jnp.ndarray:
        return self.scorer(enc.hidden, enc.mask, enc.query)

    def decode(self, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        context = jnp.einsum("bt,bth->bh", attn, enc.hidden)
        if self.pair:
            context = jnp.tanh(self.decoder_p(context) + self.decoder_q(enc.query))
        logits = self.decoder_out(context)
        if enc.candidates is not None:
            logits = jnp.where(enc.candidates, logits, NON_CANDIDATE_LOGIT)
        return logits

    def __call__(self, tokens, mask, valid, query=None, query_valid=None, candidates=None):
        """Full forward pass (used to initialise every parameter)."""
        query_embedded = self.embed(query) if self.pair else None
        enc = self.encode_embedded(
            self.embed(tokens), mask, valid, query_embedded, query_valid, candidates
        )
        attn = masked_softmax(self.score(enc), enc.mask)
        return self.decode(enc, attn), attn
