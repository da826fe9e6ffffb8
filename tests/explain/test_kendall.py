"""The vectorised Kendall tau-b equals scipy.stats.kendalltau row by row, ties and all."""

import warnings

import numpy as np
import pytest
import scipy.stats

from jaxattn.explain.agreement import kendall_tau
from jaxattn.explain.kendall import kendall_tau_b


def _scipy_rows(a, b, mask):
    out = np.full((2, len(a)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(a)):
            x, y = a[i][mask[i]], b[i][mask[i]]
            if len(x) >= 2:
                out[:, i] = tuple(scipy.stats.kendalltau(x, y))
    return out


@pytest.mark.parametrize("width", [6, 40, 70])
def test_equals_scipy_with_and_without_ties(width):
    rng = np.random.default_rng(width)
    n = 300
    a = rng.normal(size=(n, width))
    b = a * rng.normal(size=(n, 1)) + rng.normal(size=(n, width))
    a[::3] = np.round(a[::3], 0)  # ties in some rows: the asymptotic p-value with corrections
    b[::5] = np.round(b[::5] * 2, 0)
    b[7] = a[7]  # perfect agreement: min(dis, tot - dis) = 0
    b[8] = -a[8]
    a[9] = 1.0  # constant: undefined
    lengths = rng.integers(0, width + 1, size=n)
    lengths[:4] = [0, 1, 2, 3]
    mask = np.arange(width)[None] < lengths[:, None]
    mask[10] = rng.random(width) < 0.5  # real tokens need not be a prefix
    tau, p = kendall_tau_b(a, b, mask)
    want_tau, want_p = _scipy_rows(a, b, mask)
    np.testing.assert_allclose(tau, want_tau, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(p, want_p, rtol=1e-8, atol=1e-12, equal_nan=True)
    assert np.isnan(tau[:2]).all() and np.isnan(tau[9])


def test_nan_among_real_values_propagates_and_blocks_agree(monkeypatch):
    from jaxattn.explain import kendall

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 12)), rng.normal(size=(50, 12))
    mask = np.ones_like(a, bool)
    a[3, 4] = np.nan
    whole = kendall_tau_b(a, b, mask)
    monkeypatch.setattr(kendall, "BLOCK_ELEMENTS", 12 * 12 * 7)  # blocks of 7 rows
    blocked = kendall_tau_b(a, b, mask)
    np.testing.assert_array_equal(whole[0], blocked[0])
    assert np.isnan(whole[0][3]) and np.isnan(whole[1][3])
    np.testing.assert_allclose(kendall_tau(a, b, mask)[0], _scipy_rows(a, b, mask)[0],
                               rtol=1e-10, equal_nan=True)
