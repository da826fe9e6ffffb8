"""The Jain & Wallace (2019) study: every data set x encoder trained, analysed, and one report.

For each data set and encoder: train ``configs/<data>_<encoder>_additive.toml`` (with ``--set``
overrides; the defaults with ``data.name``/``model.encoder`` set where no config file exists) into
``OUT/<data>_<encoder>``, run :func:`jaxattn.studies.jain_wallace.analyze.analyze_run` on it, then gather
every run's Table 2 into ``OUT/table2.md``, ``OUT/table2.csv`` and ``OUT/index.html`` beside the
published numbers. Everything resumes: finished runs and analysis stages are not recomputed.

    python experiments/jain_wallace.py --out runs/jw                      # everything available
    python experiments/jain_wallace.py --out runs/jw_syn --datasets synthetic --encoders bilstm
    python experiments/jain_wallace.py --out runs/jw_q --datasets sst2 --limit 200 \\
        --set train.epochs=2 --option adv_steps=100
    python experiments/jain_wallace.py --out runs/jw5 --datasets sst2 --seeds 5 --only grad,loo

With ``--seeds N`` every model is trained with N seeds (the base run's ``train.seed`` and the N - 1
after it, under ``OUT/<data>_<encoder>/seeds/``), each seed analysed, and ``OUT/table2_seeds.md``
/ ``.csv`` give each Table 2 cell as mean +- sd over the seeds, marking whether the published
figure lies within mean +- 2 sd.

The full study takes many hours on a CPU (leave-one-out and the adversarial search on IMDB and
SNLI dominate); a data set whose files are missing is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jaxattn import ConfigError, analyze_run, list_stages, load_config, train_run
from jaxattn.config import parse_literal
from jaxattn.data.dataset import DataError
from jaxattn.report import html, tables
from jaxattn.report.published import DATASET_TITLES, PERFORMANCE
from jaxattn.report.verdict_page import run_evidence, verdict_matrix_html
from jaxattn.runtime import distributed
from jaxattn.runtime.files import write_atomic, write_json
from jaxattn.studies.jain_wallace.seed_runs import train_seed_runs
from jaxattn.studies.jain_wallace.seed_tables import (
    seed_spread_note,
    seed_table2_display,
    seed_table2_rows,
)
from jaxattn.studies.jain_wallace.tables import published_gap_note, setting_rows, table2_rows

DATASETS = (*DATASET_TITLES, "synthetic")  # every data set of J&W's Table 2, and ours
ENCODERS = ("bilstm", "average", "cnn")
ENCODER_TITLES = {"bilstm": "LSTM", "average": "Avg", "cnn": "CNN"}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_one(dataset: str, encoder: str, out: Path, args: argparse.Namespace) -> dict:
    """Trains (if needed) and analyses one data set x encoder; returns its ``summary.json``."""
    path = CONFIGS / f"{dataset}_{encoder}_additive.toml"
    overrides = list(args.set)
    if not path.exists():
        path, overrides = None, [f"data.name={dataset}", f"model.encoder={encoder}", *overrides]
    cfg = load_config(path, overrides)
    run_dir = out / f"{dataset}_{encoder}"
    start = time.perf_counter()
    if args.seeds > 1:
        dirs = train_seed_runs(cfg, run_dir, args.seeds, args.seed_mode, not args.quiet)
    else:
        train_run(cfg, run_dir, progress=not args.quiet)
        dirs = [run_dir]
    options = {k: parse_literal(v) for k, v in (item.split("=", 1) for item in args.option)}
    per_seed = []
    for seed_run in dirs:
        analyze_run(
            seed_run,
            split=args.split,
            only=args.only,
            limit=args.limit,
            progress=not args.quiet,
            **options,
        )
        per_seed.append(json.loads((seed_run / "analysis" / "summary.json").read_text()))
    summary = per_seed[0]
    if len(per_seed) > 1:
        summary["seed_table2"] = seed_table2_rows(per_seed)
    summary["report"] = f"{run_dir.name}/analysis/index.html"
    summary["config"] = str(path) if path else "defaults"
    summary["wall_seconds_this_call"] = time.perf_counter() - start
    return summary


def combined_table2(summaries: list[dict], encoders: list[str]) -> tuple[list[dict], list[dict]]:
    """(display rows, numeric rows): per data set and class, ours beside J&W for each encoder."""
    display: dict[tuple[str, str], dict] = {}
    numeric = []
    for summary in summaries:
        setting = summary["setting"]
        differs = [r["setting"] for r in setting_rows(setting) if r["differs"]]
        for row in table2_rows(summary):
            numeric.append({**row, "differs_from_published": ";".join(differs)})
            key = (row["dataset"], row["class"])
            cell = display.setdefault(key, {"data set": key[0], "class": key[1]})
            title = ENCODER_TITLES.get(setting["encoder"], setting["encoder"])
            for pair, name in (("attn_grad", "grad"), ("attn_loo", "LOO")):
                cell[f"{name} {title}"] = tables.mean_std(row[f"{pair}_mean"], row[f"{pair}_std"])
                cell[f"{name} {title} J&W"] = tables.mean_std(
                    row.get(f"{pair}_published_mean"), row.get(f"{pair}_published_std")
                )
            cell[f"grad~LOO {title}"] = tables.mean_std(row["grad_loo_mean"], row["grad_loo_std"])
    columns = ["data set", "class"]
    for name in ("grad", "LOO", "grad~LOO"):
        for encoder in encoders:
            title = ENCODER_TITLES.get(encoder, encoder)
            columns.append(f"{name} {title}")
            if name != "grad~LOO":
                columns.append(f"{name} {title} J&W")
    rows = [{c: cell.get(c) for c in columns} for cell in display.values()]
    return rows, numeric


def run_rows(summaries: list[dict]) -> list[dict]:
    """One row per run: setting, test performance beside the published range, report link."""
    rows = []
    for s in summaries:
        setting, scores = s["setting"], s["setting"].get("test_scores") or {}
        metric, published = PERFORMANCE.get(setting["dataset"], ("f1", None))
        rows.append(
            {
                "data set": DATASET_TITLES.get(setting["dataset"], setting["dataset"]),
                "encoder": setting["encoder"],
                "embeddings": setting.get("embeddings"),
                "selection": setting.get("selection"),
                f"test {metric}": scores.get(metric),
                "J&W (BiLSTM)": f"{published[0]:.2f}-{published[1]:.2f}" if published else None,
                "instances": s["n"],
                "perm median TVD": (s.get("permutation") or {})
                .get("median_tvd", {})
                .get("overall", {})
                .get("mean"),
                "adv max JSD": (s.get("adversarial") or {}).get("max_jsd_mean"),
                "report": s["report"],
            }
        )
    return rows


SEED_NOTE = (
    "Each cell: mean ± sd (sample sd) over the seeds of the per-seed mean Kendall tau / the "
    "published mean; ✓ when the published mean lies within mean ± 2 sd, ✗ when not."
)


def write_report(out: Path, summaries: list[dict], encoders: list[str], skipped: dict) -> Path:
    table2, numeric = combined_table2(summaries, encoders)
    runs = run_rows(summaries)
    note = (
        "Published values: J&W (NAACL 2019) Table 2, trained models with additive attention, "
        "fastText embeddings (bAbI: random), model selection on the test set. Our runs' settings "
        "are listed per run; every difference is named in table2.csv (differs_from_published)."
    )
    gaps = published_gap_note(numeric)
    md = [
        "# Jain & Wallace Table 2: Kendall tau, attention vs gradient / leave-one-out\n\n",
        tables.markdown_table(table2),
        f"\n{note}\n\n{gaps}\n## Runs\n\n",
        tables.markdown_table([{k: v for k, v in r.items() if k != "report"} for r in runs]),
    ]
    if skipped:
        md.append("\n## Skipped\n\n" + "".join(f"- {k}: {v}\n" for k, v in skipped.items()))
    seed_rows = [row for s in summaries for row in s.get("seed_table2", [])]
    if seed_rows:
        seed_display = seed_table2_display(seed_rows, encoders, ENCODER_TITLES)
        seed_note = seed_spread_note(seed_rows)
        write_atomic(out / "table2_seeds.md", "".join([
            "# Table 2 over seeds: mean ± sd over seeds / J&W; ✓ J&W within mean ± 2 sd\n\n",
            tables.markdown_table(seed_display), f"\n{seed_note}"]))
        tables.write_csv(out / "table2_seeds.csv", [
            {k: v for k, v in r.items() if not k.endswith("_seed_means")} for r in seed_rows])
        md.append("\n## Table 2 over seeds\n\nSee table2_seeds.md.\n")
    write_atomic(out / "table2.md", "".join(md))
    tables.write_csv(out / "table2.csv", numeric)
    write_json(out / "summary.json", {"runs": summaries, "skipped": skipped})
    run_links = "".join(
        f"<li>{html.link(r['report'], r['data set'] + ' / ' + r['encoder'])}</li>" for r in runs
    )
    verdicts = {
        f"{DATASET_TITLES.get(s['setting']['dataset'], s['setting']['dataset'])} / "
        f"{s['setting']['encoder']}": run_evidence(Path(s["setting"]["run"]), out, jw=s)
        for s in summaries
    }
    sections = [
        verdict_matrix_html(verdicts),
        html.section(
            "Table 2",
            tables.html_table(table2)
            + html.paragraph(note, "muted")
            + f"<pre>{html.escape(gaps)}</pre>",
        ),
        html.section(
            "Runs",
            tables.html_table([{k: v for k, v in r.items() if k != "report"} for r in runs])
            + f"<ul>{run_links}</ul>",
        ),
    ]
    if seed_rows:
        sections.insert(1, html.section(
            "Table 2 over seeds",
            tables.html_table(seed_display)
            + html.paragraph(SEED_NOTE, "muted")
            + f"<pre>{html.escape(seed_note)}</pre>",
            "table2-seeds",
        ))
    if skipped:
        sections.append(
            html.section(
                "Skipped", tables.html_table([{"run": k, "reason": v} for k, v in skipped.items()])
            )
        )
    page = html.page(
        "Jain & Wallace (2019) reproduction",
        sections,
        nav=[("table2.md", "table2.md"), ("table2.csv", "table2.csv")],
    )
    return html.write_page(out / "index.html", page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for runs and report")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override for every run, e.g. train.epochs=2",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="analysis option (jain_wallace.AnalysisOptions), e.g. adv_steps=100",
    )
    parser.add_argument(
        "--only",
        type=lambda s: set(s.split(",")),
        default=None,
        help="analysis stages: " + ",".join(list_stages()),
    )
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--limit", type=int, default=None, help="analyse the first N instances")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds per model (Table 2 as mean ± sd over them)")
    parser.add_argument("--seed-mode", default="auto", choices=("auto", "vmap", "sequential"),
                        help="train the extra seeds as one vmapped stack or one by one "
                             "(auto: by device)")
    parser.add_argument("--quiet", action="store_true")
    distributed.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: needs at least 1")
    distributed.from_args(args)  # several processes: every one runs this same script

    args.out.mkdir(parents=True, exist_ok=True)
    summaries, skipped = [], {}
    for dataset in args.datasets:
        for encoder in args.encoders:
            name = f"{dataset}_{encoder}"
            try:
                summaries.append(run_one(dataset, encoder, args.out, args))
                print(f"{name}: done")
            except (DataError, FileNotFoundError, ConfigError) as err:
                skipped[name] = str(err)
                print(f"{name}: skipped: {err}", file=sys.stderr)
    report = write_report(args.out, summaries, args.encoders, skipped)
    print(f"report: {report}")
    return 0 if summaries else 1


if __name__ == "__main__":
    sys.exit(main())
