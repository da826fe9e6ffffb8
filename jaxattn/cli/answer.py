"""What ``jaxattn reproduce``, ``analyze`` and ``wp`` print when they finish: the verdict
sentence, the run's test scores and the report's path, each on one labelled line, once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from jaxattn.report.verdict import verdict_rows, verdict_sentence
from jaxattn.report.verdict_page import read_summary, run_evidence
from jaxattn.runtime.files import read_json
from jaxattn.studies.registry import REGISTRY

SCORE_NAMES = (("accuracy", "accuracy"), ("f1", "F1"), ("auc", "AUC"))


def scores_line(metrics: Mapping) -> str:
    """``test: accuracy 0.9120, F1 0.9050, AUC 0.9700 (epoch 3, selected on dev)`` from a run's
    ``metrics.json``."""
    test = metrics.get("test") or {}
    shown = ", ".join(f"{label} {test[k]:.4f}" for k, label in SCORE_NAMES
                      if test.get(k) is not None)
    where = []
    if metrics.get("best_epoch") is not None:
        where.append(f"epoch {metrics['best_epoch']}")
    if metrics.get("selection"):
        where.append(f"selected on {metrics['selection']}")
    return f"test: {shown or 'no scores'}" + (f" ({', '.join(where)})" if where else "")


def answer_lines(run_dir: str | Path, report: str | Path, jw: Mapping | None = None,
                 wp: Mapping | None = None) -> list[str]:
    """The closing lines of a command over the run in ``run_dir`` whose page is ``report``.

    ``jw`` / ``wp``: the summaries the verdict reads instead of ``RUN/analysis`` / ``RUN/wp``'s
    (an analysis written beside the main one reads its own).
    """
    run_dir, report = Path(run_dir), Path(report).resolve()
    ev = run_evidence(run_dir, report.parent, jw=jw, wp=wp)
    # the rows of the stages that declare one and ran, as on the report's page
    ran = (ev.jw or {}).get("timings", {})
    rows = verdict_rows(dataclasses.replace(ev, stage_rows=tuple(
        stage.verdict for name, stage in REGISTRY.items()
        if stage.verdict is not None and name in ran)))
    lines = [f"verdict: {verdict_sentence(rows, ev)}"]
    metrics = read_summary(run_dir / "metrics.json")
    if metrics is not None:
        lines.append(scores_line(metrics))
    lines.append(f"report: {report}")
    return lines


def print_answer(run_dir: str | Path, report: str | Path, **summaries) -> None:
    """Prints :func:`answer_lines` to stdout."""
    print("\n".join(answer_lines(run_dir, report, **summaries)))


def own_summary(report: str | Path) -> dict | None:
    """The ``summary.json`` beside a report page, if any."""
    path = Path(report).parent / "summary.json"
    return read_json(path) if path.exists() else None
