"""``jaxattn reproduce``: train, then run both studies, and end with one report page.

The ``demo`` suite needs no files: it trains a BiLSTM with additive attention on the generated
planted-rationale task (``configs/synthetic_bilstm_additive.toml``), runs the Jain & Wallace
analyses and the Wiegreffe & Pinter suite on it, and writes ``OUT/index.html`` linking both
reports. Every stage resumes: running the command again skips what is already done.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from jaxattn.config import load_config
from jaxattn.run import train_run
from jaxattn.runs.files import write_atomic
from jaxattn.runs.lock import run_lock

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def config_path(dataset: str, encoder: str = "bilstm", attention: str = "additive") -> Path | None:
    """``configs/<dataset>_<encoder>_<attention>.toml`` when the checkout has it."""
    path = CONFIG_DIR / f"{dataset}_{encoder}_{attention}.toml"
    return path if path.exists() else None


def reproduce(
    out: str | Path,
    dataset: str = "synthetic",
    encoder: str = "bilstm",
    attention: str = "additive",
    overrides: list[str] | tuple[str, ...] = (),
    suites: tuple[str, ...] = ("jain_wallace", "wiegreffe_pinter"),
    limit: int | None = None,
    seeds: int = 8,
    progress: bool = True,
) -> Path:
    """Trains one model into ``out/run`` and runs ``suites`` on it; returns ``out/index.html``."""
    from jaxattn.studies.jain_wallace.analyze import analyze_run
    from jaxattn.studies.wiegreffe_pinter.suite import wp_run

    out = Path(out)
    path = config_path(dataset, encoder, attention)
    base = [] if path else [f"data.name={dataset}", f"model.encoder={encoder}", f"model.attention={attention}"]
    cfg = load_config(path, base + list(overrides))
    run_dir = out / "run"
    with run_lock(out, "jaxattn reproduce"):
        metrics = train_run(cfg, run_dir, progress=progress)
        reports = {}
        if "jain_wallace" in suites:
            reports["Jain & Wallace analyses"] = analyze_run(run_dir, limit=limit, progress=progress)
        if "wiegreffe_pinter" in suites:
            reports["Wiegreffe & Pinter suite"] = wp_run(run_dir, seeds=seeds, progress=progress)
        index = out / "index.html"
        write_atomic(index, _index_page(cfg.data.name, metrics, reports, out))
    return index


def _index_page(dataset: str, metrics: dict, reports: dict[str, Path], out: Path) -> str:
    test = metrics["test"]
    scores = ", ".join(f"{k} {test[k]:.3f}" for k in ("accuracy", "f1", "auc") if k in test)
    links = "\n".join(
        f'<li><a href="{html.escape(str(p.relative_to(out)))}">{html.escape(name)}</a></li>'
        for name, p in reports.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>jaxattn: {html.escape(dataset)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}</style>
</head><body>
<h1>jaxattn reproduction: {html.escape(dataset)}</h1>
<p>Model: {html.escape(metrics["model"]["encoder"])} encoder, {html.escape(metrics["model"]["attention"])}
attention, embeddings {html.escape(str(metrics["embeddings"]["name"]))}; test {scores}
(epoch {metrics["best_epoch"]}, selected on {html.escape(metrics["selection"])}).</p>
<ul>
{links}
</ul>
<h2>Data</h2>
<pre>{html.escape(json.dumps(metrics["data"], indent=2))}</pre>
</body></html>
"""
