"""Run configuration: typed dataclasses read from TOML, overridable with ``key=value``.

One config describes one trained model: which data set, which encoder and attention, and how it is
trained. Unknown keys, mistyped values and bad choices fail with a :class:`ConfigError` that names the
file and the dotted key, before anything is trained or written.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from jaxattn.errors import JaxattnError, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENCODERS = ("bilstm", "cnn", "average")
ATTENTIONS = ("additive", "dot")
ATTENTION_SOURCES = ("learned", "uniform", "imposed")
EMBEDDINGS = ("random", "glove-6b-50d")
SELECTION_SPLITS = ("dev", "test")


class ConfigError(JaxattnError, ValueError):
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


@dataclasses.dataclass
class ModelConfig:
    encoder: str = "bilstm"
    attention: str = "additive"
    embed_dim: int = 300
    hidden_size: int = 128  # per LSTM direction; the Average encoder's projection size
    cnn_filters: int = 64  # per kernel size (kernels 1, 3, 5, 7)


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


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a TOML config (or the defaults when ``path`` is None) and applies overrides."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        # An empty file is a mistake unless --set gives the settings (it then means the defaults).
        text = read_text(path, error=ConfigError, what="config file", allow_empty=bool(overrides))
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source}: not valid TOML: {err}") from None
    return config_from_dict(apply_overrides(raw, list(overrides), source), source)


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
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.eval_batch_size": cfg.train.eval_batch_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: {key} must be positive, got {value}")
    if cfg.train.learning_rate <= 0:
        raise ConfigError(f"{source}: train.learning_rate must be positive")
    if cfg.train.weight_decay < 0 or cfg.train.sort_noise < 0:
        raise ConfigError(f"{source}: train.weight_decay and train.sort_noise must be >= 0")
    if not cfg.train.buckets or list(cfg.train.buckets) != sorted(set(cfg.train.buckets)):
        raise ConfigError(f"{source}: train.buckets must be a non-empty increasing list")


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
