"""The verdict as HTML: the section that opens every report, the matrix of a combined study, and
the data-set summary table. The readings themselves are :mod:`jaxattn.report.verdict`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from jaxattn.explain.plausibility import CHANCE_DEFINITION
from jaxattn.report import html
from jaxattn.report.verdict import (
    JSD_HALF,
    SEED_SPREAD,
    STATUS_LABELS,
    TAU_MARGIN,
    VERDICT_ROWS,
    Evidence,
    Row,
    built_in_rows,
    chance_caveat,
    verdict_rows,
    verdict_sentence,
)
from jaxattn.runtime.files import read_json

VERDICT_ANCHOR = "verdict"
VERDICT_TITLE = "Verdict: is attention an explanation for this model?"
COLUMNS = ("test", "figure", "compared with", "reading", "verdict", "source", "evidence")
THRESHOLDS_NOTE = (
    f"How each row reads its figure: tau counts as lower when more than {TAU_MARGIN:.2f} below "
    "the gradient~LOO baseline (the gap J&W's setting alone can make); permutation and the "
    "adversaries use J&W's output tolerance epsilon; very different attention means JSD of at "
    f"least ln(2)/2 = {JSD_HALF:.3f}, half the maximum; the W&P rows compare with retraining "
    f"({SEED_SPREAD:g} sd of the test score over seeds, the seeds' attention JSD and output "
    "TVD); the plausibility row's " + CHANCE_DEFINITION + ". Each test is one row of jaxattn/report/verdict.py, or of the stage that declares it "
    "(its source column names it)."
)


def status_class(status: str) -> str:
    """The CSS class of a verdict cell (``v-not-run``, ``v-n-a``, ...)."""
    return "v-" + re.sub(r"[^a-z]+", "-", status)


def _cell(row: Row, column: str) -> str:
    if column == "verdict":
        return f'<td class="{status_class(row.status)}">{html.escape(STATUS_LABELS[row.status])}</td>'
    if column == "evidence":
        return f"<td>{html.link(row.evidence, 'evidence') if row.evidence else ''}</td>"
    value = {"test": row.test, "figure": row.figure, "compared with": row.compared_with,
             "reading": row.reading, "source": row.source}[column]
    return f"<td>{html.escape(value)}</td>"


def verdict_table_html(rows: Sequence[Row]) -> str:
    """One ``<table class="verdict">`` row per test."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(_cell(r, c) for c in COLUMNS) + "</tr>" for r in rows)
    return f'<table class="verdict"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def verdict_section(ev: Evidence) -> str:
    """The section that opens a report: the sentence, the table, how thresholds are read."""
    rows = verdict_rows(ev)
    caveat = chance_caveat(ev)  # its own paragraph here, so that it is not missed
    body = (f'<p class="verdict-sentence">{html.escape(verdict_sentence(rows))}</p>'
            + (f'<p class="verdict-caveat">{html.escape(caveat)}</p>' if caveat else "")
            + verdict_table_html(rows) + html.paragraph(THRESHOLDS_NOTE, "muted"))
    return html.section(VERDICT_TITLE, body, VERDICT_ANCHOR)


def verdict_markdown(ev: Evidence) -> str:
    """The same verdict as Markdown (for ``tables.md``)."""
    rows = verdict_rows(ev)
    lines = [verdict_sentence(rows, ev), "", "| " + " | ".join(COLUMNS[:-1]) + " |",
             "|" + "---|" * (len(COLUMNS) - 1)]
    for r in rows:
        cells = (r.test, r.figure, r.compared_with, r.reading, STATUS_LABELS[r.status], r.source)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_matrix_html(evidence: Mapping[str, Evidence]) -> str:
    """A combined study's verdict: one row per test, one column per model (name -> evidence),
    each cell the verdict and the figure, linked to that model's evidence."""
    names = list(evidence)
    per_model = {name: built_in_rows(ev) for name, ev in evidence.items()}
    head = "<th>test</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for key in VERDICT_ROWS:
        first = per_model[names[0]][key] if names else None
        cells = [f"<td>{html.escape(first.test if first else key)}</td>"]
        for name in names:
            r = per_model[name][key]
            label = html.escape(STATUS_LABELS[r.status])
            text = label if not r.evidence else html.link(r.evidence, STATUS_LABELS[r.status])
            cells.append(f'<td class="{status_class(r.status)}">{text}'
                         f'<br><span class="muted">{html.escape(r.figure)}</span></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    sentences = "".join(
        f"<li>{html.escape(name)}: {html.escape(verdict_sentence(verdict_rows(ev), ev))}</li>"
        for name, ev in evidence.items())
    table = (f'<table class="verdict"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>')
    return html.section("Verdict: is attention an explanation for these models?",
                        table + f"<ul>{sentences}</ul>" + html.paragraph(THRESHOLDS_NOTE, "muted"),
                        VERDICT_ANCHOR)


def _relative(target: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(target, page_dir)).as_posix()


def read_summary(path: Path) -> dict | None:
    return read_json(path) if path.exists() else None


def run_evidence(run_dir: str | Path, page_dir: str | Path, jw: Mapping | None = None,
                 wp: Mapping | None = None, run_name: str | None = None) -> Evidence:
    """The evidence of the run in ``run_dir`` for a page in ``page_dir``: its J&W analysis
    (``RUN/analysis``) and W&P suite (``RUN/wp``), read unless given, and their pages' hrefs."""
    run_dir, page_dir = Path(run_dir), Path(page_dir)
    jw_dir, wp_dir = run_dir / "analysis", run_dir / "wp"
    jw = jw if jw is not None else read_summary(jw_dir / "summary.json")
    wp = wp if wp is not None else read_summary(wp_dir / "summary.json")
    return Evidence(
        jw=jw, wp=wp,
        jw_page=_relative(jw_dir / "index.html", page_dir) if jw is not None else None,
        wp_page=_relative(wp_dir / "index.html", page_dir) if wp is not None else None,
        run=run_name or str(run_dir),
    )


def _value(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return "–" if value is None else str(value)


DATA_FIELDS = (("name", "data set"), ("task", "task"), ("label_names", "classes"),
               ("sizes", "instances"), ("vocab_size", "vocabulary"), ("filters", "filters"),
               ("source", "source"), ("notes", "notes"))


def dataset_table_html(info: Mapping) -> str:
    """The data-set description (``data.json``) as a two-column table; fields not listed in
    :data:`DATA_FIELDS` follow under their own names."""
    known = [(key, label) for key, label in DATA_FIELDS if key in info]
    known += [(key, key) for key in info if key not in dict(DATA_FIELDS)]
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(_value(info[key]))}</td></tr>"
                   for key, label in known)
    return f'<table class="dataset"><tbody>{rows}</tbody></table>'
