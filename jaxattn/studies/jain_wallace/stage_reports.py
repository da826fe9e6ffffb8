"""What the intervention stages (``perm``, ``adv``) and the self-attention stage (``self_attn``)
of :mod:`jaxattn.studies.jain_wallace.stages` add to the report: their summaries, tables,
figures, per-instance facts and heatmap rows, each a function of the analysed arrays
(:class:`~jaxattn.studies.jain_wallace.summary.AnalysisData`)."""

from __future__ import annotations

import math

import numpy as np

from jaxattn.explain import agreement
from jaxattn.report import plots
from jaxattn.report.tables import mean_std
from jaxattn.studies.jain_wallace import summary as summ

# The intervention stages


def class_rows(stats: dict, label: str, digits: int = 3) -> list[dict]:
    """Mean (std) of a by-class summary, one row per predicted class and one for all."""
    classes = stats.get("by_predicted", {})
    groups = [(classes[c]["name"], classes[c]) for c in sorted(classes, key=int)]
    return [
        {"predicted class": name, label: mean_std(s.get("mean"), s.get("std"), digits),
         "n": s.get("n")}
        for name, s in groups + [("all", stats.get("overall", {}))]
    ]


def summarize_perm(data: summ.AnalysisData) -> dict:
    median = data.stages["perm"]["median_tvd"]
    return {
        "permutation": {
            "median_tvd": data.by_class(median),
            "by_max_attention_bin": summ.bin_summaries(median, data.max_attention),
            "num_permutations": data.meta["perm"]["options"]["num_permutations"],
        }
    }


def summarize_adv(data: summ.AnalysisData) -> dict:
    adv = data.stages["adv"]
    return {
        "adversarial": {
            "max_jsd_mean": float(np.mean(adv["max_jsd"])),
            "frac_found": float(np.mean(adv["found"])),
            "max_jsd": data.by_class(adv["max_jsd"]),
            "found": data.by_class(adv["found"].astype(np.float64)),
            "by_max_attention_bin": summ.bin_summaries(adv["max_jsd"], data.max_attention),
            **data.meta["adv"]["options"],
        }
    }


def perm_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    stats = summary["permutation"]["median_tvd"]
    return [("Permutation: median output TVD", class_rows(stats, "perm median TVD"))]


def adv_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    adv = summary["adversarial"]
    rows = class_rows(adv["max_jsd"], "adv max JSD")
    found = class_rows(adv["found"], "found")
    for row, f in zip(rows, found):
        row["adv found"] = f["found"]
    return [("Adversarial attention: max JSD within epsilon", rows)]


def perm_figures(data: summ.AnalysisData, out_dir):
    classes, names = data.figure_classes()
    plots.violin_by_bin(data.stages["perm"]["median_tvd"], data.max_attention, classes, names,
                        out_dir / "perm_violin.png", "median output TVD under permutation")
    return [("perm_violin.png", "Permutation: median output TVD by max attention")]


def adv_figures(data: summ.AnalysisData, out_dir):
    classes, names = data.figure_classes()
    jsd_range = (0.0, math.log(2.0))
    max_jsd = data.stages["adv"]["max_jsd"]
    plots.violin_by_bin(max_jsd, data.max_attention, classes, names, out_dir / "adv_violin.png",
                        "max JSD within epsilon", xlim=jsd_range)
    plots.histogram_by_class(max_jsd, classes, names, out_dir / "adv_hist.png",
                             "max JSD within epsilon", jsd_range)
    return [
        ("adv_violin.png", "Adversarial attention: max JSD within epsilon by max attention"),
        ("adv_hist.png", "Adversarial attention: max JSD within epsilon"),
    ]


def perm_facts(data: summ.AnalysisData, row: int) -> list[str]:
    return [f"permutation median TVD {data.stages['perm']['median_tvd'][row]:.3f}"]


def adv_facts(data: summ.AnalysisData, row: int) -> list[str]:
    adv = data.stages["adv"]
    return [f"adversarial max JSD {adv['max_jsd'][row]:.3f} (TVD {adv['best_tvd'][row]:.3f})"]


def adv_heatmaps(data: summ.AnalysisData, row: int) -> dict[str, np.ndarray]:
    return {"adversarial attention": data.stages["adv"]["best_attn"][row]}


# The self-attention stage


def layer_name(layer: int) -> str:
    return f"self-attention, layer {layer + 1} (received)"


def summarize_self_attn(data: summ.AnalysisData) -> dict:
    received = data.stages["self_attn"]["self_attn"]  # [N, L, T]
    layers = []
    for layer in range(received.shape[1]):
        tau = None
        if data.has_attention:  # a [CLS] head has no pooling attention to compare with
            tau = data.by_class(*agreement.kendall_tau(received[:, layer], data.attn, data.mask))
        layers.append({
            "kendall_with_attention": tau,
            "real_token_share": agreement.summarize(received[:, layer].sum(axis=-1)),
        })
    return {
        "self_attention": {
            "layers": layers,
            "last_layer_kendall_mean": (
                layers[-1]["kendall_with_attention"]["overall"]["mean"]
                if layers and layers[-1]["kendall_with_attention"] else None
            ),
        }
    }


def self_attn_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    rows = []
    for layer, stats in enumerate(summary["self_attention"]["layers"]):
        tau = (stats["kendall_with_attention"] or {}).get("overall")
        share = stats["real_token_share"]
        rows.append({
            "layer": layer + 1,
            "tau with pooling attention": mean_std(tau["mean"], tau["std"], 2) if tau else
            "not applicable (no pooling attention)",
            "p <= .05": tau["frac_significant"] if tau else None,
            "share received by real tokens": mean_std(share["mean"], share["std"], 2),
            "n": tau["n"] if tau else share.get("n"),
        })
    return [("Self-attention received per token, by layer, vs the pooling attention", rows)]


def self_attn_heatmaps(data: summ.AnalysisData, row: int) -> dict[str, np.ndarray]:
    received = data.stages["self_attn"]["self_attn"][row]  # [L, T]
    return {layer_name(layer): values for layer, values in enumerate(received)}
