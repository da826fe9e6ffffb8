"""What a run configuration holds: one section per layer (:class:`DataConfig` in
:mod:`jaxattn.data.config`, :class:`ModelConfig` in :mod:`jaxattn.models.config`,
:class:`TrainConfig` in :mod:`jaxattn.training.config`) brought together in :class:`Config`."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxattn.core.errors import ConfigError
from jaxattn.data.config import (
    EMBEDDINGS,
    FILE_DATA,
    FILE_FORMATS,
    FILE_TASKS,
    PATH_KEYS,
    DataConfig,
)
from jaxattn.models.config import (
    ATTENTIONS,
    ENCODERS,
    HEADS,
    MINILM,
    PRETRAINED_ENCODERS,
    WORD_ENCODERS,
    ModelConfig,
)
from jaxattn.training.config import (
    ATTENTION_SOURCES,
    OPTIMIZERS,
    PRECISIONS,
    SELECTION_SPLITS,
    TrainConfig,
)

__all__ = [
    "ATTENTIONS", "ATTENTION_SOURCES", "EMBEDDINGS", "ENCODERS", "FILE_DATA", "FILE_FORMATS",
    "FILE_TASKS", "HEADS", "MINILM", "PRETRAINED_ENCODERS", "WORD_ENCODERS", "OPTIMIZERS", "PATH_KEYS", "PRECISIONS", "SELECTION_SPLITS", "SECTIONS", "Config",
    "ConfigError", "DataConfig", "ModelConfig", "TrainConfig",
]


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
