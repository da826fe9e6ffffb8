"""Models as tuples of pure functions of a params pytree, with attention as an explicit argument.

    model = build_model(vocab_size=..., task="binary", encoder="bilstm", attention="additive")
    params = model.init(jax.random.key(0), batch)
    enc = model.encode(params, batch)              # Encoded(hidden [B,T,H], mask [B,T], ...)
    attn = model.attend(params, enc)               # [B, T], the model's own attention
    logits = model.decode(params, enc, attn)       # [B, C]; pass any other [B, T] distribution
    logits, attn = model.forward(params, batch)    # == decode(encode(...), attend(...))
    maps = model.self_attention(params, batch)     # [L, B, heads, T, T] (Transformer; else L = 0)
    enc = model.encode(params, batch, heads=HeadMaps(maps, select))  # Transformer: given heads

Permuting, replacing or optimising attention is then a ``jax.vmap``/``jax.jit`` transform over the
``attn`` argument of :meth:`Model.decode` with ``enc`` held fixed, and gradients w.r.t. the input
embeddings go through :meth:`Model.embed` + :meth:`Model.encode_embedded`. With the Transformer
encoder the model also offers the self-attention seam: ``heads=HeadMaps(maps, select)`` encodes
with ``maps`` for the selected (layer, head) pairs of the passage encoder, so replacing a head's
attention is a ``jax.vmap`` over ``maps``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxattn.core.protocol import Batch, Encoded, HeadMaps, Params, forward, output_distribution
from jaxattn.models.attention import masked_softmax
from jaxattn.models.encoders import EncoderSettings
from jaxattn.models.network import AttentionNetwork


@dataclasses.dataclass(frozen=True)
class Model:
    """jaxattn's own :class:`~jaxattn.core.protocol.FeaturizedModel` over an
    :class:`AttentionNetwork`; hashable, so usable as a jit static."""

    network: AttentionNetwork
    task: str  # binary | multiclass | nli | qa

    @property
    def is_binary(self) -> bool:
        return self.task == "binary"

    @property
    def self_attention_seam(self) -> bool:
        """The Transformer encoder takes given maps for chosen heads (``heads=``)."""
        return self.network.encoder == "transformer"

    @property
    def affine_decoder(self) -> bool:
        """Single-text decoders are linear read-outs of the attended state; pair decoders are not."""
        return not self.network.pair

    def init(self, rng: jax.Array, batch: Batch) -> Params:
        return self.network.init(
            rng,
            batch.tokens,
            batch.mask,
            batch.valid,
            batch.query,
            batch.query_valid,
            batch.candidates,
        )["params"]

    def embed(self, params: Params, tokens: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] -> <float32>[B, T, E]."""
        return self.network.apply({"params": params}, tokens, method=AttentionNetwork.embed)

    def featurize(self, params: Params, embedded: jnp.ndarray) -> jnp.ndarray:
        """Per-token encoder features <float32>[B, T, ...] of passage embeddings [B, T, E].

        They depend on each token alone, so deleting a token deletes its row (leave-one-out).
        """
        return self.network.apply({"params": params}, embedded, method=AttentionNetwork.featurize)

    def encode_features(
        self,
        params: Params,
        batch: Batch,
        features: jnp.ndarray,
        query_embedded: jnp.ndarray | None = None,
        heads: HeadMaps | None = None,
    ) -> Encoded:
        """Encodes given :meth:`featurize` output for ``batch``'s passage (and its query);
        ``heads`` as in :meth:`encode_embedded`."""
        if heads is not None:
            self._require_seam("heads=HeadMaps(...)")
        if self.network.pair and query_embedded is None:
            query_embedded = self.embed(params, batch.query)
        rngs = None if batch.dropout_key is None else {"dropout": batch.dropout_key}
        return self.network.apply(
            {"params": params},
            features,
            batch.mask,
            batch.valid,
            query_embedded,
            batch.query_valid,
            batch.candidates,
            heads,
            method=AttentionNetwork.encode_features,
            rngs=rngs,
        )

    def encode_embedded(
        self,
        params: Params,
        batch: Batch,
        embedded: jnp.ndarray,
        query_embedded: jnp.ndarray | None = None,
        heads: HeadMaps | None = None,
    ) -> Encoded:
        """Encodes given embeddings of ``batch.tokens`` (and of ``batch.query`` for pair tasks).

        ``heads`` (Transformer only): attention probabilities ``heads.maps`` <float32>[L, B,
        heads, T, T] used by the passage encoder for the (layer, head) pairs ``heads.select``
        <bool>[L, heads] picks; the other heads compute their own on the changed stream.
        """
        return self.encode_features(
            params, batch, self.featurize(params, embedded), query_embedded, heads
        )

    def encode(self, params: Params, batch: Batch, heads: HeadMaps | None = None) -> Encoded:
        return self.encode_embedded(
            params, batch, self.embed(params, batch.tokens), heads=heads
        )

    def score(self, params: Params, enc: Encoded) -> jnp.ndarray:
        """<float32>[B, T] unnormalised scores, -inf at masked positions."""
        return self.network.apply({"params": params}, enc, method=AttentionNetwork.score)

    def attend(self, params: Params, enc: Encoded) -> jnp.ndarray:
        """<float32>[B, T] the model's own attention: masked softmax of :meth:`score`."""
        return masked_softmax(self.score(params, enc), enc.mask)

    def decode(self, params: Params, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, C] logits from the supplied attention ``attn`` <float32>[B, T]."""
        return self.network.apply({"params": params}, enc, attn, method=AttentionNetwork.decode)

    def logits(self, params: Params, enc: Encoded) -> jnp.ndarray:
        """<float32>[B, C] the model's own output: :meth:`decode` with its own attention."""
        return self.decode(params, enc, self.attend(params, enc))

    def forward(
        self, params: Params, batch: Batch, attn: jnp.ndarray | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Logits <float32>[B, C] and the attention used (the model's own when ``attn`` is None)."""
        return forward(self, params, batch, attn)

    def self_attention(self, params: Params, batch: Batch) -> jnp.ndarray:
        """<float32>[L, B, heads, T, T] the passage encoder's self-attention, layer by layer.

        Row ``[l, b, h, q]`` is where query position ``q`` of row ``b`` attends in layer ``l``,
        head ``h``: it sums to 1 over ``batch.valid`` keys (all zero for a row with no valid
        position). Encoders without self-attention (BiLSTM, CNN, Average) give ``L = 0`` layers:
        an empty <float32>[0, B, 0, T, T].
        """
        _, state = self.network.apply(
            {"params": params},
            batch.tokens,
            batch.valid,
            method=AttentionNetwork.self_attention,
            mutable=["intermediates"],
        )
        maps = state.get("intermediates", {}).get("text_encoder", {}).get("self_attention", ())
        if not maps:
            b, t = batch.tokens.shape
            return jnp.zeros((0, b, 0, t, t), jnp.float32)
        return jnp.stack(maps)

    def layer_inputs(self, params: Params, batch: Batch) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The passage Transformer's states entering each layer <float32>[L, B, T, W] and its
        attention <float32>[L, B, heads, T, T], from one deterministic pass (for
        :meth:`encode_from_layer`; :func:`~jaxattn.core.protocol.has_layer_restart`)."""
        self._require_seam("layer_inputs")
        return self.network.apply({"params": params}, batch.tokens, batch.valid,
                                  method=AttentionNetwork.layer_states)

    def encode_from_layer(
        self,
        params: Params,
        batch: Batch,
        hidden: jnp.ndarray,
        layer: int,
        maps: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
    ) -> Encoded:
        """:meth:`encode` restarted at ``layer`` (static) from ``hidden`` <float32>[B, T, W]
        (``layer_inputs(...)[0][layer]``), with ``maps`` <float32>[B, heads, T, T] in place of
        that layer's heads ``select`` <bool>[heads]; deterministic. Layers below ``layer`` are
        not run again."""
        self._require_seam("encode_from_layer")
        query_embedded = self.embed(params, batch.query) if self.network.pair else None
        return self.network.apply(
            {"params": params}, hidden, layer, maps, select, batch.mask, batch.valid,
            query_embedded, batch.query_valid, batch.candidates,
            method=AttentionNetwork.encode_from_layer,
        )

    def _require_seam(self, what: str) -> None:
        if not self.self_attention_seam:
            raise TypeError(f"{what} needs the Transformer encoder; this model's is "
                            f"{self.network.encoder!r}, which has no self-attention layers")

    def probs(self, logits: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, K] output distribution; binary models give [1 - p, p] (K = 2)."""
        return output_distribution(logits)


def build_model(
    *,
    vocab_size: int,
    task: str,
    num_classes: int = 2,
    encoder: str = "bilstm",
    attention: str = "additive",
    embed_dim: int = 300,
    **settings,
) -> Model:
    """A :class:`Model` for ``task``: binary gives one sigmoid output, others ``num_classes``.

    ``settings`` are :class:`~jaxattn.models.encoders.EncoderSettings` fields (``hidden_size``,
    ``cnn_filters``, and the Transformer's ``layers``, ``heads``, ``width``, ``ff_size``,
    ``dropout``, ``max_positions``); each encoder reads its own.
    """
    network = AttentionNetwork(
        vocab_size=vocab_size,
        embed_dim=embed_dim,
        encoder=encoder,
        attention=attention,
        num_outputs=1 if task == "binary" else num_classes,
        pair=task in ("nli", "qa"),
        settings=EncoderSettings(**settings),
    )
    return Model(network=network, task=task)
