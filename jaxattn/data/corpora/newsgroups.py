"""20 Newsgroups, rec.sport.baseball vs rec.sport.hockey: ``20news_sports/{train,test}.jsonl``.

Posts are stripped of headers, signatures and quoted lines as scikit-learn's
``remove=('headers', 'footers', 'quotes')`` does, then pooled and re-split.
"""

from __future__ import annotations

import re
from pathlib import Path

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import (
    data_file,
    json_lines,
    known_label,
    line_error,
    line_uid,
    source_of,
    text_field,
)
from jaxattn.data.splits import SPLIT_SEED, carve
from jaxattn.data.vocab import clean_tokens

# Lines that introduce or are quoted text (scikit-learn's rule for remove=("quotes",)).
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_header(text: str) -> str:
    """Drops everything up to the first blank line (the news headers)."""
    return text.partition("\n\n")[2]


def strip_newsgroup_footer(text: str) -> str:
    """Drops the signature: everything after the last blank or dashes-only line, if any."""
    lines = text.strip().split("\n")
    for i in range(len(lines) - 1, 0, -1):
        if not lines[i].strip().strip("-"):
            return "\n".join(lines[:i])
    return text


def strip_newsgroup_quoting(text: str) -> str:
    """Drops quoted lines and the "... writes:" lines that introduce them."""
    return "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))


def strip_newsgroup(text: str) -> str:
    """Headers, signature, then quotes: scikit-learn's remove=('headers','footers','quotes')."""
    return strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))


def parse_newsgroups(path: Path) -> list[tuple[str, int, str]]:
    """(raw post, label, uid) per JSON line ``{"text", "label": 0|1, "id"}``; nothing stripped."""
    out = []
    for n, record in json_lines(path):
        text = text_field(record, "text", path, n)
        if not text.strip():
            raise line_error(path, n, "empty text")
        label = known_label(record.get("label"), {0: 0, 1: 1}, path, n)
        uid = record.get("id") if isinstance(record.get("id"), str) else line_uid(path, n)
        out.append((text, label, uid))
    return out


def load_20news_sports(data_dir: Path | None) -> Dataset:
    paths = [
        data_file(data_dir, f"20news_sports/{split}.jsonl", "20news_sports")
        for split in ("train", "test")
    ]
    examples, empty = [], 0
    for path in paths:
        for text, label, uid in parse_newsgroups(path):
            tokens = clean_tokens(strip_newsgroup(text))
            if tokens:
                examples.append(Example(tuple(tokens), label, uid=uid))
            else:
                empty += 1
    outer = carve(examples, {"rest": 0.8, "test": 0.2})
    inner = carve(outer["rest"], {"train": 0.8, "dev": 0.2})
    return Dataset(
        name="20news_sports",
        task="binary",
        label_names=("baseball", "hockey"),
        splits={"train": inner["train"], "dev": inner["dev"], "test": outer["test"]},
        source=source_of(paths),
        notes=(
            "headers, signatures and quoted lines removed by scikit-learn's "
            "remove=('headers','footers','quotes') rules",
            f"{empty} posts empty after stripping were dropped",
            "bydate train+test pooled and re-split as J&W did: stratified 80/20 train/test, then "
            f"20% of train as dev (seed {SPLIT_SEED}; not J&W's exact partition)",
        ),
    )
