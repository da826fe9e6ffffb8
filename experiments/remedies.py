"""Making and breaking attention: vanilla vs Orthogonal vs Diversity LSTM vs deceptive training.

Two tables, both beside the published figures:

* **comparison** (Mohankumar et al. 2020): for each data set, the BiLSTM (vanilla), the
  Orthogonal LSTM, the Diversity LSTM and a deceptively trained BiLSTM (lambda 1), each trained
  from ``configs/<data>_<encoder>_additive.toml`` and run through the J&W battery: accuracy,
  test conicity, attention vs gradient / LOO / IG (Kendall tau, Pearson, JSD), permutation median
  TVD and adversarial max JSD. Deceptive training needs impermissible tokens: data with a
  rationale uses it (bAbI supporting facts, the synthetic planted words); SST-2 uses its
  SST+distractors analogue (``sst2_distractors``), other data have no deceptive row.
* **deception** (Pruthi et al. 2020): the BiLSTM with lambda in {0, 0.1, 1} on the synthetic task
  and SST+distractors: accuracy, attention mass on the impermissible tokens, accuracy with them
  deleted, and the AUPRC with which attention, gradient, LOO and IG rank them (the rationale
  AUPRC of ``jaxattn analyze``, equal to sklearn's ``average_precision_score``).

    python experiments/remedies.py --out runs/remedies --datasets sst2 --limit 300
    python experiments/remedies.py --out runs/remedies --skip-comparison       # deception only
    python experiments/remedies.py --out runs/r --datasets imdb --set data.limit_train=5000
    python experiments/remedies.py --out runs/r --collect    # one report over what runs/r holds

Everything resumes (finished runs and analysis stages are reused). Writes ``OUT/remedies.md``,
``OUT/remedies.csv``, ``OUT/deception.csv``, ``OUT/summary.json`` and ``OUT/remedies.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxattn import ConfigError, analyze_run, load_config, load_run, train_run
from jaxattn.config import parse_literal
from jaxattn.data.dataset import DataError
from jaxattn.report import plots, tables
from jaxattn.report.evidence import get_path
from jaxattn.report.verdict_remedies import remedies_verdict
from jaxattn.runtime.files import write_atomic, write_json
from jaxattn.training.deception import deception_scores

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATASETS = ("sst2", "imdb", "20news_sports", "babi1")
VARIANTS = {"vanilla": "bilstm", "orthogonal": "ortho_lstm", "diversity": "diversity_lstm",
            "deceptive": "bilstm"}
DECEPTION_DATA = ("synthetic", "sst2_distractors")
LAMBDAS = (0.0, 0.1, 1.0)
# Where the deceptive variant of a data set without a rationale trains instead.
DECEPTIVE_DATA = {"sst2": "sst2_distractors"}
JW_STAGES = {"grad", "loo", "ig", "perm", "adv"}
# Columns of the post-2019 stages beside the J&W ones: column -> dotted path into a run's
# analysis/summary.json (their headline figures); a stage that does not apply to a data set
# (plausibility without rationales) leaves its cell empty.
BATTERY_COLUMNS: dict[str, str] = {
    # Mohankumar et al.'s fraction: an instance that never flips counts as 1.0 (Serrano & Smith's
    # mean over the flipping instances would credit a ranking for the flips it never causes).
    "erasure frac-to-flip": "erasure.headline.mohankumar_attention",
    "comprehensiveness AOPC": "eraser.headline.aopc_comprehensiveness.attn",
    "plausibility AUPRC": "plausibility.headline.auprc.attn",
}
BATTERY_STAGES = {"erasure", "eraser", "plausibility"}

# Mohankumar et al. 2020, Table 2 (accuracy %, conicity): vanilla / diversity / orthogonal.
PUBLISHED_REMEDIES = {
    "sst2": {"vanilla": (81.8, 0.68), "diversity": (80.0, 0.20), "orthogonal": (80.1, 0.28)},
    "imdb": {"vanilla": (89.5, 0.69), "diversity": (88.5, 0.08), "orthogonal": (88.7, 0.18)},
    "20news_sports": {"vanilla": (93.6, 0.77), "diversity": (91.0, 0.15),
                      "orthogonal": (92.2, 0.23)},
    "babi1": {"vanilla": (99.1, 0.56), "diversity": (100.0, 0.07), "orthogonal": (99.9, 0.22)},
    "snli": {"vanilla": (78.2, 0.56), "diversity": (77.0, 0.12), "orthogonal": (76.5, 0.27)},
}
# Pruthi et al. 2020, BiLSTM+attention on SST+Wiki: lambda -> (accuracy %, attention mass %);
# deleting the impermissible tokens leaves 49.1% accuracy.
PUBLISHED_DECEPTION = {0.0: (76.9, 77.7), 0.1: (60.6, 0.04), 1.0: (61.0, 0.07)}
PUBLISHED_WITHOUT = 49.1


def train_and_analyze(data: str, encoder: str, overrides: list[str], run_dir: Path,
                      stages: set[str], args) -> tuple[dict, dict]:
    """(metrics.json, analysis/summary.json) of one trained and analysed run."""
    if args.collect:  # only what earlier calls (with their own settings) finished
        for name in ("metrics.json", "analysis/summary.json"):
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} not found: run without --collect")
        return (json.loads((run_dir / "metrics.json").read_text()),
                json.loads((run_dir / "analysis" / "summary.json").read_text()))
    path = CONFIGS / f"{data}_{encoder}_additive.toml"
    cfg = load_config(path, [*overrides, *args.set])
    metrics = train_run(cfg, run_dir, progress=not args.quiet)
    options = {k: parse_literal(v) for k, v in (item.split("=", 1) for item in args.option)}
    analyze_run(run_dir, only=stages, limit=args.limit, progress=not args.quiet, **options)
    summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
    return metrics, summary


def deceptive_run(data: str, lam: float) -> tuple[str, list[str]]:
    return f"{data}_bilstm_deception{lam:g}", [f"train.deception_weight={lam}"]


def comparison_row(data: str, variant: str, trained_on: str, metrics: dict, summary: dict) -> dict:
    published = PUBLISHED_REMEDIES.get(data, {}).get(variant)
    row = {
        "data set": data,
        "variant": variant,
        "trained on": trained_on,
        "accuracy": metrics["test"]["accuracy"],
        "published acc.": None if published is None else published[0] / 100,
        "conicity": metrics.get("test_conicity"),
        "published conicity": None if published is None else published[1],
        "examples/s (train)": metrics.get("train_examples_per_second"),
    }
    for pair in ("attn_grad", "attn_loo", "attn_ig"):
        row[f"tau {pair}"] = get_path(summary, f"kendall.{pair}.overall.mean")
    for measure in ("pearson", "jsd"):
        for pair in ("attn_grad", "attn_ig"):
            row[f"{measure} {pair}"] = get_path(summary, f"agreement.{measure}.{pair}.overall.mean")
    row["perm median TVD"] = get_path(summary, "permutation.median_tvd.overall.mean")
    row["adv max JSD"] = get_path(summary, "adversarial.max_jsd_mean")
    for column, dotted in BATTERY_COLUMNS.items():
        row[column] = get_path(summary, dotted)
    row["analysed"] = summary.get("n")
    return row


def deception_row(data: str, lam: float, metrics: dict, scores: dict, summary: dict) -> dict:
    published = PUBLISHED_DECEPTION.get(lam) if data == "sst2_distractors" else None
    row = {
        "data set": data,
        "lambda": lam,
        "accuracy": scores["accuracy"],
        "attention mass on I": scores["attention_mass"],
        "accuracy without I": scores["accuracy_without"],
        "share of I": scores["impermissible_share"],
        "published acc. (SST+Wiki)": None if published is None else published[0] / 100,
        "published mass": None if published is None else published[1] / 100,
    }
    for name in ("attn", "grad", "loo", "ig", "uniform"):
        row[f"AUPRC {name}"] = get_path(summary, f"rationale.auprc.{name}.overall.mean")
    row["analysed"] = summary.get("n")
    row["conicity"] = metrics.get("test_conicity")
    return row


def run_comparison(args, skipped: dict) -> list[dict]:
    rows = []
    stages = JW_STAGES | BATTERY_STAGES
    for data in args.datasets:
        for variant in args.variants:
            name = f"{data}_{variant}"
            trained_on, overrides = data, []
            run_name = f"{data}_{VARIANTS[variant]}"
            if variant == "deceptive":
                trained_on = DECEPTIVE_DATA.get(data, data)
                run_name, overrides = deceptive_run(trained_on, 1.0)
            try:
                metrics, summary = train_and_analyze(trained_on, VARIANTS[variant], overrides,
                                                     args.out / run_name, stages, args)
            except (DataError, FileNotFoundError, ConfigError) as err:
                skipped[name] = str(err)
                print(f"{name}: skipped: {err}", file=sys.stderr)
                continue
            rows.append(comparison_row(data, variant, trained_on, metrics, summary))
            print(f"{name}: done")
    return rows


def run_deception(args, skipped: dict) -> list[dict]:
    rows = []
    for data in args.deception_data:
        for lam in args.lambdas:
            run_name, overrides = deceptive_run(data, lam)
            try:
                metrics, summary = train_and_analyze(data, "bilstm", overrides,
                                                     args.out / run_name, {"grad", "loo", "ig"},
                                                     args)
            except (DataError, FileNotFoundError, ConfigError) as err:
                skipped[run_name] = str(err)
                print(f"{run_name}: skipped: {err}", file=sys.stderr)
                continue
            run = load_run(args.out / run_name)
            test = run.prepare_data().splits["test"]
            scores = deception_scores(run.model, run.params, test)
            rows.append(deception_row(data, lam, metrics, scores, summary))
            print(f"{run_name}: done")
    return rows


FIGURE_COLUMNS = ("accuracy", "conicity", "tau attn_grad", "tau attn_loo", "perm median TVD",
                  "adv max JSD", "erasure frac-to-flip", "comprehensiveness AOPC")


def comparison_figure(rows: list[dict], path: Path) -> Path | None:
    """One panel per measure (two rows of four), bars per data set and variant, side by side."""
    if not rows:
        return None
    import numpy as np

    datasets = list(dict.fromkeys(r["data set"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    cols = 4
    fig = plots.new_figure(3.4 * cols, 3.0 * -(-len(FIGURE_COLUMNS) // cols))
    axes = np.atleast_1d(fig.subplots(-(-len(FIGURE_COLUMNS) // cols), cols)).ravel()
    width = 0.8 / len(variants)
    for ax, column in zip(axes, FIGURE_COLUMNS):
        for v, variant in enumerate(variants):
            values = [next((r.get(column) for r in rows if r["data set"] == d
                            and r["variant"] == variant), None) for d in datasets]
            heights = [np.nan if x is None else x for x in values]
            ax.bar(np.arange(len(datasets)) + v * width, heights, width, label=variant)
        ax.set_xticks(np.arange(len(datasets)) + width * (len(variants) - 1) / 2, datasets,
                      fontsize=7)
        ax.set_title(column, fontsize=9)
    for ax in axes[len(FIGURE_COLUMNS):]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=len(variants),
               fontsize=8, frameon=False)
    return plots.save_figure(fig, path)


def deception_figure(rows: list[dict], path: Path) -> Path | None:
    """Accuracy, attention mass on I and accuracy without I against lambda, per data set."""
    if not rows:
        return None
    fig = plots.new_figure(9.6, 3.2)
    axes = fig.subplots(1, 3)
    for ax, column in zip(axes, ("accuracy", "attention mass on I", "accuracy without I")):
        for data in dict.fromkeys(r["data set"] for r in rows):
            mine = [r for r in rows if r["data set"] == data]
            ax.plot([str(r["lambda"]) for r in mine], [r[column] for r in mine], "o-",
                    label=data)
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("lambda")
    axes[0].legend(fontsize=7)
    return plots.save_figure(fig, path)


def write_report(out: Path, comparison: list[dict], deception: list[dict], skipped: dict) -> Path:
    md = ["# Making and breaking attention\n\n", remedies_verdict(comparison, deception)]
    if comparison:
        md += ["## Vanilla vs Orthogonal vs Diversity LSTM vs deceptive (lambda 1)\n\n",
               tables.markdown_table(comparison),
               "\nPublished: Mohankumar et al. 2020, Table 2 (unidirectional 256-unit LSTM). "
               "erasure frac-to-flip: the fraction of attention weights removed, largest first, "
               "before the decision flips (1 when it never does; Mohankumar et al.'s measure).\n\n"]
    if deception:
        md += ["## Deceptive attention (BiLSTM)\n\n", tables.markdown_table(deception),
               "\nI: the impermissible tokens. Published: Pruthi et al. 2020, BiLSTM on SST+Wiki; "
               f"deleting I there leaves {PUBLISHED_WITHOUT}% accuracy.\n\n"]
    if skipped:
        md.append("## Skipped\n\n" + "".join(f"- {k}: {v}\n" for k, v in skipped.items()))
    write_atomic(out / "remedies.md", "".join(md))
    tables.write_csv(out / "remedies.csv", comparison)
    tables.write_csv(out / "deception.csv", deception)
    comparison_figure(comparison, out / "remedies.png")
    deception_figure(deception, out / "deception.png")
    write_json(out / "summary.json", {"comparison": comparison, "deception": deception,
                                      "skipped": skipped})
    return out / "remedies.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--deception-data", nargs="+", default=list(DECEPTION_DATA))
    parser.add_argument("--lambdas", nargs="+", type=float, default=list(LAMBDAS),
                        help="deception weights of the deception table (0 is its baseline)")
    parser.add_argument("--skip-comparison", action="store_true")
    parser.add_argument("--skip-deception", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override for every run")
    parser.add_argument("--option", action="append", default=[], metavar="OPTION=VALUE",
                        help="analysis option, e.g. adv_steps=100")
    parser.add_argument("--limit", type=int, default=None, help="analyse the first N instances")
    parser.add_argument("--collect", action="store_true",
                        help="train and analyse nothing: tables from the runs OUT already holds "
                             "(each made by an earlier call with its own --set)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    skipped: dict = {}
    comparison = [] if args.skip_comparison else run_comparison(args, skipped)
    deception = [] if args.skip_deception else run_deception(args, skipped)
    print(f"report: {write_report(args.out, comparison, deception, skipped)}")
    return 0 if comparison or deception else 1


if __name__ == "__main__":
    sys.exit(main())
