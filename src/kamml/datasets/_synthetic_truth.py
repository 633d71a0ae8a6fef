"""Exact expectations of the synthetic world: value, referral value and P(alive), with no sampling.

Private module of `kamml.datasets.synthetic`. Given an account's latent state at the end of the history
(alive or not, seats) and its true parameters, its expected value over a horizon is a sum of closed-form
integrals over the seasonal segments (`own_value`). The referral value integrates the value of a newly
referred account, averaged over the population by Gauss-Hermite quadrature over the log size (the other
traits enter through their closed-form conditional means), along the horizon by Gauss-Legendre quadrature
per seasonal segment (`referral_value`): deterministic, accurate to about 1e-9 relative.
"""

from __future__ import annotations

import numpy as np

from kamml.datasets._synthetic_params import WorldParams, population_means
from kamml.datasets._synthetic_sim import Calendar

__all__ = ["new_account_curve", "own_value", "p_alive", "p_order", "referral_value"]


def _g0(x: np.ndarray) -> np.ndarray:
    """(1 - exp(-x)) / x, stable near 0 (the integral of exp(-x v) over v in [0, 1])."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x > 1e-8, x, 1.0)
    return np.where(x > 1e-8, -np.expm1(-safe) / safe, 1.0 - x / 2)


def _g1(x: np.ndarray) -> np.ndarray:
    """(1 - exp(-x) (1 + x)) / x**2, stable near 0 (the integral of v exp(-x v) over v in [0, 1])."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x > 1e-2, x, 1.0)
    direct = -(np.expm1(-safe) + safe * np.exp(-safe)) / safe**2
    series = 1 / 2 - x / 3 + x**2 / 8 - x**3 / 30 + x**4 / 144
    return np.where(x > 1e-2, direct, series)


def own_value(
    cal: Calendar,
    lam: np.ndarray,
    mu: np.ndarray,
    price_per_seat: np.ndarray,
    seats: np.ndarray,
    growth: np.ndarray,
    order_multiplier: float,
) -> np.ndarray:
    """Expected amount of an alive account's own rows over the horizon of `cal` (origin = the end).

    E[V] = M m lam sum_k s_k int_{segment k} exp(-mu t) (seats + growth t) dt: the account orders at rate
    lam s(t) while alive (survival exp(-mu t)), each order worth M m seats(t) in expectation.
    """
    total = np.zeros(np.shape(lam))
    for t0, d, s in zip(cal.breaks[:-1], np.diff(cal.breaks), cal.season, strict=True):
        x = mu * d
        part = (seats + growth * t0) * d * _g0(x) + growth * d * d * _g1(x)
        total += s * np.exp(-mu * t0) * part
    return order_multiplier * price_per_seat * lam * total


def _gauss_legendre(breaks: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights with `q` points on each segment between `breaks`."""
    xi, wi = np.polynomial.legendre.leggauss(q)
    lo, hi = breaks[:-1, None], breaks[1:, None]
    nodes = lo + (hi - lo) * (xi + 1) / 2
    weights = (hi - lo) / 2 * wi
    return nodes.ravel(), weights.ravel()


def new_account_curve(
    params: WorldParams, cal: Calendar, q: int = 10, n_x: int = 48
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected value, until the horizon's end, of an account referred at time t, per industry.

    Returns Gauss-Legendre nodes ``t`` over the horizon, their weights, and ``W`` of shape
    (n_industries, n_nodes): the expected amount of all rows of a new account of that industry created at
    ``t`` (its first order at creation, then its orders until it churns or the horizon ends), averaged over
    the population of new accounts. It never gets sales effort.
    """
    p = params
    t_nodes, t_weights = _gauss_legendre(cal.breaks, q)
    xi, wi = np.polynomial.legendre.leggauss(q)
    seg_lo, seg_hi = cal.breaks[:-1], cal.breaks[1:]
    lo = np.maximum(t_nodes[:, None], seg_lo[None, :])  # (n_t, n_seg)
    hi = np.broadcast_to(seg_hi[None, :], lo.shape)
    width = np.where(hi > lo, hi - lo, 0.0)
    tau = lo[..., None] + width[..., None] * (xi + 1) / 2  # (n_t, n_seg, q)
    w_tau = (width[..., None] / 2 * wi) * cal.season[None, :, None]
    v = tau - t_nodes[:, None, None]
    pop = population_means(p, n_x)
    shape = p.dropout_shape
    c0 = float(np.sum(pop["weight"] * pop["price"] * pop["seats"]))
    c1 = np.zeros(t_nodes.size)
    for w, price, rate, seats, growth, mu in zip(
        pop["weight"], pop["price"], pop["rate"], pop["seats"], pop["growth"], pop["mu"], strict=True
    ):
        survive = (1 + mu * v / shape) ** (-shape)
        c1 += w * price * rate * np.sum(w_tau * survive * (seats + growth * v), axis=(1, 2))
    ind_price = np.asarray(p.industry_price)[:, None]
    ind_rate = np.asarray(p.industry_rate)[:, None]
    curve = p.order_multiplier * ind_price * (c0 + ind_rate * c1[None, :])
    return t_nodes, t_weights, curve


def referral_value(
    params: WorldParams,
    cal: Calendar,
    rho: np.ndarray,
    mu: np.ndarray,
    industry: np.ndarray,
    curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Expected value over the horizon of the accounts an alive account refers in the horizon.

    R = int_0^H rho exp(-mu t) W_I(t) dt, with W_I the value of a new account referred at t by an account
    of industry I (its industry is the referrer's with probability `referral_same_industry`).
    """
    t_nodes, t_weights, w_ind = curve if curve is not None else new_account_curve(params, cal)
    probs = np.asarray(params.industry_probs) / np.sum(params.industry_probs)
    same = params.referral_same_industry
    w_ref = same * w_ind + (1 - same) * (probs @ w_ind)[None, :]  # (n_industries, n_nodes)
    out = np.empty(np.shape(rho))
    step = max(1, 2_000_000 // max(t_nodes.size, 1))
    for i in range(0, out.size, step):
        sl = slice(i, i + step)
        decay = np.exp(-np.outer(mu[sl], t_nodes)) * t_weights
        out[sl] = rho[sl] * np.sum(decay * w_ref[industry[sl]], axis=1)
    return out


def p_alive(
    cal: Calendar,
    period_breaks: np.ndarray,
    served: np.ndarray,
    last_event: np.ndarray,
    lam: np.ndarray,
    mu: np.ndarray,
    rho: np.ndarray,
    up_lam: np.ndarray,
    up_mu: np.ndarray,
    up_rho: np.ndarray,
) -> np.ndarray:
    """P(alive at the end | no order and no referral since `last_event`, true parameters, served path).

    The oracle's posterior: with hazard mu(t) and observable event intensity kappa(t) (orders plus
    referrals), P = S / (S + D) where S = exp(-int (mu + kappa)) from the last event to the end and
    D = int mu(t) exp(-int_{last}^{t} (mu + kappa)) dt, both piecewise closed-form.
    """
    n = lam.size
    exponent = np.zeros(n)
    death = np.zeros(n)
    starts = cal.breaks[:-1]
    period = np.searchsorted(period_breaks, starts, side="right") - 1
    for j, (t0, t1, s) in enumerate(zip(starts, cal.breaks[1:], cal.season, strict=True)):
        d = np.clip(t1 - np.maximum(t0, last_event), 0.0, None)
        z = served[:, period[j]]
        mu_j = mu * (1 - up_mu * z)
        c = mu_j + lam * (1 + up_lam * z) * s + rho * (1 + up_rho * z)
        death += mu_j * np.exp(-exponent) * d * _g0(c * d)
        exponent += c * d
    survive = np.exp(-exponent)
    return survive / (survive + death)


def p_order(cal: Calendar, lam: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """P(at least one order over the span of `cal` | alive at its start), unserved.

    No order means surviving the span without one, S = exp(-int (mu + lam s)), or dropping out before
    the first, D = int mu exp(-int_0^t (mu + lam s)) dt; both piecewise closed-form as in `p_alive`.
    """
    exponent = np.zeros(np.shape(lam))
    death = np.zeros(np.shape(lam))
    for d, s in zip(np.diff(cal.breaks), cal.season, strict=True):
        c = mu + lam * s
        death += mu * np.exp(-exponent) * d * _g0(c * d)
        exponent += c * d
    return np.clip(1.0 - np.exp(-exponent) - death, 0.0, 1.0)
