"""Seeded, stratified carving of splits."""

import numpy as np
import pytest

from jaxattn.data.dataset import Example
from jaxattn.data.splits import carve, carve_groups, stratified_partition


def test_partition_covers_every_index_once_and_keeps_class_shares():
    labels = np.array([0] * 300 + [1] * 100)
    parts = stratified_partition(labels, [0.7, 0.1, 0.2], seed=3)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(400))
    assert [len(p) for p in parts] == [280, 40, 80]
    assert [int(labels[p].sum()) for p in parts] == [70, 10, 20]  # 25% positives in each


def test_partition_is_deterministic_per_seed():
    labels = np.arange(50) % 2
    a = stratified_partition(labels, [0.5, 0.5], seed=1)
    b = stratified_partition(labels, [0.5, 0.5], seed=1)
    c = stratified_partition(labels, [0.5, 0.5], seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_partition_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_partition([0, 1], [0.5, 0.6])


def test_carve_names_parts_and_keeps_order():
    examples = [Example(("w",), i % 2, uid=str(i)) for i in range(20)]
    parts = carve(examples, {"train": 0.8, "test": 0.2}, seed=0)
    assert [len(parts["train"]), len(parts["test"])] == [16, 4]
    for part in parts.values():
        ids = [int(ex.uid) for ex in part]
        assert ids == sorted(ids)


def test_carve_groups_moves_whole_groups():
    groups = [[f"s{g}q{q}" for q in range(5)] for g in range(20)]
    rest, moved = carve_groups(groups, 0.15, seed=0)
    assert len(moved) == 15 and len(rest) == 85
    moved_stories = {item.split("q")[0] for item in moved}
    assert len(moved_stories) == 3
    assert not moved_stories & {item.split("q")[0] for item in rest}
