"""The J&W report of one analysis folder, rebuilt from its result files alone.

Reads ``instances.npz`` / ``instances.json`` and the stage files beside them, and writes
``agreement.npz``, ``summary.json``, ``tables.md`` / ``tables.csv``, the figures and
``index.html``. No model, run or data set is needed: a copied folder can be re-reported anywhere.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from jaxattn.core.errors import RunError
from jaxattn.explain.plausibility import CHANCE_DEFINITION
from jaxattn.report import html as report_html
from jaxattn.report import plots
from jaxattn.report.tables import html_table
from jaxattn.report.timings import stage_time_rows
from jaxattn.report.verdict_page import run_evidence, verdict_markdown, verdict_section
from jaxattn.runtime.files import read_json, write_atomic, write_json
from jaxattn.studies.jain_wallace import tables
from jaxattn.studies.jain_wallace.stages import STAGE_SPECS, importance_labels
from jaxattn.studies.jain_wallace.summary import (
    AnalysisData,
    build_summary,
    load_instances,
    pairwise_agreement,
)
from jaxattn.studies.stage_cache import load_stage, save_npz

TAU_FIGURES = (("attn", "grad"), ("attn", "loo"), ("grad", "loo"), ("attn", "ig"))


def load_data(out_dir: Path) -> AnalysisData:
    """The analysed instances of ``out_dir`` with every stage file that belongs to them."""
    arrays, info = load_instances(out_dir)
    stages, metas = {}, {}
    for name in STAGE_SPECS:
        loaded = load_stage(out_dir / f"{name}.npz")
        if loaded is None:
            continue
        values, meta = loaded
        same_rows = np.array_equal(values.get("row_digest"), arrays["row_digest"])
        if meta.get("params") != info["params"] or not same_rows:
            continue  # left over from another instance set or model: not comparable
        stages[name], metas[name] = values, meta
    if "attention" not in stages:

        raise RunError(f"{out_dir}/attention.npz missing or stale; run the analysis again")
    return AnalysisData(
        mask=arrays["mask"],
        labels=arrays["labels"],
        index=arrays["index"],
        class_names=tuple(info["class_names"]),
        task=info["task"],
        rationale=arrays.get("rationale"),
        words=info["words"],
        queries=info["queries"],
        setting=info["setting"],
        labels_of=importance_labels(),
        stages=stages,
        meta=metas,
        word_index=arrays.get("word_index"),
        pieces=info.get("pieces"),
    )


def write_tau_figures(out_dir: Path, data: AnalysisData, pairs: dict) -> list[tuple[str, str]]:
    classes, names = data.figure_classes()
    labels = data.labels_of
    figures = []
    for a, b in TAU_FIGURES:
        if f"{a}_{b}" in pairs:
            name = f"tau_{a}_{b}.png"
            plots.histogram_by_class(pairs[f"{a}_{b}"]["kendall"], classes, names, out_dir / name,
                                     f"Kendall tau: {labels[a]} vs {labels[b]}", (-1.0, 1.0))
            figures.append((name, f"Kendall tau, {labels[a]} vs {labels[b]}"))
    return figures


def instance_html(data: AnalysisData, row: int) -> str:
    """One instance: what the stages say of it and its tokens shaded by every importance."""
    imps = data.importances()
    after = {key: {} for key in imps}  # importance key -> the stage rows that follow it
    last: dict[str, np.ndarray] = {}
    pred = int(data.predicted[row])
    facts = [
        f"gold: {data.class_names[int(data.labels[row])]}",
        f"predicted: {data.class_names[pred]} (p = {data.probs[row, pred]:.3f})",
    ]
    if data.has_attention:
        facts.append(f"max attention {data.max_attention[row]:.3f}")
    for name, stage in STAGE_SPECS.items():
        if name in data.stages:
            if stage.facts is not None:
                facts += stage.facts(data, row)
            if stage.heatmaps is not None:
                shown = stage.heatmaps(data, row).items()
                rows = {k: np.asarray(v)[data.mask[row]] for k, v in shown}
                after.get(stage.heatmaps_after, last).update(rows)
    weights = {}
    for key, values in imps.items():
        weights[data.labels_of[key]] = data.real(values, row)
        weights.update(after[key])
    weights.update(last)
    marks = None if data.rationale is None else data.real(data.rationale, row)
    head = f"<h3>#{int(data.index[row])}</h3>" + report_html.paragraph("; ".join(facts), "muted")
    if data.queries[row]:
        head += report_html.paragraph("query: " + " ".join(data.queries[row]), "muted")
    if data.word_index is None:
        return head + report_html.token_heatmap_html(data.words[row], weights, marks)
    # Pieces, then words: each word's value the sum of its pieces' (attention likewise).
    per_word = {label: _word_row(data, row, values) for label, values in weights.items()}
    word_marks = None if data.rationale is None else data.word_rationale()[row][
        : len(data.words[row])]
    return (head + report_html.paragraph("word pieces", "muted")
            + report_html.token_heatmap_html(data.pieces[row], weights, marks)
            + report_html.paragraph("words (the sum of each word's pieces)", "muted")
            + report_html.token_heatmap_html(data.words[row], per_word, word_marks))


def _word_row(data: AnalysisData, row: int, real_values: np.ndarray) -> np.ndarray:
    """Values at the real tokens (pieces) of ``row`` summed per word of ``data.words[row]``."""
    words = data.word_index[row][data.mask[row]]
    out = np.zeros(len(data.words[row]))
    np.add.at(out, words, np.asarray(real_values, np.float64))
    return out


def evidence(out_dir: Path, summary: dict):
    """The verdict's evidence: this page's summary, the run's W&P suite when it has one, and the
    verdict rows of the stages in the summary that declare one."""
    rows = tuple(stage.verdict for name, stage in STAGE_SPECS.items()
                 if stage.verdict is not None and name in summary.get("timings", {}))
    run = summary["setting"].get("run")
    if not run:
        # A model of your own (jaxattn.analyze): its W&P suite, if run, is beside this folder.
        folder = Path(out_dir).parent
        found = run_evidence(folder, out_dir, jw=summary)
        wp = found.wp if found.wp and found.wp.get("own_model") else None
        return dataclasses.replace(found, jw_page="", stage_rows=rows, own_model=True, wp=wp,
                                   wp_page=found.wp_page if wp else None)
    found = run_evidence(run, out_dir, jw=summary)
    return dataclasses.replace(found, jw_page="", stage_rows=rows)


STALE_FILE = "stale.json"


def stale_note(out_dir: Path) -> str | None:
    """The warning of an analysis folder whose rows no longer match its data (``stale.json``,
    written by :func:`mark_stale`), or None."""
    path = Path(out_dir) / STALE_FILE
    return read_json(path).get("note") if path.exists() else None


def _stale_html(note: str) -> str:
    return report_html.section(
        "Stale: these rows no longer match the data",
        f'<p class="warning"><strong>{report_html.escape(note)}</strong></p>', "stale")


def mark_stale(out_dir: Path, note: str) -> None:
    """Marks the report of ``out_dir`` as no longer matching its data: ``stale.json``, a warning
    section at the top of ``index.html`` and a line at the top of ``tables.md`` (the result
    files themselves stay as they were). A later rebuild keeps the warning."""
    out_dir = Path(out_dir)
    write_json(out_dir / STALE_FILE, {"note": note})
    index = out_dir / "index.html"
    if index.exists():
        page = index.read_text("utf-8")
        page = re.sub(r'<section id="stale">.*?</section>', "", page, count=1, flags=re.S)
        head, sep, rest = page.partition("</nav>") if "</nav>" in page else page.partition("</h1>")
        if sep:
            report_html.write_page(index, head + sep + _stale_html(note) + rest)
    md = out_dir / "tables.md"
    if md.exists():
        text = md.read_text("utf-8")
        if text.startswith("> **Stale:"):
            text = text.split("\n\n", 1)[-1]
        write_atomic(md, f"> **Stale:** {note}\n\n{text}")


def write_index(out_dir: Path, data: AnalysisData, summary: dict, figures, stage_tables,
                samples: int, seed: int) -> Path:
    """``index.html``: the verdict, setting, tables, figures and token heatmaps of sampled
    instances. ``stage_tables``: (stage name, (title, rows)) of every stage table."""
    setting = summary["setting"]
    t2 = tables.table2_rows(summary)
    # A model without pooling attention (a [CLS] head) names no attention kind it does not have.
    pooled = (f" + {setting.get('attention')} attention" if summary.get("pooling_attention", True)
              else " (no pooling attention)")
    title = (f"Jain & Wallace analyses: {setting.get('dataset')} / {setting.get('encoder')}"
             f"{pooled} ({setting.get('split')} split)")
    nav = [("summary.json", "summary.json"), ("tables.md", "tables.md"),
           ("tables.csv", "tables.csv")]
    if setting.get("wp_report"):
        nav.append(("Wiegreffe & Pinter analyses", setting["wp_report"]))
    scores = summary["scores"]
    perf = ", ".join(f"{k} {scores[k]:.3f}" for k in ("accuracy", "f1", "auc")
                     if scores.get(k) is not None)
    stale = stale_note(out_dir)
    sections = [
        *([_stale_html(stale)] if stale else []),
        verdict_section(evidence(out_dir, summary)),
        report_html.section(
            "Setting",
            html_table(tables.setting_rows(setting))
            + f'<p class="note">{report_html.escape(tables.setting_note(summary))}</p>'
            + report_html.paragraph(f"{summary['n']} instances analysed; {perf}."),
        ),
        report_html.section(
            "Table 2: Kendall tau by predicted class",
            html_table(tables.table2_display(t2), digits=2)
            + f'<pre class="note">{report_html.escape(tables.published_gap_note(t2))}</pre>'
            + report_html.paragraph(tables.TABLE2_NOTE, "muted"),
            "table2",
        ),
        report_html.section("Rank and value agreement", html_table(tables.agreement_rows(summary)),
                            "agreement"),
    ]
    anchored = set()
    for name, (title_, rows) in stage_tables:
        anchor = None if name in anchored else f"stage-{name}"  # the stage's first table
        anchored.add(name)
        sections.append(report_html.section(title_, html_table(rows), anchor))
    if tables.rationale_rows(summary):
        sections.append(report_html.section(
            "Agreement with the rationale", html_table(tables.rationale_rows(summary))
            + report_html.paragraph(CHANCE_DEFINITION[0].upper() + CHANCE_DEFINITION[1:] + ".",
                                    "muted"), "rationale"))
    word_rows = tables.rationale_rows({"rationale": summary.get("rationale_words")})
    if word_rows:
        sections.append(report_html.section(
            "Agreement with the rationale, per word (each word the sum of its pieces)",
            html_table(word_rows), "rationale-words"))
    if figures:
        sections.append(report_html.section(
            "Figures", "".join(report_html.figure_html(src, cap) for src, cap in figures),
            "figures"))
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(data.labels), min(samples, len(data.labels)), replace=False))
    sections.append(report_html.section(
        "Sampled instances",
        report_html.paragraph("Each row shades the tokens by one measure (darker = larger, "
                              "relative to the row's maximum); underlined tokens are the "
                              "rationale.", "muted")
        + "".join(instance_html(data, int(r)) for r in picked),
        "instances",
    ))
    timings = stage_time_rows(data.meta, summary["n"])
    sections.append(report_html.section("Time per stage", html_table(timings, digits=2), "timings"))
    return report_html.write_page(out_dir / "index.html", report_html.page(
        title, sections, nav, top=report_html.top_page_href(out_dir)))


def write_report(out_dir: str | Path, progress: bool = False) -> Path:
    """Rebuilds every report file of the analysis folder ``out_dir`` from its result files."""
    out_dir = Path(out_dir)
    data = load_data(out_dir)
    _, info = load_instances(out_dir)
    shown = info.get("report", {})
    pairs = pairwise_agreement(data, shown.get("topk", 5), progress)
    save_npz(
        out_dir / "agreement.npz",
        {f"{key}.{measure}": v for key, values in pairs.items() for measure, v in values.items()},
        {"pairs": list(pairs), "topk": shown.get("topk", 5)},
    )
    present = [stage for name, stage in STAGE_SPECS.items() if name in data.stages]
    summary = build_summary(data, pairs, [s.summarize(data) for s in present if s.summarize])
    write_json(out_dir / "summary.json", summary)
    named_tables = [(s.name, t) for s in present if s.tables for t in s.tables(summary)]
    tables.write_tables(out_dir, summary, [t for _, t in named_tables],
                        verdict_markdown(evidence(out_dir, summary)))
    if stale_note(out_dir):
        md = out_dir / "tables.md"
        write_atomic(md, f"> **Stale:** {stale_note(out_dir)}\n\n{md.read_text('utf-8')}")
    figures = [f for s in present if s.figures for f in s.figures(data, out_dir)]
    figures += write_tau_figures(out_dir, data, pairs)
    path = write_index(out_dir, data, summary, figures, named_tables,
                       shown.get("samples", 20), shown.get("seed", 0))
    return path
