"""The checked reading of a data directory's files, shared by the corpus loaders.

Every parser checks what it reads. A malformed line raises :class:`DataError` as
``path:line: what`` (wrong column count, bad JSON, unknown label, empty text, a byte that is not
UTF-8); so does an empty file (``path: is empty``); a missing file raises
:class:`MissingDataError` naming the path looked for. Files are read through
:func:`read_data_text` (strict UTF-8; a UTF-8 byte-order mark is accepted and dropped).

The loaders built on these helpers, one module a corpus, are in :mod:`jaxattn.data.corpora`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from jaxattn.core.errors import read_text, text_lines
from jaxattn.data.dataset import DataError
from jaxattn.data.vocab import clean_tokens

HOW_TO_POINT = (
    "set --data-dir (jaxattn train, reproduce, data list), data.data_dir or $JAXATTN_DATA "
    "to the folder holding the data"
)


class MissingDataError(DataError):
    """The files a data set needs are not in the data directory (a fallback may apply)."""


def data_file(data_dir: Path | None, relpath: str, dataset: str) -> Path:
    """``data_dir / relpath`` if that file exists, else :class:`MissingDataError`."""
    if data_dir is None:
        raise MissingDataError(
            f"{dataset}: no data directory found (needs {relpath}); {HOW_TO_POINT}"
        )
    path = Path(data_dir) / relpath
    if path.is_dir():  # there, but wrong: no reason to fall back to another source
        raise DataError(f"{path}: is a folder, not a data file")
    if not path.is_file():
        raise MissingDataError(f"{dataset}: {path} not found; {HOW_TO_POINT}")
    return path


def read_data_text(path: str | Path) -> str:
    """The text of a data file; :class:`DataError` naming the file (and line) when it is not UTF-8,
    empty or unreadable."""
    return read_text(path, error=DataError, what="data file")


def line_error(where: str | Path, line: int, what: str) -> DataError:
    """The error for a bad line: ``where:line: what``."""
    return DataError(f"{where}:{line}: {what}")


def line_uid(path: Path, line: int) -> str:
    """``folder/file:line``, the uid of an example read from one line of ``path``."""
    return f"{path.parent.name}/{path.name}:{line}"


def source_of(paths: Iterable[Path]) -> str:
    """The files a data set was read from, for its ``source``."""
    return ", ".join(str(p) for p in paths)


def numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line of ``lines``."""
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if line.strip():
            yield n, line


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """:func:`numbered` over the lines of the data file ``path``."""
    return numbered(text_lines(read_data_text(path)))


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON-lines text: split at ``\\n`` only (a ``\\r`` before it is dropped).

    ``str.splitlines`` would also split at U+2028, U+2029, U+0085 and other separators, which JSON
    allows raw inside a string; a record holding one would be cut in two.
    """
    return [line.removesuffix("\r") for line in text.split("\n")]


def allow_long_csv_fields() -> None:
    """Lifts the ``csv`` module's field size limit (131,072 characters), so a long text reads from
    CSV/TSV as it does from JSON lines. The limit is process-wide and only ever raised here."""
    # The limit is a C long: sys.maxsize overflows it where long is 32-bit (Windows).
    for limit in (sys.maxsize, 2**31 - 1):
        try:
            if csv.field_size_limit() < limit:
                csv.field_size_limit(limit)
            return
        except OverflowError:
            continue


# A \uD800-\uDFFF escape without its partner decodes to a string that cannot be written as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    for n, line in numbered(jsonl_lines(read_data_text(path))):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise line_error(path, n, f"not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise line_error(path, n, "expected a JSON object")
        if "\\u" in line and _LONE_SURROGATE.search(json.dumps(record, ensure_ascii=False)):
            raise line_error(path, n, "a \\u escape stands for half a character (lone surrogate)")
        yield n, record


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, fields) for every row of a CSV file, the header included."""
    allow_long_csv_fields()
    reader = csv.reader(io.StringIO(read_data_text(path), newline=""))
    start = 1
    try:
        for row in reader:
            n, start = start, reader.line_num + 1  # a quoted field may span lines
            yield n, row
    except csv.Error as err:
        raise line_error(path, reader.line_num, f"malformed CSV ({err})") from None


def text_field(record: Mapping, key: str, path: Path, line: int) -> str:
    """``record[key]``, which must be a string."""
    value = record.get(key)
    if not isinstance(value, str):
        raise line_error(path, line, f"field {key!r} missing or not a string")
    return value


def known_label(value: object, labels: Mapping, path: Path, line: int) -> int:
    """``labels[value]``; a value that is not one of ``labels`` is a bad line."""
    # JSON true/false would pass as 1/0 and lists are unhashable: neither is a label.
    if isinstance(value, (bool, list, dict)) or value not in labels:
        raise line_error(
            path, line, f"unknown label {value!r} (expected one of {', '.join(map(str, labels))})"
        )
    return labels[value]


def line_tokens(
    text: str, path: str | Path, line: int, *, pretokenized: bool = False
) -> tuple[str, ...]:
    """The cleaned tokens of ``text``; none left is a bad line ("empty text")."""
    tokens = clean_tokens(text, pretokenized=pretokenized)
    if not tokens:
        raise line_error(path, line, "empty text")
    return tuple(tokens)
