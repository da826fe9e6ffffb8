"""The W&P report: tables, figures and ``index.html`` rebuilt from ``RUN/wp``'s result files alone
(``summary.json`` and the per-instance ``seeds.npz`` / ``adversary.npz``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxattn.report import html, plots, tables, wp_figures
from jaxattn.report.verdict_page import run_evidence, verdict_section
from jaxattn.runtime.files import read_json, write_atomic
from jaxattn.studies.comparison import Comparison

DIAGNOSTIC_KINDS = ("learned", "uniform", "imposed", "adversary")

# Results written before the rule was stored: "<reason> (threshold: <origin>)".
_OLD_CHOICE = re.compile(r"^(?P<reason>.*?) <= (?P<t>[0-9.eE+-]+)(?P<rest>.*?)"
                         r"(?: \(threshold: (?P<origin>.*)\))?$")
_OLD_SOURCES = {"consistency_tvd option": "set by the consistency_tvd option",
                "mean dev TVD of the seeds to the base":
                    "the retrained seeds' mean dev TVD to the base model",
                "fallback (no seeds stage)": "a fixed fallback, as the seeds stage has not run"}


def adversary_choice(chosen: dict, sweep: Sequence[dict] = ()) -> str:
    """Which adversary the diagnostic imposes, and why, as plain sentences.

    Args:
      chosen: the diagnostic's adversary entry: ``lambda``, ``rule`` (``diagnostic_lambda``,
        ``most_different_consistent`` or ``closest``), ``threshold``, ``threshold_source`` and
        its ``dev_tvd``; or, for older results, ``lambda`` and the ``chosen_by`` text.
      sweep: the adversary sweep, for the chosen row's dev TVD when ``chosen`` lacks it.
    """
    lam = chosen.get("lambda")
    rule, threshold = chosen.get("rule"), chosen.get("threshold")
    source = chosen.get("threshold_source")
    if rule is None:  # an older result: read its rule off the text
        old = chosen.get("chosen_by", "")
        match = _OLD_CHOICE.match(old)
        if "diagnostic_lambda" in old:
            rule = "diagnostic_lambda"
        elif match:
            rule = "closest" if match["reason"].startswith("no ") else "most_different_consistent"
            threshold = float(match["t"])
            source = _OLD_SOURCES.get(match["origin"] or "", match["origin"])
        else:
            return old
    dev_tvd = chosen.get("dev_tvd")
    if dev_tvd is None:
        dev_tvd = next((r["dev_tvd"] for r in sweep if r.get("lambda") == lam), None)
    head = f"The diagnostic imposes the attention of the adversary trained with lambda {lam:g}"
    if rule == "diagnostic_lambda":
        return f"{head}, as the diagnostic_lambda option asks."
    bound = f"a mean dev TVD of at most {threshold:.4f}" + (f" ({source})" if source else "")
    if rule == "most_different_consistent":
        return (f"{head}. The adversaries whose outputs stay as close to the base model's as "
                f"retraining does ({bound}) count as model-consistent, and of those this one's "
                "attention is the furthest from the base model's (the largest dev JSD).")
    closest = f", {dev_tvd:.4f}" if dev_tvd is not None else ""
    return (f"{head}. No adversary kept its outputs within {bound}, so the one whose outputs "
            f"are closest to the base model's is used (the smallest mean dev TVD{closest}).")


def options_table(options: dict) -> str:
    """The adversary's options as a two-column HTML table, one row per option."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_option(v))}</td></tr>"
                   for k, v in options.items())
    return f'<table class="dataset options"><tbody>{rows}</tbody></table>'


def _option(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, (list, tuple)):
        return ", ".join(_option(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _write_table(stem: Path, rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Writes ``stem.md`` and ``stem.csv``; returns the HTML table."""
    write_atomic(stem.with_suffix(".md"), tables.markdown_table(rows, columns, digits=4))
    tables.write_csv(stem.with_suffix(".csv"), rows, columns)
    return tables.html_table(rows, columns, digits=4)


def write_report(out: Path) -> Path:
    """Tables, figures and ``out/index.html`` from ``out/summary.json`` and the per-instance
    arrays beside it."""
    summary = read_json(out / "summary.json")
    tdir, fdir = out / "tables", out / "figures"
    names = list(summary.get("label_names") or ["0", "1"])
    data = summary.get("data")
    # ``out`` is always RUN/wp: its parent holds the J&W analysis, whatever the current folder.
    evidence = dataclasses.replace(
        run_evidence(out.parent, out, wp=summary, run_name=summary["run"]), wp_page="",
        own_model=bool(summary.get("own_model")))
    sections = [verdict_section(evidence)]
    jsd_range = (-0.01, float(np.log(2)) + 0.01)

    model = f"{summary['model']['encoder']} + {summary['model']['attention']}"
    rows = [{"model": model, "attention": "learned (base)", **summary["base"]}]
    if "uniform" in summary:
        rows.append({"model": model, "attention": "uniform (frozen 1/len)",
                     **{k: summary["uniform"].get(k) for k in ("f1", "accuracy", "auc")}})
    table = _write_table(tdir / "uniform", rows, ["model", "attention", "f1", "accuracy", "auc"])
    sections.append(html.section("Uniform-attention baseline (test)", table, "uniform"))

    seeds = Comparison.load(out / "seeds.npz") if (out / "seeds.npz").exists() else None
    if "seeds" in summary and seeds is not None:
        s = summary["seeds"]
        cols = ["seed", "f1", "accuracy", "auc", "jsd_mean", "jsd_median", "tvd_mean"]
        table = _write_table(tdir / "seeds", s["per_seed"], cols)
        pred = seeds.base_probs.argmax(-1)
        jsd_inst, tvd_inst = np.median(seeds.jsd, axis=0), seeds.tvd.mean(axis=0)
        plots.violin_by_bin(jsd_inst, seeds.max_attn, pred, names, fdir / "seeds_violin.png",
                            "JSD (seeds vs base), median over seeds", "max attention (base)",
                            xlim=jsd_range, title=f"{data}: attention across seeds")
        plots.scatter_by_class(jsd_inst, tvd_inst, pred, names, fdir / "seeds_scatter.png",
                               "JSD (seeds vs base), median over seeds",
                               "output TVD, mean over seeds", title=f"{data}: seeds")
        text = (f"{s['n']} extra seeds, trained {s['mode']}. Per test instance the median JSD over "
                f"seeds between its attention and the base's, and the mean TVD between outputs; "
                f"over instances: median JSD {s['jsd_median']:.4f}, mean TVD {s['tvd_mean']:.4f}. "
                "Violins by the base's max attention, split by the base's predicted class.")
        sections.append(html.section("Expected variance across seeds", html.paragraph(text) + table
                                     + html.figure_html("figures/seeds_violin.png", "JSD by max attention")
                                     + html.figure_html("figures/seeds_scatter.png", "JSD vs TVD"),
                                     "seeds"))

    if "adversary" in summary:
        a = summary["adversary"]
        cols = ["lambda", "tvd", "jsd", "kl", "f1", "accuracy", "dev_tvd", "dev_jsd", "best_epoch"]
        table = _write_table(tdir / "adversary", a["sweep"], cols)
        cloud = (seeds.jsd.ravel(), seeds.tvd.ravel()) if seeds is not None else ([], [])
        points = ([(float(j.mean()), float(t.mean())) for j, t in zip(seeds.jsd, seeds.tvd)]
                  if seeds is not None else [])
        wp_figures.tradeoff_plot(fdir / "adversary_tradeoff.png", *cloud, points, a["sweep"],
                                 f"{data}: model-consistent adversaries vs seeds")
        text = (f"Per lambda, the {a['aggregate']} over the test set of the TVD to the base's outputs "
                f"and of the JSD / KL to its attention; F1 against gold. The adversaries were "
                "trained with these options:")
        body = (html.paragraph(text) + options_table(a["params"]["options"]) + table
                + html.figure_html("figures/adversary_tradeoff.png", "adversaries over the seed cloud"))
        lambdas = [r["lambda"] for r in a["sweep"]]
        shown = summary.get("diagnostic", {}).get("adversary", {}).get("lambda", lambdas[-1])
        if (out / "adversary.npz").exists() and shown in lambdas:
            comp = Comparison.load(out / "adversary.npz")
            plots.violin_by_bin(comp.jsd[lambdas.index(shown)], comp.max_attn,
                                comp.base_probs.argmax(-1), names, fdir / "adversary_violin.png",
                                f"JSD (adversary lambda {shown:g} vs base)", "max attention (base)",
                                xlim=jsd_range, title=f"{data}: adversary")
            body += html.figure_html("figures/adversary_violin.png", f"adversary, lambda {shown:g}")
        sections.append(html.section("Model-consistent adversarial training", body, "adversary"))

    if "diagnostic" in summary:
        d = summary["diagnostic"]
        rows = [{"attention": d[k]["attention"], **{c: d[k].get(c) for c in ("f1", "accuracy", "auc")}}
                for k in DIAGNOSTIC_KINDS if k in d]
        table = _write_table(tdir / "diagnostic", rows, ["attention", "f1", "accuracy", "auc"])
        text = ("A per-token MLP without context and a linear decoder over the attention-weighted "
                "sum, trained with the attention named.")
        if "adversary" in d:
            sweep = summary.get("adversary", {}).get("sweep", [])
            text += " " + adversary_choice(d["adversary"], sweep)
        sections.append(html.section("Diagnostic MLP (average encoder, test)",
                                     html.paragraph(text) + table, "diagnostic"))

    timing_rows = [{"stage": k, "seconds": v} for k, v in summary["timings"].items()]
    sections.append(html.section("Timings", tables.html_table(timing_rows, ["stage", "seconds"], 1)
                                 + html.paragraph(f"Base run: {summary['run']}", "muted"), "timings"))
    nav = ([("Jain & Wallace analyses", "../analysis/index.html")]
           if (out.parent / "analysis" / "index.html").exists() else [])
    return html.write_page(out / "index.html", html.page(
        f"Wiegreffe & Pinter suite: {data}", sections, nav, top=html.top_page_href(out)))
