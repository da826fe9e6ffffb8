"""What a verdict row reads and returns: :class:`Evidence` (the run's summaries and where their
report pages are), :class:`Row`, the statuses, and the small helpers every row uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

AGAINST = "against"  # the test counts against reading attention as an explanation
SUPPORTS = "consistent"  # the test is consistent with reading attention as an explanation
MIXED = "mixed"
NOT_NEEDED = "not needed"  # attention is not needed for the task: the other tests say little
INCOMPLETE = "incomplete"  # ran, but its yardstick needs another stage
NOT_RUN = "not run"
NOT_APPLICABLE = "n/a"
RAN = (AGAINST, SUPPORTS, MIXED, NOT_NEEDED)

STATUS_LABELS = {
    AGAINST: "against",
    SUPPORTS: "consistent with",
    MIXED: "mixed",
    NOT_NEEDED: "attention not needed",
    INCOMPLETE: "incomplete",
    NOT_RUN: "not run",
    NOT_APPLICABLE: "not applicable",
}

@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a verdict reads.

    Attributes:
      jw: the J&W analysis ``summary.json`` (None: not analysed).
      wp: the W&P suite's ``summary.json`` (None: not run).
      jw_page: href of the J&W report from the verdict's page ("" for the same page).
      wp_page: href of the W&P report from the verdict's page.
      run: the run directory as commands should name it.
      stage_rows: ``(evidence) -> Row`` (or a list of rows) of the stages that declare verdict
        rows of their own (:attr:`jaxattn.studies.stage.Stage.verdict`), after the built-in
        rows.
      own_model: the model was brought through the Python API (``jaxattn.train``), so the
        commands, which rebuild a model from a run's config, cannot run its missing stages: the
        verdict names the Python calls instead, with ``run`` the folder it was trained into.
    """

    jw: Mapping | None = None
    wp: Mapping | None = None
    jw_page: str | None = None
    wp_page: str | None = None
    run: str = "RUN"
    stage_rows: tuple = ()
    own_model: bool = False


@dataclasses.dataclass(frozen=True)
class Row:
    test: str
    figure: str
    compared_with: str
    reading: str
    status: str
    source: str
    evidence: str | None = None  # href (with anchor) of the section holding the evidence


def get_path(tree: Mapping | None, dotted: str):
    """``tree["a"]["b"]`` for ``dotted`` "a.b"; None where a part is missing."""
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def href(page: str | None, anchor: str) -> str | None:
    return None if page is None else f"{page}#{anchor}"


def not_run(test: str, compared_with: str, source: str, command: str) -> Row:
    return Row(test, "–", compared_with, f"not run — run `{command}`", NOT_RUN, source)


def _stage_set(only: str) -> str:
    return "{" + ", ".join(f'"{name}"' for name in only.split(",")) + "}"


def analyze_command(ev: Evidence, only: str) -> str:
    if ev.own_model:
        return (f'jaxattn.analyze(model, params, data, out="{ev.run}/analysis", '
                f"only={_stage_set(only)})")
    return f"jaxattn analyze --run {ev.run} --only {only}"


def wp_command(ev: Evidence, only: str) -> str:
    if ev.own_model:
        return (f'jaxattn.wiegreffe_pinter(model, params, data, out="{ev.run}/wp", '
                f"config=..., only={_stage_set(only)})")
    return f"jaxattn wp --run {ev.run} --only {only}"


def number(value: float | None, spec: str, scale: float = 1.0) -> str:
    """``value * scale`` formatted by ``spec``; "not defined" for a statistic that has no value
    (None, written to summary.json as null: e.g. a rank correlation of constant attention)."""
    return "not defined" if value is None else format(value * scale, spec)
