"""The report pieces of the head-level stages (:mod:`.heads`): summaries, per-layer tables, the
L x H map figures and the verdict rows.

Michel, Levy & Neubig (2019, "Are Sixteen Heads Really Better than One?") masked heads of
trained BERT and Transformer models at test time and found that most heads, in many layers all
but one, can be removed with little loss; the ``heads`` verdict row sets the run's own figure
beside that finding (no numbers of theirs are quoted).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxattn.report import plots
from jaxattn.report.evidence import AGAINST, MIXED, NOT_RUN, SUPPORTS, Row, get_path, href
from jaxattn.report.tables import mean_std
from jaxattn.report.verdict import DEFAULT_EPSILON, JSD_HALF

SOURCE = "jaxattn.studies.self_attention"
KIND_LABELS = {
    "uniform": "uniform",
    "permute": "permuted keys",
    "donor": "next head's map",
    "zero": "zeroed (masked)",
}
MICHEL = ("Michel et al. (2019), who found that most heads of trained BERT / Transformer models "
          "can be masked at test time with little loss")
DONOR_RULE = "the next head of the same layer, (l, (h + 1) mod H)"


def _kinds(stage: dict) -> list[str]:
    return [kind for kind in KIND_LABELS if f"{kind}_tvd" in stage]


def _mean(values: np.ndarray, axis=0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN (rows or cells not computed); NaN where none is left."""
    values = np.asarray(values, np.float64)
    counts = np.sum(~np.isnan(values), axis=axis)
    return np.where(counts > 0, np.nansum(values, axis=axis) / np.maximum(counts, 1), np.nan)


def _nan_to_none(x: np.ndarray):
    return [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(x)]


# --------------------------------------------------------------------------------------------
# heads


def summarize_heads(data) -> dict:
    """``heads``: per kind the L x H means over instances of TVD, JSD and flips, the largest head
    mean TVD and where it is (1-based), and the share of heads whose mean TVD <= epsilon."""
    stage, options = data.stages["heads"], data.meta["heads"]["options"]
    epsilon = float(options.get("epsilon", DEFAULT_EPSILON))
    out = {"n": int(len(data.labels)), "epsilon": epsilon,
           "num_permutations": options.get("head_permutations"),
           "donor_rule": DONOR_RULE}
    for kind in _kinds(stage):
        tvd = _mean(stage[f"{kind}_tvd"])  # [L, H]
        layer, head = np.unravel_index(int(np.argmax(tvd)), tvd.shape)
        out[kind] = {
            "mean_tvd": tvd.tolist(),
            "mean_jsd": _mean(stage[f"{kind}_jsd"]).tolist(),
            "flip_rate": _mean(stage[f"{kind}_flip"]).tolist(),
            "max_mean_tvd": float(tvd.max()),
            "max_head": [int(layer) + 1, int(head) + 1],
            "mean_tvd_all": float(tvd.mean()),
            "share_within_epsilon": float(np.mean(tvd <= epsilon)),
        }
    out["layers"], out["heads"] = (np.asarray(out[_kinds(stage)[0]]["mean_tvd"]).shape
                                   if _kinds(stage) else (0, 0))
    return {"heads": out}


def heads_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    heads = summary["heads"]
    rows = []
    for layer in range(heads["layers"]):
        row = {"layer": layer + 1}
        for kind in KIND_LABELS:
            if kind not in heads:
                continue
            tvd = np.asarray(heads[kind]["mean_tvd"][layer])
            label = KIND_LABELS[kind]
            row[f"{label}: mean TVD (std over heads)"] = mean_std(tvd.mean(), tvd.std(), 3)
            row[f"{label}: max head"] = f"{tvd.max():.3f} (head {int(tvd.argmax()) + 1})"
            row[f"{label}: flips"] = f"{100 * np.mean(heads[kind]['flip_rate'][layer]):.1f}%"
        rows.append(row)
    # Say how the permuted and donor rows were made only when the stage ran them.
    notes = [f"permutations: median of {heads.get('num_permutations')}"] if "permute" in heads else []
    notes += [f"donor: {heads['donor_rule']}"] if "donor" in heads else []
    title = (f"Single-head interventions per layer: output TVD, mean over {heads['n']} instances "
             "and the layer's heads" + (f" ({'; '.join(notes)})" if notes else ""))
    return [(title, rows)]


def head_map_figure(panels: list[tuple[str, np.ndarray]], label: str,
                    vmax: float | None = None) -> Figure:
    """One L x H heatmap per ``(title, <float>[L, W])`` panel (rows layer 1..L top to bottom,
    columns head 1..W; NaN cells left blank), sharing one colour scale from 0."""
    values = [np.asarray(v, np.float64) for _, v in panels]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.zeros(1)])
    top = vmax if vmax is not None else max(float(finite.max()), 1e-6)
    n_layers, width = values[0].shape
    fig = plots.new_figure(min(3.2 * len(panels), 13.0) + 0.8,
                           max(2.2, 0.32 * n_layers + 1.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, _), v in zip(axes, panels, values):
        image = ax.imshow(np.ma.masked_invalid(v), vmin=0.0, vmax=top, cmap="viridis",
                          aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(width), [str(h + 1) for h in range(width)] if width > 1 else ["all"],
                      fontsize=7)
        ax.set_yticks(range(n_layers), [str(layer + 1) for layer in range(n_layers)],
                      fontsize=7)
        ax.set_xlabel("head" if width > 1 else "heads of the layer", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
    fig.colorbar(image, ax=list(axes), label=label, shrink=0.9)
    return fig


def heads_figures(data, out_dir: Path) -> list[tuple[str, str]]:
    stage = data.stages["heads"]
    panels = [(KIND_LABELS[kind], _mean(stage[f"{kind}_tvd"])) for kind in _kinds(stage)]
    plots.save_figure(head_map_figure(panels, "mean output TVD"), Path(out_dir) / "heads_tvd.png")
    return [("heads_tvd.png", "Single-head interventions: mean output TVD per (layer, head)")]


def heads_verdict(ev) -> Row:
    heads = get_path(ev.jw, "heads") or {}
    kind = next((k for k in ("uniform", "zero", "permute", "donor") if k in heads), None)
    test = "single-head attention replaced (Michel et al. 2019)"
    compared = f"the output tolerance epsilon = {heads.get('epsilon', DEFAULT_EPSILON):g} (TVD)"
    if kind is None:
        return Row(test, "–", compared, "not run — run `jaxattn analyze --run "
                   f"{ev.run} --only heads`", NOT_RUN, SOURCE)
    got, label = heads[kind], KIND_LABELS[kind]
    layer, head = got["max_head"]
    figure = (f"{label}: max head mean TVD {got['max_mean_tvd']:.3f} (layer {layer}, head "
              f"{head}); {100 * got['share_within_epsilon']:.0f}% of heads within epsilon")
    reading = (f"replacing any single head's attention by {label} changes the output by at most "
               f"{got['max_mean_tvd']:.3f} (mean TVD over instances)")
    if got["max_mean_tvd"] <= heads["epsilon"]:
        status = AGAINST
        reading += f": no single head's map is needed for the output, in line with {MICHEL}"
    else:
        status = MIXED
        reading += (f": some heads' maps matter while {100 * got['share_within_epsilon']:.0f}% "
                    f"do not; compare {MICHEL}")
    return Row(test, figure, compared, reading, status, SOURCE, href(ev.jw_page, "stage-heads"))


# --------------------------------------------------------------------------------------------
# head_adv


def summarize_head_adv(data) -> dict:
    """``head_adv``: what was covered (scope, 1-based layers, instances) and per covered layer
    the mean max JSD within epsilon and the share found (scope ``head``: per head too)."""
    stage, options = data.stages["head_adv"], data.meta["head_adv"]["options"]
    max_jsd, found = stage["max_jsd"], stage["found"]  # [N, L, S]
    covered_rows = ~np.all(np.isnan(max_jsd), axis=(1, 2))
    covered_layers = [int(i) for i in np.flatnonzero(~np.all(np.isnan(max_jsd), axis=(0, 2)))]
    per_layer = []
    for layer in covered_layers:
        values = max_jsd[covered_rows, layer]  # [n, S]
        per_layer.append({
            "layer": layer + 1,
            "mean_max_jsd": float(_mean(values.reshape(-1))),
            "std_max_jsd": float(np.nanstd(values)),
            "frac_found": float(_mean(found[covered_rows, layer].reshape(-1))),
            "per_head_mean_max_jsd": [float(v) for v in _mean(values)],
        })
    overall = [row["mean_max_jsd"] for row in per_layer]
    return {"head_adv": {
        "scope": options["head_adv_scope"], "layers": [row["layer"] for row in per_layer],
        "instances": int(covered_rows.sum()), "n": int(len(data.labels)),
        "epsilon": float(options["epsilon"]), "steps": options["head_adv_steps"],
        "num_adversaries": options["num_adversaries"], "per_layer": per_layer,
        "max_jsd_mean": float(np.mean(overall)) if overall else None,
    }}


def _covered(adv: dict) -> str:
    scope = "all heads of a layer at once" if adv["scope"] == "layer" else "one head at a time"
    layers = ", ".join(str(layer) for layer in adv["layers"]) or "none"
    return (f"layers {layers}, {scope}; {adv['instances']} of {adv['n']} instances; "
            f"{adv['num_adversaries']} adversaries x {adv['steps']} steps")


def head_adv_tables(summary: dict) -> list[tuple[str, list[dict]]]:
    adv = summary["head_adv"]
    rows = [{"layer": row["layer"],
             "max map JSD within epsilon": mean_std(row["mean_max_jsd"], row["std_max_jsd"], 3),
             "found": f"{100 * row['frac_found']:.0f}%"} for row in adv["per_layer"]]
    if adv["scope"] == "head":
        for row, layer in zip(rows, adv["per_layer"]):
            per_head = np.asarray(layer["per_head_mean_max_jsd"])
            row["head with the largest"] = f"{per_head.max():.3f} (head {per_head.argmax() + 1})"
    title = (f"Adversarial self-attention: how far (JSD) a layer's maps move with the output "
             f"within TVD {adv['epsilon']:g} ({_covered(adv)})")
    return [(title, rows)]


def head_adv_figures(data, out_dir: Path) -> list[tuple[str, str]]:
    max_jsd = data.stages["head_adv"]["max_jsd"]
    panel = ("max map JSD within epsilon", _mean(max_jsd))  # [L, S]
    plots.save_figure(head_map_figure([panel], "mean max JSD (nats)", vmax=math.log(2.0)),
                      Path(out_dir) / "head_adv_jsd.png")
    return [("head_adv_jsd.png", "Adversarial self-attention: mean max JSD per layer (blank: "
             "not searched)")]


def head_adv_verdict(ev) -> Row:
    adv = get_path(ev.jw, "head_adv") or {}
    test = "adversarial self-attention within epsilon (per layer)"
    compared = f"half the largest JSD, ln(2)/2 = {JSD_HALF:.3f}"
    jsd = adv.get("max_jsd_mean")
    if jsd is None:
        return Row(test, "–", compared, "not run — run `jaxattn analyze --run "
                   f"{ev.run} --only head_adv`", NOT_RUN, SOURCE)
    figure = f"mean max JSD {jsd:.3f} ({_covered(adv)})"
    if jsd >= JSD_HALF:
        status = AGAINST
        reading = ("self-attention far from the model's own (JSD at least half the maximum) "
                   "keeps the output within epsilon: the maps are not the only ones that fit")
    else:
        status = SUPPORTS
        reading = "self-attention that keeps the output stays close to the model's own"
    return Row(test, figure, compared, reading, status, SOURCE,
               href(ev.jw_page, "stage-head_adv"))
