"""The Wiegreffe & Pinter (2019) suite over one trained run (``jaxattn wp --run RUN``).

Stages (PROTOCOL.md section 4), each resumable:

* ``uniform``: the base config retrained with attention frozen at 1/len; test F1 beside the base's.
* ``seeds``: the base config retrained with ``seeds`` other seeds (base seed + 1 ...); per test
  instance the JSD between the base's and each seed model's attention and the TVD between their
  outputs. As in W&P's ``seed_graphs.py``, an instance's JSD is the median over seeds and its TVD the
  mean over seeds; ``jsd_median`` / ``tvd_mean`` summarise those over instances.
* ``adversary``: model-consistent adversaries, one per lambda (:mod:`jaxattn.studies.wiegreffe_pinter.adversarial_training`);
  per lambda the mean test TVD to the base's outputs, mean JSD to its attention, F1 against gold.
* ``diagnostic``: the non-contextual MLP (``average`` encoder, linear decoder over the
  attention-weighted sum) trained with its own attention, uniform attention, the base's attention
  imposed and an adversary's attention imposed. The adversary is the one whose attention lies
  furthest from the base's (largest dev JSD) among the model-consistent ones: those whose outputs
  lie no further from the base's than another seed's do (mean dev TVD at most the seeds' mean dev
  TVD, or ``consistency_tvd`` when given or when no seeds ran); ``diagnostic_lambda`` names one
  instead. The stage trains the adversaries if they are missing.

Layout::

    RUN/wp/summary.json                 every finished stage's numbers
    RUN/wp/<stage>.json                 a finished stage (its presence with the same parameters
                                        means the stage is not recomputed)
    RUN/wp/seeds.npz, adversary.npz     per-instance arrays (:class:`jaxattn.studies.comparison.Comparison`)
    RUN/wp/runs/uniform | seeds/seed_<s> | adversary/lambda_<l> | diagnostic/<kind>
    RUN/wp/tables/*.md, *.csv   RUN/wp/figures/*.png   RUN/wp/index.html

Sub-runs use the base run's config (same data, filters, vocabulary, epochs), changing only what the
stage is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import jax

from jaxattn.config import Config, ConfigError
from jaxattn.core.checks import check_model, check_model_outputs
from jaxattn.core.errors import RunError
from jaxattn.core.metrics import classification_scores
from jaxattn.core.protocol import (
    AttentionModel,
    Params,
    is_binary,
)
from jaxattn.data.batching import make_batch
from jaxattn.data.dataset import Dataset
from jaxattn.data.prepare import Prepared
from jaxattn.models.config import ModelConfig
from jaxattn.runs.fit import check_train_config, read_params
from jaxattn.runs.run import Run, load_run
from jaxattn.runtime.compile_cache import enable_compilation_cache
from jaxattn.runtime.files import read_json, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.jain_wallace.report import write_report as write_jw_report
from jaxattn.studies.wiegreffe_pinter.adversarial_training import DEFAULT_LAMBDAS
from jaxattn.studies.wiegreffe_pinter.context import OwnBase, Suite, WPOptions, test_scores
from jaxattn.studies.wiegreffe_pinter.provenance import check_base
from jaxattn.studies.wiegreffe_pinter.report import write_report
from jaxattn.studies.wiegreffe_pinter.stages import (
    FALLBACK_CONSISTENCY_TVD,
    adversary_stage,
    choose_adversary,
    consistency_threshold,
    diagnostic_model,
    diagnostic_stage,
    seeds_stage,
    uniform_stage,
)
from jaxattn.training.config import TrainConfig
from jaxattn.training.trainer import first_batch, predict

__all__ = [  # the suite's entry points, and what its callers read beside them
    "FALLBACK_CONSISTENCY_TVD", "STAGES", "OwnBase", "WPOptions", "choose_adversary",
    "consistency_threshold", "diagnostic_model", "wiegreffe_pinter", "wp_model", "wp_run",
    "wp_trained", "write_summary",
]

STAGES = ("uniform", "seeds", "diagnostic", "adversary")
RUN_ORDER = ("uniform", "seeds", "adversary", "diagnostic")


def _wanted(only: Iterable[str] | None) -> list[str]:
    wanted = set(STAGES if only is None else only)
    unknown = wanted - set(STAGES)
    if unknown:
        raise ConfigError(f"--only: unknown stage(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(STAGES)}")
    if "diagnostic" in wanted:
        wanted.add("adversary")  # (d) imposes an adversary's attention
    return [s for s in RUN_ORDER if s in wanted]


def wp_run(
    run_dir: str | Path,
    only: set[str] | None = None,
    seeds: int = 8,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    progress: bool = True,
    dataset: Dataset | None = None,
    **options,
) -> Path:
    """Runs the W&P stages on the run in ``run_dir`` and writes its report; returns the report path.

    Args:
      only: stages to run (default all); finished stages are read back, not recomputed.
      seeds: number of extra seeds for the variance baseline.
      lambdas: the adversary's lambda sweep.
      dataset: the data set to use instead of loading the run's ``data.name`` (tests, notebooks).
      options: see :meth:`WPOptions.from_kwargs` (e.g. ``seed_mode="sequential"``,
        ``test_selection=True``, ``half_binary_tvd=True``, ``summed=True``).
    """
    opts = WPOptions.from_kwargs(**options)
    stages = _wanted(only)
    with run_lock(run_dir, "jaxattn wp"):
        return _wp_locked(run_dir, stages, seeds, lambdas, progress, dataset, opts)


def _wp_locked(run_dir, stages, seeds, lambdas, progress, dataset, opts) -> Path:
    base = load_run(run_dir)
    if base.config.train.attention != "learned":
        raise ConfigError(f"{run_dir}: the W&P suite needs a base run with learned attention "
                          f"(train.attention = {base.config.train.attention!r})")
    suite = Suite(base=base, out=Path(run_dir) / "wp", options=opts, progress=progress,
                   dataset=dataset)
    suite.base_key = check_base(suite.out, suite.base.params, suite.prepared)
    _run_stages(suite, stages, seeds, lambdas)
    write_summary(suite.out, base)
    return write_report(suite.out)


def _run_stages(suite: Suite, stages: Sequence[str], seeds: int, lambdas) -> None:
    results: dict[str, dict] = {}
    for stage in stages:
        if stage == "uniform":
            results[stage] = uniform_stage(suite)
        elif stage == "seeds":
            results[stage] = seeds_stage(suite, seeds)
        elif stage == "adversary":
            results[stage] = adversary_stage(suite, lambdas)
        else:
            seeds_done = suite.out / "seeds.json"
            seeds_result = results.get("seeds") or (
                read_json(seeds_done) if seeds_done.exists() else None)
            results[stage] = diagnostic_stage(suite, results["adversary"], seeds_result)


def wp_model(
    model: AttentionModel,
    params: Params,
    data: Prepared,
    out: str | Path,
    config: TrainConfig | Config | None = None,
    only: set[str] | None = None,
    seeds: int = 8,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    progress: bool = True,
    setting: dict | None = None,
    metrics: dict | None = None,
    diagnostic: ModelConfig | None = None,
    **options,
) -> Path:
    """The W&P suite of a model brought through the Python API (``jaxattn.wiegreffe_pinter``).

    ``model`` (any :class:`~jaxattn.core.protocol.AttentionModel` with the pooling seam) with
    ``params``, trained on ``data`` with the training settings ``config``, is the base. Its
    variants train with :func:`jaxattn.runs.fit.train_model` and ``config``: itself with uniform
    attention, itself with ``seeds`` other ``config.seed`` values, the model-consistent
    adversaries (one per lambda, of its architecture), and the diagnostic MLP (the built-in
    ``average`` encoder on ``data``, :func:`diagnostic_model`) with its own, uniform, ``model``'s
    and an adversary's attention. Everything is written under ``out`` (the layout of ``RUN/wp``;
    finished stages are read back, not recomputed) and ``out/index.html``, whose path is returned. With ``out`` =
    ``FOLDER/wp`` beside ``FOLDER/analysis`` (:func:`jaxattn.analyze`), each report's verdict
    has the other's rows.

    Args:
      metrics: the base's ``metrics.json`` from :func:`jaxattn.train` (default: read from
        ``out/../metrics.json`` when :func:`jaxattn.train` wrote it there, else the base's test
        scores are computed here).
      setting: what the report calls the model: ``encoder`` and ``attention``.
      diagnostic: the diagnostic MLP's ``embed_dim`` and ``hidden_size`` (default
        :class:`~jaxattn.ModelConfig`'s).
      only, seeds, lambdas, options: as :func:`wp_run`.
    """
    enable_compilation_cache()
    model = check_model(model, needs=("pooling",))
    tc = check_train_config(config or TrainConfig(), "jaxattn.wiegreffe_pinter")
    opts = WPOptions.from_kwargs(**options)
    stages = _wanted(only)
    out = Path(out)
    check_model_outputs(model, params, make_batch(data.splits["test"], range(
        min(8, len(data.splits["test"])))), num_classes=len(data.dataset.label_names))
    if metrics is None:
        saved = out.parent / "metrics.json"
        metrics = read_json(saved) if saved.exists() else None
    if metrics is None:
        probs = predict(model, params, data.splits["test"], tc.eval_batch_size, tc.buckets)
        metrics = {"test": classification_scores(probs, data.splits["test"].labels,
                                                 is_binary(model))}
    names = {"encoder": f"{type(model).__name__} (your own)", "attention": "its own",
             **(setting or {})}
    base = OwnBase(model=model, params=params, train=tc, metrics=metrics,
                   data_info=data.info(), path=out.parent, names=names,
                   diagnostic=diagnostic or ModelConfig())
    with run_lock(out, "jaxattn.wiegreffe_pinter"):
        suite = Suite(base=base, out=out, options=opts, progress=progress,
                       dataset=data.dataset, _prepared=data)
        suite.base_key = check_base(out, params, data)
        _run_stages(suite, stages, seeds, lambdas)
        write_summary(out, base)
        report = write_report(out)
    analysis = out.parent / "analysis"
    if (analysis / "summary.json").exists():  # its verdict now has the W&P rows too
        write_jw_report(analysis)
    return report


def wp_trained(
    folder: str | Path,
    model: AttentionModel,
    data: Prepared,
    config: TrainConfig | Config | None = None,
    **kwargs,
) -> Path:
    """:func:`wp_model` of the model :func:`jaxattn.train` saved in ``folder`` (its
    ``params.msgpack`` and ``metrics.json``), with ``model``, ``data`` and ``config`` rebuilt as
    they were trained; the suite goes to ``folder/wp`` (``jaxattn wp --run FOLDER --model
    FILE.py:FUNCTION``)."""
    folder = Path(folder)
    for name in ("params.msgpack", "metrics.json"):
        if not (folder / name).exists():
            raise RunError(f"{folder}: not a finished jaxattn.train folder ({name} missing)")
    model = check_model(model, needs=("pooling",))
    template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                 first_batch(data.splits["train"])))
    params = read_params(folder / "params.msgpack", template)
    return wp_model(model, params, data, folder / "wp", config=config, **kwargs)


def wiegreffe_pinter(
    run_or_model: str | Path | AttentionModel,
    params: Params | None = None,
    data: Prepared | None = None,
    out: str | Path | None = None,
    **kwargs,
) -> Path:
    """``jaxattn.wiegreffe_pinter``: the W&P suite of a run directory (``jaxattn train``,
    :func:`jaxattn.train_run`; as ``jaxattn wp --run RUN``, written to ``RUN/wp``) or of a model
    of your own with its ``params``, ``data`` and ``out`` folder (:func:`wp_model`). ``kwargs``:
    ``only``, ``seeds``, ``lambdas``, ``progress``, the options of :func:`wp_run`, and for a
    model ``config`` (its :class:`~jaxattn.TrainConfig`), ``setting`` and ``metrics``.
    Returns the path of the report's ``index.html``."""
    if isinstance(run_or_model, (str, Path)):
        if params is not None or data is not None or out is not None:
            raise ConfigError("jaxattn.wiegreffe_pinter(RUN): a run directory brings its own "
                              "params, data and output folder (RUN/wp); give only the run")
        return wp_run(run_or_model, **kwargs)
    if params is None or data is None or out is None:
        raise ConfigError("jaxattn.wiegreffe_pinter(model, params, data, out): a model needs "
                          "its params, its prepared data and an output folder")
    return wp_model(run_or_model, params, data, out, **kwargs)


def write_summary(out: Path, base: Run | OwnBase) -> dict:
    """Gathers every finished stage under ``out`` into ``out/summary.json``."""
    names = base.names if isinstance(base, OwnBase) else {
        "encoder": base.config.model.encoder, "attention": base.config.model.attention}
    summary: dict = {
        "run": str(base.path),
        "data": base.data_info.get("name"),
        "model": names,
        "own_model": isinstance(base, OwnBase),
        "label_names": list(base.data_info.get("label_names") or ["0", "1"]),
        "base": test_scores(base.metrics),
        "timings": {},
    }
    for stage in STAGES:
        path = out / f"{stage}.json"
        if path.exists():
            result = read_json(path)
            summary["timings"][stage] = result.get("seconds")
            summary[stage] = result
    write_json(out / "summary.json", summary)
    return summary
