"""The in-memory form every data source produces: tokenised examples grouped in named splits.

A source (real files, a registry package, tensorflow-datasets or a generator) returns a
:class:`Dataset`; vocabulary, filtering and batching work on it and never on raw files.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from jaxattn.core.errors import JaxattnError

Task = Literal["binary", "multiclass", "nli", "qa"]
SPLITS = ("train", "dev", "test")


class DataError(JaxattnError, ValueError):
    """Bad or missing data; the message names the data set, file and line where known."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One instance.

    Attributes:
      tokens: the text (premise / passage) as cleaned tokens, without SOS/EOS.
      label: gold class index (QA: index into ``Dataset.label_names`` = answer words).
      query: hypothesis / question tokens for pair tasks, else None.
      rationale: per-token 0/1 human or planted rationale aligned with ``tokens``, else None.
      uid: a stable identifier within the data set (file:line, document id, ...).
    """

    tokens: tuple[str, ...]
    label: int
    query: tuple[str, ...] | None = None
    rationale: tuple[int, ...] | None = None
    uid: str = ""


@dataclasses.dataclass
class Dataset:
    """A named data set: splits of examples plus what a model needs to know about the labels.

    Attributes:
      name: registry name (``sst2``, ``babi1``, ...).
      task: ``binary`` (one sigmoid output), ``multiclass``, ``nli`` or ``qa`` (pair tasks).
      label_names: class names; for QA the answer vocabulary.
      splits: ``train``/``dev``/``test`` lists of examples.
      source: where the data came from (file paths, package, generator and seed).
      notes: honest caveats (missing splits, carved splits, substitutions).
    """

    name: str
    task: Task
    label_names: tuple[str, ...]
    splits: dict[str, list[Example]]
    source: str = ""
    notes: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return self.task in ("nli", "qa")

    def sizes(self) -> dict[str, int]:
        return {split: len(self.splits.get(split, [])) for split in SPLITS}
