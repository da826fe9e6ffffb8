"""Figures: valid PNGs for every grouping, including degenerate groups."""

from __future__ import annotations

from math import log

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from jaxattn.report import plots, wp_figures

PNG = b"\x89PNG\r\n\x1a\n"


def test_assign_bins_closes_the_last_bin():
    np.testing.assert_array_equal(
        plots.assign_bins(np.array([0.0, 0.2, 0.25, 0.6, 0.75, 1.0])), [0, 0, 1, 2, 3, 3]
    )
    assert plots.bin_labels((0, 0.5, 1)) == ["[0, 0.5)", "[0.5, 1]"]


def test_violin_by_bin_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.random(40)
    max_attn = rng.random(40)
    classes = rng.integers(0, 2, 40)
    max_attn[0], values[0], classes[0] = 0.9, 0.5, 1  # may leave a one-point group
    path = plots.violin_by_bin(values, max_attn, classes, ("neg", "pos"), tmp_path / "v.png", "TVD")
    assert path.read_bytes()[:8] == PNG


def test_violin_with_single_values_and_missing_classes(tmp_path):
    values = np.array([0.1, 0.1, np.nan])
    path = plots.violin_by_bin(
        values,
        np.array([0.1, 0.9, 0.5]),
        np.array([2, 2, 2]),
        ("a", "b", "c"),
        tmp_path / "v.png",
        "x",
        xlim=(0, 1),
    )
    assert path.read_bytes()[:8] == PNG


def test_histogram_and_scatter_write_pngs(tmp_path):
    rng = np.random.default_rng(1)
    x, classes = rng.normal(size=30), rng.integers(0, 3, 30)
    h = plots.histogram_by_class(x, classes, ("a", "b", "c"), tmp_path / "h.png", "tau", (-1, 1))
    s = plots.scatter_by_class(x, x**2, classes, ("a", "b", "c"), tmp_path / "s.png", "x", "y")
    assert h.read_bytes()[:8] == PNG and s.read_bytes()[:8] == PNG


def _violin_extents(ax):
    """(x min, x max) of every violin body drawn on ``ax``."""
    out = []
    for coll in ax.collections:
        for path in coll.get_paths():
            xs = path.vertices[:, 0]
            out.append((xs.min(), xs.max()))
    return out


def test_violins_reaching_the_ends_of_their_range_stay_inside_the_frame():
    rng = np.random.default_rng(1)
    # JSD values piled up at both ends of [0, ln 2], as an adversary's are.
    values = np.concatenate([np.full(20, log(2)) - rng.random(20) * 1e-3, rng.random(20) * 0.2])
    fig = plots.violin_figure(values, rng.random(40), rng.integers(0, 2, 40), ("neg", "pos"),
                              "JSD", xlim=(0.0, log(2)))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    extents = _violin_extents(ax)
    assert extents and lo <= 0.0 and hi >= log(2)
    span = hi - lo
    for a, b in extents:  # a visible gap between every body and the frame
        assert a - lo > 0.01 * span and hi - b > 0.01 * span, (a, b, lo, hi)
    # Values past the range asked for widen it (nothing is cut off).
    fig = plots.violin_figure(np.array([-0.5, 0.1, 0.9, 1.4]), np.full(4, 0.9), np.zeros(4, int),
                              ("neg",), "x", xlim=(0.0, 1.0))
    lo, hi = fig.axes[0].get_xlim()
    assert lo < -0.5 and hi > 1.4


def test_tradeoff_points_and_lambda_labels_do_not_collide():
    # Small lambdas leave attention alone (points on top of each other), large ones reach ln 2.
    lambdas = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    jsd = [0.001, 0.0012, 0.0015, 0.08, 0.5, 0.69, 0.6931]
    tvd = [0.01, 0.0101, 0.0102, 0.02, 0.05, 0.09, 0.091]
    sweep = [{"lambda": lam, "jsd": j, "tvd": t} for lam, j, t in zip(lambdas, jsd, tvd)]
    rng = np.random.default_rng(0)
    fig = wp_figures.tradeoff_figure(rng.random(50) * 0.3, rng.random(50) * 0.2,
                                     [(0.1, 0.05)], sweep)
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < min(jsd) and x1 > max(jsd) and y0 < min(tvd) and y1 > max(tvd)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for t in ax.texts if "\u03bb" in t.get_text()]
    shown = " ".join(t.get_text() for t in texts)
    for lam in lambdas:  # every lambda is named once
        assert shown.count(f"{lam:g}") >= 1
    assert "0.0001, 0.001, 0.01" in shown and "10, 100" in shown  # the piles share one label
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        assert fig.bbox.contains(a.x0, a.y0) and fig.bbox.contains(a.x1, a.y1)
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_lambda_labels_group_only_near_points():
    labels = wp_figures.lambda_labels([(0, 0), (0.01, 0), (0.5, 0.5), (0.52, 0.5), (0.9, 0.1)],
                                      [1, 2, 3, 4, 5], near=0.05)
    assert [text for _, text in labels] == ["\u03bb 1, 2", "\u03bb 3, 4", "\u03bb 5"]
