"""Encoders: embedded tokens -> per-token hidden states and a summary vector.

Every encoder maps ``embedded <float32>[B, T, E]`` and ``valid <bool>[B, T]`` (positions that hold
input, a prefix of each row; False is padding) to
``hidden <float32>[B, T, H]`` (zero at padding) and ``summary <float32>[B, H]`` (what a pair model
uses as the question / hypothesis vector), in two stages: ``featurize`` is an affine map of each
token's embedding alone (``<float32>[B, T, ...]``, the same whatever the token's neighbours), and
``contextualize(features, valid)`` the rest (a Transformer's positions belong there, see
:mod:`jaxattn.models.transformer`). Two analyses rest on that contract:
- deleting a token deletes its row of features, so leave-one-out computes them once;
- for an affine ``f``, ``grad_e . e = grad_f . (f(e) - f(0))``, so gradient x input needs the
  gradient w.r.t. the features only, skipping the widest matmul of the backward pass.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxattn.models.lstm import BiLSTMEncoder
from jaxattn.models.ortho_lstm import RecurrentEncoder
from jaxattn.models.transformer import TransformerEncoder


class CNNEncoder(nn.Module):
    """Conv1d with kernel sizes 1, 3, 5, 7 ('same' padding), ReLU, concatenated; H = 4 * filters.

    Padding positions are zeroed before and after the convolutions so a row's states do not depend
    on how much padding its batch has. The summary is the max over non-pad positions. Every
    learned layer mixes neighbours, so the per-token features are the embeddings themselves.
    """

    filters: int = 64
    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7)

    def featurize(self, embedded: jnp.ndarray) -> jnp.ndarray:
        return embedded

    @nn.compact
    def contextualize(self, features: jnp.ndarray, valid: jnp.ndarray):
        nonpad = valid[..., None]
        x = features * nonpad
        outs = [
            nn.Conv(self.filters, (k,), padding="SAME", name=f"conv{k}")(x)
            for k in self.kernel_sizes
        ]
        hidden = jax.nn.relu(jnp.concatenate(outs, axis=-1)) * nonpad
        summary = jnp.max(jnp.where(nonpad, hidden, 0.0), axis=1)
        return hidden, summary

    def __call__(self, embedded: jnp.ndarray, valid: jnp.ndarray):
        return self.contextualize(self.featurize(embedded), valid)


class AverageEncoder(nn.Module):
    """Per-token ``tanh(Linear(E -> hidden_size))`` with no context; the summary is the mean.

    The linear layer is the features (affine, like every encoder's); the rest is per token too.
    """

    hidden_size: int = 128

    def setup(self):
        self.projection = nn.Dense(self.hidden_size)

    def featurize(self, embedded: jnp.ndarray) -> jnp.ndarray:
        return self.projection(embedded)

    def contextualize(self, features: jnp.ndarray, valid: jnp.ndarray):
        nonpad = valid[..., None]
        hidden = jnp.tanh(features) * nonpad
        count = jnp.maximum(nonpad.sum(axis=1), 1)
        return hidden, hidden.sum(axis=1) / count

    def __call__(self, embedded: jnp.ndarray, valid: jnp.ndarray):
        return self.contextualize(self.featurize(embedded), valid)


@dataclasses.dataclass(frozen=True)
class EncoderSettings:
    """The sizes every encoder kind reads its own from (hashable: part of a Flax module).

    Attributes:
      hidden_size: the BiLSTM's per direction, the Average encoder's projection.
      directions: the Orthogonal / Diversity LSTM's (2, or 1 for the published shape).
      cnn_filters: the CNN's filters per kernel size.
      layers, heads, width, ff_size, dropout, max_positions: the Transformer's (see
        :class:`~jaxattn.models.transformer.TransformerEncoder`).
    """

    hidden_size: int = 128
    directions: int = 2
    cnn_filters: int = 64
    layers: int = 2
    heads: int = 4
    width: int = 128
    ff_size: int = 256
    dropout: float = 0.0
    max_positions: int = 1024

    @classmethod
    def of(cls, source) -> EncoderSettings:
        """The settings named like this class's fields on ``source`` (e.g. a ``ModelConfig``)."""
        return cls(**{f.name: getattr(source, f.name) for f in dataclasses.fields(cls)})


def make_encoder(
    kind: str, input_size: int, settings: EncoderSettings, name: str
) -> nn.Module:
    """The encoder registered under ``kind`` (``bilstm``, ``cnn``, ``average``, ``transformer``,
    ``ortho_lstm``, ``diversity_lstm``) for E = input_size, sized by ``settings``."""
    if kind == "bilstm":
        return BiLSTMEncoder(input_size, settings.hidden_size, name=name)
    if kind in ("ortho_lstm", "diversity_lstm"):
        if kind == "diversity_lstm" and settings.directions == 2:
            return BiLSTMEncoder(input_size, settings.hidden_size, name=name)
        return RecurrentEncoder(input_size, settings.hidden_size, settings.directions,
                                ortho=kind == "ortho_lstm", name=name)
    if kind == "cnn":
        return CNNEncoder(settings.cnn_filters, name=name)
    if kind == "average":
        return AverageEncoder(settings.hidden_size, name=name)
    if kind == "transformer":
        return TransformerEncoder(
            width=settings.width,
            layers=settings.layers,
            heads=settings.heads,
            ff_size=settings.ff_size,
            dropout=settings.dropout,
            max_positions=settings.max_positions,
            name=name,
        )
    raise ValueError(f"unknown encoder {kind!r}")


def encoder_output_size(kind: str, settings: EncoderSettings) -> int:
    """H for an encoder kind."""
    return {
        "bilstm": 2 * settings.hidden_size,
        "ortho_lstm": settings.directions * settings.hidden_size,
        "diversity_lstm": settings.directions * settings.hidden_size,
        "cnn": 4 * settings.cnn_filters,
        "average": settings.hidden_size,
        "transformer": settings.width,
    }[kind]
