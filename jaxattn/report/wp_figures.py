"""The figure only the Wiegreffe & Pinter report draws: adversaries against the seed-variance cloud.

Tables, violins by max-attention bin, scatters and pages come from :mod:`jaxattn.report.tables`,
:mod:`jaxattn.report.plots` and :mod:`jaxattn.report.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxattn.report.plots import COLORS, new_figure, padded_limits, save_figure


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
    return save_figure(tradeoff_figure(cloud_jsd, cloud_tvd, seed_points, sweep, title), path)


def lambda_labels(points: Sequence[tuple[float, float]], lambdas: Sequence[float],
                  near: float) -> list[tuple[tuple[float, float], str]]:
    """One label per group of sweep points lying within ``near`` of each other (in the units of
    ``points``, scaled so both axes count alike): ``lambda 0.001, 0.01`` at the group's first
    point instead of labels printed over one another."""
    groups: list[tuple[tuple[float, float], list[float]]] = []
    for point, lam in zip(points, lambdas):
        for anchor, members in groups:
            if np.hypot(point[0] - anchor[0], point[1] - anchor[1]) < near:
                members.append(lam)
                break
        else:
            groups.append((point, [lam]))
    return [(anchor, "\u03bb " + ", ".join(f"{lam:g}" for lam in members))
            for anchor, members in groups]


def tradeoff_figure(
    cloud_jsd: np.ndarray,
    cloud_tvd: np.ndarray,
    seed_points: Sequence[tuple[float, float]],
    sweep: Sequence[dict],
    title: str | None = None,
) -> Figure:
    """The figure :func:`tradeoff_plot` writes."""
    fig = new_figure(5.6, 4.2)
    ax = fig.add_subplot()
    if len(cloud_jsd):
        ax.scatter(cloud_jsd, cloud_tvd, s=4, alpha=0.15, color="#888888",
                   label="seeds, per instance")
    if seed_points:
        xs, ys = zip(*seed_points)
        ax.scatter(xs, ys, s=36, marker="s", color="#222222", label="seeds, mean")
    xlim = padded_limits(0.0, float(np.log(2)), np.array([r["jsd"] for r in sweep] or [0.0]))
    ylim = padded_limits(0.0, 1.0, np.array([r["tvd"] for r in sweep] or [0.0]))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    if sweep:
        ax.plot([r["jsd"] for r in sweep], [r["tvd"] for r in sweep], "-o", color=COLORS[1],
                label="adversary, mean per lambda")
        # Distances in axes fractions: points closer than 6% of the frame share one label.
        scaled = [((r["jsd"] - xlim[0]) / (xlim[1] - xlim[0]),
                   (r["tvd"] - ylim[0]) / (ylim[1] - ylim[0])) for r in sweep]
        labels = lambda_labels(scaled, [r["lambda"] for r in sweep], near=0.06)
        for i, ((fx, fy), text) in enumerate(labels):
            # Right of the point unless near the right edge; alternately above and below.
            right = fx < 0.75
            ax.annotate(text, (fx, fy), xycoords="axes fraction", textcoords="offset points",
                        xytext=(5 if right else -5, 5 if i % 2 == 0 else -11), fontsize=7,
                        color=COLORS[1], ha="left" if right else "right",
                        annotation_clip=False)
    ax.set_xlabel("JSD to the base attention (nats)")
    ax.set_ylabel("TVD to the base output")
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
