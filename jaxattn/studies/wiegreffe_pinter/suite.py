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

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxattn.config import Config, ConfigError
from jaxattn.core.errors import RunError
from jaxattn.core.metrics import classification_scores
from jaxattn.core.protocol import (
    AttentionModel,
    Params,
    check_model,
    check_model_outputs,
    is_binary,
)
from jaxattn.data.batching import make_batch
from jaxattn.data.dataset import Dataset
from jaxattn.data.prepare import Prepared, prepare
from jaxattn.models.config import ModelConfig
from jaxattn.models.encoders import EncoderSettings
from jaxattn.models.model import build_model
from jaxattn.runs.fit import check_train_config, read_params, train_model
from jaxattn.runs.run import Run, load_run, train_run
from jaxattn.runs.seeds import (
    SEED_MODES,
    check_seed_count,
    check_stack_memory,
    resolve_seed_mode,
    seed_dir,
    train_seeds,
)
from jaxattn.runtime.compile_cache import enable_compilation_cache
from jaxattn.runtime.files import read_json, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.comparison import compare_members, load_stacked_params
from jaxattn.studies.jain_wallace.report import write_report as write_jw_report
from jaxattn.studies.wiegreffe_pinter.adversarial_training import (
    DEFAULT_LAMBDAS,
    AdversaryOptions,
    summarise_adversaries,
    train_adversaries,
    train_model_adversaries,
)
from jaxattn.studies.wiegreffe_pinter.provenance import check_base, record_base
from jaxattn.studies.wiegreffe_pinter.report import DIAGNOSTIC_KINDS, adversary_choice, write_report
from jaxattn.training.config import TrainConfig
from jaxattn.training.train_state import stack_trees
from jaxattn.training.trainer import LEARNED, AttentionSource, first_batch, predict

STAGES = ("uniform", "seeds", "diagnostic", "adversary")
RUN_ORDER = ("uniform", "seeds", "adversary", "diagnostic")
FALLBACK_CONSISTENCY_TVD = 0.05


@dataclasses.dataclass(frozen=True)
class WPOptions:
    """Options of the suite beyond the stages, seeds and lambdas.

    Attributes:
      seed_mode: ``auto``, ``vmap`` (all seeds as one stack) or ``sequential`` (see
        :mod:`jaxattn.runs.seeds`); it changes how long the seeds take, not what they are.
      consistency_tvd: the largest mean dev TVD an adversary may have to be used by the diagnostic
        (None: the seeds' mean dev TVD, or ``FALLBACK_CONSISTENCY_TVD`` without seeds).
      diagnostic_lambda: use this lambda's adversary in the diagnostic instead.
      adversary: how adversaries are trained and scored (the published quirks live there).
    """

    seed_mode: str = "auto"
    consistency_tvd: float | None = None
    diagnostic_lambda: float | None = None
    adversary: AdversaryOptions = AdversaryOptions()

    @classmethod
    def from_kwargs(cls, **options) -> WPOptions:
        """Flat keyword options: this class's fields, :class:`AdversaryOptions`' fields, and
        ``test_selection=True`` for the adversary's published test-set selection."""
        own = {f.name for f in dataclasses.fields(cls)} - {"adversary"}
        adv = {f.name for f in dataclasses.fields(AdversaryOptions)}
        unknown = set(options) - own - adv - {"test_selection"}
        if unknown:
            raise ConfigError(f"unknown W&P option(s): {', '.join(sorted(unknown))}")
        adv_opts = {k: v for k, v in options.items() if k in adv}
        if options.get("test_selection"):
            adv_opts["selection"] = "test"
        out = cls(**{k: v for k, v in options.items() if k in own},
                  adversary=AdversaryOptions(**adv_opts))
        if out.seed_mode not in SEED_MODES:
            raise ConfigError(f"seed_mode {out.seed_mode!r} is not one of {', '.join(SEED_MODES)}")
        return out


@dataclasses.dataclass
class OwnBase:
    """A base model brought through the Python API rather than a run directory: any
    :class:`~jaxattn.core.protocol.AttentionModel` with the pooling seam, its parameters, the
    training settings its variants are trained with, and what the report calls it."""

    model: AttentionModel
    params: Params
    train: TrainConfig
    metrics: dict
    data_info: dict
    path: Path  # the folder the report and the verdict name as the model's
    names: dict  # {"encoder": ..., "attention": ...} for the report
    diagnostic: ModelConfig  # the diagnostic MLP's sizes


@dataclasses.dataclass
class _Suite:
    """What every stage reads: the base run (or model), its data, the output folder and the
    options."""

    base: Run | OwnBase
    out: Path
    options: WPOptions
    progress: bool
    dataset: Dataset | None
    _prepared: Prepared | None = None
    base_key: dict | None = None  # what every result here depends on (see provenance)

    @property
    def own(self) -> bool:
        """Whether the base is a model of the caller's own (variants train with
        :func:`jaxattn.runs.fit.train_model`, not from a config)."""
        return isinstance(self.base, OwnBase)

    @property
    def train_config(self) -> TrainConfig:
        return self.base.train if self.own else self.base.config.train

    def stacked_params(self, dirs: Sequence[Path]) -> Params:
        """The selected parameters of the sub-runs ``dirs`` (of the base's architecture)."""
        if self.own:
            return stack_trees([read_params(d / "params.msgpack", self.base.params)
                                for d in dirs])
        return load_stacked_params(dirs)

    def train_variant(self, out: Path, source: AttentionSource = LEARNED,
                      source_params: Params | None = None, model: AttentionModel | None = None,
                      **train) -> dict:
        """Trains a variant of a model of the caller's own (``model``: another one, e.g. the
        diagnostic MLP) with ``train`` changes to its training settings; its metrics."""
        tc = dataclasses.replace(self.base.train, **train)
        return train_model(model or self.base.model, self.prepared, tc, out,
                           progress=self.progress, source=source,
                           source_params=source_params)[1]

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:  # only stages that compute need the data
            self._prepared = prepare(self.base.config.data, vocab=self.base.vocab, dataset=self.dataset)
        return self._prepared

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def config(self, **changes: dict) -> Config:
        """The base config with ``section={key: value}`` changes."""
        cfg = copy.deepcopy(self.base.config)
        for section, values in changes.items():
            for key, value in values.items():
                setattr(getattr(cfg, section), key, value)
        return cfg

    def say(self, text: str) -> None:
        if self.progress:
            tqdm.write(f"[wp] {text}")


def _normalised(obj):
    return json.loads(json.dumps(obj))


def _stage(suite: _Suite, name: str, params: dict, compute: Callable[[], dict]) -> dict:
    """Runs ``compute`` unless ``wp/<name>.json`` holds a result for the same ``params``."""
    path = suite.out / f"{name}.json"
    params = _normalised(params)
    if path.exists():
        done = read_json(path)
        if done.get("params") == params:
            suite.say(f"{name}: done already ({path})")
            return done
    record_base(suite.out, suite.base_key)  # before the first result it vouches for
    suite.say(f"{name}: running")
    start = time.perf_counter()
    result = compute()
    result.update(params=params, seconds=time.perf_counter() - start)
    write_json(path, result)
    suite.say(f"{name}: finished in {result['seconds']:.1f}s")
    return result


def _scores(metrics: dict) -> dict:
    test = metrics["test"]
    return {k: test[k] for k in ("f1", "accuracy", "auc") if k in test}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Stages


def _uniform_stage(suite: _Suite) -> dict:
    def compute():
        out = suite.runs / "uniform"
        if suite.own:
            metrics = suite.train_variant(out, AttentionSource("uniform"))
        else:
            metrics = train_run(suite.config(train={"attention": "uniform"}), out,
                                suite.progress, suite.prepared)
        return {**_scores(metrics), "best_epoch": metrics["best_epoch"],
                "run": _relative(out, suite.out)}

    return _stage(suite, "uniform", {}, compute)


def _seeds_stage(suite: _Suite, n_seeds: int) -> dict:
    if n_seeds < 1:
        raise ConfigError("the seeds stage needs at least one extra seed (--seeds N, N >= 1)")
    base_seed = suite.train_config.seed
    # A model of your own trains its seeds one by one (a stack needs a config's model).
    mode = "sequential" if suite.own else resolve_seed_mode(suite.options.seed_mode)
    check_seed_count(n_seeds)
    if mode != "sequential":
        check_stack_memory(suite.base.config, suite.prepared, n_seeds)
    seeds = [base_seed + k for k in range(1, n_seeds + 1)]

    def compute():
        tc = suite.train_config
        if suite.own:
            dirs = [seed_dir(suite.runs / "seeds", s) for s in seeds]
            for s, d in zip(seeds, dirs):
                suite.train_variant(d, seed=s)
        else:
            dirs = train_seeds(suite.base.config, seeds, suite.prepared, suite.runs / "seeds",
                               mode, suite.progress)
        params = suite.stacked_params(dirs)
        comp = compare_members(suite.base.model, suite.base.params, params,
                               suite.prepared.splits["test"], tc.eval_batch_size, tc.buckets)
        comp.save(suite.out / "seeds.npz")
        # The adversaries are held to the seeds' dev TVD (see _choose_adversary).
        dev = compare_members(suite.base.model, suite.base.params, params,
                              suite.prepared.splits["dev"], tc.eval_batch_size, tc.buckets)
        jsd_inst, tvd_inst = np.median(comp.jsd, axis=0), comp.tvd.mean(axis=0)
        per_seed = []
        for s, d, j, t in zip(seeds, dirs, comp.jsd, comp.tvd):
            metrics = read_json(d / "metrics.json")
            per_seed.append({"seed": s, **_scores(metrics), "jsd_mean": float(j.mean()),
                             "jsd_median": float(np.median(j)), "tvd_mean": float(t.mean()),
                             "run": _relative(d, suite.out)})
        return {
            "n": n_seeds,
            "seeds": seeds,
            "mode": mode,
            "f1": [r.get("f1") for r in per_seed],
            "jsd_median": float(np.median(jsd_inst)),
            "jsd_mean": float(jsd_inst.mean()),
            "tvd_mean": float(tvd_inst.mean()),
            "tvd_median": float(np.median(tvd_inst)),
            "dev_tvd_mean": float(dev.tvd.mean()),
            "dev_jsd_median": float(np.median(np.median(dev.jsd, axis=0))),
            "per_seed": per_seed,
        }

    return _stage(suite, "seeds", {"seeds": seeds, "splits": ["test", "dev"]}, compute)


def consistency_threshold(options: WPOptions, seeds: dict | None) -> tuple[float, str]:
    """The largest mean dev TVD of a model-consistent adversary, and where it comes from (a
    phrase the report's sentence reads)."""
    if options.consistency_tvd is not None:
        return options.consistency_tvd, "set by the consistency_tvd option"
    if seeds and "dev_tvd_mean" in seeds:
        return seeds["dev_tvd_mean"], "the retrained seeds' mean dev TVD to the base model"
    return FALLBACK_CONSISTENCY_TVD, "a fixed fallback, as the seeds stage has not run"


def _choose_adversary(
    sweep: Sequence[dict], options: WPOptions, threshold: float
) -> tuple[dict, str]:
    """The sweep row the diagnostic imposes (see the module docstring) and the rule that chose
    it: ``diagnostic_lambda`` (the option), ``most_different_consistent`` (the largest dev JSD
    among the rows with mean dev TVD <= ``threshold``) or ``closest`` (none is; the smallest
    dev TVD)."""
    if options.diagnostic_lambda is not None:
        for row in sweep:
            if np.isclose(row["lambda"], options.diagnostic_lambda):
                return row, "diagnostic_lambda"
        raise ConfigError(f"diagnostic_lambda={options.diagnostic_lambda} is not in the sweep")
    consistent = [r for r in sweep if r["dev_tvd"] <= threshold]
    if consistent:
        return max(consistent, key=lambda r: r["dev_jsd"]), "most_different_consistent"
    return min(sweep, key=lambda r: r["dev_tvd"]), "closest"


def _adversary_stage(suite: _Suite, lambdas: Sequence[float]) -> dict:
    lambdas = [float(x) for x in lambdas]
    if not lambdas:
        raise ConfigError("the adversary stage needs at least one lambda")
    adv = suite.options.adversary

    def compute():
        tc = suite.train_config
        if suite.own:
            dirs = train_model_adversaries(suite.base.model, suite.base.params, tc, lambdas,
                                           suite.prepared, suite.runs / "adversary", adv,
                                           suite.progress, str(suite.base.path))
        else:
            dirs = train_adversaries(suite.base, lambdas, suite.prepared,
                                     suite.runs / "adversary", adv, suite.progress)
        test = suite.prepared.splits["test"]
        comp = compare_members(suite.base.model, suite.base.params, suite.stacked_params(dirs),
                               test, tc.eval_batch_size, tc.buckets, adv.kl_eps)
        comp.save(suite.out / "adversary.npz")
        rows = summarise_adversaries(suite.base.model, comp, test.labels, lambdas, adv)
        sweep = []
        for lam, d, row in zip(lambdas, dirs, rows):
            metrics = read_json(d / "metrics.json")
            dev = metrics["adversary"]["dev"]
            sweep.append({"lambda": lam, "tvd": row["tvd"], "jsd": row["jsd"], "kl": row["kl"],
                          "f1": row.get("f1"), "accuracy": row["accuracy"], "auc": row.get("auc"),
                          "dev_tvd": dev["tvd"], "dev_jsd": dev["jsd"],
                          "best_epoch": metrics["best_epoch"], "run": _relative(d, suite.out)})
        return {"sweep": sweep, "aggregate": "sum" if adv.summed else "mean"}

    return _stage(suite, "adversary", {"lambdas": lambdas, "options": dataclasses.asdict(adv)},
                  compute)


def _diagnostic_stage(suite: _Suite, adversary: dict, seeds: dict | None) -> dict:
    threshold, origin = consistency_threshold(suite.options, seeds)
    chosen, reason = _choose_adversary(adversary["sweep"], suite.options, threshold)
    adversary_run = (suite.out / chosen["run"]).resolve()
    lam = chosen["lambda"]
    sources = {
        "learned": ("learned", "", "its own"),
        "uniform": ("uniform", "", "uniform 1/len"),
        "imposed": ("imposed", str(suite.base.path.resolve()), "the base model's"),
        "adversary": ("imposed", str(adversary_run), f"the adversary's (lambda {lam:g})"),
    }

    def compute():
        result = {}
        for kind in tqdm(DIAGNOSTIC_KINDS, desc="diagnostic MLP", disable=not suite.progress):
            mode, imposed, text = sources[kind]
            name = kind if kind != "adversary" else f"adversary_lambda_{lam:g}"
            out = suite.runs / "diagnostic" / name
            if suite.own:
                metrics = _own_diagnostic(suite, kind, adversary_run, out)
            else:
                cfg = suite.config(model={"encoder": "average"},
                                   train={"attention": mode, "imposed_run": imposed})
                metrics = train_run(cfg, out, suite.progress, suite.prepared)
            result[kind] = {**_scores(metrics), "attention": text, "run": _relative(out, suite.out)}
        result["adversary"].update(
            {"lambda": lam, "rule": reason, "threshold": threshold, "threshold_source": origin,
             "dev_tvd": chosen["dev_tvd"], "dev_jsd": chosen["dev_jsd"]})
        result["adversary"]["chosen_by"] = adversary_choice(result["adversary"])
        return result

    params = {"adversary_run": str(adversary_run)}
    if suite.own:
        params["mlp"] = {"embed_dim": suite.base.diagnostic.embed_dim,
                         "hidden_size": suite.base.diagnostic.hidden_size}
    return _stage(suite, "diagnostic", params, compute)


def diagnostic_model(data: Prepared, config: ModelConfig | None = None) -> AttentionModel:
    """W&P's diagnostic MLP for ``data``: the non-contextual ``average`` encoder (a projection of
    each embedding on its own) with additive attention and a linear decoder, sized by ``config``
    (``embed_dim``, ``hidden_size``; default :class:`ModelConfig`'s)."""
    config = config or ModelConfig()
    info = data.info()
    return build_model(vocab_size=len(data.vocab), task=info["task"],
                       num_classes=len(info["label_names"]), encoder="average",
                       attention="additive", embed_dim=config.embed_dim,
                       **dataclasses.asdict(EncoderSettings.of(config)))


def _own_diagnostic(suite: _Suite, kind: str, adversary_run: Path, out: Path) -> dict:
    """One diagnostic MLP beside a model of the caller's own: its attention is the MLP's own,
    uniform, the base model's, or the adversary's (read from ``adversary_run``)."""
    mlp = diagnostic_model(suite.prepared, suite.base.diagnostic)
    if kind in ("learned", "uniform"):
        return suite.train_variant(out, AttentionSource(kind), model=mlp)
    params = suite.base.params if kind == "imposed" else read_params(
        adversary_run / "params.msgpack", suite.base.params)
    return suite.train_variant(out, AttentionSource("imposed", suite.base.model), params,
                               model=mlp)


# --------------------------------------------------------------------------------------------
# Entry point


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
    suite = _Suite(base=base, out=Path(run_dir) / "wp", options=opts, progress=progress,
                   dataset=dataset)
    suite.base_key = check_base(suite.out, suite.base.params, suite.prepared)
    _run_stages(suite, stages, seeds, lambdas)
    write_summary(suite.out, base)
    return write_report(suite.out)


def _run_stages(suite: _Suite, stages: Sequence[str], seeds: int, lambdas) -> None:
    results: dict[str, dict] = {}
    for stage in stages:
        if stage == "uniform":
            results[stage] = _uniform_stage(suite)
        elif stage == "seeds":
            results[stage] = _seeds_stage(suite, seeds)
        elif stage == "adversary":
            results[stage] = _adversary_stage(suite, lambdas)
        else:
            seeds_done = suite.out / "seeds.json"
            seeds_result = results.get("seeds") or (
                read_json(seeds_done) if seeds_done.exists() else None)
            results[stage] = _diagnostic_stage(suite, results["adversary"], seeds_result)


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
        suite = _Suite(base=base, out=out, options=opts, progress=progress,
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
        "base": _scores(base.metrics),
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
