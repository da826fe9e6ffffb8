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
import re
import sys
from pathlib import Path
from typing import Any

from jaxattn.errors import JaxattnError, read_text

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


class ConfigError(JaxattnError, ValueError):
    """A configuration that cannot be used; the message names the file and key.

    Attributes:
      key: the dotted key at fault, where the check knows it (None otherwise).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _key_error(source: str, key: str, what: str) -> ConfigError:
    """``source: key<what>`` about the dotted ``key``."""
    return ConfigError(f"{source}: {key}{what}", key=key)


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


def config_from_dict(
    raw: dict[str, Any], source: str = "<dict>", overridden: frozenset[str] = frozenset()
) -> Config:
    """Builds a validated :class:`Config`; ``source`` names the file in error messages and
    ``overridden`` the dotted keys that came from ``--set`` (their messages say so)."""
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
            dotted = f"{section}.{key}"
            from_set = " (from --set)" if dotted in overridden else ""
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown key {dotted}{from_set} "
                    f"(known: {', '.join(sorted(fields))})"
                )
            try:
                setattr(target, key, _coerce(value, str(fields[key].type), f"{source}: {dotted}"))
            except ConfigError as err:
                raise ConfigError(f"{err}{from_set}", key=dotted) from None
    try:
        validate(cfg, source)
    except ConfigError as err:
        if err.key in overridden:
            raise ConfigError(f"{err} (from --set)", key=err.key) from None
        raise
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Returns ``raw`` with ``section.key=value`` overrides applied (values parsed as TOML)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        section, name, text = _split_override(item)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        raw[section][name] = _parse_literal(text.strip())
    return raw


def _split_override(item: str) -> tuple[str, str, str]:
    """``section.key=value`` -> (section, key, value text)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=2")
    key, text = item.split("=", 1)
    section, name = key.strip().split(".", 1)
    return section, name, text


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

    Errors name the file (``--set`` when there is none) and the dotted key; a value given with
    ``--set`` says so. An empty config file is refused unless ``--set`` gives settings.

    Relative data file paths (``data.train_file``, ``dev_file``, ``test_file``) are made absolute:
    those written in the config file against the file's folder, those given as overrides against
    the current directory. The run directory's ``config.toml`` thus names the files it used.
    """
    raw: dict[str, Any] = {}
    source = "--set" if overrides else "<defaults>"
    if path is not None:
        source = str(path)
        text = read_text(path, error=ConfigError, what="config file", allow_empty=bool(overrides))
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            at = re.search(r"\(at line (\d+), column \d+\)", str(err))
            line = f":{at.group(1)}" if at else ""
            raise ConfigError(f"{source}{line}: not valid TOML: {err}") from None
        raw = _absolute_paths(raw, Path(path).parent)
    overridden = frozenset(".".join(_split_override(item)[:2]).strip() for item in overrides)
    raw = _absolute_paths(apply_overrides(raw, list(overrides), source), Path.cwd())
    return config_from_dict(raw, source, overridden)


def _check_choice(cfg: Config, key: str, choices: tuple[str, ...], source: str) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise _key_error(source, key, f": {value!r} is not one of {', '.join(choices)}")


SEED_MAX = 2**31 - 1
# Training runs in float32: a larger number becomes infinity there.
FLOAT32_MAX = 3.4028234663852886e38

# Integer fields: (smallest, largest or None, what the smallest means when it is special).
_INT_RANGES: dict[str, tuple[int, int | None, str]] = {
    "data.min_df": (-1, None, "-1: the data set's default"),
    "data.min_length": (-1, None, "-1: the data set's default"),
    "data.max_length": (-1, None, "-1: the data set's default, 0: no limit"),
    "data.limit_train": (0, None, "0: all"),
    "model.embed_dim": (1, None, ""),
    "model.hidden_size": (1, None, ""),
    "model.cnn_filters": (1, None, ""),
    "model.layers": (1, None, ""),
    "model.heads": (1, None, ""),
    "model.width": (1, None, ""),
    "model.ff_size": (1, None, ""),
    "model.max_positions": (1, None, ""),
    "train.epochs": (1, None, ""),
    "train.batch_size": (1, None, ""),
    "train.eval_batch_size": (1, None, ""),
    "train.seed": (0, SEED_MAX, ""),
}

# Float fields: (smallest, whether the smallest is allowed, largest, whether it is allowed).
_FLOAT_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "train.learning_rate": (0.0, False, math.inf, False),
    "train.weight_decay": (0.0, True, math.inf, False),
    "train.sort_noise": (0.0, True, 1.0, False),
}


def _get(cfg: Config, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def _check_ranges(cfg: Config, source: str) -> None:
    for key, (low, high, meaning) in _INT_RANGES.items():
        value = _get(cfg, key)
        if low <= value and (high is None or value <= high):
            continue
        if high is not None:
            rule = f"must be in [{low}, {high}]"
        elif low == 1:
            rule = "must be positive (>= 1)"
        else:
            rule = f"must be >= {low} ({meaning})" if meaning else f"must be >= {low}"
        raise _key_error(source, key, f" {rule}, got {value}")
    for key, (low, low_ok, high, high_ok) in _FLOAT_RANGES.items():
        value = _get(cfg, key)
        above = value >= low if low_ok else value > low
        below = value <= high if high_ok else value < high
        if abs(value) <= FLOAT32_MAX and above and below:  # nan fails every comparison
            continue
        rule = f"{'>=' if low_ok else '>'} {low:g}"
        if math.isfinite(high):
            rule += f" and {'<=' if high_ok else '<'} {high:g}"
        raise _key_error(
            source, key, f" must be a finite (float32) number {rule}, got {value!r}"
        )
    buckets = cfg.train.buckets
    if not buckets or buckets[0] < 1 or any(a >= b for a, b in zip(buckets, buckets[1:])):
        raise _key_error(
            source,
            "train.buckets",
            f" must be a non-empty, strictly increasing list of positive lengths, got "
            f"{list(buckets)}",
        )


def validate(cfg: Config, source: str = "<config>") -> None:
    """Checks choices and ranges that the types alone cannot express (every message starts with
    ``source: dotted.key``)."""
    from jaxattn.data.sources import REGISTRY  # here: the data package imports this module

    if cfg.data.name not in REGISTRY and cfg.data.name != FILE_DATA:
        raise _key_error(
            source,
            "data.name",
            f": unknown data set {cfg.data.name!r}; known: {', '.join(sorted(REGISTRY))}",
        )
    for section in _SECTIONS:
        for field in dataclasses.fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), field.name)
            if isinstance(value, str) and "\x00" in value:
                raise _key_error(source, f"{section}.{field.name}", " holds a NUL character")
    _check_choice(cfg, "model.encoder", ENCODERS, source)
    _check_choice(cfg, "model.attention", ATTENTIONS, source)
    _check_choice(cfg, "data.embeddings", EMBEDDINGS, source)
    _check_choice(cfg, "train.selection", SELECTION_SPLITS, source)
    _check_choice(cfg, "train.attention", ATTENTION_SOURCES, source)
    _check_ranges(cfg, source)
    if cfg.train.attention == "imposed" and not cfg.train.imposed_run:
        raise _key_error(
            source, "train.imposed_run", " must name a run directory when attention=imposed"
        )
    if cfg.data.embeddings == "glove-6b-50d" and cfg.model.embed_dim != 50:
        raise _key_error(
            source, "model.embed_dim", " must be 50 with data.embeddings='glove-6b-50d'"
        )
    _validate_transformer(cfg.model, source)
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
    for key, choices in (("format", FILE_FORMATS), ("task", FILE_TASKS)):
        if getattr(data, key) not in choices:
            raise _key_error(
                source, f"data.{key}", f": {getattr(data, key)!r} is not one of {choices}"
            )
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
