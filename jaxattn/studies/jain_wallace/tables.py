"""The J&W tables: the run's setting and Table 2 beside the published numbers, agreement, rationale.

Rows are plain dicts built from ``summary.json`` alone; :func:`write_tables` writes ``tables.md``
(every table, the stages' own included) and ``tables.csv`` (Table 2 with the published numbers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from jaxattn.report.published import (
    DATASET_TITLES,
    published_class,
    published_setting_for,
    published_tau,
)
from jaxattn.report.tables import csv_text, markdown_table, mean_std
from jaxattn.runtime.files import write_atomic
from jaxattn.studies.jain_wallace.stages import importance_labels
from jaxattn.studies.jain_wallace.summary import PAIR_NAMES, VALUE_MEASURES

TABLE2_NOTE = (
    "Kendall tau-b over each instance's real tokens (scipy), mean (std) over instances; p<=.05: "
    "fraction of instances with a significant correlation. grad~LOO is the baseline agreement of "
    "two importance measures with each other. n counts the instances with a defined tau: those "
    "with one real token, or whose importances are all tied, have none and are left out."
)


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


def table2_display(rows: list[dict]) -> list[dict]:
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


def rationale_rows(summary: dict) -> list[dict]:
    rat = summary.get("rationale")
    if not rat:
        return []
    rows = []
    for name, stats in rat["auprc"].items():
        f1 = rat["topk_f1"].get(name, {}).get("overall", {})
        rows.append(
            {
                "importance": importance_labels().get(name, "chance (share of rationale tokens)"),
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


def write_tables(
    out_dir: Path, summary: dict, stage_tables: list[tuple[str, list[dict]]], verdict: str = ""
) -> None:
    """``tables.md`` (the verdict's Markdown first, then every table) and ``tables.csv`` (Table 2
    with the published numbers)."""
    t2 = table2_rows(summary)
    setting = summary["setting"]
    parts = [
        f"# J&W analyses: {setting.get('dataset')} / {setting.get('encoder')}\n",
        *([f"\n## Verdict: is attention an explanation for this model?\n\n{verdict}\n"]
          if verdict else []),
        "## Setting\n",
        markdown_table(setting_rows(summary["setting"])),
        f"\n{setting_note(summary)}\n",
        "\n## Table 2: Kendall tau of attention with gradient and leave-one-out importance\n",
        markdown_table(table2_display(t2)),
        f"\n{published_gap_note(t2)}\n\n{TABLE2_NOTE}\n",
        "\n## Rank and value agreement (all instances)\n",
        markdown_table(agreement_rows(summary)),
    ]
    for title, rows in stage_tables:
        parts += [f"\n## {title}\n", markdown_table(rows)]
    if rationale_rows(summary):
        parts += ["\n## Agreement with the rationale\n", markdown_table(rationale_rows(summary))]
    write_atomic(out_dir / "tables.md", "".join(parts))
    write_atomic(out_dir / "tables.csv", csv_text(t2))
