"""The team's demand at many prices from sorted corners equals the direct sum over accounts x prices."""

from __future__ import annotations

import numpy as np
import pytest

from kamml.spark.allocation import _sorted_demand


def direct(a, k, lo, hi, pf, t):
    """The dense evaluation (n x c): each account's clipped hours and its slope where it moves."""
    te = t[None, :] if pf is None else np.maximum(t[None, :], pf[:, None])
    with np.errstate(over="ignore", invalid="ignore"):
        x = k[:, None] * (a[:, None] - te)
    h = np.minimum(np.maximum(x, lo[:, None]), hi)
    moving = (x > lo[:, None]) & (x < hi)
    if pf is not None:
        moving &= t[None, :] > pf[:, None]
    return h.sum(axis=0), (k[:, None] * moving).sum(axis=0)


@pytest.mark.parametrize("cap", [np.inf, 3.0, 0.5])
@pytest.mark.parametrize("reps", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_sorted_demand_equals_the_direct_sum(cap, reps, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    a = rng.normal(2, 2, n)
    k = rng.lognormal(0, 1, n)
    lo = np.where(rng.random(n) < 0.5, 0.0, np.minimum(rng.random(n), 0.9 * cap))
    pf = np.where(rng.random(n) < 0.4, -np.inf, rng.normal(2, 2, n)) if reps else None
    t = rng.normal(2, 3, 17)
    t[0], t[1] = np.nan, -np.inf  # a candidate left empty, and price 0
    t[2] = a[0] - lo[0] / k[0]  # exactly an account's corner (the search's first candidate is one)
    t[3] = t[4]  # the same price twice
    if pf is not None:  # a rep's price above an account's floor corner, and exactly a candidate
        pf[-1] = a[-1] - lo[-1] / k[-1] + 0.5
        t[5] = pf[-1]
    h, slope, err = _sorted_demand(a, k, lo, cap, pf, t)
    want_h, want_slope = direct(a, k, lo, cap, pf, t)
    assert np.isnan(h[0])
    assert np.isnan(want_h[0])
    # h[1]: the caps' (or the reps' prices') sum, infinite without a cap or reps
    np.testing.assert_allclose(h[1:], want_h[1:], rtol=1e-12, atol=1e-12)
    moving = np.ones(17, dtype=bool)
    moving[[0, 2]] = False  # at a corner the slope may count the account on either side
    np.testing.assert_allclose(slope[moving], want_slope[moving], rtol=1e-12, atol=1e-12)
    finite = np.isfinite(want_h)
    assert (np.abs(h[finite] - want_h[finite]) <= err[finite]).all()


def test_sorted_demand_without_accounts_is_zero():
    h, slope, err = _sorted_demand(
        np.zeros(0), np.zeros(0), np.zeros(0), np.inf, None, np.array([np.nan, 1.0])
    )
    assert h.tolist() == [0.0, 0.0]
    assert slope.tolist() == [0.0, 0.0]
    assert err.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("scale", [1e9, 1e10, 1e12, 1e15])
def test_the_error_bound_covers_an_account_of_a_huge_effort_scale(scale):
    """Running sums keep what they round away from an account at its floor (a review's find): the
    hours can be off by far more than the price search's band, and the bound must say so."""
    rng = np.random.default_rng(1)
    a = np.append(rng.normal(2, 1, 1000), np.log(1000 / scale))
    k = np.append(rng.lognormal(1, 0.5, 1000), scale)
    lo = np.zeros(1001)
    t = np.linspace(0.5, 3.0, 17)
    h, _, err = _sorted_demand(a, k, lo, np.inf, None, t)
    want, _ = direct(a, k, lo, np.inf, None, t)
    miss = np.abs(h - want)
    assert (miss <= err).all()
    if scale >= 1e12:  # the case the search must catch: off by more than a relative 1e-9
        assert (miss > 1e-9 * want).any()
