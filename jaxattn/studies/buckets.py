"""Which padded lengths an analysis compiles for: few buckets, chosen for the rows at hand.

Each bucket costs every stage one compiled program (seconds each on a CPU, most of a cold run on
data sets of a few thousand sentences), while a coarser bucket costs only the padded positions
it adds. :func:`choose_buckets` keeps at most ``limit`` of the candidate lengths, those that pad
the analysed rows least.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def choose_buckets(widths: Sequence[int], candidates: Sequence[int], limit: int) -> tuple[int, ...]:
    """At most ``limit`` of ``candidates`` that minimise the rows' total padded width.

    Args:
      widths: <int>[N] each row's width before padding (its tokens, boundary markers included).
      candidates: increasing bucket lengths.
      limit: the most buckets to keep (>= 1).
    Returns:
      increasing buckets; the smallest candidate that holds the widest row is always among them
      (rows wider than every candidate are left to the batching, as before).
    """
    widths = np.asarray(widths, np.int64)
    candidates = sorted(int(c) for c in candidates)
    covering = [c for c in candidates if c >= widths.max()]
    if not covering:  # wider than every candidate: nothing to choose
        return tuple(candidates)
    useful = [c for c in candidates if c <= covering[0]]
    if len(useful) <= limit:
        return tuple(useful)
    m = len(useful)
    # rows[i]: how many rows fit bucket i but not bucket i - 1 (the first holds every row
    # up to its width).
    edges = np.searchsorted(useful, widths)  # index of the smallest bucket holding each row
    count = np.bincount(edges, minlength=m)
    inf = float("inf")
    # best[k][i]: least padded width of the rows up to useful[i] with k buckets, the last i.
    best = [[inf] * m for _ in range(limit + 1)]
    back = [[-1] * m for _ in range(limit + 1)]
    for i in range(m):
        best[1][i] = useful[i] * count[: i + 1].sum()
    for k in range(2, limit + 1):
        for i in range(m):
            for j in range(i):
                cost = best[k - 1][j] + useful[i] * count[j + 1: i + 1].sum()
                if cost < best[k][i]:
                    best[k][i], back[k][i] = cost, j
    k = min(range(1, limit + 1), key=lambda k: best[k][m - 1])
    chosen, i = [], m - 1
    while i >= 0 and k >= 1:
        chosen.append(useful[i])
        i, k = back[k][i], k - 1
    return tuple(sorted(chosen))
