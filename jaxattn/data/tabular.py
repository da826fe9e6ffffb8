"""Your own data: a :class:`Dataset` read from CSV, TSV or JSON-lines files (``data.name = "file"``).

File formats (``data.format``, else each file's extension):

- ``csv`` (``.csv``): a header row naming the columns, then one example per row. Fields are read by
  Python's ``csv`` module, so a field holding commas, quotes or line breaks is written in double
  quotes (``"great, really"``; a quote inside one is doubled).
- ``tsv`` (``.tsv``): a header row, then one example per line, fields separated by tabs. Quotes
  are ordinary characters here, so a field may not hold a tab or a line break.
- ``jsonl`` (``.jsonl``, ``.json``, ``.ndjson``): one JSON object per line, keyed like the columns.

Every file is UTF-8 (a leading byte-order mark is allowed). Blank lines are skipped.

Columns (``data.*_column``): ``text`` and ``label`` are required; ``query`` (a second text: the
NLI hypothesis or the QA question) and ``rationale`` (a per-token 0/1 mask of the text) are read
when configured. A rationale is a space-separated string of 0/1 (CSV/TSV), or a JSON list of 0/1
or such a string (JSON lines), with one entry per token of the text. Texts are then split on
whitespace only (as with ``data.pretokenized = true``), so the tokens are the ones you count; they
are still lower-cased and digit runs become ``qqq``, as for every data set.

Labels are strings, or integers in JSON lines (``1`` and ``"1"`` are the same label). Their order
is ``data.label_names`` when given, else the distinct labels of the training file, sorted
(numerically when every label is an integer). For a binary task the second label is the positive
class (F1 and ROC-AUC score it). A label outside that list is an error naming file and line.

The task (``data.task``): given, or ``nli`` when a query column is configured (a pair classifier
that reads the query), else ``binary`` with two labels and ``multiclass`` with more. ``qa`` is a
pair task whose labels are answer words; its candidate mask offers the answers that occur in the
passage's (lower-cased) tokens.

Splits: ``train_file`` is required; ``dev_file`` and ``test_file`` give those splits, and a split
without a file is carved out of the training file: ``dev_fraction`` and ``test_fraction`` of it,
stratified by label and seeded with ``split_seed`` (the same seed gives the same split).

Anything malformed raises :class:`DataError` as ``path:line: what`` (bytes that are not UTF-8, an
empty file, a missing column, a row with the wrong number of fields, an empty text, an unknown
label, a rationale whose length differs from the text's).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from jaxattn.config import DataConfig
from jaxattn.data.dataset import DataError, Dataset, Example, Task
from jaxattn.data.splits import carve
from jaxattn.data.vocab import clean_tokens

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
#: Vocabulary and length filters for your own files unless configured: every word, every length.
FILTER_DEFAULTS = {"min_df": 1, "min_length": 1, "max_length": 0}

_INTEGER = re.compile(r"-?\d+")


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which column (CSV/TSV) or key (JSON lines) holds what; "" for an optional one not used."""

    text: str = "text"
    label: str = "label"
    query: str = ""
    rationale: str = ""

    @classmethod
    def from_config(cls, cfg: DataConfig) -> Columns:
        return cls(cfg.text_column, cfg.label_column, cfg.query_column, cfg.rationale_column)

    def config_keys(self) -> dict[str, str]:
        """Column name -> the config key that names it, for the columns in use."""
        roles = {"text": self.text, "label": self.label, "query": self.query}
        roles["rationale"] = self.rationale
        return {name: f"data.{role}_column" for role, name in roles.items() if name}


@dataclasses.dataclass(frozen=True)
class Row:
    """One example as read from a file, before tokenisation and label lookup.

    Attributes:
      line: the 1-based line it starts on.
      text, label, query: the fields (label as a string; query None without a query column).
      rationale: the 0/1 mask as read, or None without a rationale column.
    """

    line: int
    text: str
    label: str
    query: str | None = None
    rationale: tuple[int, ...] | None = None


def _error(path: Path, line: int, what: str) -> DataError:
    return DataError(f"{path}:{line}: {what}")


def table_format(path: str | Path, format: str = "") -> str:
    """``format`` if given, else the format the extension of ``path`` names."""
    if format:
        return format
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension {Path(path).suffix!r} (known: "
            f"{', '.join(EXTENSIONS)}); set data.format to csv, tsv or jsonl"
        )
    return found


def _read_text(path: Path) -> str:
    """The file's text, or a DataError naming the line of the first byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror})") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise _error(
            path,
            line,
            f"not UTF-8 (byte 0x{raw[err.start]:02x} at byte {column} of the line); "
            "save the file as UTF-8",
        ) from None


def _label(value: object, path: Path, line: int, column: str) -> str:
    # JSON true/false would pass for 1/0, and 1.0 for 1: neither is a label here.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _error(path, line, f"label {value!r} in {column!r} is not a string or an integer")
    label = str(value).strip()
    if not label:
        raise _error(path, line, f"empty label in {column!r}")
    return label


def _rationale(value: object, path: Path, line: int, column: str) -> tuple[int, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _error(
            path,
            line,
            f'rationale in {column!r} must be 0/1 values (e.g. "0 1 1 0"), got {value!r}',
        )
    out = []
    for item in items:
        if item not in (0, 1, "0", "1"):
            raise _error(path, line, f"rationale in {column!r} must be 0/1 values, got {item!r}")
        out.append(int(item))
    return tuple(out)


def _row(record: dict, path: Path, line: int, columns: Columns) -> Row:
    """A :class:`Row` from ``record`` (column/key -> value), checking the fields' types."""

    def text(column: str, what: str) -> str:
        value = record[column]
        if not isinstance(value, str):
            raise _error(path, line, f"{what} in {column!r} is not a string: {value!r}")
        if not value.strip():
            raise _error(path, line, f"empty {what} in {column!r}")
        return value

    return Row(
        line=line,
        text=text(columns.text, "text"),
        label=_label(record[columns.label], path, line, columns.label),
        query=text(columns.query, "query") if columns.query else None,
        rationale=(
            _rationale(record[columns.rationale], path, line, columns.rationale)
            if columns.rationale
            else None
        ),
    )


def _csv_rows(path: Path, text: str, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) for every row that is not blank."""
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            what = "a quoted field is never closed" if "end of data" in str(err) else str(err)
            raise _error(path, start, f"not valid CSV: {what}") from None
        line, start = start, reader.line_num + 1  # a quoted field may span lines
        if any(field.strip() for field in row):
            yield line, row


def _read_csv(path: Path, text: str, fmt: str, columns: Columns) -> list[Row]:
    rows = _csv_rows(path, text, fmt)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise _error(path, 1, "empty file (expected a header row naming the columns)") from None
    header = [name.strip() for name in header]
    for name, key in columns.config_keys().items():
        found = header.count(name)
        if found == 1:
            continue
        if found > 1:
            raise _error(path, header_line, f"column {name!r} appears {found} times in the header")
        hint = ""
        if len(header) == 1:
            hint = f"; the header has one column only: is the file really {fmt}? (data.format)"
        raise _error(
            path,
            header_line,
            f"no column {name!r} in the header (columns: {', '.join(map(repr, header))}); "
            f"set {key} to the column's name{hint}",
        )
    out = []
    for line, fields in rows:
        if len(fields) != len(header):
            hint = (
                '; quote a field that holds commas, like "good, not great"'
                if fmt == "csv"
                else "; a field may not hold a tab"
            )
            raise _error(
                path,
                line,
                f"expected {len(header)} fields as in the header, got {len(fields)}{hint}",
            )
        out.append(_row(dict(zip(header, fields)), path, line, columns))
    if not out:
        raise _error(path, header_line + 1, "no examples after the header row")
    return out


def _read_jsonl(path: Path, text: str, columns: Columns) -> list[Row]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (a .json file must hold one JSON object per line)" if not out else ""
            raise _error(
                path, n, f"not valid JSON ({err.msg} at column {err.colno}){hint}"
            ) from None
        if not isinstance(record, dict):
            raise _error(path, n, "expected a JSON object (one per line)")
        for key, config_key in columns.config_keys().items():
            if key not in record:
                raise _error(
                    path,
                    n,
                    f"no key {key!r} (keys: {', '.join(map(repr, record))}); "
                    f"set {config_key} to the key's name",
                )
        out.append(_row(record, path, n, columns))
    if not out:
        raise _error(path, 1, "empty file (expected one JSON object per line)")
    return out


def read_table(path: str | Path, columns: Columns = Columns(), format: str = "") -> list[Row]:
    """Reads the rows of one CSV, TSV or JSON-lines file (``format`` "" -> by extension).

    Raises:
      DataError: ``path:line: what`` for anything malformed (see the module docstring).
    """
    path = Path(path)
    fmt = table_format(path, format)
    text = _read_text(path)
    if fmt == "jsonl":
        return _read_jsonl(path, text, columns)
    return _read_csv(path, text, fmt, columns)


def infer_label_names(rows: Sequence[Row]) -> tuple[str, ...]:
    """The distinct labels, sorted (numerically when every label is an integer)."""
    labels = {row.label for row in rows}
    if all(_INTEGER.fullmatch(label) for label in labels):
        return tuple(sorted(labels, key=int))
    return tuple(sorted(labels))


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
            raise _error(
                path,
                row.line,
                f"unknown label {row.label!r}; expected one of {', '.join(label_names)}{origin}",
            )
        split_on_space = pretokenized or row.rationale is not None
        tokens = tuple(clean_tokens(row.text, pretokenized=split_on_space))
        if not tokens:
            raise _error(path, row.line, "empty text after cleaning")
        if row.rationale is not None and len(row.rationale) != len(tokens):
            raise _error(
                path,
                row.line,
                f"the rationale has {len(row.rationale)} entries but the text has "
                f"{len(tokens)} tokens (split on whitespace); they must be aligned",
            )
        query = None
        if row.query is not None:
            query = tuple(clean_tokens(row.query, pretokenized=split_on_space))
            if not query:
                raise _error(path, row.line, "empty query after cleaning")
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
        label_names = infer_label_names(train_rows)
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
