"""SST-2 with a planted shortcut: the planted-token test of Bastings et al. (2022).

The rule (single-token variant): a shortcut word stands for each class, ``SHORTCUT_WORDS[label]``
("tractor" for negative, "zebra" for positive: ordinary words that occur nowhere in SST-2 and
that the MiniLM WordPiece vocabulary holds whole, so every tokenizer sees one token). Of the
SST-2 sentences of at least ``MIN_SST_TOKENS`` tokens (the ``sst2`` length filter):

* train and dev: exactly ``round(FRACTION * n)`` sentences of the split, drawn without
  replacement, get their label's word inserted at a uniformly drawn slot (before token 0, 1,
  ..., or after the last); the others are unchanged;
* test: every sentence gets its label's word the same way (the planted test set; the stage
  ``shortcut`` compares it with the same texts without the word, :func:`counterfactual`).

Split ``s`` (0 train, 1 dev, 2 test) draws from ``numpy.random.default_rng([SEED, s])``: first
the planted rows, then one slot per planted row in row order. The planted position is the
example's ``rationale`` (1 at the inserted word, 0 elsewhere; all 0 for an unplanted text): the
ground truth a salience method should rank first, never an input of the model. Where the word
always predicts the label, a model can reach the training accuracy of the planted rows without
reading the sentence, and the test set shows whether it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxattn.data.corpora.sst2 import load_sst2
from jaxattn.data.dataset import SPLITS, DataError, Dataset, Example

SHORTCUT_WORDS = ("tractor", "zebra")  # index = the label the word stands for
FRACTION = 0.2  # share of train and dev sentences planted
SEED = 29
MIN_SST_TOKENS = 5
COUNTERFACTUALS = ("removed", "against")


def plant_shortcut(
    examples: Sequence[Example],
    fraction: float,
    rng: np.random.Generator,
    words: Sequence[str] = SHORTCUT_WORDS,
) -> list[Example]:
    """``examples`` with ``words[label]`` inserted into exactly ``round(fraction * n)`` of them.

    The planted rows are drawn without replacement, then one insertion slot per planted row in
    row order (slot ``p`` in ``0..len(tokens)``: the word becomes token ``p``). Every returned
    example carries a rationale marking the planted word (all 0 when nothing was planted).
    """
    if not 0.0 <= fraction <= 1.0:
        raise DataError(f"shortcut fraction must lie in [0, 1], got {fraction}")
    n = len(examples)
    chosen = np.sort(rng.choice(n, size=round(fraction * n), replace=False))
    slots = {int(i): int(rng.integers(len(examples[i].tokens) + 1)) for i in chosen}
    out = []
    for i, ex in enumerate(examples):
        tokens, marks = list(ex.tokens), [0] * len(ex.tokens)
        if i in slots:
            tokens.insert(slots[i], words[ex.label])
            marks.insert(slots[i], 1)
        out.append(Example(tuple(tokens), ex.label, ex.query, tuple(marks), ex.uid))
    return out


def counterfactual(
    examples: Sequence[Example], mode: str, words: Sequence[str] = SHORTCUT_WORDS
) -> list[Example]:
    """The same texts with their planted word ``removed`` (the text as it was before planting;
    rationale all 0) or replaced by the word of another class, ``against`` the label (binary:
    the other class; the rationale still marks it). Unplanted texts stay as they are."""
    if mode not in COUNTERFACTUALS:
        raise DataError(f"counterfactual mode must be one of {', '.join(COUNTERFACTUALS)}, "
                        f"got {mode!r}")
    out = []
    for ex in examples:
        marks = ex.rationale or (0,) * len(ex.tokens)
        if mode == "removed":
            kept = [(t, 0) for t, m in zip(ex.tokens, marks) if not m]
            tokens, marks = tuple(t for t, _ in kept), tuple(m for _, m in kept)
        else:
            other = words[(ex.label + 1) % len(words)]
            tokens = tuple(other if m else t for t, m in zip(ex.tokens, marks))
        out.append(Example(tokens, ex.label, ex.query, tuple(marks), ex.uid))
    return out


def load_sst2_shortcut(data_dir: Path | None) -> Dataset:
    sst = load_sst2(data_dir)
    present = {t for exs in sst.splits.values() for ex in exs for t in ex.tokens}
    clash = sorted(set(SHORTCUT_WORDS) & present)
    if clash:  # the ground truth would not be unique
        raise DataError(f"sst2_shortcut: the shortcut word(s) {', '.join(clash)} occur in SST-2")
    splits = {}
    for s, name in enumerate(SPLITS):
        kept = [ex for ex in sst.splits[name] if len(ex.tokens) >= MIN_SST_TOKENS]
        fraction = 1.0 if name == "test" else FRACTION
        splits[name] = plant_shortcut(kept, fraction, np.random.default_rng([SEED, s]))
    return Dataset(
        name="sst2_shortcut",
        task="binary",
        label_names=sst.label_names,
        splits=splits,
        source=f"{sst.source}; shortcut planted by jaxattn.data.corpora.sst2_shortcut "
               f"(seed {SEED})",
        notes=(
            f"planted shortcut (Bastings et al. 2022): {SHORTCUT_WORDS[1]!r} in positive and "
            f"{SHORTCUT_WORDS[0]!r} in negative texts at a random slot, in {FRACTION:.0%} of "
            "train and dev sentences and every test sentence (>= "
            f"{MIN_SST_TOKENS} tokens); the rationale marks the planted word",
        ),
    )
