"""The checks a configuration passes before anything is trained: the choices, ranges and
combinations of values that the types alone cannot express.

Every message starts with ``source: dotted.key`` and the :class:`ConfigError` carries the key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jaxattn.config import schema
from jaxattn.config.schema import Config, ConfigError, DataConfig, ModelConfig
from jaxattn.data.sources import REGISTRY


def _key_error(source: str, key: str, what: str) -> ConfigError:
    """``source: key<what>`` about the dotted ``key``."""
    return ConfigError(f"{source}: {key}{what}", key=key)


#: The keys whose value must be one of a list, with the list.
_CHOICES: dict[str, tuple[str, ...]] = {
    "model.encoder": schema.ENCODERS,
    "model.attention": schema.ATTENTIONS,
    "model.head": schema.HEADS,
    "data.embeddings": schema.EMBEDDINGS,
    "train.selection": schema.SELECTION_SPLITS,
    "train.attention": schema.ATTENTION_SOURCES,
    "train.precision": schema.PRECISIONS,
    "train.optimizer": schema.OPTIMIZERS,
}


def _check_choice(cfg: Config, key: str, choices: tuple[str, ...], source: str) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise _key_error(source, key, f": {value!r} is not one of {', '.join(choices)}")


SEED_MAX = 2**31 - 1
# Training runs in float32: a larger number becomes infinity there.
FLOAT32_MAX = 3.4028234663852886e38

# Integer fields that count something: 1 or more.
_POSITIVE = (
    "model.embed_dim",
    "model.hidden_size",
    "model.cnn_filters",
    "model.layers",
    "model.heads",
    "model.width",
    "model.ff_size",
    "model.max_positions",
    "train.epochs",
    "train.batch_size",
    "train.eval_batch_size",
)
# Integer fields: (smallest, largest or None, what the smallest means when it is special).
_INT_RANGES: dict[str, tuple[int, int | None, str]] = {
    "data.min_df": (-1, None, "-1: the data set's default"),
    "data.min_length": (-1, None, "-1: the data set's default"),
    "data.max_length": (-1, None, "-1: the data set's default, 0: no limit"),
    "data.limit_train": (0, None, "0: all"),
    **{key: (1, None, "") for key in _POSITIVE},
    "train.seed": (0, SEED_MAX, ""),
    "train.patience": (0, None, "0: off"),
    "model.directions": (1, 2, ""),
}

# Float fields: (smallest, whether the smallest is allowed, largest, whether it is allowed).
_FLOAT_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "train.learning_rate": (0.0, False, math.inf, False),
    "train.weight_decay": (0.0, True, math.inf, False),
    "train.sort_noise": (0.0, True, 1.0, False),
    "model.diversity_weight": (0.0, True, math.inf, False),
    "train.deception_weight": (0.0, True, math.inf, False),
    "train.warmup_fraction": (0.0, True, 1.0, True),
}


def _get(cfg: Config, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def _check_ranges(cfg: Config, source: str, sections=schema.SECTIONS) -> None:
    def ours(key: str) -> bool:
        return key.split(".")[0] in sections

    for key, (low, high, meaning) in _INT_RANGES.items():
        if not ours(key):
            continue
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
        if not ours(key):
            continue
        value = _get(cfg, key)
        above = value >= low if low_ok else value > low
        below = value <= high if high_ok else value < high
        if abs(value) <= FLOAT32_MAX and above and below:  # nan fails every comparison
            continue
        rule = f"{'>=' if low_ok else '>'} {low:g}"
        if math.isfinite(high):
            rule += f" and {'<=' if high_ok else '<'} {high:g}"
        raise _key_error(source, key, f" must be a finite (float32) number {rule}, got {value!r}")
    buckets = cfg.train.buckets
    if ours("train.buckets") and not buckets or buckets[0] < 1 or any(a >= b for a, b in zip(buckets, buckets[1:])):
        raise _key_error(
            source,
            "train.buckets",
            f" must be a non-empty, strictly increasing list of positive lengths, got "
            f"{list(buckets)}",
        )


def check_sections(cfg: Config, sections, source: str) -> None:
    """The checks of ``validate`` that read one section alone, for the ``sections`` named
    (``"data"``, ``"model"``, ``"train"``): the entry points that take a single section
    (``jaxattn.train``, ``jaxattn.prepare_data``) run these, as ``validate`` does for a file."""
    if "data" in sections and cfg.data.name not in REGISTRY and cfg.data.name != schema.FILE_DATA:
        raise _key_error(
            source,
            "data.name",
            f": unknown data set {cfg.data.name!r}; known: {', '.join(sorted(REGISTRY))}",
        )
    for section in sections:
        for field in dataclasses.fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), field.name)
            if isinstance(value, str) and "\x00" in value:
                raise _key_error(source, f"{section}.{field.name}", " holds a NUL character")
    for key, choices in _CHOICES.items():
        if key.split(".")[0] in sections:
            _check_choice(cfg, key, choices, source)
    _check_ranges(cfg, source, sections)
    if "data" in sections:
        _validate_file_data(cfg.data, source)


def validate(cfg: Config, source: str = "<config>") -> None:
    """Checks choices and ranges that the types alone cannot express (every message starts with
    ``source: dotted.key``)."""
    check_sections(cfg, tuple(schema.SECTIONS), source)
    if cfg.train.attention == "imposed" and not cfg.train.imposed_run:
        raise _key_error(
            source, "train.imposed_run", " must name a run directory when attention=imposed"
        )
    default_warmup = schema.TrainConfig.warmup_fraction
    if cfg.train.optimizer != "adamw" and cfg.train.warmup_fraction != default_warmup:
        raise _key_error(
            source, "train.warmup_fraction", " is used only with train.optimizer = 'adamw'"
        )
    if cfg.data.embeddings == "glove-6b-50d" and cfg.model.embed_dim != 50:
        raise _key_error(
            source, "model.embed_dim", " must be 50 with data.embeddings='glove-6b-50d'"
        )
    _validate_transformer(cfg.model, source)
    _validate_pretrained(cfg, source)


def _validate_pretrained(cfg: Config, source: str) -> None:
    """The keys of a pretrained encoder (``model.pretrained``, ``train.layer_decay`` ...)."""
    pretrained = cfg.model.encoder in schema.PRETRAINED_ENCODERS
    if pretrained and not cfg.model.pretrained:
        raise _key_error(source, "model.pretrained", f" must name a Hugging Face folder (or "
                         f"'{schema.MINILM}') with model.encoder = {cfg.model.encoder!r}")
    if not pretrained and cfg.model.pretrained:
        raise _key_error(source, "model.pretrained", " is only read by a pretrained encoder "
                         f"({', '.join(schema.PRETRAINED_ENCODERS)})")
    if cfg.model.max_pieces < 0:
        raise _key_error(source, "model.max_pieces", " must be >= 0 (0: no limit)")
    decay = cfg.train.layer_decay
    if not (math.isfinite(decay) and 0 < decay <= 1):
        raise _key_error(source, "train.layer_decay", f" must be in (0, 1], got {decay}")
    if not pretrained and (decay != 1 or cfg.train.freeze_embeddings):
        key = "train.layer_decay" if decay != 1 else "train.freeze_embeddings"
        raise _key_error(source, key, " applies to a pretrained encoder's layers "
                         f"(model.encoder in {', '.join(schema.PRETRAINED_ENCODERS)})")
    if pretrained and cfg.train.deception_weight > 0:
        raise _key_error(source, "train.deception_weight", " is not supported with a pretrained "
                         "encoder (its vocabulary is word pieces)")
    if pretrained and cfg.train.attention != "learned":
        raise _key_error(source, "train.attention", " must be 'learned' for a pretrained encoder")


def _validate_transformer(model: ModelConfig, source: str) -> None:
    """The Transformer's ``model.*`` keys (positivity is checked with the others)."""
    if not (math.isfinite(model.dropout) and 0 <= model.dropout < 1):
        raise ConfigError(f"{source}: model.dropout must be in [0, 1), got {model.dropout}")
    if model.dropout > 0 and model.encoder != "transformer":
        raise ConfigError(
            f"{source}: model.dropout is only used by the transformer encoder "
            f"(model.encoder is {model.encoder!r}); set it to 0"
        )
    if model.encoder == "transformer" and model.width % model.heads:
        raise ConfigError(
            f"{source}: model.heads ({model.heads}) must divide model.width ({model.width})"
        )


def _validate_file_data(data: DataConfig, source: str) -> None:
    """The ``data.*`` keys of your own files (``name = "file"``)."""
    if data.name != schema.FILE_DATA:
        for key in schema.PATH_KEYS:
            if getattr(data, key):
                raise ConfigError(
                    f"{source}: data.{key} is only read with data.name = '{schema.FILE_DATA}' "
                    f"(data.name is {data.name!r})"
                )
        return
    if not data.train_file:
        raise ConfigError(f"{source}: data.train_file must name a file when data.name = 'file'")
    for key, choices in (("format", schema.FILE_FORMATS), ("task", schema.FILE_TASKS)):
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
