"""The real files of the shared data directory (skipped where it is absent): counts as its README
states them, before the protocol's length filter."""

import collections

import pytest

from jaxattn.data.corpora import ag_news, babi, eraser, newsgroups, snli, sst2


def _labels(examples):
    return collections.Counter(ex.label for ex in examples)


def test_sst2(real_data):
    ds = sst2.load_sst2(real_data)
    assert ds.sizes() == {"train": 6920, "dev": 872, "test": 1821}
    assert _labels(ds.splits["train"]) == {0: 3310, 1: 3610}
    assert _labels(ds.splits["test"]) == {0: 912, 1: 909}


def test_20news_sports(real_data):
    posts = [
        newsgroups.parse_newsgroups(real_data / "20news_sports" / f"{s}.jsonl")
        for s in ("train", "test")
    ]
    assert [len(p) for p in posts] == [1197, 796]
    assert collections.Counter(label for _, label, _ in posts[0]) == {0: 597, 1: 600}
    ds = newsgroups.load_20news_sports(real_data)
    (dropped,) = [int(n.split()[0]) for n in ds.notes if "empty after stripping" in n]
    assert sum(ds.sizes().values()) + dropped == 1993
    assert 0 < dropped < 100
    n = sum(ds.sizes().values())
    assert abs(ds.sizes()["test"] - 0.2 * n) <= 2 and abs(ds.sizes()["dev"] - 0.16 * n) <= 2


def test_ag_news(real_data):
    ds = ag_news.load_ag_news(real_data)
    assert ds.sizes() == {"train": 2660, "dev": 380, "test": 760}
    assert _labels(ds.splits["test"]) == {0: 380, 1: 380}


def test_snli(real_data):
    dev, skipped = snli.parse_snli(real_data / "snli" / "dev.jsonl")
    assert len(dev) == 9842 and skipped == 0
    assert _labels(dev) == {0: 3329, 1: 3235, 2: 3278}
    ds = snli.load_snli(real_data)
    assert ds.sizes()["train"] + ds.sizes()["dev"] == 9842 and ds.sizes()["test"] == 9824
    assert _labels(ds.splits["test"]) == {0: 3368, 1: 3219, 2: 3237}


@pytest.mark.parametrize("task, train", [(1, 10000), (2, 10000), (3, 1000)])
def test_babi(real_data, task, train):
    ds = babi.load_babi(real_data, task)
    sizes = ds.sizes()
    assert sizes["train"] + sizes["dev"] == train and sizes["dev"] == round(0.15 * train)
    assert sizes["test"] == 1000
    assert len(ds.label_names) == 6  # the six places
    for ex in ds.splits["test"][:200]:
        marked = [t for t, r in zip(ex.tokens, ex.rationale) if r]
        assert marked.count(".") == task and ds.label_names[ex.label] in marked
    assert ("using the 1k one" in " ".join(ds.notes)) == (task == 3)


def test_eraser_movies(real_data):
    ds = eraser.load_eraser_movies(real_data)
    assert ds.sizes() == {"train": 1600, "dev": 200, "test": 199}
    assert _labels(ds.splits["test"]) == {0: 100, 1: 99}
    examples = [ex for split in ds.splits.values() for ex in split]
    assert all(sum(ex.rationale) < len(ex.tokens) for ex in examples)
    # One training review has no evidence at all in ERASER.
    assert [ex.uid for ex in examples if not any(ex.rationale)] == ["eraser_movies/posR_161.txt"]
