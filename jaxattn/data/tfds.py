"""The tensorflow-datasets fallback: the same data sets from TFDS where the files are absent.

Used only when a data set's files (or package) are missing *and* ``import tensorflow_datasets``
works (``pip install 'jaxattn[tfds]'``; the first use downloads into TFDS's own cache). The
import is lazy, so nothing here costs anything where TFDS is not installed. The Example layout
is the one the file loaders produce; where TFDS has no labelled split the protocol needs, the
missing one is carved like the file loaders do and the notes say so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import MissingDataError
from jaxattn.data.splits import SPLIT_SEED, carve
from jaxattn.data.vocab import clean_tokens


def tfds_available() -> bool:
    """Whether ``tensorflow_datasets`` can be imported here."""
    try:
        importlib.import_module("tensorflow_datasets")
    except Exception:  # noqa: BLE001 - a broken TensorFlow install raises more than ImportError
        return False
    return True


def _records(name: str, split: str) -> Iterator[dict]:
    tfds = importlib.import_module("tensorflow_datasets")
    yield from tfds.as_numpy(tfds.load(name, split=split))


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _single_text(name: str, split: str, field: str, labels: dict[int, int]) -> list[Example]:
    """Examples of one TFDS split with one text ``field``; rows whose label is not in
    ``labels`` (a class outside the task, or -1 = unlabelled) are left out."""
    out = []
    for i, rec in enumerate(_records(name, split)):
        label = labels.get(int(rec["label"]))
        tokens = clean_tokens(_text(rec[field]))
        if label is not None and tokens:
            out.append(Example(tuple(tokens), label, uid=f"tfds:{name}/{split}:{i}"))
    return out


def _imdb() -> Dataset:
    carved = carve(
        _single_text("imdb_reviews", "train", "text", {0: 0, 1: 1}), {"train": 0.9, "dev": 0.1}
    )
    test = _single_text("imdb_reviews", "test", "text", {0: 0, 1: 1})
    return Dataset(
        "imdb",
        "binary",
        ("negative", "positive"),
        {**carved, "test": test},
        "tfds:imdb_reviews",
        (f"official train/test; dev = a stratified 10% of train (seed {SPLIT_SEED})",),
    )


def _sst2() -> Dataset:
    # glue/sst2's test labels are hidden (-1): its validation split is the test set here.
    carved = carve(
        _single_text("glue/sst2", "train", "sentence", {0: 0, 1: 1}), {"train": 0.9, "dev": 0.1}
    )
    test = _single_text("glue/sst2", "validation", "sentence", {0: 0, 1: 1})
    return Dataset(
        "sst2",
        "binary",
        ("negative", "positive"),
        {**carved, "test": test},
        "tfds:glue/sst2",
        (
            "GLUE SST-2 trains on phrases as well as sentences (67k), unlike the sentence files",
            f"test = GLUE validation (its test labels are hidden); dev = 10% of train (seed {SPLIT_SEED})",
        ),
    )


def _ag_news() -> Dataset:
    keep = {0: 0, 2: 1}  # World -> 0, Business -> 1
    carved = carve(
        _single_text("ag_news_subset", "train", "description", keep), {"train": 0.85, "dev": 0.15}
    )
    test = _single_text("ag_news_subset", "test", "description", keep)
    return Dataset(
        "ag_news",
        "binary",
        ("world", "business"),
        {**carved, "test": test},
        "tfds:ag_news_subset",
        (f"World vs Business, description only; dev = 15% of train as J&W (seed {SPLIT_SEED})",),
    )


def _snli_split(split: str) -> list[Example]:
    out = []
    for i, rec in enumerate(_records("snli", split)):
        premise = clean_tokens(_text(rec["premise"]))
        hypothesis = clean_tokens(_text(rec["hypothesis"]))
        if int(rec["label"]) >= 0 and premise and hypothesis:  # -1: no gold label
            out.append(
                Example(
                    tuple(premise),
                    int(rec["label"]),
                    tuple(hypothesis),
                    uid=f"tfds:snli/{split}:{i}",
                )
            )
    return out


def _snli() -> Dataset:
    splits = {
        ours: _snli_split(theirs)
        for ours, theirs in (("train", "train"), ("dev", "validation"), ("test", "test"))
    }
    return Dataset(
        "snli",
        "nli",
        ("entailment", "neutral", "contradiction"),
        splits,
        "tfds:snli",
        ("SNLI 1.0 train/validation/test; pairs without a gold label left out",),
    )


TFDS_LOADERS: dict[str, Callable[[], Dataset]] = {
    "imdb": _imdb,
    "sst2": _sst2,
    "ag_news": _ag_news,
    "snli": _snli,
}


def load_tfds(name: str) -> Dataset:
    """The registry data set ``name`` from TFDS, or :class:`MissingDataError` if TFDS is absent."""
    if name not in TFDS_LOADERS:
        raise MissingDataError(f"{name}: no tensorflow-datasets fallback for this data set")
    if not tfds_available():
        raise MissingDataError(
            f"{name}: tensorflow-datasets is not installed (pip install 'jaxattn[tfds]')"
        )
    return TFDS_LOADERS[name]()
