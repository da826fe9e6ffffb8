"""What a run configuration holds: its sections as typed dataclasses, their choices, and the
error a configuration that cannot be used raises."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxattn.errors import JaxattnError

ENCODERS = ("bilstm", "cnn", "average", "transformer", "ortho_lstm", "diversity_lstm")
ATTENTIONS = ("additive", "dot")
ATTENTION_SOURCES = ("learned", "uniform", "imposed")
EMBEDDINGS = ("random", "glove-6b-50d")
SELECTION_SPLITS = ("dev", "test")
PRECISIONS = ("float32", "bfloat16")  # training compute; parameters stay float32
OPTIMIZERS = ("amsgrad", "adamw")  # jaxattn.trainer.make_optimizer
#: ``data.name`` that reads your own table files (``data.train_file`` ...) instead of a built-in set.
FILE_DATA = "file"
FILE_FORMATS = ("", "csv", "tsv", "jsonl")  # "" -> from each file's extension
FILE_TASKS = ("", "binary", "multiclass", "nli", "qa")  # "" -> from the labels and query column
#: Data-file keys whose relative paths :func:`load_config` makes absolute (see there).
PATH_KEYS = ("train_file", "dev_file", "test_file")


class ConfigError(JaxattnError, ValueError):
    """A configuration that cannot be used; the message names the file and key.

    Attributes:
      key: the dotted key at fault, where the check knows it (None otherwise).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclasses.dataclass
class DataConfig:
    name: str = "synthetic"
    data_dir: str = ""  # "" -> $JAXATTN_DATA, then ../shared/data style defaults
    min_df: int = -1  # -1 -> the data set's protocol value
    min_length: int = -1  # -1 -> protocol value; lengths count real tokens
    max_length: int = -1  # -1 -> protocol value; 0 -> no limit
    embeddings: str = "random"
    # 0 -> all; else N training examples, stratified by label and seeded with split_seed
    limit_train: int = 0
    # Your own data (name = "file"; jaxattn/data/tabular.py): CSV/TSV with a header row, or JSON lines.
    train_file: str = ""  # required with name = "file"
    dev_file: str = ""  # "" -> carve dev_fraction of train_file
    test_file: str = ""  # "" -> carve test_fraction of train_file
    format: str = ""  # "" -> by extension: .csv, .tsv, .jsonl / .json / .ndjson
    text_column: str = "text"
    label_column: str = "label"
    query_column: str = ""  # second text (NLI hypothesis, QA question); "" -> none
    rationale_column: str = ""  # per-token 0/1 mask; texts are then split on whitespace
    pretokenized: bool = False  # split texts on whitespace only (implied by rationale_column)
    label_names: tuple[str, ...] = ()  # () -> the training file's labels, sorted
    task: str = ""  # "" -> nli with a query column, else binary for 2 labels, else multiclass
    dev_fraction: float = 0.1  # of train_file, stratified by label
    test_fraction: float = 0.2
    split_seed: int = 0


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


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    eval_batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    selection: str = "dev"  # the paper-era code selected on "test"
    attention: str = (
        "learned"  # "uniform" freezes 1/len; "imposed" takes attention from `imposed_run`
    )
    imposed_run: str = ""
    sort_noise: float = 0.1  # relative length noise before sorting into batches
    buckets: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    patience: int = 0  # stop after this many epochs without a better selection score; 0: off
    precision: str = "float32"  # "bfloat16": bfloat16 compute, float32 parameters (precision.py)
    # Deceptive attention (jaxattn/penalties.py): loss + weight * -log(1 - attention mass on the
    # impermissible tokens): those spelled as in impermissible_words, or () -> the data's rationale.
    deception_weight: float = 0.0
    impermissible_words: tuple[str, ...] = ()
    # "amsgrad": Adam(amsgrad) + L2 weight decay at a constant learning rate (the protocol);
    # "adamw": decoupled weight decay, the learning rate warmed up linearly from 0 over
    # warmup_fraction of all steps (epochs x batches), then decayed linearly to 0 (docs/training.md).
    optimizer: str = "amsgrad"
    warmup_fraction: float = 0.1  # adamw only


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
