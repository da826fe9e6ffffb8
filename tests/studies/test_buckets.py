"""The chosen buckets pad least among every allowed subset (brute force) and hold every row."""

import itertools

import numpy as np
import pytest

from jaxattn.studies.buckets import choose_buckets

CANDIDATES = (16, 24, 32, 48, 64, 96, 128)


def _padded(widths, buckets):
    b = np.asarray(buckets)
    return int(b[np.searchsorted(b, widths)].sum())


@pytest.mark.parametrize("seed,limit", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 3)])
def test_least_padding_of_every_subset(seed, limit):
    rng = np.random.default_rng(seed)
    widths = rng.integers(3, 90, size=200)
    got = choose_buckets(widths, CANDIDATES, limit)
    assert len(got) <= limit and max(got) >= widths.max() and list(got) == sorted(got)
    useful = [c for c in CANDIDATES if c <= 96]
    best = min(_padded(widths, s) for k in range(1, limit + 1)
               for s in itertools.combinations(useful, k) if max(s) >= widths.max())
    assert _padded(widths, got) == best


def test_few_candidates_or_wider_rows_are_kept():
    assert choose_buckets([5, 20], CANDIDATES, 3) == (16, 24)
    assert choose_buckets([500], CANDIDATES, 2) == CANDIDATES
    assert choose_buckets([10, 10, 60], CANDIDATES, 2) == (16, 64)
