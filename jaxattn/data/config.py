"""The data section of a run configuration (``[data]``): which data set, how it is read and
split. Checked with the rest of the configuration by :mod:`jaxattn.config`."""

from __future__ import annotations

import dataclasses

EMBEDDINGS = ("random", "glove-6b-50d")
#: ``data.name`` that reads your own table files (``data.train_file`` ...) instead of a built-in set.
FILE_DATA = "file"
FILE_FORMATS = ("", "csv", "tsv", "jsonl")  # "" -> from each file's extension
FILE_TASKS = ("", "binary", "multiclass", "nli", "qa")  # "" -> from the labels and query column
#: Data-file keys whose relative paths :func:`jaxattn.config.load_config` makes absolute.
PATH_KEYS = ("train_file", "dev_file", "test_file")


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
