"""Run configuration: typed dataclasses read from TOML, overridable with ``key=value``.

One config describes one trained model: which data set, which encoder and attention, and how it is
trained. Unknown keys, mistyped values and bad choices fail with a :class:`ConfigError` that names the
file and the dotted key, before anything is trained or written.

:mod:`~jaxattn.config.schema` holds the sections and their choices, :mod:`~jaxattn.config.checks`
the checks that the types alone cannot express, and :mod:`~jaxattn.config.toml_files` the reading
of TOML with ``--set`` overrides and the writing back; everything is imported from here.
"""

from jaxattn.config.checks import FLOAT32_MAX, SEED_MAX, check_sections, validate
from jaxattn.config.schema import (
    ATTENTION_SOURCES,
    ATTENTIONS,
    EMBEDDINGS,
    ENCODERS,
    FILE_DATA,
    FILE_FORMATS,
    FILE_TASKS,
    HEADS,
    PATH_KEYS,
    PRETRAINED_ENCODERS,
    SELECTION_SPLITS,
    WORD_ENCODERS,
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
)
from jaxattn.config.toml_files import (
    apply_overrides,
    config_from_dict,
    dump_config,
    file_data_overrides,
    load_config,
    parse_literal,
)

__all__ = [
    "ATTENTIONS",
    "ATTENTION_SOURCES",
    "EMBEDDINGS",
    "ENCODERS",
    "HEADS",
    "PRETRAINED_ENCODERS",
    "WORD_ENCODERS",
    "FILE_DATA",
    "FILE_FORMATS",
    "FILE_TASKS",
    "FLOAT32_MAX",
    "PATH_KEYS",
    "SEED_MAX",
    "SELECTION_SPLITS",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "check_sections",
    "config_from_dict",
    "dump_config",
    "file_data_overrides",
    "load_config",
    "parse_literal",
    "validate",
]
