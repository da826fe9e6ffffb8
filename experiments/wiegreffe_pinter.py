"""The Wiegreffe & Pinter (2019) study over the binary text data sets, with one combined report.

For each data set: train the BiLSTM + additive base (``configs/<data>_bilstm_additive.toml``, with
``--set`` overrides), run the W&P suite on it (:func:`jaxattn.studies.wiegreffe_pinter.suite.wp_run`:
uniform baseline, seed variance, model-consistent adversaries, diagnostic MLP), then gather every
data set's summary into ``OUT/summary.json``, ``OUT/tables/*.md|csv`` and ``OUT/index.html``.
Everything resumes: rerunning the command skips finished base runs and stages.

    python experiments/wiegreffe_pinter.py --out runs/wp                       # all, full size
    python experiments/wiegreffe_pinter.py --out runs/wp_syn --datasets synthetic
    python experiments/wiegreffe_pinter.py --out runs/wp_q --set train.epochs=2 --seeds 2

The real data sets take hours on a CPU (nine seeds' and nine adversaries' worth of training per
data set); a data set whose files are missing is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jaxattn import ConfigError, load_config, train_run
from jaxattn.data.dataset import DataError
from jaxattn.report import html, tables
from jaxattn.report.evidence import get_path
from jaxattn.report.verdict_page import run_evidence, verdict_matrix_html
from jaxattn.runtime import distributed
from jaxattn.runtime.files import write_atomic, write_json
from jaxattn.studies.wiegreffe_pinter.adversarial_training import DEFAULT_LAMBDAS
from jaxattn.studies.wiegreffe_pinter.suite import wp_run

DATASETS = ("sst2", "imdb", "20news_sports", "ag_news", "synthetic")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_dataset(name: str, out: Path, args: argparse.Namespace) -> dict:
    """Trains the base (if needed) and runs the suite on data set ``name``; returns its summary."""
    path = CONFIGS / f"{name}_bilstm_additive.toml"
    overrides = list(args.set or [])
    if not path.exists():  # fall back to the defaults with this data set
        path, overrides = None, [f"data.name={name}", *overrides]
    cfg = load_config(path, overrides)
    start = time.perf_counter()
    base = out / name
    train_run(cfg, base, progress=not args.quiet)
    options = {"seed_mode": args.seed_mode}
    if args.published_quirks:
        options.update(test_selection=True, half_binary_tvd=True, summed=True)
    report = wp_run(base, only=args.only, seeds=args.seeds, lambdas=args.lambdas,
                    progress=not args.quiet, **options)
    summary = json.loads((base / "wp" / "summary.json").read_text())
    summary["report"] = str(report.relative_to(out))
    summary["wall_seconds_this_call"] = time.perf_counter() - start
    summary["config"] = str(path) if path else "defaults"
    return summary


def combined_rows(summaries: dict[str, dict]) -> dict[str, list[dict]]:
    """The combined tables: F1 of every model, seed variance, and the adversary sweeps."""
    f1_cols = {"base": "base.f1", "uniform": "uniform.f1",
               **{f"mlp_{k}": f"diagnostic.{k}.f1" for k in ("learned", "uniform", "imposed",
                                                             "adversary")}}
    f1, seeds, sweep = [], [], []
    for name, s in summaries.items():
        f1.append({"data": name, **{col: get_path(s, key) for col, key in f1_cols.items()},
                   "mlp_adversary_lambda": get_path(s, "diagnostic.adversary.lambda")})
        seeds.append({"data": name, "seeds": get_path(s, "seeds.n"), "jsd_median": get_path(s, "seeds.jsd_median"),
                      "jsd_mean": get_path(s, "seeds.jsd_mean"), "tvd_mean": get_path(s, "seeds.tvd_mean")})
        for row in get_path(s, "adversary.sweep") or []:
            sweep.append({"data": name, **{k: row.get(k) for k in ("lambda", "tvd", "jsd", "f1")}})
    return {"f1": f1, "seeds": seeds, "adversary": sweep}


def write_combined(out: Path, summaries: dict[str, dict], skipped: dict[str, str]) -> Path:
    write_json(out / "summary.json", {"datasets": summaries, "skipped": skipped})
    sections = [verdict_matrix_html({name: run_evidence(out / name, out, wp=s)
                                     for name, s in summaries.items()})]
    captions = {"f1": "Test F1: base, uniform attention, and the diagnostic MLP",
                "seeds": "Seed variance (per instance: median JSD, mean TVD over seeds)",
                "adversary": "Model-consistent adversaries (test means)"}
    for key, rows in combined_rows(summaries).items():
        if not rows:
            continue
        write_atomic(out / "tables" / f"{key}.md", tables.markdown_table(rows, digits=4))
        tables.write_csv(out / "tables" / f"{key}.csv", rows)
        sections.append(html.section(captions[key], tables.html_table(rows, digits=4), key))
    links = "".join(f"<li>{html.link(s['report'], name)} ({s['wall_seconds_this_call']:.0f} s)</li>"
                    for name, s in summaries.items())
    notes = "".join(f"<li>{html.escape(name)}: {html.escape(why)}</li>" for name, why in skipped.items())
    sections.append(html.section("Per data set", f"<ul>{links}</ul>"
                                 + (f"<p>Skipped:</p><ul>{notes}</ul>" if notes else ""), "reports"))
    return html.write_page(out / "index.html", html.page("Wiegreffe & Pinter study", sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumed if present)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated data sets")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override every base config")
    parser.add_argument("--seeds", type=int, default=8, help="extra seeds for the variance baseline")
    parser.add_argument("--lambdas", type=lambda t: [float(x) for x in t.split(",")],
                        default=list(DEFAULT_LAMBDAS), help="the adversary's lambda sweep")
    parser.add_argument("--only", type=lambda t: set(t.split(",")), default=None,
                        help="stages: uniform,seeds,diagnostic,adversary")
    parser.add_argument("--seed-mode", default="auto", choices=("auto", "vmap", "sequential"),
                        help="train the seeds as one vmapped stack or one by one (auto: by device)")
    parser.add_argument("--published-quirks", action="store_true",
                        help="adversary: test-set selection, half binary TVD, summed metrics (W&P)")
    parser.add_argument("--quiet", action="store_true")
    distributed.add_arguments(parser)
    args = parser.parse_args(argv)
    distributed.from_args(args)  # several processes: every one runs this same script
    summaries, skipped = {}, {}
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        try:
            summaries[name] = run_dataset(name, args.out, args)
        except (DataError, FileNotFoundError) as err:
            skipped[name] = str(err)
            print(f"{name}: skipped: {err}", file=sys.stderr)
        except ConfigError as err:
            print(f"{name}: error: {err}", file=sys.stderr)
            return 2
        write_combined(args.out, summaries, skipped)
    print(f"report: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
