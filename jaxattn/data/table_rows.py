"""Reading your own table files (``data.name = "file"``) into rows: CSV, TSV or JSON lines.

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
or such a string (JSON lines). Labels are strings, or integers in JSON lines (``1`` and ``"1"``
are the same label, but one file writes all its labels one way: a file mixing ``1`` and ``"01"``
is refused rather than read as three classes). JSON lines are split at ``\\n`` only, so a raw
U+2028 or U+0085 inside a string is read as part of it. Fields may be of any length.

Anything malformed raises :class:`DataError` as ``path:line: what`` (bytes that are not UTF-8, an
empty file, a missing column, a row with the wrong number of fields, an empty text or label (one
of only whitespace or zero-width characters is empty), integer and string labels in one JSON-lines
file, a rationale that is not 0/1 values). :mod:`jaxattn.data.tabular` turns the rows into a data set.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

from jaxattn.core.errors import read_text
from jaxattn.data.config import DataConfig
from jaxattn.data.dataset import DataError
from jaxattn.data.files import allow_long_csv_fields, jsonl_lines, line_error
from jaxattn.data.vocab import is_blank

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


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


def _label(value: object, path: Path, line: int, column: str) -> str:
    # JSON true/false would pass for 1/0, and 1.0 for 1: neither is a label here.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise line_error(path, line, f"label {value!r} in {column!r} is not a string or an integer")
    label = str(value).strip()
    if not label:
        raise line_error(path, line, f"empty label in {column!r}")
    return label


def _rationale(value: object, path: Path, line: int, column: str) -> tuple[int, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise line_error(
            path,
            line,
            f'rationale in {column!r} must be 0/1 values (e.g. "0 1 1 0"), got {value!r}',
        )
    out = []
    for item in items:
        if item not in (0, 1, "0", "1"):
            raise line_error(
                path, line, f"rationale in {column!r} must be 0/1 values, got {item!r}"
            )
        out.append(int(item))
    return tuple(out)


def _row(record: dict, path: Path, line: int, columns: Columns) -> Row:
    """A :class:`Row` from ``record`` (column/key -> value), checking the fields' types."""

    def text(column: str, what: str) -> str:
        value = record[column]
        if not isinstance(value, str):
            raise line_error(path, line, f"{what} in {column!r} is not a string: {value!r}")
        if is_blank(value):
            raise line_error(path, line, f"empty {what} in {column!r}")
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
    allow_long_csv_fields()
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
            raise line_error(path, start, f"not valid CSV: {what}") from None
        line, start = start, reader.line_num + 1  # a quoted field may span lines
        if any(field.strip() for field in row):
            yield line, row


def _read_csv(path: Path, text: str, fmt: str, columns: Columns) -> list[Row]:
    rows = _csv_rows(path, text, fmt)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise line_error(path, 1, "empty file (expected a header row naming the columns)") from None
    header = [name.strip() for name in header]
    for name, key in columns.config_keys().items():
        found = header.count(name)
        if found == 1:
            continue
        if found > 1:
            raise line_error(
                path, header_line, f"column {name!r} appears {found} times in the header"
            )
        hint = ""
        if len(header) == 1:
            hint = f"; the header has one column only: is the file really {fmt}? (data.format)"
        raise line_error(
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
            raise line_error(
                path,
                line,
                f"expected {len(header)} fields as in the header, got {len(fields)}{hint}",
            )
        out.append(_row(dict(zip(header, fields)), path, line, columns))
    if not out:
        raise line_error(path, header_line + 1, "no examples after the header row")
    return out


def _label_kind(value: object) -> str:
    return "an integer" if isinstance(value, int) else "a string"


def _read_jsonl(path: Path, text: str, columns: Columns) -> list[Row]:
    out = []
    first_label: tuple[int, object] | None = None  # (line, value) of the file's first label
    for n, line in enumerate(jsonl_lines(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (a .json file must hold one JSON object per line)" if not out else ""
            raise line_error(
                path, n, f"not valid JSON ({err.msg} at column {err.colno}){hint}"
            ) from None
        if not isinstance(record, dict):
            raise line_error(path, n, "expected a JSON object (one per line)")
        for key, config_key in columns.config_keys().items():
            if key not in record:
                raise line_error(
                    path,
                    n,
                    f"no key {key!r} (keys: {', '.join(map(repr, record))}); "
                    f"set {config_key} to the key's name",
                )
        out.append(_row(record, path, n, columns))
        label = record[columns.label]
        if first_label is None:
            first_label = (n, label)
        elif type(label) is not type(first_label[1]):
            raise line_error(
                path,
                n,
                f"label {label!r} is {_label_kind(label)} but the label on line {first_label[0]} "
                f"({first_label[1]!r}) is {_label_kind(first_label[1])}; write every label of "
                "the file the same way, all integers or all strings",
            )
    if not out:
        raise line_error(path, 1, "empty file (expected one JSON object per line)")
    return out


def read_table(path: str | Path, columns: Columns = Columns(), format: str = "") -> list[Row]:
    """Reads the rows of one CSV, TSV or JSON-lines file (``format`` "" -> by extension).

    Raises:
      DataError: ``path:line: what`` for anything malformed (see the module docstring).
    """
    path = Path(path)
    fmt = table_format(path, format)
    text = read_text(path, error=DataError, what="file", allow_empty=True)
    if fmt == "jsonl":
        return _read_jsonl(path, text, columns)
    return _read_csv(path, text, fmt, columns)
