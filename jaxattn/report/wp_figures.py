"""The figure only the Wiegreffe & Pinter report draws: adversaries against the seed-variance cloud.

Tables, violins by max-attention bin, scatters and pages come from :mod:`jaxattn.report.tables`,
:mod:`jaxattn.report.plots` and :mod:`jaxattn.report.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxattn.report.plots import COLORS, new_figure, save_figure


def tradeoff_plot(
    path: str | Path,
    cloud_jsd: np.ndarray,
    cloud_tvd: np.ndarray,
    seed_points: Sequence[tuple[float, float]],
    sweep: Sequence[dict],
    title: str | None = None,
) -> Path:
    """W&P's trade-off figure: mean (JSD, TVD) to the base per lambda over the seeds' cloud.

    Args:
      cloud_jsd, cloud_tvd: <float>[P] JSD to the base attention and TVD to the base output of
        every (seed, instance) pair: how far an equally good model lies by chance.
      seed_points: per seed its mean (JSD, TVD).
      sweep: per lambda a dict with ``lambda``, ``jsd`` and ``tvd`` (means over the test set).
    """
    fig = new_figure(5.6, 4.2)
    ax = fig.add_subplot()
    if len(cloud_jsd):
        ax.scatter(cloud_jsd, cloud_tvd, s=4, alpha=0.15, color="#888888",
                   label="seeds, per instance")
    if seed_points:
        xs, ys = zip(*seed_points)
        ax.scatter(xs, ys, s=36, marker="s", color="#222222", label="seeds, mean")
    if sweep:
        ax.plot([r["jsd"] for r in sweep], [r["tvd"] for r in sweep], "-o", color=COLORS[1],
                label="adversary, mean per lambda")
        for r in sweep:
            ax.annotate(f"{r['lambda']:g}", (r["jsd"], r["tvd"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=COLORS[1])
    ax.set_xlabel("JSD to the base attention (nats)")
    ax.set_ylabel("TVD to the base output")
    ax.set_xlim(-0.02, np.log(2) + 0.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
