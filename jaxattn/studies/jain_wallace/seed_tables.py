"""J&W Table 2 over seeds: each cell as mean +- sd over N retrained seeds, beside the published one.

A single run's mean tau moves with the seed; a gap to the published figure is only evidence of a
different result when it is larger than that movement. Each cell therefore says whether the
published mean lies within ``mean +- 2 sd`` of the seeds' means (about 95% of seeds would land
there if the seed-to-seed spread were normal). With one seed there is no spread and no mark.

Rows are plain dicts built from the per-seed ``summary.json`` files alone
(:func:`jaxattn.studies.jain_wallace.tables.table2_rows` of each).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jaxattn.report.tables import MISSING
from jaxattn.studies.jain_wallace.tables import table2_rows

# (pair key in table2_rows, label); grad~LOO has no published value but is the baseline.
SEED_PAIRS = (("attn_grad", "attn~grad"), ("attn_loo", "attn~LOO"), ("grad_loo", "grad~LOO"))
SPREAD = 2.0  # published within mean +- SPREAD * sd counts as explained by the seeds


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample sd (ddof 1; None for fewer than 2), count) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return float(np.mean(finite)), sd, len(finite)


def within_spread(mean: float | None, sd: float | None, published: float | None) -> bool | None:
    """Whether ``published`` lies within ``mean +- SPREAD * sd``; None when either is unknown."""
    if mean is None or sd is None or published is None:
        return None
    return abs(published - mean) <= SPREAD * sd + 1e-12  # a boundary case is inside


def seed_table2_rows(per_seed: Sequence[dict]) -> list[dict]:
    """Table 2 of one model over seeds.

    Args:
      per_seed: the ``summary.json`` of each seed's analysis (same data set, encoder and split).
    Returns:
      one row per class group (as :func:`table2_rows`, classes matched by name) with ``seeds``
      (how many seeds have a value) and, per pair, ``<pair>_seed_means`` (one per seed, None
      where a seed has none), ``<pair>_mean`` / ``<pair>_sd`` over seeds, ``<pair>_published_mean`` and
      ``<pair>_within`` (:func:`within_spread`).
    """
    if not per_seed:
        return []
    settings = {(s["setting"].get("dataset"), s["setting"].get("encoder")) for s in per_seed}
    if len(settings) > 1:
        raise ValueError(f"seed summaries of different models: {sorted(settings)}")
    # Classes matched by name: a seed that never predicts a class has no row for it.
    by_class: dict[str, list[dict | None]] = {}
    for k, seed_summary in enumerate(per_seed):
        for row in table2_rows(seed_summary):
            by_class.setdefault(row["class"], [None] * len(per_seed))[k] = row
    by_class["all"] = by_class.pop("all")  # the pooled row last, as in Table 2
    out = []
    for group in by_class.values():
        first = next(r for r in group if r is not None)
        row = {k: first[k] for k in ("dataset", "encoder", "class")}
        counts = []
        for pair, _ in SEED_PAIRS:
            means = [r.get(f"{pair}_mean") if r else None for r in group]
            mean, sd, n = mean_sd(means)
            published = first.get(f"{pair}_published_mean")
            row[f"{pair}_seed_means"] = means
            row[f"{pair}_mean"], row[f"{pair}_sd"] = mean, sd
            row[f"{pair}_published_mean"] = published
            row[f"{pair}_within"] = within_spread(mean, sd, published)
            counts.append(n)
        row["seeds"] = max(counts)
        out.append(row)
    return out


def seed_cell(row: dict, pair: str, digits: int = 2) -> str:
    """``0.41 ± 0.02 / 0.40 ✓``: mean ± sd over seeds, the published mean, and whether it lies
    within 2 sd (✓) or not (✗); no mark without a published value or a spread."""
    mean, sd = row.get(f"{pair}_mean"), row.get(f"{pair}_sd")
    if mean is None:
        return MISSING
    text = f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")
    published = row.get(f"{pair}_published_mean")
    if published is not None:
        text += f" / {published:.{digits}f}"
    within = row.get(f"{pair}_within")
    if within is not None:
        text += " ✓" if within else " ✗"
    return text


def seed_table2_display(
    rows: Sequence[dict], encoders: Sequence[str], titles: dict[str, str]
) -> list[dict]:
    """One display row per data set and class, one column per pair and encoder (as the combined
    Table 2), cells from :func:`seed_cell`; ``titles`` maps encoder names to column titles."""
    columns = ["data set", "class", "seeds"] + [
        f"{label} {titles.get(e, e)}" for _, label in SEED_PAIRS for e in encoders]
    display: dict[tuple[str, str], dict] = {}
    for row in rows:
        cell = display.setdefault((row["dataset"], row["class"]),
                                  {"data set": row["dataset"], "class": row["class"]})
        cell["seeds"] = row["seeds"]
        for pair, label in SEED_PAIRS:
            cell[f"{label} {titles.get(row['encoder'], row['encoder'])}"] = seed_cell(row, pair)
    return [{c: cell.get(c, MISSING) for c in columns} for cell in display.values()]


def seed_spread_note(rows: Sequence[dict]) -> str:
    """Which published means the seed spread explains, and which it does not."""
    inside, outside = [], []
    for row in rows:
        for pair, label in SEED_PAIRS:
            within = row.get(f"{pair}_within")
            if within is None:
                continue
            name = (f"{row['dataset']} / {row['encoder']} / {row['class']} {label}: "
                    f"{row[f'{pair}_mean']:.2f} ± {row[f'{pair}_sd']:.2f} vs J&W "
                    f"{row[f'{pair}_published_mean']:.2f}")
            (inside if within else outside).append(name)
    if not inside and not outside:
        return "No cell has both a published value and a seed spread (needs 2 or more seeds)."
    lines = [f"{len(inside)} of {len(inside) + len(outside)} published means lie within "
             f"mean ± {SPREAD:g} sd over seeds (explained by the seed spread)."]
    if outside:
        lines.append("Outside (not explained by the seed spread):")
        lines += [f"- {name}" for name in outside]
    return "\n".join(lines) + "\n"
