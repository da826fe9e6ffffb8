"""SST-2: ``sst2/{train,dev,test}.tsv``, ``label<TAB>text`` lines with their own split."""

from __future__ import annotations

from pathlib import Path

from jaxattn.data.dataset import SPLITS, Dataset, Example
from jaxattn.data.files import (
    data_file,
    known_label,
    line_error,
    line_tokens,
    line_uid,
    numbered_lines,
    source_of,
)


def parse_sst2(path: Path) -> list[Example]:
    """``label<TAB>text`` lines (label 0/1, text already tokenised)."""
    out = []
    for n, line in numbered_lines(path):
        cols = line.split("\t")
        if len(cols) != 2:
            raise line_error(
                path, n, f"expected 2 tab-separated columns (label, text), got {len(cols)}"
            )
        label = known_label(cols[0].strip(), {"0": 0, "1": 1}, path, n)
        tokens = line_tokens(cols[1], path, n, pretokenized=True)
        out.append(Example(tokens, label, uid=line_uid(path, n)))
    return out


def load_sst2(data_dir: Path | None) -> Dataset:
    paths = {split: data_file(data_dir, f"sst2/{split}.tsv", "sst2") for split in SPLITS}
    return Dataset(
        name="sst2",
        task="binary",
        label_names=("negative", "positive"),
        splits={split: parse_sst2(path) for split, path in paths.items()},
        source=source_of(paths.values()),
        notes=("SST-2 sentences (neutral removed) with their own train/dev/test split",),
    )
