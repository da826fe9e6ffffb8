"""The model section of a run configuration (``[model]``): which encoder and attention, and
their sizes. Checked with the rest of the configuration by :mod:`jaxattn.config`."""

from __future__ import annotations

import dataclasses

ENCODERS = ("bilstm", "cnn", "average", "transformer", "ortho_lstm", "diversity_lstm")
ATTENTIONS = ("additive", "dot")


@dataclasses.dataclass
class ModelConfig:
    encoder: str = "bilstm"
    attention: str = "additive"
    embed_dim: int = 300
    hidden_size: int = 128  # per LSTM direction; the Average encoder's projection size
    # Orthogonal / Diversity LSTM (jaxattn/models/ortho_lstm.py); the other encoders ignore them.
    directions: int = 2  # 1 with hidden_size = 256: the published unidirectional encoder
    diversity_weight: float = 0.5  # lambda of the conicity loss (diversity_lstm only)
    cnn_filters: int = 64  # per kernel size (kernels 1, 3, 5, 7)
    # The Transformer encoder's (jaxattn/models/transformer.py); the other encoders ignore them.
    layers: int = 2
    heads: int = 4  # must divide width
    width: int = 128  # model width = H
    ff_size: int = 256  # feed-forward inner size
    dropout: float = 0.0  # only 0 for now: training passes no dropout rng
    max_positions: int = 1024  # learned positions; the widest padded batch (bucket) allowed
