"""The tensorflow-datasets fallback: the same data sets from TFDS where the files are absent.

Used only when a data set's files (or package) are missing *and* ``import tensorflow_datasets``
works (``pip install 'jaxattn[tfds]'``; the first use downloads into TFDS's own cache). The
import is lazy, so nothing here costs anything where TFDS is not installed. The Example layout
is the one the file loaders produce; where TFDS has no labelled split the protocol needs, the
missing one is carved like the file loaders do and the notes say so.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator

from jaxattn.data.corpora.snli import SNLI_LABELS
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


@dataclasses.dataclass(frozen=True)
class _SingleText:
    """A binary data set of one text field: where TFDS keeps it and how it becomes ours.

    Attributes:
      tfds_name, field: the TFDS data set and its text feature.
      test_split: the TFDS split tested on; dev is carved out of ``train`` (``dev_fraction``).
      labels: TFDS label -> ours (others are left out); label_names: ours.
    """

    name: str
    tfds_name: str
    field: str
    test_split: str
    labels: dict[int, int]
    label_names: tuple[str, str]
    dev_fraction: float
    notes: tuple[str, ...]

    def load(self) -> Dataset:
        train = _single_text(self.tfds_name, "train", self.field, self.labels)
        carved = carve(train, {"train": 1 - self.dev_fraction, "dev": self.dev_fraction})
        test = _single_text(self.tfds_name, self.test_split, self.field, self.labels)
        return Dataset(
            self.name,
            "binary",
            self.label_names,
            {**carved, "test": test},
            f"tfds:{self.tfds_name}",
            self.notes,
        )


_IMDB = _SingleText(
    name="imdb",
    tfds_name="imdb_reviews",
    field="text",
    test_split="test",
    labels={0: 0, 1: 1},
    label_names=("negative", "positive"),
    dev_fraction=0.1,
    notes=(f"official train/test; dev = a stratified 10% of train (seed {SPLIT_SEED})",),
)
_SST2 = _SingleText(
    name="sst2",
    tfds_name="glue/sst2",
    field="sentence",
    test_split="validation",  # glue/sst2's test labels are hidden (-1)
    labels={0: 0, 1: 1},
    label_names=("negative", "positive"),
    dev_fraction=0.1,
    notes=(
        "GLUE SST-2 trains on phrases as well as sentences (67k), unlike the sentence files",
        f"test = GLUE validation (its test labels are hidden); dev = 10% of train (seed {SPLIT_SEED})",
    ),
)
_AG_NEWS = _SingleText(
    name="ag_news",
    tfds_name="ag_news_subset",
    field="description",
    test_split="test",
    labels={0: 0, 2: 1},  # World -> 0, Business -> 1
    label_names=("world", "business"),
    dev_fraction=0.15,
    notes=(f"World vs Business, description only; dev = 15% of train as J&W (seed {SPLIT_SEED})",),
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
        SNLI_LABELS,
        splits,
        "tfds:snli",
        ("SNLI 1.0 train/validation/test; pairs without a gold label left out",),
    )


TFDS_LOADERS: dict[str, Callable[[], Dataset]] = {
    "imdb": _IMDB.load,
    "sst2": _SST2.load,
    "ag_news": _AG_NEWS.load,
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
