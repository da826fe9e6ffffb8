"""Figures as PNG files, split by class as in the papers.

Built on :class:`matplotlib.figure.Figure` directly (the Agg canvas, no pyplot), so nothing here
touches global plotting state or needs a display. Each function takes per-instance arrays and a
class per instance and writes one PNG atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxattn.runtime.files import write_atomic

MAX_ATTENTION_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def new_figure(width: float = 5.0, height: float = 3.6) -> Figure:
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as PNG to ``path`` (atomically) and returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return Path(path)


def _class_groups(classes: np.ndarray, class_names: Sequence[str]):
    """(index, name, color) of every class that occurs, in class order."""
    present = np.unique(np.asarray(classes))
    return [
        (int(c), str(class_names[int(c)]), COLORS[i % len(COLORS)]) for i, c in enumerate(present)
    ]


def bin_labels(bins: Sequence[float]) -> list[str]:
    return [
        f"[{lo:g}, {hi:g}]" if i == len(bins) - 2 else f"[{lo:g}, {hi:g})"
        for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:]))
    ]


def assign_bins(x: np.ndarray, bins: Sequence[float] = MAX_ATTENTION_BINS) -> np.ndarray:
    """<int>[N] index of the bin holding each value (the last bin is closed on the right)."""
    return np.clip(np.digitize(np.asarray(x), bins[1:-1], right=False), 0, len(bins) - 2)


def padded_limits(lo: float, hi: float, data: np.ndarray, pad: float = 0.03) -> tuple:
    """``(lo, hi)`` widened to hold every finite value of ``data``, with ``pad`` of the span
    free on each side, so that nothing drawn at the data's extremes touches the axis edge."""
    finite = np.asarray(data, np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite):
        lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    margin = pad * ((hi - lo) or 1.0)
    return lo - margin, hi + margin


def violin_by_bin(
    values: np.ndarray,
    binned_by: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    xlabel: str,
    ylabel: str = "max attention",
    bins: Sequence[float] = MAX_ATTENTION_BINS,
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
) -> Path:
    """Horizontal violins of ``values`` for each bin of ``binned_by`` (one row per bin), one violin
    per class side by side (J&W's permutation / adversarial figures).

    Groups with fewer than two distinct values are drawn as points; empty groups are left out.
    ``xlim``: the range the axis shows at least (e.g. JSD's ``(0, ln 2)``); it is widened by a
    small margin so that violins reaching its ends are not cut by the frame.
    """
    fig = violin_figure(values, binned_by, classes, class_names, xlabel, ylabel, bins, xlim,
                        title)
    return save_figure(fig, path)


def violin_figure(
    values: np.ndarray,
    binned_by: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    xlabel: str,
    ylabel: str = "max attention",
    bins: Sequence[float] = MAX_ATTENTION_BINS,
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """The figure :func:`violin_by_bin` writes."""
    values = np.asarray(values, np.float64)
    which = assign_bins(binned_by, bins)
    groups = _class_groups(classes, class_names)
    fig = new_figure()
    ax = fig.add_subplot()
    width = 0.8 / max(len(groups), 1)
    for g, (c, name, color) in enumerate(groups):
        for b in range(len(bins) - 1):
            data = values[(which == b) & (np.asarray(classes) == c) & np.isfinite(values)]
            pos = b - 0.4 + width * (g + 0.5)
            if len(np.unique(data)) >= 2:
                parts = ax.violinplot(
                    [data],
                    positions=[pos],
                    widths=width * 0.95,
                    orientation="horizontal",
                    showmedians=True,
                    showextrema=False,
                )
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_edgecolor(color)
                    body.set_alpha(0.45)
                parts["cmedians"].set_color("#222222")
            elif len(data):
                ax.plot(data, np.full(len(data), pos), "o", color=color, alpha=0.6, ms=3)
        ax.plot([], [], "s", color=color, alpha=0.6, label=name)
    ax.set_yticks(range(len(bins) - 1), bin_labels(bins))
    ax.set_ylim(-0.6, len(bins) - 1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlim is not None:
        ax.set_xlim(*padded_limits(*xlim, values))
    if title:
        ax.set_title(title, fontsize=10)
    if groups:
        ax.legend(fontsize=8, loc="best")
    return fig


def histogram_by_class(
    values: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    xlabel: str,
    value_range: tuple[float, float] | None = None,
    bins: int = 20,
    title: str | None = None,
) -> Path:
    """Overlaid per-class histograms (each normalised to its class's count) of ``values``."""
    values = np.asarray(values, np.float64)
    fig = new_figure()
    ax = fig.add_subplot()
    drawn = False
    for c, name, color in _class_groups(classes, class_names):
        data = values[(np.asarray(classes) == c) & np.isfinite(values)]
        if len(data):
            drawn = True
            ax.hist(
                data,
                bins=bins,
                range=value_range,
                weights=np.full(len(data), 1.0 / len(data)),
                histtype="stepfilled",
                alpha=0.35,
                color=color,
                edgecolor=color,
                label=f"{name} (n={len(data)})",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of instances")
    if value_range is not None:
        ax.set_xlim(*value_range)
    if title:
        ax.set_title(title, fontsize=10)
    if drawn:
        ax.legend(fontsize=8, loc="best")
    else:  # e.g. a measure not defined for any instance (constant attention)
        ax.text(0.5, 0.5, "no defined value to show", ha="center", va="center",
                transform=ax.transAxes)
    return save_figure(fig, path)


def scatter_by_class(
    x: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
) -> Path:
    """``y`` against ``x``, one colour per class."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    fig = new_figure()
    ax = fig.add_subplot()
    for c, name, color in _class_groups(classes, class_names):
        rows = np.asarray(classes) == c
        ax.scatter(x[rows], y[rows], s=6, alpha=0.5, color=color, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)
