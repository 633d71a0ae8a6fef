"""Split the team's sales hours across accounts to maximise the expected gain, exactly and fast.

Each account responds to effort with diminishing returns (DESIGN §6)::

    gain_i(h) = stake_i * (1 - exp(-h / k_i))

and the optimizer maximises ``sum_i gain_i(h_i)`` subject to

- the team's hours: ``sum_i h_i <= hours``;
- each rep's capacity: ``sum_{owner_i = r} h_i <= capacity[r]`` (accounts without an owner, or whose owner
  has no capacity, face only the team limit); owners and reps are compared by `rep_name`, so an owner
  read as the number 101 or 101.0, or as the text "101.0", is rep ``"101"``;
- a floor and a cap per account: ``floor_i <= h_i <= cap_i``.

The problem is concave and separable, so it is solved exactly by prices (Lagrange multipliers) rather than
by a generic solver. At a price ``lam`` per hour an account takes the hours where its marginal gain
``stake/k * exp(-h/k)`` equals the price, ``h = clip(k * ln(stake / (k * lam)), floor, cap)``. Rep ``r``'s
accounts face ``max(nu, p_r)``, where ``p_r`` is the price at which the rep uses exactly its capacity (0 if
it cannot fill it) and ``nu`` the team's price. All ``p_r`` are found at once by a vectorised, safeguarded
Newton-bisection search on the log-price (segment sums with `numpy.bincount`), then ``nu`` by the same
search on the team's total. Hours in use are within a relative 1e-9 of a binding limit, never above it;
when the team's price is found to the last bit of its logarithm and the hours still fall short (scales
of 1e10 hours and more, where one ulp of the log-price is worth more than that tolerance), the hours are
interpolated between the two ends of that last bracket (a rep's capacity can still be left short there).
Cost is O(n) per step and a few dozen steps: a million accounts take about a second.

Use `optimize` for the hours alone and `optimize_detailed` for the prices (value of the last hour per rep),
the gains and the cost of the floors; `optimize_budgets` gives the latter at several team budgets at once
(the budget curve), checking the inputs and finding each rep's own price once for all of them.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.errors import InfeasibleError
from kamml.io import float_values
from kamml.names import rep_name, rep_names
from kamml.text import counted, in_hours

__all__ = [
    "AllocationResult",
    "gain",
    "optimize",
    "optimize_budgets",
    "optimize_detailed",
    "rep_codes",
    "rep_name",
    "rep_names",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

RTOL = 1e-9
"""Relative tolerance on hours: a binding limit is used to within this share, never exceeded."""

_MAX_ITER = 300
_FEASIBILITY_RTOL = 1e-12
# The lowest log-price searched: below it no account takes hours it has not already been served in full
# by (a scale of 5e-324 hours, the least float, takes 1e-15 hours there), so brackets start no lower.
_LOWEST_LOG_PRICE = -float(np.finfo(np.float64).max)
_HALF_MAX = float(np.finfo(np.float64).max) / 2


@dataclass(frozen=True)
class AllocationResult:
    """The optimal allocation with what it is worth and the prices that support it.

    Attributes
    ----------
    hours : numpy.ndarray
        Recommended hours per account, in input order.
    gain : numpy.ndarray
        Expected gain per account at those hours, ``stake * (1 - exp(-hours / scale))``.
    total_gain : float
        Sum of `gain`.
    marginal : numpy.ndarray
        Marginal gain of one more hour per account at the optimum, ``stake / scale * exp(-hours / scale)``.
        Equals the account's price when it sits strictly between its floor and cap.
    team_price : float
        The team's price ``nu``: the value of one more hour for the whole team (0 when the team's hours
        are not all needed).
    rep_price : dict
        Price per rep of `capacity`, keyed like `capacity`: ``max(nu, p_r)``, the marginal gain at which
        the rep's accounts are cut off, i.e. the value of the rep's last hour. Above `team_price` exactly
        when the rep's capacity binds.
    floor_cost : float
        Total gain of the same problem without floors minus the total gain with them (>= 0): what the
        minimum touch of every account costs.
    unused_hours : float
        Team hours left over: positive only when every account is at its cap, has zero marginal value,
        or belongs to a rep whose capacity binds.
    """

    hours: FloatArray
    gain: FloatArray
    total_gain: float
    marginal: FloatArray
    team_price: float
    rep_price: dict[Hashable, float]
    floor_cost: float
    unused_hours: float


@dataclass(frozen=True)
class _Problem:
    """Validated inputs as float arrays, with integer rep codes (-1 = team limit only)."""

    stake: FloatArray
    scale: FloatArray
    hours: float
    floor: FloatArray
    cap: FloatArray
    codes: IntArray
    reps: list[Hashable]
    capacity: FloatArray


def gain(stake: npt.ArrayLike, scale: npt.ArrayLike, hours: npt.ArrayLike) -> FloatArray:
    """Expected gain of `hours` of effort, ``stake * (1 - exp(-hours / scale))``, elementwise.

    Parameters
    ----------
    stake : array-like
        Value at stake per account (what effort can move), >= 0.
    scale : array-like
        Effort scale per account in hours (> 0): ``scale`` hours move 63 % of the stake.
    hours : array-like
        Hours of effort per account.

    Returns
    -------
    numpy.ndarray
        The gain per account, broadcast over the inputs.

    Examples
    --------
    >>> float(gain(100.0, 2.0, 2.0).round(2))
    63.21

    Accounts pair by position: pandas Series whose indexes hold the same labels in another order are
    a ValueError, as in `optimize`.
    """
    _check_aligned({"stake": stake, "scale": scale, "hours": hours})
    s, k, h = _floats(stake, "stake"), _floats(scale, "scale"), _floats(hours, "hours")
    with np.errstate(over="ignore"):  # h / k overflows for a subnormal scale: the stake is won in full
        return np.asarray(-s * np.expm1(-h / k), dtype=float)


def marginal_gain(stake: FloatArray, scale: FloatArray, hours: FloatArray) -> FloatArray:
    """The gain of one more hour, ``stake / scale * exp(-hours / scale)``, on the log scale.

    A tiny scale makes ``stake / scale`` overflow while ``exp(-hours / scale)`` is 0: their product was
    NaN, and is 0 here (inf at 0 hours, where the account's first hour is worth more than any float).
    """
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        return np.asarray(np.exp(np.log(stake) - np.log(scale) - hours / scale), dtype=float)


def optimize(
    stake: npt.ArrayLike,
    scale: npt.ArrayLike,
    hours: float,
    floor: npt.ArrayLike | None = 0.0,
    cap: npt.ArrayLike | None = None,
    owner: npt.ArrayLike | None = None,
    capacity: Mapping[Any, float] | pd.Series | None = None,
) -> FloatArray:
    """Hours per account that maximise the total expected gain under team, rep and account limits.

    Maximises ``sum_i stake_i * (1 - exp(-h_i / scale_i))`` subject to ``sum_i h_i <= hours``,
    ``sum_{owner_i = r} h_i <= capacity[r]`` for every rep in `capacity` and ``floor_i <= h_i <= cap_i``.
    The solution is exact up to a relative 1e-9 on hours (see the module docstring for the method).

    Parameters
    ----------
    stake : array-like of shape (n,)
        Value at stake per account, >= 0 and finite. Accounts with stake 0 get their floor.
    scale : float or array-like of shape (n,)
        Effort scale per account in hours, > 0 and finite.
    hours : float
        The team's hours for the period, >= 0 and finite.
    floor : float or array-like of shape (n,), default 0
        Minimum hours per account (a minimum touch); None is no floor, as None for `cap` is no cap.
        Setting 0 for inactive accounts is the caller's business.
    cap : float or array-like of shape (n,), optional
        Maximum hours per account; None means no cap (the team and rep limits still bound it).
    owner : array-like of shape (n,), optional
        The rep owning each account; None/NaN, or a rep missing from `capacity`, means the account faces
        only the team limit. Owners and the reps of `capacity` are matched by `rep_name` (1, 1.0 and
        "1" are the same rep; true and false are reps "True" and "False", as the accounts table and
        Spark name them). Used only with `capacity`, but its shape is checked without one too.
    capacity : mapping or pandas.Series, optional
        Hours per rep (rep -> hours, >= 0; ``inf`` means no limit). Needs `owner`. A rep that owns no
        account changes nothing (its price is the team's).

    Returns
    -------
    numpy.ndarray of shape (n,)
        Recommended hours per account, in input order.

    Raises
    ------
    kamml.errors.InfeasibleError
        When the floors need more hours than the team or a rep has (the message says by how many, and
        which rep), or when hours, capacities, floors or caps are negative, or a floor exceeds its cap.
    ValueError
        On shapes that do not match, NaN (or None, pd.NA, a masked entry), a negative or infinite
        stake, a scale that is not positive, true/false, text, dates or durations for numbers, an owner
        that is no 1-d sequence in account order (a table, a set, a dict), or pandas Series (of stake,
        scale, floor, cap, owner) whose indexes hold the same labels in another order: accounts pair
        by position, not by index; a capacity that is no mapping of rep to hours (a number, a list), or
        a capacity without an owner.

    See Also
    --------
    optimize_detailed : the same optimum with prices, gains and the cost of the floors.

    Examples
    --------
    Two accounts, one worth twice the other, share 3 hours; the bigger one gets ln(2) hours more:

    >>> h = optimize([200.0, 100.0], scale=1.0, hours=3.0)
    >>> h.round(4).tolist()
    [1.8466, 1.1534]

    With owners, a rep's capacity binds on its accounts only:

    >>> h = optimize([200.0, 100.0, 100.0], 1.0, 3.0, owner=["ann", "ann", None], capacity={"ann": 1.0})
    >>> h.round(4).tolist()
    [0.8466, 0.1534, 2.0]
    """
    problem = _prepare(stake, scale, _scalar_hours(hours), floor, cap, owner, capacity)
    h, _, _ = _solve(problem)
    return h


def optimize_detailed(
    stake: npt.ArrayLike,
    scale: npt.ArrayLike,
    hours: float,
    floor: npt.ArrayLike | None = 0.0,
    cap: npt.ArrayLike | None = None,
    owner: npt.ArrayLike | None = None,
    capacity: Mapping[Any, float] | pd.Series | None = None,
) -> AllocationResult:
    """Solve the allocation like `optimize` and report gains, prices and what the floors cost.

    Parameters are those of `optimize`. Solving the problem a second time without floors (to price
    them) doubles the cost when any floor is positive.

    Returns
    -------
    AllocationResult
        Hours, gains, marginal gains, the team's and each rep's price, the cost of the floors and the
        unused team hours.

    Raises
    ------
    kamml.errors.InfeasibleError, ValueError
        As `optimize`.

    Examples
    --------
    >>> res = optimize_detailed([200.0, 100.0], 1.0, hours=3.0, floor=[0.0, 2.0])
    >>> res.hours.round(4).tolist(), round(res.floor_cost, 3)
    ([1.0, 2.0], 23.999)
    """
    problem = _prepare(stake, scale, _scalar_hours(hours), floor, cap, owner, capacity)
    free = _without_floors(problem)
    return _detailed(problem, _rep_prices(problem), free, None if free is None else _rep_prices(free))


def optimize_budgets(
    stake: npt.ArrayLike,
    scale: npt.ArrayLike,
    budgets: Sequence[float],
    floor: npt.ArrayLike | None = 0.0,
    cap: npt.ArrayLike | None = None,
    owner: npt.ArrayLike | None = None,
    capacity: Mapping[Any, float] | pd.Series | None = None,
) -> list[AllocationResult | None]:
    """`optimize_detailed` at each of several team budgets: the solver behind the budget curve.

    The inputs are checked once and each rep's own price (which depends on its capacity, not on the
    team's hours) is found once for all budgets, so a curve of 20 budgets costs about half of 20 calls.

    Parameters are those of `optimize`, with `budgets` (team hours, each finite and >= 0) for `hours`.

    Returns
    -------
    list of AllocationResult or None
        One per budget, in order; None where the floors need more hours than that budget.

    Raises
    ------
    kamml.errors.InfeasibleError, ValueError
        As `optimize`, except that a budget too small for the floors gives None rather than an error.

    Examples
    --------
    >>> res = optimize_budgets([200.0, 100.0], 1.0, [1.0, 3.0], floor=[0.0, 2.0])
    >>> res[0] is None, res[1].hours.round(4).tolist()
    (True, [1.0, 2.0])
    """
    if np.ndim(budgets) != 1:  # a single number was a TypeError, a text one budget per letter
        raise ValueError(f"budgets must be a sequence of team hours, got {budgets!r}")
    problem = _prepare(stake, scale, None, floor, cap, owner, capacity)
    teams = [_scalar_hours(b) for b in budgets]
    need = float(problem.floor.sum())
    free = _without_floors(problem)
    reps = _rep_prices(problem)
    free_reps = None if free is None else _rep_prices(free)
    results: list[AllocationResult | None] = []
    for team in teams:
        if _team_shortfall(need, team):
            results.append(None)
            continue
        results.append(
            _detailed(
                replace(problem, hours=team),
                reps,
                None if free is None else replace(free, hours=team),
                free_reps,
            )
        )
    return results


def _without_floors(problem: _Problem) -> _Problem | None:
    """The same problem with every floor 0, to price the floors; None when it has no positive floor."""
    if not np.any(problem.floor > 0):
        return None
    return replace(problem, floor=np.zeros_like(problem.floor))


def _detailed(
    problem: _Problem, reps: _Reps, free: _Problem | None, free_reps: _Reps | None
) -> AllocationResult:
    """The optimum of `problem` with gains and prices, and the cost of its floors from `free` (no floors)."""
    h, t_team, t_rep = _solve(problem, reps)
    g = gain(problem.stake, problem.scale, h)
    total = float(g.sum())
    floor_cost = 0.0
    if free is not None:
        h_free, _, _ = _solve(free, free_reps)
        floor_cost = max(0.0, float(gain(problem.stake, problem.scale, h_free).sum()) - total)
    marginal = marginal_gain(problem.stake, problem.scale, h)
    unused = problem.hours - float(h.sum())
    rep_price = {rep: price_per_hour(max(t_team, t_rep[r])) for r, rep in enumerate(problem.reps)}
    marginal = _interior_at_price(marginal, problem, h, t_team, t_rep)
    return AllocationResult(
        hours=h,
        gain=g,
        total_gain=total,
        marginal=marginal,
        team_price=price_per_hour(t_team),
        rep_price=rep_price,
        floor_cost=floor_cost,
        unused_hours=unused if unused > RTOL * problem.hours else 0.0,
    )


def _interior_at_price(
    marginal: FloatArray, problem: _Problem, h: FloatArray, t_team: float, t_rep: FloatArray
) -> FloatArray:
    """Accounts strictly between their floor and cap get their price as the marginal gain, exactly.

    That is their marginal gain at the optimum; computed from their hours it differed in the last
    digits (the bisection, the last bracket's interpolation), so tiers by marginal gain split the
    accounts at the price by rounding noise, differently on Spark. Exact, they tie and the stake orders
    them.
    """
    interior = (problem.stake > 0) & (h > problem.floor) & (h < problem.cap)
    return at_price(marginal, interior, problem.codes, t_team, t_rep)


def at_price(
    marginal: FloatArray, interior: npt.NDArray[np.bool_], codes: IntArray, t_team: float, t_rep: FloatArray
) -> FloatArray:
    """`marginal` with the `interior` accounts' price per hour: their rep's (code) or the team's (-1).

    Shared with Spark, whose allocation must give the same marginal gains (`_interior_at_price`).
    """
    # one log-price per rep and the team's last, so code -1 (no rep) reads it: no exp per account
    levels = np.append(np.maximum(t_team, np.asarray(t_rep, dtype=float)), t_team)
    with np.errstate(over="ignore", under="ignore"):
        prices = np.exp(levels)
    return np.where(interior & np.isfinite(levels)[codes], prices[codes], marginal)


def price_per_hour(log_price: float) -> float:
    """Price per hour from its logarithm (-inf means 0; above the largest float, inf).

    A price overflows when no hours meet an account of a subnormal scale: its first hour's worth,
    stake / scale, is beyond every float.
    """
    if not np.isfinite(log_price):
        return 0.0
    with np.errstate(over="ignore"):
        return float(np.exp(log_price))


# --------------------------------------------------------------------------------------------- solver


@dataclass(frozen=True)
class _Reps:
    """Stage 1 of `_solve`, independent of the team's hours: the accounts that can move, each rep's price.

    `t_rep` is each rep's own log-price p_r from its capacity alone (-inf: price 0; reps with infinite
    capacity never bind); `group_all` numbers the accounts of reps with a finite capacity (-1: others).
    """

    active: npt.NDArray[np.bool_]
    a: FloatArray
    t_rep: FloatArray
    bounded: IntArray
    group_all: IntArray


def _rep_prices(p: _Problem) -> _Reps:
    """Stage 1 of `_solve`: each rep's own price, from its capacity alone."""
    n_reps = len(p.reps)
    # Accounts whose hours can move: positive stake and room between floor and cap. The others sit at
    # their floor whatever the prices.
    active = (p.stake > 0) & (p.cap > p.floor)
    a = np.log(p.stake[active]) - np.log(p.scale[active])  # log of the marginal gain at 0 hours
    t_rep = np.full(n_reps, -np.inf)
    bounded = np.flatnonzero(np.isfinite(p.capacity))
    remap = np.full(n_reps + 1, -1, dtype=np.intp)
    remap[bounded] = np.arange(bounded.size)
    group_all = remap[p.codes]  # codes of -1 index the trailing -1
    if bounded.size:
        in_rep = group_all >= 0
        fixed = _segment_sum(group_all[in_rep & ~active], p.floor[in_rep & ~active], bounded.size)
        sel = in_rep[active]
        t_rep[bounded], _ = _search(
            a[sel],
            p.scale[active][sel],
            p.floor[active][sel],
            p.cap[active][sel],
            group_all[active][sel],
            fixed,
            p.capacity[bounded],
            None,
        )
    return _Reps(active=active, a=a, t_rep=t_rep, bounded=bounded, group_all=group_all)


def _solve(p: _Problem, reps: _Reps | None = None) -> tuple[FloatArray, float, FloatArray]:
    """Optimal hours, the team's log-price and each rep's own log-price (-inf means price 0).

    `reps` is stage 1 (`_rep_prices`) of the same accounts, floors, caps and capacities, computed here
    when not given: the budget curve shares it across the team's budgets.
    """
    reps = _rep_prices(p) if reps is None else reps
    n_reps = len(p.reps)
    h = p.floor.copy()
    active, a, t_rep, bounded, group_all = reps.active, reps.a, reps.t_rep, reps.bounded, reps.group_all
    k = p.scale[active]
    lo = p.floor[active]
    hi = p.cap[active]
    codes = p.codes[active]
    # Stage 2: the team's price nu; an account in rep r faces max(nu, p_r).
    price_floor = np.where(codes >= 0, t_rep[np.maximum(codes, 0)], -np.inf) if n_reps else None
    fixed_team = float(p.floor[~active].sum())
    team, team_lo = _search(
        a,
        k,
        lo,
        hi,
        np.zeros(a.size, dtype=np.intp),
        np.array([fixed_team]),
        np.array([p.hours]),
        price_floor,
    )
    t_team = float(team[0])
    t_eff = np.full(a.size, t_team) if price_floor is None else np.maximum(t_team, price_floor)
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.clip(k * (a - t_eff), lo, hi)
    # The team's bracket closed to a few ulps short of its hours: interpolate to them. (Reps' brackets
    # are left as found: hours added to a rep would push the team, solved at the rep's price, over
    # its limit, and the shrink below would take them back from every account.)
    if float(team_lo[0]) < t_team:
        faces_team = np.ones(a.size, dtype=bool) if price_floor is None else t_team >= price_floor
        alt = np.full(a.size, float(team_lo[0]))
        if price_floor is not None:
            alt = np.maximum(alt, price_floor)
        team_group = np.zeros(a.size, dtype=np.intp)
        x = _interpolate(x, k, a, lo, hi, alt, faces_team, team_group, np.array([p.hours - fixed_team]))
    h[active] = x
    if not np.all(np.isfinite(h)):  # pragma: no cover - ruled out by the brackets; guard against regressions
        raise AssertionError("allocation produced non-finite hours")
    # Rounding in log-price space can leave a limit exceeded by a few ulps of k * |log-price| hours,
    # which matters only for limits tiny next to the scales; shrink the hours above the floors to fit.
    if bounded.size:
        _shrink_to_fit(h, p.floor, group_all, p.capacity[bounded])
    _shrink_to_fit(h, p.floor, np.zeros(h.size, dtype=np.intp), np.array([p.hours]))
    logger.debug("allocation: %d accounts (%d active), team log-price %.6g", h.size, a.size, t_team)
    return h, t_team, t_rep


def _interpolate(
    x: FloatArray,
    k: FloatArray,
    a: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    t_alt: FloatArray,
    moved: npt.NDArray[np.bool_],
    group: IntArray,
    target: FloatArray,
) -> FloatArray:
    """Hours `x` moved toward those at the log-prices `t_alt` (just below the found ones) to meet `target`.

    A price search whose bracket closed to a few ulps of the log-price stops on its feasible side, where
    the hours may fall short of a binding limit by up to ``sum(k) x ulp``: 1e-4 of 10 hours when the
    scales are 1e10, all of them when one scale is 1e300 (a price found to the last bit still moves that
    account by 1e287 hours per ulp). Demand is linear between the two ends of such a bracket (piecewise
    linear at worst), so each group's hours are interpolated between the two ends to meet its target
    exactly: the accounts strictly between floor and cap get the shortfall in proportion to their scale,
    as a price between the two floats would give it. `moved` marks the accounts that face the price of
    their group (code in `group`, -1 for none); the others keep `x`. Returns the new hours.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        x_alt = np.clip(k * (a - t_alt), lo, hi)
    step = np.where(moved & (group >= 0), x_alt - x, 0.0)
    member = group >= 0
    n_groups = target.size
    used = _segment_sum(group[member], x[member], n_groups)
    more = _segment_sum(group[member], step[member], n_groups)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        share = np.clip((target - used) / more, 0.0, 1.0)
    share = np.where(np.isfinite(share) & (more > 0), share, 0.0)
    if not share.any():
        return x
    out = x + share[np.maximum(group, 0)] * step
    logger.debug("closed brackets: %d groups moved toward their limits", int((share > 0).sum()))
    return np.asarray(np.minimum(np.maximum(out, lo), hi), dtype=np.float64)


def _search(
    a: FloatArray,
    k: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    group: IntArray,
    fixed: FloatArray,
    target: FloatArray,
    price_floor: FloatArray | None,
) -> tuple[FloatArray, FloatArray]:
    """Per group, the smallest log-price t at which the group's demand fits its target (-inf: price 0).

    Demand of a group at log-price t is ``fixed + sum_i clip(k_i * (a_i - max(t, price_floor_i)), lo_i,
    hi_i)``: continuous, piecewise linear and non-increasing in t. All groups are searched at once with a
    safeguarded Newton step on each group's linear piece (exact once the set of accounts strictly between
    floor and cap stops changing), falling back to bisection whenever a step leaves the bracket or the
    previous step did not halve the miss. A group stops when its demand lies in
    ``[target * (1 - RTOL), target]``; the bracket always keeps a feasible side to fall back on.

    Returns t and, for the groups whose bracket closed to a few ulps before the demand met the target,
    the bracket's other (infeasible) end, or a few ulps below t when the steps ran out (the others: t
    itself), for `_interpolate`.
    """
    n_groups = target.size
    result = np.full(n_groups, -np.inf)
    single = n_groups == 1

    def demand(t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Demand per group at log-prices t, and the slope magnitude (sum of k over moving accounts)."""
        tg: FloatArray | float = float(t[0]) if single else t[group]
        te = tg if price_floor is None else np.maximum(tg, price_floor)
        with np.errstate(over="ignore", invalid="ignore"):
            x = k * (a - te)
        h = np.minimum(np.maximum(x, lo), hi)
        moving = (x > lo) & (x < hi)
        if price_floor is not None:
            moving &= tg > price_floor
        if single:
            return fixed + h.sum(), np.array([k[moving].sum()])
        d = fixed + _segment_sum(group, h, n_groups)
        return d, _segment_sum(group[moving], k[moving], n_groups)

    upper = target * (1 - RTOL / 1000)
    lower = target * (1 - RTOL)
    aim = target * (1 - RTOL / 2)

    # Price 0 (t = -inf): every moving account at its cap. Enough hours for that means no price.
    d_inf, _ = demand(np.full(n_groups, -np.inf))
    todo = d_inf > target
    if not todo.any():
        return result, result.copy()
    # Above t_hi every account is at its floor; floors fit (checked), so the answer is <= t_hi. An account
    # whose price floor is at or above its floor's marginal stays at its floor at every t: it cannot set
    # the price (a rep full at its floors does not make the team's next hour worth its accounts' margin).
    with np.errstate(over="ignore"):
        at_floor = a - lo / k
    if price_floor is not None:
        at_floor = np.where(at_floor > price_floor, at_floor, -np.inf)
    # -inf only from a subnormal scale (lo / k overflows), whose floor serves it in full at the lowest float
    t_hi = np.maximum(_group_extreme(at_floor, group, n_groups, np.maximum), _LOWEST_LOG_PRICE)
    d_hi, _ = demand(np.where(todo, t_hi, -np.inf))
    filled = todo & (d_hi >= lower)  # floors (nearly) fill the target: the price is the floors' own
    result[filled] = t_hi[filled]
    todo &= ~filled
    if not todo.any():
        return result, result.copy()
    # Below t_lo every account has min(cap, target) hours or more, so demand >= target.
    room = np.minimum(hi, target[group])
    with np.errstate(over="ignore"):
        t_lo = _group_extreme(a - room / k, group, n_groups, np.minimum)
    # ``a - room / k`` rounds to the nearest float, up to half an ulp above the price that gives the room:
    # with room / k below an ulp of a (a scale of 1e12 hours, 0.001 hours to share) it was ``a`` itself,
    # where the account takes nothing, and the bracket closed on 0 hours. Two ulps lower it holds.
    t_lo = np.nextafter(np.nextafter(t_lo, -np.inf), -np.inf)
    # A subnormal scale overflows room / k: the price that gives it its room is below every float, and
    # at the lowest float the account is already served in full. The bracket starts there instead.
    t_lo = np.maximum(t_lo, _LOWEST_LOG_PRICE)
    t_lo = np.where(todo, t_lo, 0.0)  # groups already solved keep a finite, unused bracket
    t_hi = np.where(todo, t_hi, 0.0)
    # First guess: every account strictly between its bounds.
    sum_k = _segment_sum(group, k, n_groups)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a scale of 1e308: k * a is inf
        sum_ka = _segment_sum(group, k * a, n_groups)
        t = (sum_ka + fixed - aim) / sum_k
    mid = _between(t_lo, t_hi, 0.5)
    t = np.where(todo & (t > t_lo) & (t < t_hi), t, np.where(todo, mid, result))
    residual = np.full(n_groups, np.inf)
    below = result.copy()  # the infeasible end of a bracket that closed
    for it in range(_MAX_ITER):
        d, slope = demand(t)
        ok = todo & (d >= lower) & (d <= upper)
        result[ok] = t[ok]
        below[ok] = t[ok]
        todo &= ~ok
        over = todo & (d > upper)
        t_lo = np.where(over, t, t_lo)
        t_hi = np.where(todo & ~over, t, t_hi)
        collapsed = todo & _bracket_closed(t_lo, t_hi)
        result[collapsed] = t_hi[collapsed]  # demand at t_hi fits the target
        below[collapsed] = t_lo[collapsed]
        todo &= ~collapsed
        if not todo.any():
            logger.debug("price search: %d groups in %d steps", n_groups, it + 1)
            return result, below
        new_residual = np.abs(d - aim)
        bisect = new_residual > 0.5 * residual  # the last step did not halve the miss: bisect once
        residual = np.where(bisect, np.inf, new_residual)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = t + (d - aim) / slope
        mid = _between(t_lo, t_hi, 0.5)
        use_newton = ~bisect & np.isfinite(newton) & (newton > t_lo) & (newton < t_hi)
        t = np.where(todo, np.where(use_newton, newton, mid), result)
    logger.warning("price search stopped after %d steps; using the feasible side of the bracket", _MAX_ITER)
    result[todo] = t_hi[todo]
    # a bracket still wide (scales 1e300 apart: bisection halves a range of 1e301 for 1,000 steps): a
    # few ulps below t_hi, where an account with a huge scale already takes more than the target
    below[todo] = np.maximum(t_lo[todo], t_hi[todo] - 4 * np.spacing(np.abs(t_hi[todo])))
    return result, below


def _between(lo: FloatArray, hi: FloatArray, frac: float | FloatArray) -> FloatArray:
    """``lo + (hi - lo) * frac``, also for a bracket wider than the largest float (from the lowest price)."""
    with np.errstate(over="ignore", invalid="ignore"):
        width = hi - lo
        return np.where(np.isfinite(width), lo + width * frac, lo * (1 - frac) + hi * frac)


def _bracket_closed(lo: FloatArray, hi: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether each bracket [lo, hi] of log-prices is at most 4 ulps wide.

    In halves, and with the ulp of at most half the largest float, so neither overflows at the lowest
    log-price (the ulp of the largest float is infinite); exact for every other bracket.
    """
    ulp = np.spacing(np.minimum(np.maximum(np.abs(lo), np.abs(hi)), _HALF_MAX))
    return np.asarray(hi / 2 - lo / 2 <= 2 * ulp)


def _shrink_to_fit(h: FloatArray, floor: FloatArray, group: IntArray, limit: FloatArray) -> None:
    """In place, scale the hours above the floors of each group (code >= 0) that exceeds its limit."""
    member = group >= 0
    used = _segment_sum(group[member], h[member], limit.size)
    over = used > limit
    if not over.any():
        return
    floors = _segment_sum(group[member], floor[member], limit.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.clip(np.where(over, (limit - floors) / (used - floors), 1.0), 0.0, 1.0)
    factor = np.where(np.isfinite(factor), factor, 0.0)
    fix = member & over[np.maximum(group, 0)]
    h[fix] = floor[fix] + (h[fix] - floor[fix]) * factor[group[fix]]
    logger.debug(
        "trimmed %d groups by at most %.3g hours to fit their limits", over.sum(), (used - limit).max()
    )


def _segment_sum(group: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Sum of `values` per group code in ``0..n_groups-1``."""
    return np.asarray(np.bincount(group, weights=values, minlength=n_groups), dtype=np.float64)


def _group_extreme(values: FloatArray, group: IntArray, n_groups: int, ufunc: np.ufunc) -> FloatArray:
    """Per-group maximum (`numpy.maximum`) or minimum (`numpy.minimum`) of `values`."""
    start = -np.inf if ufunc is np.maximum else np.inf
    out = np.full(n_groups, start)
    if n_groups == 1:
        if values.size:
            out[0] = ufunc.reduce(values)
    else:
        ufunc.at(out, group, values)
    return out


# ----------------------------------------------------------------------------------------- validation


#: Reps short of their floors named one by one in an infeasibility error; the rest are counted.
_REPS_NAMED = 5


def reps_short(
    reps: Sequence[Any], need: np.ndarray, capacity: np.ndarray, floored: np.ndarray, short: np.ndarray
) -> list[str]:
    """The infeasibility error's words for the reps whose floors (`need`) exceed their `capacity`.

    The reps furthest short first and `_REPS_NAMED` of them by name, the rest counted: one line however
    many reps (an allocation audit: every rep was named, 50 gave a 6 KB line, 20,000 about 140 KB).
    `floored` counts each rep's accounts with a floor; `short` marks the reps short.
    """
    gaps = need - capacity
    ordered = sorted((int(r) for r in np.flatnonzero(short)), key=lambda r: -gaps[r])
    lines = [
        f"rep {reps[r]!r}: the floors of its {counted(int(floored[r]), 'account')} "
        "with a floor need "
        f"{in_hours(need[r])} but its capacity is {capacity[r]:,.6g}: {in_hours(gaps[r])} short"
        for r in ordered[:_REPS_NAMED]
    ]
    if len(ordered) > _REPS_NAMED:
        lines.append(
            f"and {len(ordered) - _REPS_NAMED:,} more reps short by {float(gaps[ordered[-1]]):,.6g} to "
            f"{float(gaps[ordered[_REPS_NAMED]]):,.6g} hours ({len(ordered):,} reps, "
            f"{in_hours(float(gaps[ordered].sum()))} short in all)"
        )
    return lines


def _prepare(
    stake: npt.ArrayLike,
    scale: npt.ArrayLike,
    hours: float | None,
    floor: npt.ArrayLike | None,
    cap: npt.ArrayLike | None,
    owner: npt.ArrayLike | None,
    capacity: Mapping[Any, float] | pd.Series | None,
) -> _Problem:
    """Check the inputs and turn them into float arrays and rep codes; raise on anything impossible.

    `hours` None leaves the team's hours to the caller (`optimize_budgets`): the problem's are NaN.
    """
    _check_aligned({"stake": stake, "scale": scale, "floor": floor, "cap": cap, "owner": owner})
    s = _floats(stake, "stake")
    if s.ndim != 1:
        raise ValueError(f"stake must be one-dimensional (one value per account), got shape {s.shape}")
    n = s.size
    _check_finite(s, "stake")
    _check(s >= 0, "stake", "must be >= 0", s, ValueError)
    k = _per_account(scale, "scale", n)
    _check_finite(k, "scale")
    _check(k > 0, "scale", "must be > 0", k, ValueError)
    team = np.nan if hours is None else _scalar_hours(hours)
    lo = np.zeros(n) if floor is None else _per_account(floor, "floor", n)  # None: no floor, as cap
    _check_finite(lo, "floor")
    _check(lo >= 0, "floor", "negative hours", lo, InfeasibleError)
    up = np.full(n, np.inf) if cap is None else _per_account(cap, "cap", n)
    if np.isnan(up).any():
        raise ValueError(f"cap has NaN for {counted(int(np.isnan(up).sum()), 'account')}")
    _check(up >= 0, "cap", "negative hours", up, InfeasibleError)
    # within the floors' tolerance of the team's hours, a floor a rounding above its cap (0.1 + 0.2 for
    # 0.3) is the cap: it was refused as "floor 0.3 > cap 0.3"
    bad = lo > up * (1 + _FEASIBILITY_RTOL) + _FEASIBILITY_RTOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InfeasibleError(
            f"floor above cap for {counted(int(bad.sum()), 'account')}, by up to "
            f"{float((lo - up)[bad].max()):.6g} "
            f"hours (e.g. account at position {i}: floor {float(lo[i])} > cap {float(up[i])})"
        )
    lo = np.minimum(lo, up)
    reps, cap_hours, codes = _rep_codes(owner, capacity, n)

    team_short = None if hours is None else _team_shortfall(float(lo.sum()), team)
    problems = [] if team_short is None else [team_short]
    if reps:
        in_rep = codes >= 0
        need_rep = np.bincount(codes[in_rep], weights=lo[in_rep], minlength=len(reps))
        floored = np.bincount(codes[in_rep & (lo > 0)], minlength=len(reps))
        short = need_rep > cap_hours * (1 + _FEASIBILITY_RTOL) + _FEASIBILITY_RTOL
        problems += reps_short(reps, need_rep, cap_hours, floored, short)
    if problems:
        raise InfeasibleError("infeasible allocation: " + "; ".join(problems))
    return _Problem(
        stake=s, scale=k, hours=team, floor=lo, cap=up, codes=codes, reps=reps, capacity=cap_hours
    )


def _check_aligned(values: Mapping[str, Any]) -> None:
    """ValueError when per-account pandas Series hold the same labels in another order (pairs by position).

    A scale Series in another order than the stakes' was paired with the wrong accounts, silently.
    Indexes with other labels are paired by position, as documented: account ids beside 0, 1, 2, ...
    share some labels by chance and mean nothing else.
    """
    series = [(name, v.index) for name, v in values.items() if isinstance(v, pd.Series)]
    for i, (first, ref) in enumerate(series):
        for name, index in series[i + 1 :]:
            if index.equals(ref) or len(index) != len(ref) or not index.is_unique or not ref.is_unique:
                continue
            if index.isin(ref).all():
                raise ValueError(
                    f"{first} and {name} are pandas Series whose indexes hold the same labels in another "
                    "order, but accounts are paired by position, not by index: reindex them alike "
                    f"(e.g. {name}.reindex({first}.index)) or pass arrays"
                )


def _team_shortfall(need: float, team: float) -> str | None:
    """What is wrong when floors needing `need` hours do not fit the team's `team` hours (None: they fit)."""
    if need > team * (1 + _FEASIBILITY_RTOL) + _FEASIBILITY_RTOL:
        return f"the floors need {in_hours(need)} but the team has {team:,.6g}: {in_hours(need - team)} short"
    return None


def _given(arr: np.ndarray) -> str:
    """What a per-account array holds, for a length error: "1,233 values" (1-D), else its shape."""
    return f"{arr.size:,} values" if arr.ndim == 1 else f"shape {arr.shape}"


def _per_account(value: npt.ArrayLike, name: str, n: int) -> FloatArray:
    """A scalar broadcast to n accounts, or an array of n values; anything else is a ValueError."""
    arr = _floats(value, name)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one value per account ({n:,}), got {_given(arr)}")
    return arr.copy()


def _floats(value: npt.ArrayLike, name: str) -> FloatArray:
    """`value` as floats; true/false, dates, durations, complex values and text are a ValueError naming it.

    numpy read ``[True, False]`` as stakes of 1 and 0 and numbers written as text ("3" hours, a floor of
    "0.5") as numbers; masked entries, dates and pd.NA are told as the metrics tell them (`float_values`).
    """
    return float_values(value, name, strict=True)


def _check_finite(arr: FloatArray, name: str) -> None:
    """Raise ValueError naming how many entries of `arr` are NaN or infinite."""
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be finite: {counted(int(bad.sum()), 'account')} "
            f"{'is' if int(bad.sum()) == 1 else 'are'} NaN or infinite "
            f"(e.g. position {i}: {arr[i]})"
        )


def _check(ok: npt.NDArray[np.bool_], name: str, rule: str, arr: FloatArray, exc: type[Exception]) -> None:
    """Raise `exc` naming how many entries break `rule` and the worst one."""
    if not ok.all():
        bad = np.flatnonzero(~ok)
        worst = int(bad[np.argmin(arr[bad])])
        raise exc(f"{name} {rule}: {counted(bad.size, 'account')} (e.g. position {worst}: {arr[worst]:.6g})")


def _scalar_hours(hours: float) -> float:
    """The team's hours as a finite float; negative hours are infeasible."""
    if hours is None or isinstance(hours, bool | np.bool_):  # numpy reads None as NaN and True as 1
        raise ValueError(f"hours must be a number (the team's hours), got {hours}")
    arr = _floats(hours, "hours")
    if arr.ndim != 0:
        raise ValueError(f"hours must be a single number (the team's hours), got shape {arr.shape}")
    value = float(arr)
    if not np.isfinite(value):
        raise ValueError(f"hours must be finite, got {value}")
    if value < 0:
        raise InfeasibleError(f"the team's hours are negative ({value:.6g}): {in_hours(-value)} short of 0")
    return value


def _rep_codes(
    owner: npt.ArrayLike | None, capacity: Mapping[Any, float] | pd.Series | None, n: int
) -> tuple[list[Hashable], FloatArray, IntArray]:
    """Reps of `capacity`, their hours, and each account's rep code (-1: team limit only).

    An owner given without a capacity is not used, but its shape is checked all the same: one of another
    length, or a table, was a mistake that passed until a capacity was set.
    """
    if capacity is None:
        if owner is not None:
            _owner_array(owner, n)
        return [], np.zeros(0), np.full(n, -1, dtype=np.intp)
    if not isinstance(capacity, Mapping | pd.Series):  # dict() failed on a number or a list of hours
        raise ValueError(
            "capacity must map each rep to its hours (a dict or a pandas Series indexed by rep), got "
            f"{type(capacity).__name__} {reprlib.repr(capacity)}"
        )
    if owner is None:
        raise ValueError("capacity needs owner: which rep owns each account")
    series = capacity.copy() if isinstance(capacity, pd.Series) else pd.Series(dict(capacity), dtype=object)
    reps: list[Hashable] = list(series.index)
    names = pd.Series(rep_names(series.index))
    if names.isna().any():
        raise ValueError(f"capacity has reps without a name (None or NaN): {reps[:5]}")
    if names.duplicated().any():
        dup = sorted({reps[i] for i in np.flatnonzero(names.duplicated(keep=False))}, key=str)[:5]
        raise ValueError(f"capacity lists some reps more than once: {dup}")
    hours = _capacity_hours(series)
    nan = np.isnan(hours)
    if nan.any():
        raise ValueError(f"capacity is NaN for reps {[reps[i] for i in np.flatnonzero(nan)][:5]}")
    negative = hours < 0
    if negative.any():
        detail = ", ".join(f"{reps[i]!r}: {hours[i]:.6g}" for i in np.flatnonzero(negative)[:5])
        short = counted(int(negative.sum()), "rep")
        raise InfeasibleError(f"capacity has negative hours for {short} ({detail})")
    owners = _owner_array(owner, n)
    try:
        codes = rep_codes(owners, names.to_numpy())
    except TypeError:  # a list or dict owner: "unhashable type", naming neither owner nor account
        unnamed = next((v for v in owners if not isinstance(v, Hashable)), None)
        if unnamed is None:
            raise
        raise ValueError(f"owner must name a rep per account (text or a number), got {unnamed!r}") from None
    if n and (codes < 0).all() and pd.notna(owners).any():
        logger.warning("no account's owner is a rep of capacity: only the team limit applies")
    return reps, hours, codes


def _owner_array(owner: Any, n: int) -> np.ndarray:
    """Each account's owner as a 1-d array of n values (`_owner_values`); another length is a ValueError."""
    owners = _owner_values(owner, n)
    if owners.ndim != 1 or owners.size != n:
        raise ValueError(f"owner must have one value per account ({n:,}), got {_given(owners)}")
    return owners


def _owner_values(owner: Any, n: int) -> np.ndarray:
    """Each account's owner as a 1-d array; a table, set, mapping or 2-d array is a ValueError naming owner.

    pandas' own words named no argument ("Data must be 1-dimensional", "'set' type is unordered", "2" for a
    DataFrame), and a dict's values were taken in the dict's order, not the accounts'.
    """
    if isinstance(owner, pd.Series):
        return owner.to_numpy()
    shape = getattr(owner, "shape", None)
    if isinstance(owner, pd.DataFrame | AbstractSet | Mapping) or (shape is not None and len(shape) > 1):
        got = f"{type(owner).__name__}" + (f" of shape {shape}" if shape is not None else "")
        raise ValueError(
            f"owner must have one value per account ({n:,}), in account order, got a {got}: pass a list, "
            "a 1-d array or a pandas Series"
        )
    return pd.Series(owner).to_numpy()


def _capacity_hours(series: pd.Series) -> FloatArray:
    """Each rep's hours as floats; true/false, text and lists are a ValueError naming capacity and the rep.

    The raw "could not convert string to float: 'x'" named neither, True was taken for 1 hour and "1"
    for 1 hour.
    """
    for rep, value in series.items():
        if isinstance(value, bool | np.bool_):
            raise ValueError(f"capacity must be hours (a number) per rep, got {value} for rep {rep!r}")
        if isinstance(value, str | bytes):  # float("1") read the text "1" as 1 hour
            raise ValueError(f"capacity must be hours (a number) per rep, got {value!r} for rep {rep!r}")
        try:
            float(np.nan if value is None else value)  # None is NaN, refused as such below
        except (TypeError, ValueError):
            raise ValueError(
                f"capacity must be hours (a number) per rep, got {value!r} for rep {rep!r}"
            ) from None
    return np.asarray(series.to_numpy(dtype=float), dtype=np.float64)


def rep_codes(owner: npt.ArrayLike, reps: npt.ArrayLike) -> IntArray:
    """Position in `reps` of each account's owner (-1: no owner, or not a rep), matched by `rep_name`."""
    index = pd.Index(rep_names(reps), dtype=object)
    return np.asarray(index.get_indexer(pd.Index(rep_names(owner), dtype=object)), dtype=np.intp)
