"""Data sets the project generates itself from a seed, so tests and demos need no files.

``synthetic``: binary classification with planted rationale tokens. Each text is a run of neutral
filler words with a few class-bearing words planted at random places; the label is the class that
has more planted words. The rationale mask marks the planted words, so the ground-truth importance
of every token is known.
"""

from __future__ import annotations

import numpy as np

from jaxattn.data.dataset import Dataset, Example

POSITIVE_WORDS = ("excellent", "superb", "delightful", "moving", "brilliant", "charming", "gripping")
NEGATIVE_WORDS = ("dreadful", "boring", "clumsy", "tedious", "awful", "bland", "lifeless")
FILLER_WORDS = tuple(
    "the a film movie story plot it this that was is and of to in on with its cast scene "
    "director actor script ending music camera one some very quite rather who which as by "
    "an at for from had has have been be about into than then there their they them".split()
)
# Words planted at the same rate in both classes: frequent but uninformative, so a model must
# find the class words rather than any rare word.
DECOY_WORDS = ("surprisingly", "honestly", "frankly", "overall", "certainly", "simply")


def _synthetic_example(rng: np.random.Generator, uid: str) -> Example:
    label = int(rng.integers(2))
    length = int(rng.integers(8, 33))
    n_signal = int(rng.integers(1, 4))
    n_counter = int(rng.integers(0, n_signal))  # strictly fewer words of the other class
    n_decoy = int(rng.integers(0, 3))
    own = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
    other = NEGATIVE_WORDS if label == 1 else POSITIVE_WORDS
    tokens = list(rng.choice(FILLER_WORDS, size=length))
    rationale = [0] * length
    planted = (
        [(w, 1) for w in rng.choice(own, n_signal)]
        + [(w, 1) for w in rng.choice(other, n_counter)]
        + [(w, 0) for w in rng.choice(DECOY_WORDS, n_decoy)]
    )
    places = rng.choice(length, size=len(planted), replace=False)
    for (word, is_rationale), place in zip(planted, places):
        tokens[place] = str(word)
        rationale[place] = is_rationale
    return Example(tokens=tuple(str(t) for t in tokens), label=label, rationale=tuple(rationale), uid=uid)


def make_synthetic(
    n_train: int = 3000, n_dev: int = 500, n_test: int = 1000, seed: int = 0
) -> Dataset:
    """The planted-rationale binary task (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    splits = {
        name: [_synthetic_example(rng, f"{name}:{i}") for i in range(n)] for name, n in sizes.items()
    }
    return Dataset(
        name="synthetic",
        task="binary",
        label_names=("negative", "positive"),
        splits=splits,
        source=f"generated (jaxattn.data.generators.make_synthetic, seed={seed})",
        notes=("rationale = planted class words (ground-truth importance)",),
    )
