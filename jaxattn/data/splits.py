"""Carving train/dev/test splits out of data that ships without them, deterministically.

Several sources lack a split the protocol needs (AG News has only its test file, SNLI no training
set, the 20 Newsgroups study re-splits the pooled posts, bAbI and the registry packages have no dev
set). The splits here are seeded and stratified by label, so the same seed always gives the same
partition and every part keeps the class balance of the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from jaxattn.data.dataset import Example

T = TypeVar("T")

#: The seed every carved split in the registry uses (documented in each data set's notes).
SPLIT_SEED = 0


def stratified_partition(
    labels: Sequence[int], fractions: Sequence[float], seed: int = SPLIT_SEED
) -> list[np.ndarray]:
    """Partitions ``range(len(labels))`` into ``len(fractions)`` parts, class by class.

    Within each class the indices are shuffled with ``seed`` and cut at the rounded cumulative
    fractions, so every part holds (up to rounding) the same share of every class.

    Returns:
      one sorted <int64>[n_part] index array per fraction; together they cover every index once.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(np.int64)
        for part, chunk in zip(parts, np.split(members, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def stratified_subset(labels: Sequence[int], n: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """``n`` of ``range(len(labels))`` holding every class in its share (up to one example).

    Each class is shuffled with ``seed`` and its members spread evenly over [0, 1); the ``n``
    smallest positions are kept, so any prefix of that order is stratified. A split stored
    class by class (IMDB's) thus gives a mixed subset, where its first ``n`` would be one class.

    Returns:
      sorted <int64>[min(n, len(labels))] indices.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    position = np.zeros(len(labels))
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.sort(np.argsort(position, kind="stable")[:n])


def carve(
    examples: Sequence[Example], fractions: dict[str, float], seed: int = SPLIT_SEED
) -> dict[str, list[Example]]:
    """Splits ``examples`` into named parts (e.g. ``{"train": .7, "dev": .1, "test": .2}``).

    Stratified by ``Example.label``; the original order is kept inside each part.
    """
    parts = stratified_partition([ex.label for ex in examples], list(fractions.values()), seed)
    return {name: [examples[i] for i in idx] for name, idx in zip(fractions, parts)}


def carve_groups(
    groups: Sequence[Sequence[T]], fraction: float, seed: int = SPLIT_SEED
) -> tuple[list[T], list[T]]:
    """Moves a seeded ``fraction`` of whole groups (e.g. bAbI stories) out; returns (rest, moved).

    Splitting by group keeps items that share context (questions about one story) on one side.
    """
    rng = np.random.default_rng(seed)
    n_moved = int(round(fraction * len(groups)))
    moved = set(rng.permutation(len(groups))[:n_moved].tolist())
    rest = [item for g, group in enumerate(groups) if g not in moved for item in group]
    out = [item for g, group in enumerate(groups) if g in moved for item in group]
    return rest, out
