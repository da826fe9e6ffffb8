"""The Jain & Wallace suite on one trained run: ``jaxattn analyze --run DIR``.

Stages (each one jitted program per bucketed batch, see :mod:`jaxattn.importance` and
:mod:`jaxattn.interventions`):

=========  ===================================================================================
attention  the model's attention and output distribution (always run; the others refer to it)
grad       gradient importance below attention (J&W) and through it
loo        leave-one-out: output TVD when each token is deleted
ig         integrated gradients (zero baseline on the real tokens)
perm       attention permuted over the real tokens P times; per instance the median output TVD
adv        K adversarial attentions per instance; max JSD within epsilon
=========  ===================================================================================

Each stage writes its per-instance arrays to ``RUN/analysis/<stage>.npz`` (rows in split order of
the analysed instances, token arrays padded to the longest of them, real tokens at 1..len) and
is skipped when that file exists for the same split, instances and options. Then
``summary.json``, ``tables.md`` / ``tables.csv`` (J&W Table 2 beside ours), the figures and
``index.html`` are rebuilt from whatever stage files exist.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxattn import agreement, importance, interventions
from jaxattn.config import ConfigError
from jaxattn.data.batching import Batch, EncodedSplit, eval_batches, num_batches
from jaxattn.data.vocab import real_token_mask
from jaxattn.metrics import classification_scores
from jaxattn.models.model import Model, Params
from jaxattn.report import html as report_html
from jaxattn.report import plots
from jaxattn.report.published import (
    DATASET_TITLES,
    published_class,
    published_setting_for,
    published_tau,
)
from jaxattn.report.tables import csv_text, html_table, markdown_table, mean_std
from jaxattn.run import Run, load_run, write_atomic, write_json

STAGES = ("grad", "loo", "ig", "perm", "adv")
# Finer than the training buckets: leave-one-out and the adversarial search pay for every padded
# position, and one more compilation per bucket is cheap next to that.
ANALYSIS_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# Importance names, in display order, and the stage that computes each.
IMPORTANCE_LABELS = {
    "attn": "attention",
    "grad": "gradient (below attention)",
    "grad_through": "gradient (through attention)",
    "loo": "leave-one-out",
    "ig": "integrated gradients",
}
PAIRS = (
    ("attn", "grad"),
    ("attn", "grad_through"),
    ("attn", "loo"),
    ("attn", "ig"),
    ("grad", "loo"),
    ("grad", "ig"),
    ("loo", "ig"),
    ("grad", "grad_through"),
)
PAIR_NAMES = {f"{a}_{b}": (a, b) for a, b in PAIRS}
VALUE_MEASURES = ("spearman", "pearson", "weighted_tau", "jsd", "topk_overlap")


@dataclasses.dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of :func:`analyze_run` (``**options``). Batch sizes count instances."""

    # Small batches keep each step's arrays in cache: on a 2-core CPU (one device per core) with
    # the BiLSTM these were the fastest sizes per stage (benchmarks/analysis_speed.py).
    batch_size: int = 32  # attention, grad
    loo_batch_size: int = 16
    loo_chunk: int = 1  # deleted positions evaluated at once (x loo_batch_size sequences)
    ig_batch_size: int = 32
    ig_steps: int = 50
    ig_chunk: int = 10  # path points evaluated at once (x ig_batch_size sequences)
    perm_batch_size: int = 16
    num_permutations: int = 100
    adv_batch_size: int = 32
    num_adversaries: int = 5
    adv_steps: int = 500
    adv_learning_rate: float = 0.01
    epsilon: float = 0.05
    topk: int = 5
    seed: int = 0
    samples: int = 20
    buckets: tuple[int, ...] = ANALYSIS_BUCKETS


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage: what it computes per batch, which outputs are token-aligned (last axis T), which
    options its results depend on, and which option sets its batch size."""

    name: str
    compute: Callable[[Model, Params, Batch, AnalysisOptions], dict]
    token_keys: tuple[str, ...]
    options: tuple[str, ...]
    batch_size: str = "batch_size"


@functools.partial(jax.jit, static_argnames=("model",))
def _forward(model: Model, params: Params, batch: Batch) -> tuple[jax.Array, jax.Array]:
    logits, attn = model.forward(params, batch)
    return model.probs(logits), attn


def _attention(model, params, batch, opts):
    probs, attn = _forward(model, params, batch)
    return {"probs": probs, "attn": attn}


def _grad(model, params, batch, opts):
    below, through = importance.gradient_importances(model, params, batch)
    return {"grad": below, "grad_through": through}


def _loo(model, params, batch, opts):
    return {"loo": importance.leave_one_out(model, params, batch, chunk=opts.loo_chunk)}


def _ig(model, params, batch, opts):
    scores = importance.integrated_gradients(model, params, batch, opts.ig_steps, opts.ig_chunk)
    return {"ig": importance.normalize_magnitude(scores, batch.mask), "ig_signed": scores}


# Each random stage draws from its own stream of the seed.
RANDOM_STREAMS = {"perm": 1, "adv": 2}


def _stage_key(opts: AnalysisOptions, name: str) -> jax.Array:
    return jax.random.fold_in(jax.random.key(opts.seed), RANDOM_STREAMS[name])


def _perm(model, params, batch, opts):
    res = interventions.permute_attention(
        model, params, batch, _stage_key(opts, "perm"), opts.num_permutations
    )
    return {"perm_tvd": res.tvd, "median_tvd": res.median_tvd}


def _adv(model, params, batch, opts):
    res = interventions.search_adversarial_attention(
        model,
        params,
        batch,
        _stage_key(opts, "adv"),
        num_adversaries=opts.num_adversaries,
        steps=opts.adv_steps,
        learning_rate=opts.adv_learning_rate,
        epsilon=opts.epsilon,
    )
    return {
        "adv_attn": res.attn,
        "adv_tvd": res.tvd,
        "adv_jsd": res.jsd,
        "max_jsd": res.max_jsd,
        "found": res.found,
        "best_attn": res.best_attn,
        "best_tvd": res.best_tvd,
    }


STAGE_SPECS = {
    "attention": Stage("attention", _attention, ("attn",), ()),
    "grad": Stage("grad", _grad, ("grad", "grad_through"), ()),
    "loo": Stage("loo", _loo, ("loo",), (), "loo_batch_size"),
    "ig": Stage("ig", _ig, ("ig", "ig_signed"), ("ig_steps",), "ig_batch_size"),
    "perm": Stage("perm", _perm, (), ("num_permutations", "seed"), "perm_batch_size"),
    "adv": Stage(
        "adv",
        _adv,
        ("adv_attn", "best_attn"),
        ("num_adversaries", "adv_steps", "adv_learning_rate", "epsilon", "seed"),
        "adv_batch_size",
    ),
}


# --------------------------------------------------------------------------------------------
# Stage files


def _save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.asarray(json.dumps(meta)), **arrays)
    write_atomic(path, buf.getvalue())


def load_stage(path: str | Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata of a stage file, or None if it is absent."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
        meta = json.loads(str(data["__meta__"]))
    return arrays, meta


def data_parallel() -> tuple[NamedSharding, NamedSharding] | None:
    """(batch sharding, replicated sharding) over every local device; None with one device.

    The stages are independent per instance, so splitting the batch axis over the devices
    (GPUs, or CPU cores with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) runs them
    in parallel with no communication.
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None
    mesh = Mesh(np.asarray(devices), ("data",))
    return NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())


def stage_batches(
    split: EncodedSplit, indices: np.ndarray, batch_size: int, opts: AnalysisOptions, params: Params
):
    """(params, batches) for a stage: length-sorted bucketed batches of the instances, placed on
    the devices (batch axis split, params replicated) when there are several; ``batch_size`` must
    then be a multiple of the number of devices."""
    batches = eval_batches(split, batch_size, opts.buckets, indices)
    shardings = data_parallel()
    if shardings is None:
        return params, batches
    batch_sharding, replicated = shardings
    return jax.device_put(params, replicated), (jax.device_put(b, batch_sharding) for b in batches)


def _fit_tokens(value: np.ndarray, length: int) -> np.ndarray:
    """Cuts or zero-pads the last (token) axis to ``length``."""
    value = value[..., :length]
    pad = length - value.shape[-1]
    if pad:
        value = np.pad(value, [(0, 0)] * (value.ndim - 1) + [(0, pad)])
    return value


def run_stage(
    stage: Stage,
    model: Model,
    params: Params,
    split: EncodedSplit,
    indices: np.ndarray,
    opts: AnalysisOptions,
    path: Path,
    meta: dict,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Computes ``stage`` for the instances ``indices`` of ``split`` and saves it to ``path``.

    Returns the saved arrays, or those already at ``path`` when they were computed for the same
    ``meta`` (split, stage options) and ``indices``.
    """
    meta = {**meta, "stage": stage.name, "options": {k: getattr(opts, k) for k in stage.options}}
    cached = load_stage(path)
    if cached is not None:
        arrays, old = cached
        same = {k: old.get(k) for k in meta} == meta
        if same and np.array_equal(arrays.get("index"), indices):
            if progress:
                tqdm.write(f"{stage.name}: reusing {path}")
            return arrays
    t_max = int(split.lengths[indices].max()) + 2
    row_of = np.full(len(split), -1)
    row_of[indices] = np.arange(len(indices))
    # Never pad a batch beyond the instances there are (a small --limit stays cheap), and split
    # it evenly over the devices.
    devices = len(jax.devices())
    batch_size = min(getattr(opts, stage.batch_size), len(indices))
    batch_size = -(-batch_size // devices) * devices
    arrays: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    params, batches = stage_batches(split, indices, batch_size, opts, params)
    for batch in tqdm(
        batches,
        total=num_batches(len(indices), batch_size),
        desc=stage.name,
        disable=not progress,
        leave=False,
    ):
        out = jax.device_get(stage.compute(model, params, batch, opts))
        index = np.asarray(batch.index)
        real = index >= 0
        rows = row_of[index[real]]
        for key, value in out.items():
            value = np.asarray(value)[real]
            if key in stage.token_keys:
                value = _fit_tokens(value, t_max)
            if key not in arrays:
                arrays[key] = np.zeros((len(indices),) + value.shape[1:], value.dtype)
            arrays[key][rows] = value
    seconds = time.perf_counter() - start
    arrays["index"] = np.asarray(indices)
    meta["seconds"] = seconds
    meta["instances_per_second"] = len(indices) / max(seconds, 1e-9)
    meta["devices"] = devices
    _save_npz(path, arrays, meta)
    if progress:
        tqdm.write(f"{stage.name}: {len(indices)} instances in {seconds:.1f}s -> {path}")
    return arrays


# --------------------------------------------------------------------------------------------
# Summary


def _finite_or_none(obj):
    """JSON has no NaN: replace non-finite floats by None, recursively."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


@dataclasses.dataclass
class AnalysisData:
    """The analysed instances of one run: base arrays plus whatever stages exist."""

    tokens: np.ndarray  # <int32>[N, T]
    mask: np.ndarray  # <bool>[N, T]
    labels: np.ndarray  # <int>[N]
    predicted: np.ndarray  # <int>[N]
    probs: np.ndarray  # <float32>[N, K]
    index: np.ndarray  # <int>[N] rows of the split
    class_names: tuple[str, ...]
    task: str
    rationale: np.ndarray | None  # <bool>[N, T]
    stages: dict[str, dict[str, np.ndarray]]
    meta: dict[str, dict]

    @property
    def attn(self) -> np.ndarray:
        return self.stages["attention"]["attn"]

    @property
    def max_attention(self) -> np.ndarray:
        return self.attn.max(axis=-1)

    def importances(self) -> dict[str, np.ndarray]:
        """Name -> <float>[N, T] for every importance computed so far (attention first)."""
        out = {}
        for name in IMPORTANCE_LABELS:
            for arrays in self.stages.values():
                if name in arrays:
                    out[name] = arrays[name]
        return out

    def figure_classes(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Classes to split figures by: the predicted class (QA: all instances together)."""
        if self.task == "qa":
            return np.zeros(len(self.labels), int), ("all",)
        return self.predicted, self.class_names


def _bin_summaries(values: np.ndarray, max_attention: np.ndarray) -> dict:
    which = plots.assign_bins(max_attention)
    labels = plots.bin_labels(plots.MAX_ATTENTION_BINS)
    return {labels[b]: agreement.summarize(values[which == b]) for b in range(len(labels))}


def pairwise_agreement(
    data: AnalysisData, topk: int, progress: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Per-instance agreement measures (:func:`agreement.agreement_measures`) of every pair of
    importances computed so far, keyed ``"<a>_<b>"``."""
    imps = data.importances()
    pairs = [(a, b) for a, b in PAIRS if a in imps and b in imps]
    return {
        f"{a}_{b}": agreement.agreement_measures(imps[a], imps[b], data.mask, topk)
        for a, b in tqdm(pairs, desc="agreement", disable=not progress, leave=False)
    }


def build_summary(
    data: AnalysisData, pairs: dict[str, dict[str, np.ndarray]], setting: dict
) -> dict:
    """Everything the report shows, as plain numbers (see the module docstring).

    Args:
      pairs: :func:`pairwise_agreement` of ``data``.
    """

    def by_class(values, pvalues=None):
        return agreement.summarize_by_class(
            values, data.predicted, data.labels, data.class_names, pvalues
        )

    summary: dict = {
        "setting": setting,
        "n": int(len(data.labels)),
        "scores": classification_scores(data.probs, data.labels, data.task == "binary"),
        "max_attention": by_class(data.max_attention),
        "kendall": {},
        "agreement": {m: {} for m in VALUE_MEASURES},
        "timings": {name: data.meta[name].get("seconds") for name in data.meta},
    }
    for key, values in pairs.items():
        summary["kendall"][key] = by_class(values["kendall"], values["kendall_p"])
        for measure in VALUE_MEASURES:
            summary["agreement"][measure][key] = by_class(values[measure])
    imps = data.importances()
    if data.rationale is not None:
        chance = data.mask.astype(np.float64)  # every token tied: precision = share of rationale
        scored = {**imps, "uniform": chance}
        summary["rationale"] = {
            "auprc": {
                name: by_class(agreement.average_precision(s, data.rationale, data.mask))
                for name, s in scored.items()
            },
            "topk_f1": {
                name: by_class(agreement.topk_f1(s, data.rationale, data.mask))
                for name, s in imps.items()
            },
        }
    if "perm" in data.stages:
        median = data.stages["perm"]["median_tvd"]
        summary["permutation"] = {
            "median_tvd": by_class(median),
            "by_max_attention_bin": _bin_summaries(median, data.max_attention),
            "num_permutations": data.meta["perm"]["options"]["num_permutations"],
        }
    if "adv" in data.stages:
        adv = data.stages["adv"]
        summary["adversarial"] = {
            "max_jsd_mean": float(np.mean(adv["max_jsd"])),
            "frac_found": float(np.mean(adv["found"])),
            "max_jsd": by_class(adv["max_jsd"]),
            "found": by_class(adv["found"].astype(np.float64)),
            "by_max_attention_bin": _bin_summaries(adv["max_jsd"], data.max_attention),
            **data.meta["adv"]["options"],
        }
    return _finite_or_none(summary)


# --------------------------------------------------------------------------------------------
# Tables


def setting_rows(setting: dict) -> list[dict]:
    """This run's setting beside the published one, flagging every difference."""
    published_setting = published_setting_for(setting.get("dataset"))
    ours = {
        "embeddings": setting.get("embeddings", "?"),
        "selection": setting.get("selection", "?"),
        "attention": setting.get("attention", "?"),
        "gradient": published_setting["gradient"],
    }
    rows = []
    for key, published in published_setting.items():
        mine = str(ours[key])
        same = mine == published
        rows.append(
            {
                "setting": key,
                "J&W 2019": published,
                "this run": mine,
                "differs": "" if same else "yes",
            }
        )
    return rows


def table2_rows(summary: dict) -> list[dict]:
    """J&W Table 2 for this run: Kendall tau (mean, std, fraction p <= 0.05) of attention vs
    gradient and vs LOO by predicted class, with the published values for the same encoder and
    class (classes matched by name; bAbI pooled over classes as published)."""
    setting = summary["setting"]
    dataset, encoder = setting.get("dataset"), setting.get("encoder")
    kendall = summary.get("kendall", {})
    by_predicted = kendall.get("attn_grad", kendall.get("attn_loo", {})).get("by_predicted", {})
    pooled = dataset in ("babi1", "babi2", "babi3") or setting.get("task") == "qa"
    groups = (
        []
        if pooled
        else [
            (by_predicted[c]["name"], c, published_class(dataset, by_predicted[c]["name"]))
            for c in sorted(by_predicted, key=int)
        ]
    )
    groups.append(("all", None, "all"))
    rows = []
    for name, cls, published_key in groups:
        row: dict = {
            "dataset": DATASET_TITLES.get(dataset, dataset),
            "encoder": encoder,
            "class": name,
        }
        for pair, measure in (("attn_grad", "grad"), ("attn_loo", "loo"), ("grad_loo", None)):
            stats = kendall.get(pair, {})
            stats = stats.get("overall") if cls is None else stats.get("by_predicted", {}).get(cls)
            stats = stats or {}
            row[f"{pair}_mean"] = stats.get("mean")
            row[f"{pair}_std"] = stats.get("std")
            row[f"{pair}_frac_sig"] = stats.get("frac_significant")
            row[f"{pair}_n"] = stats.get("n")
            if measure is not None:
                pub = (
                    published_tau(dataset, published_key, measure, encoder)
                    if published_key
                    else None
                )
                row[f"{pair}_published_mean"] = pub[0] if pub else None
                row[f"{pair}_published_std"] = pub[1] if pub else None
        rows.append(row)
    return rows


# How far a mean tau may lie from the published one and still count as reproduced.
PUBLISHED_TOLERANCE = 0.10


def _published_comparisons(rows: list[dict]) -> Iterator[tuple[dict, str, float, float]]:
    """(row, measure label, ours, published) for every Table 2 mean that has a published value."""
    for r in rows:
        for pair, label in (("attn_grad", "attn~grad"), ("attn_loo", "attn~LOO")):
            ours, theirs = r.get(f"{pair}_mean"), r.get(f"{pair}_published_mean")
            if ours is not None and theirs is not None:
                yield r, label, ours, theirs


def published_gaps(rows: list[dict], tolerance: float = PUBLISHED_TOLERANCE) -> list[str]:
    """Lines naming every Table 2 mean that lies more than ``tolerance`` from J&W's.

    ``rows`` are :func:`table2_rows` rows; a row without a published value is not compared.
    """
    return [
        f"{r['dataset']} / {r['encoder']} / {r['class']}: {label} {ours:.2f} vs "
        f"J&W {theirs:.2f} ({ours - theirs:+.2f})"
        for r, label, ours, theirs in _published_comparisons(rows)
        if abs(ours - theirs) > tolerance
    ]


def published_gap_note(rows: list[dict], tolerance: float = PUBLISHED_TOLERANCE) -> str:
    """One sentence (plus a list) saying whether the means lie within ``tolerance`` of J&W's."""
    compared = sum(1 for _ in _published_comparisons(rows))
    if not compared:
        return "No published figure to compare with."
    gaps = published_gaps(rows, tolerance)
    if not gaps:
        return f"Every mean tau lies within {tolerance:.2f} of the published one."
    return (
        f"{len(gaps)} of {compared} mean taus lie more than {tolerance:.2f} from the "
        "published ones:\n" + "".join(f"- {g}\n" for g in gaps)
    )


def _table2_display(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        out.append(
            {
                "class": r["class"],
                "n": r.get("attn_grad_n") or r.get("attn_loo_n"),
                "attn~grad (ours)": mean_std(r.get("attn_grad_mean"), r.get("attn_grad_std")),
                "attn~grad (J&W)": mean_std(
                    r.get("attn_grad_published_mean"), r.get("attn_grad_published_std")
                ),
                "p<=.05 grad": r.get("attn_grad_frac_sig"),
                "attn~LOO (ours)": mean_std(r.get("attn_loo_mean"), r.get("attn_loo_std")),
                "attn~LOO (J&W)": mean_std(
                    r.get("attn_loo_published_mean"), r.get("attn_loo_published_std")
                ),
                "p<=.05 LOO": r.get("attn_loo_frac_sig"),
                "grad~LOO (ours)": mean_std(r.get("grad_loo_mean"), r.get("grad_loo_std")),
            }
        )
    return out


def agreement_rows(summary: dict) -> list[dict]:
    """Rank and value agreement of every importance pair (overall mean (std))."""
    rows = []
    for pair, stats in summary.get("kendall", {}).items():
        a, b = PAIR_NAMES[pair]
        row = {
            "pair": f"{a} ~ {b}",
            "kendall": mean_std(stats["overall"]["mean"], stats["overall"]["std"]),
        }
        for measure in VALUE_MEASURES:
            s = summary["agreement"][measure].get(pair, {}).get("overall", {})
            row[measure] = mean_std(s.get("mean"), s.get("std"))
        rows.append(row)
    return rows


def _pick(tree: dict | None, path: tuple[str, ...]) -> dict:
    for key in path:
        tree = (tree or {}).get(key)
    return tree or {}


def intervention_rows(summary: dict) -> list[dict]:
    """Permutation median TVD and adversarial max JSD by predicted class."""
    perm = summary.get("permutation", {}).get("median_tvd", {})
    adv = summary.get("adversarial", {})
    classes = perm.get("by_predicted") or adv.get("max_jsd", {}).get("by_predicted") or {}
    groups = [(classes[c]["name"], ("by_predicted", c)) for c in sorted(classes, key=int)]
    rows = []
    for name, path in groups + [("all", ("overall",))]:
        p, j = _pick(perm, path), _pick(adv.get("max_jsd"), path)
        rows.append(
            {
                "predicted class": name,
                "perm median TVD": mean_std(p.get("mean"), p.get("std"), 3),
                "adv max JSD": mean_std(j.get("mean"), j.get("std"), 3),
                "adv found": _pick(adv.get("found"), path).get("mean"),
                "n": p.get("n") or j.get("n"),
            }
        )
    return rows


def rationale_rows(summary: dict) -> list[dict]:
    rat = summary.get("rationale")
    if not rat:
        return []
    rows = []
    for name, stats in rat["auprc"].items():
        f1 = rat["topk_f1"].get(name, {}).get("overall", {})
        rows.append(
            {
                "importance": IMPORTANCE_LABELS.get(name, "uniform (chance)"),
                "AUPRC": mean_std(stats["overall"]["mean"], stats["overall"]["std"]),
                "top-k F1": mean_std(f1.get("mean"), f1.get("std")),
                "n": stats["overall"]["n"],
            }
        )
    return rows


def setting_note(summary: dict) -> str:
    differs = [r["setting"] for r in setting_rows(summary["setting"]) if r["differs"]]
    if not differs:
        return "This run's setting matches the published one."
    return "This run differs from the published setting in: " + ", ".join(differs) + "."


def write_tables(out_dir: Path, summary: dict) -> None:
    """``tables.md`` (every table) and ``tables.csv`` (Table 2 with the published numbers)."""
    t2 = table2_rows(summary)
    setting = summary["setting"]
    parts = [
        f"# J&W analyses: {setting.get('dataset')} / {setting.get('encoder')}\n",
        "## Setting\n",
        markdown_table(setting_rows(summary["setting"])),
        f"\n{setting_note(summary)}\n",
        "\n## Table 2: Kendall tau of attention with gradient and leave-one-out importance\n",
        markdown_table(_table2_display(t2)),
        f"\n{published_gap_note(t2)}\n",
        "\n## Rank and value agreement (all instances)\n",
        markdown_table(agreement_rows(summary)),
        "\n## Interventions\n",
        markdown_table(intervention_rows(summary)),
    ]
    if rationale_rows(summary):
        parts += ["\n## Agreement with the rationale\n", markdown_table(rationale_rows(summary))]
    write_atomic(out_dir / "tables.md", "".join(parts))
    write_atomic(out_dir / "tables.csv", csv_text(t2))


# --------------------------------------------------------------------------------------------
# Figures and HTML


def write_figures(
    out_dir: Path, data: AnalysisData, pairs: dict[str, dict[str, np.ndarray]]
) -> list[tuple[str, str]]:
    """The paper's figures as PNGs in ``out_dir``; returns (file name, caption) pairs."""
    classes, names = data.figure_classes()
    figures = []
    if "perm" in data.stages:
        plots.violin_by_bin(
            data.stages["perm"]["median_tvd"],
            data.max_attention,
            classes,
            names,
            out_dir / "perm_violin.png",
            "median output TVD under permutation",
        )
        figures.append(("perm_violin.png", "Permutation: median output TVD by max attention"))
    if "adv" in data.stages:
        jsd_range = (0.0, math.log(2.0))
        plots.violin_by_bin(
            data.stages["adv"]["max_jsd"],
            data.max_attention,
            classes,
            names,
            out_dir / "adv_violin.png",
            "max JSD within epsilon",
            xlim=jsd_range,
        )
        plots.histogram_by_class(
            data.stages["adv"]["max_jsd"],
            classes,
            names,
            out_dir / "adv_hist.png",
            "max JSD within epsilon",
            jsd_range,
        )
        figures += [
            ("adv_violin.png", "Adversarial attention: max JSD within epsilon by max attention"),
            ("adv_hist.png", "Adversarial attention: max JSD within epsilon"),
        ]
    for a, b in (("attn", "grad"), ("attn", "loo"), ("grad", "loo"), ("attn", "ig")):
        if f"{a}_{b}" in pairs:
            name = f"tau_{a}_{b}.png"
            plots.histogram_by_class(
                pairs[f"{a}_{b}"]["kendall"],
                classes,
                names,
                out_dir / name,
                f"Kendall tau: {IMPORTANCE_LABELS[a]} vs {IMPORTANCE_LABELS[b]}",
                (-1.0, 1.0),
            )
            figures.append((name, f"Kendall tau, {IMPORTANCE_LABELS[a]} vs {IMPORTANCE_LABELS[b]}"))
    return figures


def _instance_html(data: AnalysisData, row: int, words: list[str], query: list[str] | None) -> str:
    length = int(data.mask[row].sum())
    weights = {IMPORTANCE_LABELS[k]: v[row, 1 : length + 1] for k, v in data.importances().items()}
    if "adv" in data.stages:
        weights["adversarial attention"] = data.stages["adv"]["best_attn"][row, 1 : length + 1]
    marks = None if data.rationale is None else data.rationale[row, 1 : length + 1]
    pred = int(data.predicted[row])
    facts = [
        f"gold: {data.class_names[int(data.labels[row])]}",
        f"predicted: {data.class_names[pred]} (p = {data.probs[row, pred]:.3f})",
        f"max attention {data.max_attention[row]:.3f}",
    ]
    if "perm" in data.stages:
        facts.append(f"permutation median TVD {data.stages['perm']['median_tvd'][row]:.3f}")
    if "adv" in data.stages:
        adv = data.stages["adv"]
        facts.append(
            f"adversarial max JSD {adv['max_jsd'][row]:.3f} (TVD {adv['best_tvd'][row]:.3f})"
        )
    head = f"<h3>#{int(data.index[row])}</h3>" + report_html.paragraph("; ".join(facts), "muted")
    if query:
        head += report_html.paragraph("query: " + " ".join(query), "muted")
    return head + report_html.token_heatmap_html(words, weights, marks)


def write_index(
    out_dir: Path,
    data: AnalysisData,
    summary: dict,
    figures: list[tuple[str, str]],
    texts: list[tuple[list[str], list[str] | None]],
    opts: AnalysisOptions,
) -> Path:
    """``index.html``: setting, tables, figures and token heatmaps of sampled instances."""
    setting = summary["setting"]
    t2 = table2_rows(summary)
    title = (
        f"Jain & Wallace analyses: {setting.get('dataset')} / {setting.get('encoder')} + "
        f"{setting.get('attention')} attention ({setting.get('split')} split)"
    )
    nav = [
        ("summary.json", "summary.json"),
        ("tables.md", "tables.md"),
        ("tables.csv", "tables.csv"),
    ]
    if (out_dir.parent / "wp" / "index.html").exists():
        nav.append(("Wiegreffe & Pinter analyses", "../wp/index.html"))
    scores = summary["scores"]
    perf = ", ".join(
        f"{k} {scores[k]:.3f}" for k in ("accuracy", "f1", "auc") if scores.get(k) is not None
    )
    sections = [
        report_html.section(
            "Setting",
            html_table(setting_rows(setting))
            + f'<p class="note">{report_html.escape(setting_note(summary))}</p>'
            + report_html.paragraph(f"{summary['n']} instances analysed; {perf}."),
        ),
        report_html.section(
            "Table 2: Kendall tau by predicted class",
            html_table(_table2_display(t2), digits=2)
            + f'<pre class="note">{report_html.escape(published_gap_note(t2))}</pre>'
            + report_html.paragraph(
                "Kendall tau-b over each instance's real tokens (scipy), mean (std) "
                "over instances; p<=.05: fraction of instances with a significant "
                "correlation. grad~LOO is the baseline agreement of two importance "
                "measures with each other.",
                "muted",
            ),
            "table2",
        ),
        report_html.section(
            "Rank and value agreement", html_table(agreement_rows(summary)), "agreement"
        ),
        report_html.section(
            "Interventions", html_table(intervention_rows(summary)), "interventions"
        ),
    ]
    if rationale_rows(summary):
        sections.append(
            report_html.section(
                "Agreement with the rationale", html_table(rationale_rows(summary)), "rationale"
            )
        )
    if figures:
        sections.append(
            report_html.section(
                "Figures",
                "".join(report_html.figure_html(src, cap) for src, cap in figures),
                "figures",
            )
        )
    rng = np.random.default_rng(opts.seed)
    picked = np.sort(
        rng.choice(len(data.labels), min(opts.samples, len(data.labels)), replace=False)
    )
    examples = "".join(_instance_html(data, int(r), *texts[int(r)]) for r in picked)
    sections.append(
        report_html.section(
            "Sampled instances",
            report_html.paragraph(
                "Each row shades the tokens by one measure (darker = larger, relative "
                "to the row's maximum); underlined tokens are the rationale.",
                "muted",
            )
            + examples,
            "instances",
        )
    )
    timings = [
        {"stage": k, "seconds": v, "instances/s": (summary["n"] / v if v else None)}
        for k, v in summary["timings"].items()
    ]
    sections.append(report_html.section("Timings", html_table(timings, digits=2), "timings"))
    return report_html.write_page(out_dir / "index.html", report_html.page(title, sections, nav))


# --------------------------------------------------------------------------------------------
# Entry point


def _options(options: dict) -> AnalysisOptions:
    known = {f.name for f in dataclasses.fields(AnalysisOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"analyze: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if "buckets" in options:
        options = {**options, "buckets": tuple(options["buckets"])}
    return AnalysisOptions(**options)


def _setting(run: Run, split: str) -> dict:
    embeddings = run.metrics.get("embeddings", {})
    return {
        "run": str(run.path),
        "dataset": run.data_info.get("name", run.config.data.name),
        "task": run.data_info.get("task"),
        "split": split,
        "encoder": run.config.model.encoder,
        "attention": run.config.model.attention,
        "attention_source": run.config.train.attention,
        "embeddings": embeddings.get("name", run.config.data.embeddings)
        if isinstance(embeddings, dict)
        else embeddings,
        "selection": run.metrics.get("selection", run.config.train.selection),
        "test_scores": run.metrics.get("test"),
    }


def analyze_run(
    run_dir: str | Path,
    split: str = "test",
    only: set[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
    **options,
) -> Path:
    """Runs the J&W stages on ``split`` of a trained run and writes ``RUN/analysis/``.

    Args:
      only: stages to run (of ``grad, loo, ig, perm, adv``; default all). Stage files already in
        ``RUN/analysis`` are reported too.
      limit: analyse only the first ``limit`` instances of the split.
      options: fields of :class:`AnalysisOptions` (batch sizes, P, K, steps, seed, ...).
    Returns:
      the path of ``RUN/analysis/index.html``.
    """
    opts = _options(options)
    stages = set(STAGES) if only is None else set(only)
    if stages - set(STAGES):
        raise ConfigError(
            f"analyze --only: unknown stage(s) {', '.join(sorted(stages - set(STAGES)))}; "
            f"choose from {', '.join(STAGES)}"
        )
    run = load_run(run_dir)
    prepared = run.prepare_data()
    if split not in prepared.splits:
        raise ConfigError(
            f"analyze --split {split}: the run's data has splits {', '.join(prepared.splits)}"
        )
    encoded = prepared.splits[split]
    n = len(encoded) if limit is None else min(limit, len(encoded))
    if n <= 0:
        raise ConfigError(f"analyze --limit {limit}: nothing to analyse")
    indices = np.arange(n)
    out_dir = run.path / "analysis"
    # A retrained model makes every stage stale: its parameters' digest is part of the key.
    digest = hashlib.sha256((run.path / "params.msgpack").read_bytes()).hexdigest()[:16]
    meta = {"split": split, "params": digest}
    for name in ("attention", *[s for s in STAGES if s in stages]):
        run_stage(
            STAGE_SPECS[name],
            run.model,
            run.params,
            encoded,
            indices,
            opts,
            out_dir / f"{name}.npz",
            meta,
            progress,
        )
    return write_report(run, split, opts, prepared, progress)


def _load_data(run: Run, out_dir: Path, encoded: EncodedSplit, split: str) -> AnalysisData:
    stages, metas = {}, {}
    base = load_stage(out_dir / "attention.npz")
    if base is None:
        raise FileNotFoundError(f"{out_dir}/attention.npz missing; run `jaxattn analyze` first")
    index, params = base[0]["index"], base[1].get("params")
    for name in ("attention", *STAGES):
        loaded = load_stage(out_dir / f"{name}.npz")
        if loaded is None:
            continue
        arrays, meta = loaded
        same = meta.get("split") == split and meta.get("params") == params
        if not same or not np.array_equal(arrays["index"], index):
            continue  # left over from another split, instance set or model: not comparable
        stages[name], metas[name] = arrays, meta
    t_max = stages["attention"]["attn"].shape[-1]
    tokens = np.zeros((len(index), t_max), np.int32)
    rationale = None if encoded.rationales is None else np.zeros((len(index), t_max), bool)
    for row, i in enumerate(index):
        tokens[row, : len(encoded.tokens[i])] = encoded.tokens[i]
        if rationale is not None:
            rationale[row, : len(encoded.rationales[i])] = encoded.rationales[i]
    probs = stages["attention"]["probs"]
    return AnalysisData(
        tokens=tokens,
        mask=np.asarray(real_token_mask(tokens)),
        labels=encoded.labels[index],
        predicted=probs.argmax(-1),
        probs=probs,
        index=index,
        class_names=tuple(run.data_info["label_names"]),
        task=run.data_info["task"],
        rationale=rationale,
        stages=stages,
        meta=metas,
    )


def write_report(
    run: Run, split: str, opts: AnalysisOptions, prepared=None, progress: bool = True
) -> Path:
    """Rebuilds ``summary.json``, tables, figures and ``index.html`` from the stage files."""
    prepared = prepared or run.prepare_data()
    out_dir = run.path / "analysis"
    data = _load_data(run, out_dir, prepared.splits[split], split)
    pairs = pairwise_agreement(data, opts.topk, progress)
    _save_npz(
        out_dir / "agreement.npz",
        {f"{key}.{measure}": v for key, values in pairs.items() for measure, v in values.items()},
        {"split": split, "pairs": list(pairs), "topk": opts.topk},
    )
    summary = build_summary(data, pairs, _setting(run, split))
    write_json(out_dir / "summary.json", summary)
    write_tables(out_dir, summary)
    figures = write_figures(out_dir, data, pairs)
    examples = prepared.dataset.splits[split]
    texts = [
        (list(examples[i].tokens), list(examples[i].query) if examples[i].query else None)
        for i in data.index
    ]
    path = write_index(out_dir, data, summary, figures, texts, opts)
    if progress:
        tqdm.write(f"report: {path}")
    return path
