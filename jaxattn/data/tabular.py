"""Your own data: a :class:`Dataset` read from CSV, TSV or JSON-lines files (``data.name = "file"``).

The files' formats and columns, and how they are read, are in :mod:`jaxattn.data.table_rows`.
A rationale has one entry per token of the text, so with a rationale column texts are split on
whitespace only (as with ``data.pretokenized = true``) and the tokens are the ones you count; they
are still lower-cased (and the word vocabulary reads digit runs as ``qqq``), as for every data set.

Labels: their order is ``data.label_names`` when given, else the distinct labels of the training
file, sorted (numerically when every label is an integer). For a binary task the second label is
the positive class (F1 and ROC-AUC score it). A label outside that list is an error naming file
and line.

The task (``data.task``): given, or ``nli`` when a query column is configured (a pair classifier
that reads the query), else ``binary`` with two labels and ``multiclass`` with more. ``qa`` is a
pair task whose labels are answer words; its candidate mask offers the answers that occur in the
passage's (lower-cased) tokens.

Splits: ``train_file`` is required; ``dev_file`` and ``test_file`` give those splits, and a split
without a file is carved out of the training file: ``dev_fraction`` and ``test_fraction`` of it,
stratified by label and seeded with ``split_seed`` (the same seed gives the same split).

Anything malformed raises :class:`DataError` as ``path:line: what``: besides the file's own faults
(:mod:`jaxattn.data.table_rows`), an unknown label, one integer label spelled two ways (``1`` and
``01``) when the labels are inferred, a text or query empty after cleaning, and a rationale whose
length differs from the text's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from jaxattn.data.config import DataConfig
from jaxattn.data.dataset import DataError, Dataset, Example, Task
from jaxattn.data.files import line_error
from jaxattn.data.splits import carve
from jaxattn.data.table_rows import Columns, Row, read_table
from jaxattn.data.vocab import clean_tokens

#: Vocabulary and length filters for your own files unless configured: every word, every length.
FILTER_DEFAULTS = {"min_df": 1, "min_length": 1, "max_length": 0}

_INTEGER = re.compile(r"-?\d+")


def infer_label_names(rows: Sequence[Row], path: str | Path = "") -> tuple[str, ...]:
    """The distinct labels, sorted (numerically when every label is an integer).

    Integer labels spelled two ways (``1`` and ``01``) would be two classes of one number: a
    :class:`DataError` naming ``path`` and the line of the second spelling.
    """
    labels = {row.label for row in rows}
    if not all(_INTEGER.fullmatch(label) for label in labels):
        return tuple(sorted(labels))
    spelling: dict[int, str] = {}
    for row in rows:
        first = spelling.setdefault(int(row.label), row.label)
        if first != row.label:
            raise line_error(
                path,
                row.line,
                f"label {row.label!r} is the number {int(row.label)}, which an earlier line "
                f"spells {first!r}; spell each label one way (or list them in data.label_names)",
            )
    return tuple(sorted(labels, key=int))


def to_examples(
    rows: Sequence[Row],
    path: str | Path,
    label_names: Sequence[str],
    *,
    pretokenized: bool = False,
    label_origin: str = "",
) -> list[Example]:
    """Tokenises ``rows`` of ``path`` and maps their labels to indices into ``label_names``.

    ``pretokenized`` (implied by a rationale) splits texts on whitespace only. ``label_origin``
    says where the label list came from, for the unknown-label error.
    """
    path = Path(path)
    index = {name: i for i, name in enumerate(label_names)}
    out = []
    for row in rows:
        if row.label not in index:
            origin = f" ({label_origin})" if label_origin else ""
            raise line_error(
                path,
                row.line,
                f"unknown label {row.label!r}; expected one of {', '.join(label_names)}{origin}",
            )
        split_on_space = pretokenized or row.rationale is not None
        tokens = tuple(clean_tokens(row.text, pretokenized=split_on_space))
        if not tokens:
            raise line_error(path, row.line, "empty text after cleaning")
        if row.rationale is not None and len(row.rationale) != len(tokens):
            raise line_error(
                path,
                row.line,
                f"the rationale has {len(row.rationale)} entries but the text has "
                f"{len(tokens)} tokens (split on whitespace); they must be aligned",
            )
        query = None
        if row.query is not None:
            query = tuple(clean_tokens(row.query, pretokenized=split_on_space))
            if not query:
                raise line_error(path, row.line, "empty query after cleaning")
        out.append(
            Example(
                tokens=tokens,
                label=index[row.label],
                query=query,
                rationale=row.rationale,
                uid=f"{path.name}:{row.line}",
            )
        )
    return out


def _task(cfg: DataConfig, label_names: Sequence[str]) -> Task:
    if cfg.task:
        if cfg.task == "binary" and len(label_names) != 2:
            raise DataError(
                f"{cfg.train_file}: data.task = 'binary' needs 2 labels, found "
                f"{len(label_names)}: {', '.join(label_names)}"
            )
        return cfg.task  # type: ignore[return-value]
    if cfg.query_column:
        return "nli"
    return "binary" if len(label_names) == 2 else "multiclass"


def load_table(cfg: DataConfig) -> Dataset:
    """The :class:`Dataset` your own files describe (``cfg.name == "file"``; module docstring).

    Relative paths are taken as they are, i.e. against the current directory (``load_config``
    has already made a config file's paths absolute).
    """
    if not cfg.train_file:
        raise DataError("data.train_file must name a file when data.name = 'file'")
    columns = Columns.from_config(cfg)
    train_path = Path(cfg.train_file)
    train_rows = read_table(train_path, columns, cfg.format)
    notes = []
    if cfg.label_names:
        label_names = tuple(cfg.label_names)
        origin = "data.label_names"
    else:
        label_names = infer_label_names(train_rows, train_path)
        origin = f"the labels of {train_path.name}; list every label in data.label_names"
        notes.append(f"labels found in {train_path.name}, sorted: {', '.join(label_names)}")
        if len(label_names) < 2:
            raise DataError(
                f"{train_path}: only one label ({label_names[0]!r}); a classifier needs two or "
                "more (data.label_names can declare labels the file lacks)"
            )
    task = _task(cfg, label_names)
    pretokenized = cfg.pretokenized or bool(cfg.rationale_column)
    if pretokenized:
        notes.append("texts split on whitespace only (pretokenized)")

    def examples(rows: list[Row], path: Path) -> list[Example]:
        return to_examples(rows, path, label_names, pretokenized=pretokenized, label_origin=origin)

    train = examples(train_rows, train_path)
    splits: dict[str, list[Example]] = {}
    paths = [train_path]
    carved: dict[str, float] = {}
    for split in ("dev", "test"):
        given = getattr(cfg, f"{split}_file")
        if given:
            path = Path(given)
            splits[split] = examples(read_table(path, columns, cfg.format), path)
            paths.append(path)
        else:
            carved[split] = getattr(cfg, f"{split}_fraction")
    if carved:
        parts = carve(train, {"train": 1.0 - sum(carved.values()), **carved}, cfg.split_seed)
        train = parts["train"]
        for split, fraction in carved.items():
            splits[split] = parts[split]
            notes.append(
                f"{split}: {fraction:g} of {train_path.name}, stratified by label "
                f"(seed {cfg.split_seed})"
            )
    splits["train"] = train
    for split in ("train", *carved):
        if not splits[split]:
            fix = "smaller fractions" if split == "train" else f"data.{split}_file"
            raise DataError(
                f"{train_path}: the carved {split} split is empty ({len(train_rows)} examples "
                f"in the file); give more examples or {fix}"
            )
    return Dataset(
        name=f"file:{train_path.stem}",
        task=task,
        label_names=label_names,
        splits={split: splits[split] for split in ("train", "dev", "test")},
        source=", ".join(str(p) for p in paths),
        notes=tuple(notes),
    )
