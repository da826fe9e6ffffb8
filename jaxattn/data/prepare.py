"""From a data config to model-ready arrays: load, filter by length, build the vocabulary, encode."""

from __future__ import annotations

import dataclasses

from jaxattn.config import DataConfig
from jaxattn.data.batching import EncodedSplit, encode_split
from jaxattn.data.dataset import SPLITS, DataError, Dataset, Example
from jaxattn.data.sources import REGISTRY, load_dataset
from jaxattn.data.vocab import Vocab


@dataclasses.dataclass
class Prepared:
    """A filtered data set, its vocabulary and the encoded splits."""

    dataset: Dataset
    vocab: Vocab
    splits: dict[str, EncodedSplit]
    filters: dict[str, int]

    def info(self) -> dict:
        """What a run records about its data (``data.json``)."""
        return {
            "name": self.dataset.name,
            "task": self.dataset.task,
            "label_names": list(self.dataset.label_names),
            "sizes": self.dataset.sizes(),
            "vocab_size": len(self.vocab),
            "filters": self.filters,
            "source": self.dataset.source,
            "notes": list(self.dataset.notes),
        }


def resolved_filters(cfg: DataConfig) -> dict[str, int]:
    """The config's filters with -1 replaced by the data set's protocol defaults."""
    if cfg.name not in REGISTRY:
        raise DataError(
            f"data.name: unknown data set {cfg.name!r}; known: {', '.join(sorted(REGISTRY))}"
        )
    spec = REGISTRY[cfg.name]
    return {
        "min_df": spec.min_df if cfg.min_df < 0 else cfg.min_df,
        "min_length": spec.min_length if cfg.min_length < 0 else cfg.min_length,
        "max_length": spec.max_length if cfg.max_length < 0 else cfg.max_length,
    }


def filter_by_length(examples: list[Example], min_length: int, max_length: int) -> list[Example]:
    """Keeps texts with min_length <= len <= max_length real tokens (max 0: no upper bound)."""
    return [
        ex
        for ex in examples
        if len(ex.tokens) >= max(min_length, 1)
        and (max_length <= 0 or len(ex.tokens) <= max_length)
    ]


def prepare(
    cfg: DataConfig, vocab: Vocab | None = None, dataset: Dataset | None = None
) -> Prepared:
    """Loads ``cfg.name``, applies the length filters, builds (or reuses) the vocabulary, encodes."""
    filters = resolved_filters(cfg)
    dataset = dataset or load_dataset(cfg.name, cfg.data_dir or None, origin="data.data_dir")
    splits = {}
    for name in SPLITS:
        kept = filter_by_length(
            dataset.splits.get(name, []), filters["min_length"], filters["max_length"]
        )
        if name == "train" and cfg.limit_train > 0:
            kept = kept[: cfg.limit_train]
        if not kept:
            raise DataError(
                f"{dataset.name}: the {name} split is empty after length filtering "
                f"(min_length={filters['min_length']}, max_length={filters['max_length']})"
            )
        splits[name] = kept
    dataset = dataclasses.replace(dataset, splits=splits)
    if vocab is None:
        texts = [ex.tokens for ex in splits["train"]]
        if dataset.is_pair:
            texts += [ex.query or () for ex in splits["train"]]
        vocab = Vocab.build(texts, filters["min_df"])
    encoded = {name: encode_split(exs, vocab, dataset) for name, exs in splits.items()}
    return Prepared(dataset=dataset, vocab=vocab, splits=encoded, filters=filters)
