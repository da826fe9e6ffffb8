"""A pre-LayerNorm Transformer encoder that keeps the encoder contract of :mod:`.encoders`.

    features = W_in e_t + b_in                                  (featurize: per token, affine)
    x_t      = features_t + P[t]                                (learned positions, t < T)
    x        = x + Dropout(MHA(LN(x)))          } x layers      (keys restricted to ``valid``)
    x        = x + Dropout(FF(LN(x)))           }               FF = Linear, ReLU, Linear
    hidden   = LN(x) at valid positions, 0 at padding
    summary  = mean of hidden over valid positions

The layer is PyTorch's ``TransformerEncoderLayer(norm_first=True, activation="relu")`` with the
same parameters (a twin test copies them across), the same LayerNorm epsilon and the same places
for dropout (attention weights, each residual branch, inside the feed-forward block).

Why positions are added in ``contextualize`` rather than in ``featurize``: the analyses rely on
each token's features being an affine function of that token's embedding *alone*. Leave-one-out
deletes a token by deleting its row of features and re-running ``contextualize`` on the rest; with
positions inside the features, every token after the deleted one would keep its old position and
the shortened text would not be the text the model sees when that token is absent. Positions are
assigned afresh from the row index in ``contextualize``, so deleting a row of features is exactly
encoding the text without that token. For the same reason a row's states do not depend on how much
padding follows it (``valid`` is a prefix of each row, so position ``t`` is the t-th token).

The self-attention seam: ``contextualize(features, valid, heads=HeadMaps(maps, select))`` uses
``maps[l, :, h]`` as the attention probabilities of layer ``l``, head ``h`` wherever
``select[l, h]``; every other head computes its own from the residual stream, which the replaced
heads upstream have changed. The substitution is a ``where`` on the probabilities (after the
softmax, before dropout), so selecting a head with its own maps changes nothing, bit for bit, and
the encoding is differentiable in ``maps``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from jaxattn.core.protocol import HeadMaps
from jaxattn.models.attention import masked_softmax

# PyTorch's LayerNorm default (Flax's is 1e-6), so the twin matches to float32 rounding.
LAYER_NORM_EPS = 1e-5


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with a key padding mask.

    Attributes:
      width: model width W (queries, keys, values and output).
      heads: number of heads; W / heads per head.
      dropout: dropout rate on the attention weights.
    """

    width: int
    heads: int
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self,
        x: jnp.ndarray,
        valid: jnp.ndarray,
        deterministic: bool = True,
        given: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
    ):
        """Self-attention over ``valid`` keys.

        Args:
          x: <float32>[B, T, W] inputs.
          valid: <bool>[B, T] positions that may be attended to (keys); False is padding.
          deterministic: no dropout when True.
          given: <float32>[B, heads, T, T] attention probabilities to use instead of the
            computed ones for the heads ``select`` <bool>[heads] picks; None: all computed.
        Returns:
          (<float32>[B, T, W] outputs, <float32>[B, heads, T, T] attention weights used, rows
          summing to 1 over valid keys; all-zero rows where the row has no valid key).
        """
        b, t, _ = x.shape
        size = self.width // self.heads
        init = nn.initializers.xavier_uniform()

        def split(name):  # [B, T, W] -> [B, heads, T, W / heads]
            y = nn.Dense(self.width, kernel_init=init, name=name)(x)
            return y.reshape(b, t, self.heads, size).transpose(0, 2, 1, 3)

        q, k, v = split("query"), split("key"), split("value")
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(size)
        weights = masked_softmax(scores, valid[:, None, None, :])
        if given is not None:
            weights = jnp.where(select[None, :, None, None], given.astype(weights.dtype), weights)
        dropped = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("bhqk,bhkd->bhqd", dropped, v).transpose(0, 2, 1, 3).reshape(b, t, -1)
        return nn.Dense(self.width, name="out")(out), weights


class TransformerBlock(nn.Module):
    """One pre-LN encoder layer: ``x + MHA(LN(x))``, then ``x + FF(LN(x))``."""

    width: int
    heads: int
    ff_size: int
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self,
        x: jnp.ndarray,
        valid: jnp.ndarray,
        deterministic: bool = True,
        given: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
    ):
        """<float32>[B, T, W], <bool>[B, T] -> (<float32>[B, T, W], weights [B, heads, T, T]);
        ``given`` / ``select`` as in :class:`SelfAttention`."""
        attended, weights = SelfAttention(self.width, self.heads, self.dropout, name="attention")(
            nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="norm1")(x), valid, deterministic, given,
            select,
        )
        x = x + nn.Dropout(self.dropout)(attended, deterministic=deterministic)
        y = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="norm2")(x)
        y = nn.relu(nn.Dense(self.ff_size, name="ff_in")(y))
        y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
        y = nn.Dense(self.width, name="ff_out")(y)
        return x + nn.Dropout(self.dropout)(y, deterministic=deterministic), weights


class TransformerEncoder(nn.Module):
    """Input projection, learned positions, ``layers`` pre-LN blocks and a final LayerNorm; H = W.

    Attributes:
      width: model width W (= H, the size of the hidden states and the summary).
      layers: number of encoder layers L.
      heads: attention heads per layer (must divide ``width``).
      ff_size: inner size of the feed-forward block.
      dropout: dropout rate; active only when the module is applied with an rng named
        ``"dropout"`` (no rng: deterministic, whatever the rate).
      max_positions: rows of the learned position table; batches may be at most this wide.

    Each layer sows its attention weights <float32>[B, heads, T, T] under
    ``intermediates/self_attention`` (read them with ``mutable=["intermediates"]``).
    """

    width: int = 128
    layers: int = 2
    heads: int = 4
    ff_size: int = 256
    dropout: float = 0.0
    max_positions: int = 1024

    def setup(self):
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        self.input_projection = nn.Dense(self.width)
        self.positions = self.param(
            "positions", nn.initializers.normal(0.02), (self.max_positions, self.width)
        )
        self.blocks = [
            TransformerBlock(self.width, self.heads, self.ff_size, self.dropout)
            for _ in range(self.layers)
        ]
        self.final_norm = nn.LayerNorm(epsilon=LAYER_NORM_EPS)

    def featurize(self, embedded: jnp.ndarray) -> jnp.ndarray:
        """<float32>[B, T, E] -> input projections <float32>[B, T, W] (affine per token; no
        positions, see the module docstring)."""
        return self.input_projection(embedded)

    def contextualize(
        self, features: jnp.ndarray, valid: jnp.ndarray, heads: HeadMaps | None = None
    ):
        """Positions and self-attention layers over :meth:`featurize` output.

        Args:
          features: <float32>[B, T, W] per-token input projections.
          valid: <bool>[B, T] positions holding input (a prefix of each row); False is padding,
            which no position attends to.
          heads: attention given for chosen (layer, head) pairs (``maps`` <float32>[L, B, heads,
            T, T], ``select`` <bool>[L, heads]); the other heads compute their own. None: every
            head computes its own.
        Returns:
          hidden <float32>[B, T, W] (zero at padding) and summary <float32>[B, W], the mean of
          ``hidden`` over valid positions (zero for a row with none).
        """
        steps = features.shape[1]
        if steps > self.max_positions:
            raise ValueError(
                f"a batch of width {steps} exceeds the Transformer's {self.max_positions} learned "
                "positions: raise model.max_positions or lower data.max_length"
            )
        valid = valid.astype(bool)
        if heads is not None:
            _check_heads(heads, (self.layers, features.shape[0], self.heads, steps, steps))
        deterministic = self.dropout == 0.0 or not self.has_rng("dropout")
        x = features + self.positions[None, :steps]
        for layer, block in enumerate(self.blocks):
            if heads is None:
                x, weights = block(x, valid, deterministic)
            else:
                given, select = heads.maps[layer], heads.select[layer].astype(bool)
                x, weights = block(x, valid, deterministic, given, select)
            self.sow("intermediates", "self_attention", weights)
        return self._read_out(x, valid)

    def _read_out(self, x: jnp.ndarray, valid: jnp.ndarray):
        """The final LayerNorm (zero at padding) and the mean over valid positions."""
        nonpad = valid[..., None]
        hidden = self.final_norm(x) * nonpad
        count = jnp.maximum(nonpad.sum(axis=1), 1)
        return hidden, hidden.sum(axis=1) / count

    def __call__(self, embedded: jnp.ndarray, valid: jnp.ndarray):
        return self.contextualize(self.featurize(embedded), valid)

    def layer_states(self, features: jnp.ndarray, valid: jnp.ndarray):
        """The states entering each layer <float32>[L, B, T, W] and each layer's attention
        <float32>[L, B, heads, T, T], from one deterministic pass (for :meth:`contextualize_from`).
        """
        valid = valid.astype(bool)
        x = features + self.positions[None, : features.shape[1]]
        states, maps = [], []
        for block in self.blocks:
            states.append(x)
            x, weights = block(x, valid)
            maps.append(weights)
        return jnp.stack(states), jnp.stack(maps)

    def contextualize_from(
        self,
        x: jnp.ndarray,
        valid: jnp.ndarray,
        layer: int,
        given: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
    ):
        """:meth:`contextualize` restarted at ``layer`` (a Python int) from the states entering
        it, ``x`` <float32>[B, T, W] (``layer_states(...)[0][layer]``), deterministic; ``given``
        <float32>[B, heads, T, T] replaces that layer's heads ``select`` <bool>[heads] (later
        layers compute their own). Layers below ``layer`` are not run: a head intervention
        there costs ``L - layer`` layers. Returns what :meth:`contextualize` returns."""
        valid = valid.astype(bool)
        for index in range(layer, self.layers):
            if index == layer and given is not None:
                x, _ = self.blocks[index](x, valid, True, given, select.astype(bool))
            else:
                x, _ = self.blocks[index](x, valid)
        return self._read_out(x, valid)


def _check_heads(heads: HeadMaps, shape: tuple[int, ...]) -> None:
    """A ValueError unless ``heads`` has maps of ``shape`` [L, B, heads, T, T] and a select of
    [L, heads]."""
    if tuple(heads.maps.shape) != shape or tuple(heads.select.shape) != (shape[0], shape[2]):
        raise ValueError(
            f"HeadMaps: maps {tuple(heads.maps.shape)} and select {tuple(heads.select.shape)} "
            f"do not fit this encoder and batch: expected maps {shape} [L, B, heads, T, T] and "
            f"select {(shape[0], shape[2])} [L, heads]"
        )
