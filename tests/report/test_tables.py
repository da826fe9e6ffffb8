"""Tables: Markdown, CSV and HTML from row dicts."""

from __future__ import annotations

import csv
import io

from jaxattn.report.tables import (
    csv_text,
    format_value,
    html_table,
    markdown_table,
    mean_std,
    write_csv,
)

ROWS = [
    {"class": "0", "tau": 0.40123, "n": 12, "note": "a|b"},
    {"class": "1", "tau": float("nan"), "n": 3, "note": None},
]


def test_markdown_table_formats_and_escapes():
    assert markdown_table(ROWS, digits=2) == (
        "| class | tau | n | note |\n"
        "|---|---|---|---|\n"
        "| 0 | 0.40 | 12 | a\\|b |\n"
        "| 1 | – | 3 | – |\n"
    )
    assert markdown_table(ROWS, columns=["n"]) == "| n |\n|---|\n| 12 |\n| 3 |\n"
    assert markdown_table([]) == ""


def test_csv_keeps_full_precision(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(path, ROWS)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert rows[0] == {"class": "0", "tau": "0.40123", "n": "12", "note": "a|b"}
    assert rows[1]["note"] == ""
    assert csv_text(ROWS, ["n", "class"]).splitlines() == ["n,class", "12,0", "3,1"]


def test_html_table_escapes_cells():
    out = html_table([{"<x>": "a & b"}])
    assert "<th>&lt;x&gt;</th>" in out and "<td>a &amp; b</td>" in out


def test_value_formatting():
    assert mean_std(0.404, 0.2049) == "0.40 (0.20)"
    assert mean_std(None, 0.1) == "–" and mean_std(float("nan"), 0.1) == "–"
    assert format_value(1.23456, 2) == "1.23" and format_value(7) == "7"
