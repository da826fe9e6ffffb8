"""The asked-aspect task: the label is the class of the word after the asked aspect, and nothing
else (the count of class words, the position) gives it away."""

import numpy as np

from jaxattn.data.generators import (
    ASPECT_WORDS,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    make_synthetic_aspects,
)
from jaxattn.data.sources import load_dataset


def test_the_label_is_the_class_of_the_word_after_the_asked_aspect():
    data = make_synthetic_aspects(n_train=400, n_dev=10, n_test=10, seed=4)
    for ex in data.splits["train"]:
        (asked,) = ex.query
        at = [i for i, t in enumerate(ex.tokens) if t == asked]
        assert len(at) == 1 and asked in ASPECT_WORDS
        word = ex.tokens[at[0] + 1]
        assert ex.label == (1 if word in POSITIVE_WORDS else 0) and (
            word in POSITIVE_WORDS + NEGATIVE_WORDS)
        assert [i for i, r in enumerate(ex.rationale) if r] == [at[0] + 1]
        aspects = [t for t in ex.tokens if t in ASPECT_WORDS]
        assert 2 <= len(aspects) <= 4 and len(set(aspects)) == len(aspects)
        # every aspect is followed by its class word
        for i, t in enumerate(ex.tokens):
            if t in ASPECT_WORDS:
                assert ex.tokens[i + 1] in POSITIVE_WORDS + NEGATIVE_WORDS


def test_the_majority_of_class_words_is_a_weak_cue_only():
    """Counting class words (what an average of the states can do without the query) gets the
    label right far less often than reading the asked aspect's word."""
    data = make_synthetic_aspects(n_train=3000, n_dev=10, n_test=10, seed=0)
    right = []
    for ex in data.splits["train"]:
        pos = sum(t in POSITIVE_WORDS for t in ex.tokens)
        neg = sum(t in NEGATIVE_WORDS for t in ex.tokens)
        if pos != neg:
            right.append((pos > neg) == (ex.label == 1))
    assert 0.55 < np.mean(right) < 0.85
    assert 0.45 < np.mean([ex.label for ex in data.splits["train"]]) < 0.55


def test_registered_deterministic_and_a_pair_task():
    a, b = load_dataset("synthetic_aspects"), load_dataset("synthetic_aspects")
    assert a.task == "nli" and a.sizes() == {"train": 3000, "dev": 500, "test": 1000}
    assert a.splits["test"][:20] == b.splits["test"][:20]
