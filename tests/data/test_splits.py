"""Seeded, stratified carving of splits."""

import numpy as np
import pytest

from jaxattn.data.dataset import Example
from jaxattn.data.splits import carve, carve_groups, stratified_partition, stratified_subset


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


def test_subset_of_a_split_stored_class_by_class_is_mixed_and_nested():
    labels = np.array([0] * 300 + [1] * 100)  # sorted by label, as IMDB's train split is
    sub = stratified_subset(labels, 40, seed=0)
    assert len(sub) == 40 and np.all(np.diff(sub) > 0)
    assert int(labels[sub].sum()) == 10  # the 25% share of positives
    # any n: within one example of every class's share; larger n contain smaller ones
    for n in (1, 7, 33, 399):
        picked = stratified_subset(labels, n, seed=0)
        assert abs(labels[picked].sum() - n / 4) <= 1
        assert set(picked) <= set(stratified_subset(labels, n + 1, seed=0))
    assert np.array_equal(stratified_subset(labels, 500), np.arange(400))
    assert not np.array_equal(sub, stratified_subset(labels, 40, seed=1))


def test_limit_train_keeps_both_classes(tmp_path):
    from jaxattn.config import DataConfig
    from jaxattn.data.prepare import prepare

    rows = [f"{'good fine' if i < 30 else 'bad awful'} film {i},{int(i < 30)}" for i in range(40)]
    path = tmp_path / "sorted.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    prepared = prepare(DataConfig(name="file", train_file=str(path), limit_train=8))
    labels = np.asarray(prepared.splits["train"].labels)
    assert len(labels) == 8 and 0 < labels.sum() < 8
