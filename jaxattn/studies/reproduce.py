"""``jaxattn reproduce``: train, then run both studies, and end with one report page.

The ``demo`` suite needs no files: it trains a BiLSTM with additive attention on the generated
asked-aspect task (``configs/synthetic_aspects_bilstm_additive.toml``: the label is the class of
the aspect a query names, so attention is needed and uniform attention scores clearly worse),
runs the Jain & Wallace analyses and the Wiegreffe & Pinter suite on it, and writes
``OUT/index.html`` linking both reports. ``dataset="synthetic"`` is the planted-rationale task,
on which uniform attention does as well as learned attention. Every stage resumes: running the command again skips what is already done.
"""

from __future__ import annotations

from pathlib import Path

from jaxattn.config import load_config
from jaxattn.report import html as report_html
from jaxattn.report.verdict_page import dataset_table_html, run_evidence, verdict_section
from jaxattn.runs.run import train_run
from jaxattn.runtime.files import write_atomic
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.jain_wallace.analyze import analyze_run
from jaxattn.studies.jain_wallace.report import write_report
from jaxattn.studies.wiegreffe_pinter.suite import wp_run

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEMO_DATASET = "synthetic_aspects"  # a task that needs attention (jaxattn/data/generators.py)


def config_path(dataset: str, encoder: str = "bilstm", attention: str = "additive") -> Path | None:
    """``configs/<dataset>_<encoder>_<attention>.toml`` when the checkout has it."""
    path = CONFIG_DIR / f"{dataset}_{encoder}_{attention}.toml"
    return path if path.exists() else None


def reproduce(
    out: str | Path,
    dataset: str = DEMO_DATASET,
    encoder: str = "bilstm",
    attention: str = "additive",
    overrides: list[str] | tuple[str, ...] = (),
    suites: tuple[str, ...] = ("jain_wallace", "wiegreffe_pinter"),
    limit: int | None = None,
    seeds: int = 8,
    progress: bool = True,
) -> Path:
    """Trains one model into ``out/run`` and runs ``suites`` on it; returns ``out/index.html``."""

    out = Path(out)
    path = config_path(dataset, encoder, attention)
    base = [] if path else [f"data.name={dataset}", f"model.encoder={encoder}", f"model.attention={attention}"]
    cfg = load_config(path, base + list(overrides))
    run_dir = out / "run"
    with run_lock(out, "jaxattn reproduce"):
        metrics = train_run(cfg, run_dir, progress=progress)
        index = out / "index.html"
        # Written now and again at the end: the study pages link back to it as they are written.
        write_atomic(index, _index_page(cfg.data.name, metrics, {}, out))
        reports = {}
        if "jain_wallace" in suites:
            reports["Jain & Wallace analyses"] = analyze_run(run_dir, limit=limit, progress=progress)
        if "wiegreffe_pinter" in suites:
            reports["Wiegreffe & Pinter suite"] = wp_run(run_dir, seeds=seeds, progress=progress)
            if "jain_wallace" in suites:  # its verdict now has the W&P rows too
                write_report(reports["Jain & Wallace analyses"].parent)
        write_atomic(index, _index_page(cfg.data.name, metrics, reports, out))
    return index


def _index_page(dataset: str, metrics: dict, reports: dict[str, Path], out: Path) -> str:
    """The demo's page: the verdict, the model and data set as tables, links to both reports."""
    test = metrics["test"]
    scores = ", ".join(f"{k} {test[k]:.3f}" for k in ("accuracy", "f1", "auc") if k in test)
    links = "".join(f"<li>{report_html.link(str(p.relative_to(out)), name)}</li>"
                    for name, p in reports.items())
    model = (f"Model: {metrics['model']['encoder']} encoder, {metrics['model']['attention']} "
             f"attention, embeddings {metrics['embeddings']['name']}; test {scores} (epoch "
             f"{metrics['best_epoch']}, selected on {metrics['selection']}).")
    sections = [
        verdict_section(run_evidence(out / "run", out, run_name=str(out / "run"))),
        report_html.section("Model and data", report_html.paragraph(model)
                            + dataset_table_html(metrics["data"]), "data"),
        report_html.section("Reports", f"<ul>{links}</ul>" if links else report_html.paragraph(
            "The studies are running; their reports are linked here when they finish."),
            "reports"),
    ]
    nav = [(name, str(p.relative_to(out))) for name, p in reports.items()]
    return report_html.page(f"jaxattn reproduction: {dataset}", sections, nav, top_page=True)
