"""AG News, World vs Business: ``ag_news/test.csv``, the only file here, carved into splits."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import csv_rows, data_file, known_label, line_error, line_tokens, line_uid
from jaxattn.data.splits import SPLIT_SEED, carve

# World (1) -> 0 and Business (3) -> 1; Sports (2) and Sci/Tech (4) are not part of the task.
AG_NEWS_CLASSES = {"1": 0, "2": -1, "3": 1, "4": -1}


def _unescape_ag_news(text: str) -> str:
    """Undoes the corpus's escaping: ``#39;`` (an entity that lost its ``&``), ``&lt;`` etc., and
    backslashes standing for line breaks."""
    text = re.sub(r"(?<!&)#(\d+);", r"&#\1;", text.replace("\\", " "))
    return html.unescape(text)


def ag_news_rows(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, class id as written, description tokens) for every row of an AG News CSV."""
    for n, row in csv_rows(path):
        if not row:
            continue
        if len(row) != 3:
            raise line_error(
                path, n, f"expected 3 columns (class, title, description), got {len(row)}"
            )
        yield n, row[0].strip(), line_tokens(_unescape_ag_news(row[2]), path, n)


def parse_ag_news(path: Path) -> list[Example]:
    """World and Business rows of an AG News CSV (description column only)."""
    out = []
    for n, cls, tokens in ag_news_rows(path):
        label = known_label(cls, AG_NEWS_CLASSES, path, n)
        if label >= 0:
            out.append(Example(tokens, label, uid=line_uid(path, n)))
    return out


def load_ag_news(data_dir: Path | None) -> Dataset:
    path = data_file(data_dir, "ag_news/test.csv", "ag_news")
    examples = parse_ag_news(path)
    splits = carve(examples, {"train": 0.7, "dev": 0.1, "test": 0.2})
    return Dataset(
        name="ag_news",
        task="binary",
        label_names=("world", "business"),
        splits=splits,
        source=str(path),
        notes=(
            f"only the AG News test file is available: its {len(examples)} World/Business rows "
            f"are split stratified 70/10/20 into train/dev/test (seed {SPLIT_SEED}); J&W "
            "trained on the 60k training rows and tested on all of these",
            "description column only, as J&W",
        ),
    )
