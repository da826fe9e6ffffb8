"""Tables as lists of row dicts, written as Markdown, CSV or HTML.

A table is ``rows: list[dict[str, object]]``; columns are the keys of the first row unless given.
Numbers are formatted by :func:`format_value`; ``None`` and NaN show as an en dash.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

from jaxattn.runtime.files import write_atomic

MISSING = "–"


def format_value(value: object, digits: int = 3) -> str:
    """Floats to ``digits`` decimals, NaN/None to a dash, everything else ``str``."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return MISSING if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """``0.40 (0.21)``, the paper's way of printing a mean and standard deviation."""
    if mean is None or std is None or math.isnan(mean):
        return MISSING
    return f"{mean:.{digits}f} ({std:.{digits}f})"


def _columns(rows: Sequence[dict], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    return list(rows[0].keys()) if rows else []


def markdown_table(
    rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    cols = _columns(rows, columns)
    if not cols:
        return ""

    def cell(value: object) -> str:
        return format_value(value, digits).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """CSV with a header row; floats at full precision, missing cells empty."""
    cols = _columns(rows, columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in cols})
    return buf.getvalue()


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Writes :func:`csv_text` atomically."""
    write_atomic(path, csv_text(rows, columns))


def html_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """An HTML ``<table>`` (cells escaped)."""
    cols = _columns(rows, columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_value(r.get(c), digits))}</td>" for c in cols)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
