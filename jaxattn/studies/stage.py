"""A stage of a study: one per-instance analysis, its options and its pieces of the report.

:func:`jaxattn.studies.runner.run_stage` evaluates a :class:`Stage` over the analysed instances;
:mod:`jaxattn.studies.stage_cache` keys and stores its results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jaxattn.core.protocol import AttentionModel, Params, capabilities


@dataclasses.dataclass(frozen=True)
class Stage:
    """One analysis of a study: its computation, its options and its pieces of the report.

    Attributes:
      name: file stem and summary key.
      compute: ``(model, params, batch, options) -> {key: <array>[B, ...]}``, one jitted program
        per batch shape; None for a stage derived from other stages' results.
      token_keys: keys whose last axis is the token axis (padded to the longest analysed row).
      options: option fields the results depend on (part of the cache key).
      batch_size: the option field that sets the stage's batch size.
      version: bump when the computation changes, so cached results are recomputed.
      importances: ``(key, label)`` of every token importance the stage yields.
      summarize: ``(data) -> {summary key: value}`` merged into ``summary.json``.
      tables: ``(summary) -> [(title, rows)]`` for ``tables.md`` and the page.
      figures: ``(data, out_dir) -> [(file name, caption)]`` written into ``out_dir``.
      facts: ``(data, row) -> [text]`` shown above an instance's heatmap.
      heatmaps: ``(data, row) -> {label: <float>[T]}`` extra rows of an instance's heatmap,
        over all T positions of the row (the report keeps the real tokens).
      heatmaps_after: the importance key whose heatmap row these rows follow; None: after every
        importance row.
      requires: capabilities of the model the computation uses beyond the base contract
        (names of :data:`~jaxattn.core.protocol.CAPABILITIES`, e.g. ``("pooling",)`` for a stage
        that reads or replaces the pooling attention); a model lacking one skips the stage,
        with the reason said (:func:`skip_reason`).
      applies: ``(model, params, batch) -> bool``, whether the stage can run on ``model`` (asked
        on one batch) once ``requires`` is met; a stage that does not apply is skipped. None:
        every model.
      skip_note: why the stage is skipped when ``applies`` is False (default: "it does not
        apply to this model"), e.g. what the data lacks.
      needs: token-importance keys of other stages the computation reads: it is then called
        with ``given={key: <float32>[B, T]}`` (those of them that were computed), the rows of
        each batch taken from the other stages' results.
      stream: the stage's stream of the analysis seed; None (the default) derives it from the
        name (:func:`jaxattn.studies.registry.random_key`). The stages of jaxattn 0.2 keep the
        numbers they had, so their results and cached files stay the same.
      verdict: ``(evidence) -> Row`` the stage's row of the verdict table, or a list of rows
        (:mod:`jaxattn.report.evidence`), or None.
      description: one line for ``--only``'s help and the documentation.
      settings: ``((name, value), ...)`` fixed settings of a stage of your own that its results
        depend on (e.g. a noise level); part of the cache key.
      by_default: whether the stage runs when ``only`` names no stages; False for a stage that
        is costly enough to be asked for by name (``--only``).
      rows_apart: every row's results depend on that row alone and on no random draw: with
        several devices each device then runs the computation on its own rows
        (:func:`jaxattn.studies.runner.rows_on_each_device`) rather than one program that
        XLA partitions.
    """

    name: str
    compute: Callable[..., dict] | None = None
    token_keys: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    batch_size: str = "batch_size"
    version: int = 1
    importances: tuple[tuple[str, str], ...] = ()
    summarize: Callable[[Any], dict] | None = None
    tables: Callable[[dict], list[tuple[str, list[dict]]]] | None = None
    figures: Callable[[Any, Path], list[tuple[str, str]]] | None = None
    facts: Callable[[Any, int], list[str]] | None = None
    heatmaps: Callable[[Any, int], dict[str, np.ndarray]] | None = None
    heatmaps_after: str | None = None
    requires: tuple[str, ...] = ()
    applies: Callable[[AttentionModel, Params, Any], bool] | None = None
    skip_note: str = ""
    needs: tuple[str, ...] = ()
    stream: int | None = None
    verdict: Callable[[Any], Any] | None = None
    description: str = ""
    settings: tuple[tuple[str, Any], ...] = ()
    by_default: bool = True
    rows_apart: bool = False


def skip_reason(stage: Stage, model: Any, params: Params, batch: Any) -> str | None:
    """Why ``stage`` cannot run on ``model`` (asked on one ``batch``), None when it can."""
    lacking = [name for name in stage.requires if name not in capabilities(model)]
    if lacking:
        names = " and ".join(repr(name) for name in lacking)
        return f"it needs the model capability {names}, which {type(model).__name__} lacks"
    if stage.applies is not None and not stage.applies(model, params, batch):
        return stage.skip_note or "it does not apply to this model"
    return None
