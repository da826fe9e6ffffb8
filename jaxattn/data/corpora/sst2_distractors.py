"""SST + distractors: each SST-2 sentence placed among sentences of another corpus.

The analogue of Pruthi et al.'s (2020) SST+Wiki, built from files available offline: every SST-2
sentence (of at least 5 tokens, the ``sst2`` filter) is placed at a random slot among
``DISTRACTORS`` AG News descriptions of the Sports and Sci/Tech classes (``ag_news/test.csv``;
the ``ag_news`` data set uses the World and Business rows only, so no text is shared with it).
The label is the SST sentence's and its tokens are the rationale: the *impermissible* tokens of
deceptive-attention training, since they carry the label while the distractors carry nothing.

The construction is deterministic: split ``s`` draws its slots and distractors from
``numpy.random.default_rng([SEED, s])``; distractors are drawn with replacement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxattn.data.corpora.ag_news import ag_news_rows
from jaxattn.data.corpora.sst2 import load_sst2
from jaxattn.data.dataset import SPLITS, Dataset, Example
from jaxattn.data.files import data_file, line_error

DISTRACTORS = 2  # distractor sentences per example
SEED = 13
MIN_SST_TOKENS = 5
DISTRACTOR_CLASSES = ("2", "4")  # AG News Sports, Sci/Tech


def distractor_sentences(path: Path) -> list[tuple[str, ...]]:
    """The tokens of the Sports and Sci/Tech descriptions of an AG News CSV."""
    out = [tokens for _, cls, tokens in ag_news_rows(path) if cls in DISTRACTOR_CLASSES]
    if not out:
        raise line_error(path, 1, "no Sports or Sci/Tech rows to draw distractors from")
    return out


def place_among(
    sentences: list[Example], pool: list[tuple[str, ...]], rng: np.random.Generator
) -> list[Example]:
    """Each sentence at a random slot among ``DISTRACTORS`` sentences drawn from ``pool``; the
    rationale marks the sentence's own tokens."""
    out = []
    for ex in sentences:
        picks = [pool[i] for i in rng.integers(len(pool), size=DISTRACTORS)]
        slot = int(rng.integers(DISTRACTORS + 1))
        parts = picks[:slot] + [ex.tokens] + picks[slot:]
        marks = [int(i == slot) for i, part in enumerate(parts) for _ in part]
        tokens = tuple(tok for part in parts for tok in part)
        out.append(Example(tokens, ex.label, rationale=tuple(marks), uid=ex.uid))
    return out


def load_sst2_distractors(data_dir: Path | None) -> Dataset:
    sst = load_sst2(data_dir)
    path = data_file(data_dir, "ag_news/test.csv", "sst2_distractors")
    pool = distractor_sentences(path)
    splits = {}
    for s, name in enumerate(SPLITS):
        kept = [ex for ex in sst.splits[name] if len(ex.tokens) >= MIN_SST_TOKENS]
        splits[name] = place_among(kept, pool, np.random.default_rng([SEED, s]))
    return Dataset(
        name="sst2_distractors",
        task="binary",
        label_names=sst.label_names,
        splits=splits,
        source=f"{sst.source}; distractors: {path}",
        notes=(
            f"each SST-2 sentence (>= {MIN_SST_TOKENS} tokens) placed at a random slot among "
            f"{DISTRACTORS} AG News Sports/Sci-Tech descriptions (seed {SEED}); the rationale "
            "marks the SST tokens (impermissible for deceptive training); Pruthi et al. used "
            "Wikipedia sentences",
        ),
    )

