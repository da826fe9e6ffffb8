"""Run configuration: typed dataclasses read from TOML, overridable with ``key=value``.

One config describes one trained model: which data set, which encoder and attention, and how it is
trained. Unknown keys, mistyped values and bad choices fail with a :class:`ConfigError` that names the
file and the dotted key, before anything is trained or written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENCODERS = ("bilstm", "cnn", "average", "transformer")
ATTENTIONS = ("additive", "dot")
ATTENTION_SOURCES = ("learned", "uniform", "imposed")
EMBEDDINGS = ("random", "glove-6b-50d")
SELECTION_SPLITS = ("dev", "test")
#: ``data.name`` that reads your own table files (``data.train_file`` ...) instead of a built-in set.
FILE_DATA = "file"
FILE_FORMATS = ("", "csv", "tsv", "jsonl")  # "" -> from each file's extension
FILE_TASKS = ("", "binary", "multiclass", "nli", "qa")  # "" -> from the labels and query column
#: Data-file keys whose relative paths :func:`load_config` makes absolute (see there).
PATH_KEYS = ("train_file", "dev_file", "test_file")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and key."""


@dataclasses.dataclass
class DataConfig:
    name: str = "synthetic"
    data_dir: str = ""  # "" -> $JAXATTN_DATA, then ../shared/data style defaults
    min_df: int = -1  # -1 -> the data set's protocol value
    min_length: int = -1  # -1 -> protocol value; lengths count real tokens
    max_length: int = -1  # -1 -> protocol value; 0 -> no limit
    embeddings: str = "random"
    limit_train: int = 0  # 0 -> all; else keep the first N training examples (smoke runs)
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


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Checks/converts ``value`` to the field's annotated type, naming ``where`` on failure."""
    kind = annotation.replace(" ", "")
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind.startswith("tuple[int"):
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
    elif kind.startswith("tuple[str"):
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    else:  # pragma: no cover - a new field type must be handled above
        raise TypeError(f"unhandled config type {annotation}")
    raise ConfigError(f"{where}: expected {annotation}, got {value!r}")


def _parse_literal(text: str) -> Any:
    """Parses the right-hand side of ``--set key=value`` as a TOML value, else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Builds a validated :class:`Config`; ``source`` names the file in error messages."""
    cfg = Config()
    for section, values in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"{source}: unknown section [{section}] (expected one of {sorted(_SECTIONS)})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        target = getattr(cfg, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown key {section}.{key} (known: {', '.join(sorted(fields))})"
                )
            setattr(
                target, key, _coerce(value, str(fields[key].type), f"{source}: {section}.{key}")
            )
    validate(cfg, source)
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Returns ``raw`` with ``section.key=value`` overrides applied (values parsed as TOML)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=2")
        key, text = item.split("=", 1)
        section, name = key.strip().split(".", 1)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        raw[section][name] = _parse_literal(text.strip())
    return raw


def _absolute_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """``raw`` with relative ``data.*_file`` paths made absolute against ``base``."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = os.path.abspath(base / Path(value).expanduser())
    return {**raw, "data": data}


def file_data_overrides(train_file: str | Path) -> list[str]:
    """The ``--set`` overrides that train on the user's file ``train_file`` (``--data-file``)."""
    quoted = json.dumps(str(train_file), ensure_ascii=False)  # a JSON string is a TOML string
    return [f'data.name="{FILE_DATA}"', f"data.train_file={quoted}"]


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a TOML config (or the defaults when ``path`` is None) and applies overrides.

    Relative data file paths (``data.train_file``, ``dev_file``, ``test_file``) are made absolute:
    those written in the config file against the file's folder, those given as overrides against
    the current directory. The run directory's ``config.toml`` thus names the files it used.
    """
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source}: not valid TOML: {err}") from None
        raw = _absolute_paths(raw, Path(path).parent)
    raw = _absolute_paths(apply_overrides(raw, list(overrides), source), Path.cwd())
    return config_from_dict(raw, source)


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")


def validate(cfg: Config, source: str = "<config>") -> None:
    """Checks choices and ranges that the types alone cannot express."""
    _check_choice(cfg.model.encoder, ENCODERS, f"{source}: model.encoder")
    _check_choice(cfg.model.attention, ATTENTIONS, f"{source}: model.attention")
    _check_choice(cfg.data.embeddings, EMBEDDINGS, f"{source}: data.embeddings")
    _check_choice(cfg.train.selection, SELECTION_SPLITS, f"{source}: train.selection")
    _check_choice(cfg.train.attention, ATTENTION_SOURCES, f"{source}: train.attention")
    if cfg.train.attention == "imposed" and not cfg.train.imposed_run:
        raise ConfigError(
            f"{source}: train.imposed_run must name a run directory when attention=imposed"
        )
    if cfg.data.embeddings == "glove-6b-50d" and cfg.model.embed_dim != 50:
        raise ConfigError(
            f"{source}: model.embed_dim must be 50 with data.embeddings='glove-6b-50d'"
        )
    positive = {
        "model.embed_dim": cfg.model.embed_dim,
        "model.hidden_size": cfg.model.hidden_size,
        "model.cnn_filters": cfg.model.cnn_filters,
        "model.layers": cfg.model.layers,
        "model.heads": cfg.model.heads,
        "model.width": cfg.model.width,
        "model.ff_size": cfg.model.ff_size,
        "model.max_positions": cfg.model.max_positions,
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.eval_batch_size": cfg.train.eval_batch_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: {key} must be positive, got {value}")
    _validate_transformer(cfg.model, source)
    if cfg.train.learning_rate <= 0:
        raise ConfigError(f"{source}: train.learning_rate must be positive")
    if cfg.train.weight_decay < 0 or cfg.train.sort_noise < 0:
        raise ConfigError(f"{source}: train.weight_decay and train.sort_noise must be >= 0")
    if not cfg.train.buckets or list(cfg.train.buckets) != sorted(set(cfg.train.buckets)):
        raise ConfigError(f"{source}: train.buckets must be a non-empty increasing list")
    _validate_file_data(cfg.data, source)


def _validate_transformer(model: ModelConfig, source: str) -> None:
    """The Transformer's ``model.*`` keys (positivity is checked with the others)."""
    if not (math.isfinite(model.dropout) and 0 <= model.dropout < 1):
        raise ConfigError(f"{source}: model.dropout must be in [0, 1), got {model.dropout}")
    if model.dropout > 0:
        raise ConfigError(
            f"{source}: model.dropout > 0 is not supported yet: training does not pass the "
            "encoder a dropout rng, so it would be silently ignored (use 0)"
        )
    if model.encoder == "transformer" and model.width % model.heads:
        raise ConfigError(
            f"{source}: model.heads ({model.heads}) must divide model.width ({model.width})"
        )


def _validate_file_data(data: DataConfig, source: str) -> None:
    """The ``data.*`` keys of your own files (``name = "file"``)."""
    if data.name != FILE_DATA:
        for key in PATH_KEYS:
            if getattr(data, key):
                raise ConfigError(
                    f"{source}: data.{key} is only read with data.name = '{FILE_DATA}' "
                    f"(data.name is {data.name!r})"
                )
        return
    if not data.train_file:
        raise ConfigError(f"{source}: data.train_file must name a file when data.name = 'file'")
    _check_choice(data.format, FILE_FORMATS, f"{source}: data.format")
    _check_choice(data.task, FILE_TASKS, f"{source}: data.task")
    for key in ("text_column", "label_column"):
        if not getattr(data, key):
            raise ConfigError(f"{source}: data.{key} must name a column")
    columns = [
        c
        for c in (data.text_column, data.label_column, data.query_column, data.rationale_column)
        if c
    ]
    if len(set(columns)) < len(columns):
        raise ConfigError(f"{source}: data.*_column must name different columns, got {columns}")
    if data.task in ("nli", "qa") and not data.query_column:
        raise ConfigError(f"{source}: data.task = {data.task!r} needs data.query_column")
    if data.task in ("binary", "multiclass") and data.query_column:
        raise ConfigError(
            f"{source}: data.query_column is only read by the pair tasks (data.task = 'nli' "
            f"or 'qa'), not {data.task!r}"
        )
    names = data.label_names
    if names and (
        len(names) < 2 or len(set(names)) < len(names) or not all(n.strip() for n in names)
    ):
        raise ConfigError(
            f"{source}: data.label_names must list at least 2 different non-empty labels, got {list(names)}"
        )
    if data.task == "binary" and names and len(names) != 2:
        raise ConfigError(f"{source}: data.task = 'binary' needs exactly 2 data.label_names")
    for key in ("dev_fraction", "test_fraction"):
        value = getattr(data, key)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ConfigError(f"{source}: data.{key} must be in [0, 1), got {value}")
    carved = {
        split: getattr(data, f"{split}_fraction")
        for split in ("dev", "test")
        if not getattr(data, f"{split}_file")
    }
    for split, fraction in carved.items():
        if fraction == 0:
            raise ConfigError(
                f"{source}: no {split} split: set data.{split}_file or data.{split}_fraction > 0"
            )
    if sum(carved.values()) >= 1:
        raise ConfigError(
            f"{source}: data.dev_fraction + data.test_fraction must leave training examples "
            f"(sum < 1), got {sum(carved.values())}"
        )
    if data.split_seed < 0:
        raise ConfigError(f"{source}: data.split_seed must be >= 0, got {data.split_seed}")


def dump_config(cfg: Config) -> str:
    """Serialises a config to TOML text that :func:`load_config` reads back unchanged."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
