"""Kendall tau-b and its p-value for every row at once, equal to ``scipy.stats.kendalltau``.

The report computes tau for every analysed instance and pair of importances; scipy, one call
per row, took most of the report's time (about 1.5 ms a row). Here the pairs of each row's real
tokens are compared at once: the concordant-minus-discordant count, the ties and the tie-group
statistics of scipy's variance are sums over the ``T x T`` sign matrices. The p-value follows
scipy's ``method='auto'``: exact (scipy's own exact distribution, once per distinct
``(n, concordant)``) when neither vector has ties and ``n <= 33`` or at most one pair is
discordant or concordant; otherwise the normal approximation with scipy's tie corrections.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.stats
from scipy.special import ndtr

try:  # scipy's exact null distribution (private; scipy 1.7 to at least 1.17)
    from scipy.stats._mstats_basic import _kendall_p_exact
except ImportError:  # pragma: no cover - a later scipy: one kendalltau call per exact row
    _kendall_p_exact = None

# Rows per block: bounds the [rows, T, T] comparison arrays to about this many elements.
BLOCK_ELEMENTS = 1 << 18


@functools.cache
def _exact_p(n: int, concordant: int) -> float:
    return float(_kendall_p_exact(n, concordant, "two-sided"))


def _tie_stats(x: np.ndarray, valid: np.ndarray):
    """Per row: (tied pairs, sum cnt(cnt-1)(cnt-2), sum cnt(cnt-1)(2cnt+5)) over tie groups.

    ``cnt_i`` is the size of element i's group; a group of size c appears c times, so each
    group statistic is a per-element sum divided by c.
    """
    same = (x[:, :, None] == x[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    cnt = same.sum(-1).astype(np.float64)  # [R, T], 0 off the real tokens
    c = np.where(valid, cnt, 1.0)
    per = lambda f: np.where(valid, f / c, 0.0).sum(-1)  # noqa: E731
    return per(c * (c - 1) / 2), per(c * (c - 1) * (c - 2)), per(c * (c - 1) * (2 * c + 5))


def _block(x: np.ndarray, y: np.ndarray, valid: np.ndarray):
    n = valid.sum(-1).astype(np.float64)
    # Booleans over ordered pairs (each unordered pair counted twice, halved below): a byte per
    # pair instead of a float keeps the [R, T, T] arrays small.
    pair = valid[:, :, None] & valid[:, None, :]
    gx, lx = x[:, :, None] > x[:, None, :], x[:, :, None] < x[:, None, :]
    gy, ly = y[:, :, None] > y[:, None, :], y[:, :, None] < y[:, None, :]
    con = np.count_nonzero(pair & ((gx & gy) | (lx & ly)), axis=(1, 2)) / 2
    dis = np.count_nonzero(pair & ((gx & ly) | (lx & gy)), axis=(1, 2)) / 2
    con_minus_dis = con - dis
    xtie, x0, x1 = _tie_stats(x, valid)
    ytie, y0, y1 = _tie_stats(y, valid)
    tot = n * (n - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.clip(con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie), -1.0, 1.0)
        m = n * (n - 1.0)
        var = ((m * (2 * n + 5) - x1 - y1) / 18 + (2 * xtie * ytie) / m
               + x0 * y0 / (9 * m * (n - 2)))
        p = 2 * ndtr(-np.abs(con_minus_dis / np.sqrt(var)))
    no_ties = (xtie == 0) & (ytie == 0)
    exact = no_ties & ((n <= 33) | (np.minimum(dis, tot - dis) <= 1))
    for r in np.flatnonzero(exact & (n >= 2)):
        if _kendall_p_exact is None:
            p[r] = scipy.stats.kendalltau(x[r][valid[r]], y[r][valid[r]], method="exact")[1]
        else:
            p[r] = _exact_p(int(n[r]), int(tot[r] - dis[r]))
    undefined = (n < 2) | (xtie == tot) | (ytie == tot)
    return np.where(undefined, np.nan, tau), np.where(undefined, np.nan, p)


def kendall_tau_b(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and its two-sided p-value over each row's real tokens.

    Args:
      a, b: <float>[N, T] the two scores per token.
      mask: <bool>[N, T] the real tokens of each row.
    Returns:
      (tau <float64>[N], p <float64>[N]); NaN for a row with fewer than two real tokens, a
      constant vector, or a NaN among its real values (as scipy's ``nan_policy='propagate'``).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mask = np.asarray(mask, bool)
    tau, p = np.full(len(a), np.nan), np.full(len(a), np.nan)
    step = max(1, BLOCK_ELEMENTS // max(1, a.shape[-1] ** 2))
    for start in range(0, len(a), step):
        rows = slice(start, start + step)
        x, y, valid = a[rows], b[rows], mask[rows]
        has_nan = (valid & (np.isnan(x) | np.isnan(y))).any(-1)
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN rows: overwritten below
            tau[rows], p[rows] = _block(np.where(valid, x, 0.0), np.where(valid, y, 0.0), valid)
        tau[rows] = np.where(has_nan, np.nan, tau[rows])
        p[rows] = np.where(has_nan, np.nan, p[rows])
    return tau, p
