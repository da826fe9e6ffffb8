"""From a data config to model-ready arrays: load, filter by length, build the vocabulary, encode."""

from __future__ import annotations

import dataclasses

from jaxattn.data.batching import EncodedSplit, encode_split
from jaxattn.data.config import DataConfig
from jaxattn.data.dataset import SPLITS, DataError, Dataset, Example
from jaxattn.data.sources import filter_defaults, load_configured
from jaxattn.data.splits import stratified_subset
from jaxattn.data.tokenizers import TextTokenizer
from jaxattn.data.vocab import Vocab


@dataclasses.dataclass
class Prepared:
    """A filtered data set, its tokenizer (the word :class:`Vocab` or WordPiece) and the encoded
    splits."""

    dataset: Dataset
    vocab: TextTokenizer
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
    """The config's filters with -1 replaced by the data set's protocol defaults.

    Your own files (``data.name = "file"``) default to min_df 1, min_length 1, no max_length.
    """
    defaults = filter_defaults(cfg.name)
    return {key: defaults[key] if getattr(cfg, key) < 0 else getattr(cfg, key) for key in defaults}


def filter_by_length(examples: list[Example], min_length: int, max_length: int) -> list[Example]:
    """Keeps texts with min_length <= len <= max_length real tokens (max 0: no upper bound)."""
    return [
        ex
        for ex in examples
        if len(ex.tokens) >= max(min_length, 1)
        and (max_length <= 0 or len(ex.tokens) <= max_length)
    ]


def prepare(
    cfg: DataConfig, vocab: TextTokenizer | None = None, dataset: Dataset | None = None
) -> Prepared:
    """Loads ``cfg.name`` (or your files), applies the length filters, builds the word
    vocabulary from the train split unless a tokenizer is given (a :class:`Vocab` to reuse, or
    a pretrained model's WordPiece), encodes."""
    filters = resolved_filters(cfg)
    dataset = dataset or load_configured(cfg)
    splits = {}
    for name in SPLITS:
        kept = filter_by_length(
            dataset.splits.get(name, []), filters["min_length"], filters["max_length"]
        )
        if name == "train" and 0 < cfg.limit_train < len(kept):
            chosen = stratified_subset([ex.label for ex in kept], cfg.limit_train, cfg.split_seed)
            kept = [kept[i] for i in chosen]
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
