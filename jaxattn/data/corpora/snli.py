"""SNLI 1.0: ``snli/{dev,test}.jsonl`` (no training set here: dev is carved into train and dev)."""

from __future__ import annotations

from pathlib import Path

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import (
    data_file,
    json_lines,
    known_label,
    line_tokens,
    line_uid,
    source_of,
    text_field,
)
from jaxattn.data.splits import SPLIT_SEED, carve

SNLI_LABELS = ("entailment", "neutral", "contradiction")


def parse_snli(path: Path) -> tuple[list[Example], int]:
    """Premise -> tokens, hypothesis -> query; returns (examples, pairs skipped for label ``-``)."""
    out, skipped = [], 0
    labels = {name: i for i, name in enumerate(SNLI_LABELS)}
    for n, record in json_lines(path):
        if record.get("label") == "-":
            skipped += 1
            continue
        label = known_label(record.get("label"), labels, path, n)
        premise, hypothesis = (
            line_tokens(text_field(record, key, path, n), path, n, pretokenized=True)
            for key in ("premise", "hypothesis")
        )
        out.append(Example(premise, label, query=hypothesis, uid=line_uid(path, n)))
    return out, skipped


def load_snli(data_dir: Path | None) -> Dataset:
    dev_path = data_file(data_dir, "snli/dev.jsonl", "snli")
    test_path = data_file(data_dir, "snli/test.jsonl", "snli")
    dev, skipped_dev = parse_snli(dev_path)
    test, skipped_test = parse_snli(test_path)
    carved = carve(dev, {"train": 0.9, "dev": 0.1})
    notes = [
        "no SNLI training set here: trains on a stratified 90% of SNLI dev, selects models on "
        f"the other 10% (seed {SPLIT_SEED}) and tests on SNLI test; J&W trained on the 550k "
        "training pairs",
    ]
    if skipped_dev or skipped_test:
        notes.append(f"pairs without a gold label skipped: dev {skipped_dev}, test {skipped_test}")
    return Dataset(
        name="snli",
        task="nli",
        label_names=SNLI_LABELS,
        splits={"train": carved["train"], "dev": carved["dev"], "test": test},
        source=source_of([dev_path, test_path]),
        notes=tuple(notes),
    )
