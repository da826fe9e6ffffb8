"""Figures: valid PNGs for every grouping, including degenerate groups."""

from __future__ import annotations

import numpy as np

from jaxattn.report import plots

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
