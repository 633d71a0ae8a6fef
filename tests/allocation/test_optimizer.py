import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse
from scipy.optimize import linprog

from kamml.allocation import optimizer as optimizer_module
from kamml.allocation.optimizer import AllocationResult, gain, optimize, optimize_budgets, optimize_detailed
from kamml.errors import InfeasibleError, KammlError

TOL = 1e-9  # the optimizer's relative tolerance on hours


# ------------------------------------------------------------------------------------------- helpers


def assert_feasible(h, hours, floor=0.0, cap=None, owner=None, capacity=None):
    n = h.size
    floor = np.broadcast_to(np.asarray(floor, dtype=float), (n,))
    cap = np.full(n, np.inf) if cap is None else np.broadcast_to(np.asarray(cap, dtype=float), (n,))
    assert np.all(np.isfinite(h))
    assert np.all(h >= floor)
    assert np.all(h <= cap)
    assert h.sum() <= hours * (1 + TOL) + 1e-12
    if capacity is not None:
        owner = np.asarray(owner, dtype=object)
        for rep, c in capacity.items():
            assert h[owner == rep].sum() <= c * (1 + TOL) + 1e-12, rep


def price_of(res, owner, capacity):
    """The price each account faces: its rep's when the rep has a capacity, else the team's."""
    if capacity is None:
        return np.full(res.hours.size, res.team_price)
    return np.array(
        [res.rep_price.get(o, res.team_price) if o in capacity else res.team_price for o in owner]
    )


def lp_upper_bound(stake, scale, hours, floor, cap, owner, capacity, n_points=100):
    """Optimum of the LP where each gain curve is replaced by the minimum of its tangents.

    Tangents of a concave curve lie above it, so the true optimum is feasible for this LP and the LP's
    value is an upper bound on it; with dense tangents the bound is tight.
    """
    n = stake.size
    blocks, rhs = [], []
    for i in range(n):
        top = min(cap[i], hours)
        uniform = np.linspace(floor[i], top, n_points)
        # points uniform in gain, dense where the curve bends most
        lo_u, hi_u = -np.expm1(-floor[i] / scale[i]), -np.expm1(-top / scale[i])
        by_gain = -scale[i] * np.log1p(-np.linspace(lo_u, hi_u, n_points))
        points = np.unique(np.clip(np.concatenate([uniform, by_gain]), floor[i], top))
        slope = stake[i] / scale[i] * np.exp(-points / scale[i])
        block = np.zeros((points.size, 2 * n))
        block[:, i] = -slope
        block[:, n + i] = 1.0
        blocks.append(block)
        rhs.append(gain(stake[i], scale[i], points) - slope * points)
    limits = [np.concatenate([np.ones(n), np.zeros(n)])]
    rhs_limits = [hours]
    for rep, c in (capacity or {}).items():
        limits.append(np.concatenate([(owner == rep).astype(float), np.zeros(n)]))
        rhs_limits.append(c)
    a_ub = sparse.csr_array(np.vstack([*blocks, np.array(limits)]))
    b_ub = np.concatenate([*rhs, rhs_limits])
    bounds = [(floor[i], min(cap[i], hours)) for i in range(n)] + [(None, stake[i]) for i in range(n)]
    res = linprog(np.r_[np.zeros(n), -np.ones(n)], A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun


def grid_optimum(stake, scale, hours, floor, cap, owner, capacity, step):
    """Best total gain with hours on a grid of `step` (floors, caps and limits on the grid), by DP.

    A grid allocation is feasible for the continuous problem, so this is a lower bound on its optimum.
    """
    units = round(hours / step)
    c = np.arange(units + 1)
    shift = c[:, None] - c[None, :]

    def combine(f, g):  # best value with at most c units, split between f and g
        vals = np.where(shift >= 0, f[None, :] + g[np.clip(shift, 0, None)], -np.inf)
        return vals.max(axis=1)

    def account(i):
        lo = round(floor[i] / step)
        hi = units if np.isinf(cap[i]) else min(units, round(cap[i] / step))
        table = gain(stake[i], scale[i], np.minimum(c, hi) * step)
        return np.where(c >= lo, table, -np.inf)

    def group(members, limit):
        best = np.where(c >= 0, 0.0, -np.inf)
        for i in members:
            best = combine(best, account(i))
        return best[np.minimum(c, limit)]

    total = np.zeros(units + 1)
    in_rep = np.zeros(stake.size, dtype=bool)
    for rep, cap_r in (capacity or {}).items():
        members = np.flatnonzero(owner == rep)
        in_rep[members] = True
        total = combine(total, group(members, round(cap_r / step)))
    total = combine(total, group(np.flatnonzero(~in_rep), units))
    return total[units]


def random_problem(rng, step=None):
    """A small random problem with two reps, unowned accounts, zero stakes, floors and caps."""
    n = int(rng.integers(1, 8))
    stake = rng.lognormal(3.0, 1.5, size=n) * (rng.random(n) > 0.15)
    scale = rng.uniform(0.5, 6.0, size=n)
    floor = rng.choice([0.0, 0.0, 0.25, 1.0], size=n)

    def extra(high, size=None):
        x = rng.uniform(0.0, high, size=size)
        return np.round(x / step) * step if step else x

    cap = np.where(rng.random(n) < 0.5, floor + extra(5.0, n) + (step or 0.1), np.inf)
    owner = rng.choice(np.array(["a", "b", None], dtype=object), size=n)
    capacity = {r: floor[owner == r].sum() + extra(4.0) for r in ("a", "b")}
    hours = floor.sum() + extra(8.0)
    return dict(stake=stake, scale=scale, hours=hours, floor=floor, cap=cap, owner=owner, capacity=capacity)


def equal_split(hours, floor, cap, owner, capacity):
    """The same hours c for every account (clipped to its floor and cap), the largest c that fits."""

    def fits(level):
        h = np.clip(level, floor, cap)
        if h.sum() > hours:
            return False
        return all(h[owner == rep].sum() <= c for rep, c in capacity.items())

    lo, hi = 0.0, hours + float(floor.max(initial=0.0)) + 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return np.clip(lo, floor, cap)


# ------------------------------------------------------------------------------------- closed forms


def test_doctests():
    result = doctest.testmod(optimizer_module)
    assert result.attempted >= 5
    assert result.failed == 0


def test_gain_formula():
    h = np.array([0.0, 1.0, 5.0])
    assert np.allclose(gain(100.0, 2.0, h), 100.0 * (1 - np.exp(-h / 2.0)))
    assert gain(0.0, 1.0, 10.0) == 0.0


def test_gain_of_pandas_series_indexed_alike_in_another_order_is_refused_as_optimize_refuses_them():
    """A plan sorted by rank (its hours indexed by account) beside the scores in id order: gain paired
    each account's stake with another's hours, silently, where optimize refuses such Series."""
    stake = pd.Series([100.0, 10.0], index=["x", "y"])
    hours = pd.Series([5.0, 0.0], index=["y", "x"])
    with pytest.raises(
        ValueError, match=r"stake and hours are pandas Series .* hours\.reindex\(stake\.index\)"
    ):
        gain(stake, 1.0, hours)
    with pytest.raises(ValueError, match="scale and hours"):
        gain(stake.to_numpy(), pd.Series([1.0, 2.0], index=["x", "y"]), hours)
    assert (
        gain(stake, 1.0, hours.reindex(stake.index)).tolist() == gain([100.0, 10.0], 1.0, [0.0, 5.0]).tolist()
    )
    assert gain(stake, 1.0, pd.Series([0.0, 5.0])).tolist() == gain(stake, 1.0, [0.0, 5.0]).tolist()


def test_two_accounts_split_by_log_ratio_of_stakes():
    # Interior optimum: marginal gains equal, so h1 - h2 = k ln(s1 / s2) for equal scales.
    h = optimize([300.0, 100.0], scale=2.0, hours=5.0)
    assert h.sum() == pytest.approx(5.0, rel=TOL)
    assert h[0] - h[1] == pytest.approx(2.0 * np.log(3.0), rel=1e-7)


def test_account_below_the_price_gets_nothing():
    # The small account's marginal gain at 0 hours (1/h) is below the price set by the big one.
    res = optimize_detailed([1000.0, 1.0], 1.0, hours=2.0)
    assert res.hours[1] == 0.0
    assert res.hours[0] == pytest.approx(2.0, rel=TOL)
    assert res.team_price == pytest.approx(1000.0 * np.exp(-2.0), rel=1e-7)
    assert res.marginal[1] <= res.team_price


def test_returns_numpy_array_from_pandas_inputs():
    stake = pd.Series([10.0, 20.0, 30.0], index=["x", "y", "z"])
    h = optimize(stake, pd.Series([1.0, 1.0, 1.0]), 3.0)
    assert isinstance(h, np.ndarray)
    assert h.shape == (3,)
    assert np.all(np.diff(h) > 0)


def test_pandas_inputs_indexed_alike_in_another_order_are_refused_not_paired_by_position():
    """Accounts pair by position: a scale or owner Series in another order than the stakes' paired each
    account with another's scale (account y got x's 10-hour scale), silently."""
    stake = pd.Series([100.0, 100.0], index=["x", "y"])
    scale = pd.Series([1.0, 10.0], index=["y", "x"])
    with pytest.raises(
        ValueError, match=r"stake and scale are pandas Series .* scale\.reindex\(stake\.index\)"
    ):
        optimize(stake, scale, 3.0)
    owner = pd.Series(["a", None], index=["y", "x"])
    with pytest.raises(ValueError, match="stake and owner"):
        optimize(stake, 1.0, 3.0, owner=owner, capacity={"a": 0.5})
    with pytest.raises(ValueError, match="scale and owner"):  # whichever is first
        optimize(stake.to_numpy(), scale, 3.0, owner=owner.reindex(["x", "y"]), capacity={"a": 0.5})
    h = optimize(
        stake, scale.reindex(stake.index), 3.0, owner=owner.reindex(stake.index), capacity={"a": 0.5}
    )
    assert h[1] == pytest.approx(0.5)  # y is rep a's, capped at its capacity
    # ids 1, 2 beside a frame's 0, 1 share a label by chance: paired by position, as documented
    by_id = pd.Series([100.0, 100.0], index=[1, 2])
    h = optimize(by_id, pd.Series([1.0, 10.0]), 3.0)
    assert h.tolist() == optimize([100.0, 100.0], [1.0, 10.0], 3.0).tolist()


def test_result_is_frozen_and_consistent():
    res = optimize_detailed([50.0, 80.0, 0.0], [1.0, 2.0, 3.0], hours=4.0, floor=0.5, cap=3.0)
    assert isinstance(res, AllocationResult)
    with pytest.raises(AttributeError):
        res.total_gain = 0.0  # type: ignore[misc]
    assert np.allclose(res.gain, gain([50.0, 80.0, 0.0], [1.0, 2.0, 3.0], res.hours))
    assert res.total_gain == pytest.approx(res.gain.sum())
    assert np.allclose(res.marginal, np.array([50.0, 40.0, 0.0]) * np.exp(-res.hours / [1.0, 2.0, 3.0]))


# ---------------------------------------------------------------------------------------- optimality


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kkt_conditions(seed):
    rng = np.random.default_rng(seed)
    n = 400
    stake = rng.lognormal(5, 1.5, size=n) * (rng.random(n) > 0.1)
    scale = rng.uniform(0.5, 10.0, size=n)
    floor = np.where(stake > 0, rng.choice([0.0, 0.5, 1.0], size=n), 0.0)
    cap = np.where(rng.random(n) < 0.3, floor + rng.uniform(0.1, 3.0, size=n), np.inf)
    owner = rng.choice(np.array(["r1", "r2", "r3", None], dtype=object), size=n)
    capacity = {r: floor[owner == r].sum() * f for r, f in [("r1", 1.2), ("r2", 3.0), ("r3", 10.0)]}
    hours = 2.5 * floor.sum()
    res = optimize_detailed(stake, scale, hours, floor, cap, owner, capacity)
    h = res.hours
    assert_feasible(h, hours, floor, cap, owner, capacity)
    price = price_of(res, owner, capacity)
    assert np.all(price >= res.team_price)
    interior = (h > floor + 1e-9) & (h < cap - 1e-9)
    assert interior.sum() > 20
    # equal marginal gains among interior accounts facing the same price
    assert np.allclose(res.marginal[interior], price[interior], rtol=1e-9)
    # at the cap the account would take more; at the floor it would take less
    at_cap = (h >= cap - 1e-9) & (stake > 0)
    at_floor = h <= floor + 1e-9
    assert np.all(res.marginal[at_cap] >= price[at_cap] * (1 - 1e-9))
    assert np.all(res.marginal[at_floor] <= price[at_floor] * (1 + 1e-9))
    # complementary slackness: a positive price means the limit is used
    if res.team_price > 0:
        assert h.sum() == pytest.approx(hours, rel=TOL)
    for rep, p in res.rep_price.items():
        if p > res.team_price * (1 + 1e-9):
            assert h[owner == rep].sum() == pytest.approx(capacity[rep], rel=TOL)


def test_gain_matches_grid_dp_and_lp_upper_bound():
    # Sandwich on many small problems: a grid DP (a feasible allocation, so a lower bound) <= ours <= an
    # LP on tangents (an upper bound), and ours >= 99.9 % of that upper bound.
    rng = np.random.default_rng(7)
    step = 0.05
    ratios = []
    for _ in range(60):
        p = random_problem(rng, step=step)
        h = optimize(**p)
        assert_feasible(h, p["hours"], p["floor"], p["cap"], p["owner"], p["capacity"])
        ours = gain(p["stake"], p["scale"], h).sum()
        lower = grid_optimum(**p, step=step)
        upper = lp_upper_bound(**p)
        assert lower <= ours * (1 + 1e-9) + 1e-9
        assert ours <= upper * (1 + 1e-9) + 1e-9
        ratios.append(ours / upper if upper > 0 else 1.0)
    assert min(ratios) >= 0.999


def test_never_worse_than_scipy_slsqp():
    from scipy.optimize import minimize

    rng = np.random.default_rng(11)
    for _ in range(10):
        p = random_problem(rng)
        n = p["stake"].size
        ours = gain(p["stake"], p["scale"], optimize(**p)).sum()
        cons = [{"type": "ineq", "fun": lambda x, H=p["hours"]: H - x.sum()}]
        for rep, c in p["capacity"].items():
            mask = (p["owner"] == rep).astype(float)
            cons.append({"type": "ineq", "fun": lambda x, m=mask, c=c: c - m @ x})
        bounds = [(p["floor"][i], min(p["cap"][i], p["hours"])) for i in range(n)]
        res = minimize(
            lambda x, s=p["stake"], k=p["scale"]: -gain(s, k, x).sum(),
            p["floor"].copy(),
            method="SLSQP",
            bounds=bounds,
            constraints=cons,
            options={"ftol": 1e-12, "maxiter": 500},
        )
        assert ours >= -res.fun * (1 - 1e-7)


# --------------------------------------------------------------------------------------------- limits


def test_rep_capacity_binding_and_not_binding():
    stake = np.array([500.0, 400.0, 50.0, 40.0, 30.0])
    owner = np.array(["busy", "busy", "idle", "idle", None], dtype=object)
    capacity = {"busy": 2.0, "idle": 100.0}
    res = optimize_detailed(stake, 2.0, hours=10.0, owner=owner, capacity=capacity)
    h = res.hours
    assert h[:2].sum() == pytest.approx(2.0, rel=TOL)  # binding
    assert res.rep_price["busy"] > res.team_price
    assert h[2:4].sum() < 100.0  # not binding: its accounts face the team's price
    assert res.rep_price["idle"] == res.team_price
    assert h.sum() == pytest.approx(10.0, rel=TOL)
    # without the rep limit, the busy rep's accounts would take more than 2 hours
    assert optimize(stake, 2.0, 10.0)[:2].sum() > 2.0


def test_owner_without_capacity_and_missing_owner_face_team_limit_only():
    stake = np.array([100.0, 100.0, 100.0, 100.0])
    owner = ["ann", "bob", None, np.nan]
    h = optimize(stake, 1.0, 8.0, owner=owner, capacity={"ann": 0.5})
    assert h[0] == pytest.approx(0.5, rel=TOL)
    assert np.allclose(h[1:], 2.5, rtol=1e-8)


def test_yes_no_owners_are_reps_true_and_false_as_on_every_engine():
    """Kept, not refused (unlike a yes/no account_id): the accounts table and Spark name such owners
    "True" and "False" (`kamml.data.validation`, `kamml.spark.session.owner_text`), so scores carry them
    as those reps; a capacity that names neither is refused by `allocate` as naming reps without accounts."""
    stake = [100.0, 100.0, 100.0, 100.0]
    for reps in ({True: 1.0}, {"True": 1.0}, pd.Series({np.True_: 1.0})):
        h = optimize(stake, 1.0, 10.0, owner=np.array([True, True, False, False]), capacity=reps)
        assert h[:2].sum() == pytest.approx(1.0, rel=TOL)
        np.testing.assert_allclose(
            h, optimize(stake, 1.0, 10.0, owner=["True", "True", "False", None], capacity=reps)
        )


def test_capacity_as_series_and_integer_owners():
    owner = np.array([1, 1, 2, 2])
    stake = [100.0, 100.0, 100.0, 100.0]
    h = optimize(stake, 1.0, 10.0, owner=owner, capacity=pd.Series({1: 1.0, 2: 3.0}))
    assert h[:2].sum() == pytest.approx(1.0, rel=TOL)
    assert h[2:].sum() == pytest.approx(3.0, rel=TOL)


def test_numeric_owners_match_reps_named_as_text():
    """Owner ids read as int64, or as floats because of a gap, still meet the capacity of rep "1"."""
    stake = [100.0, 100.0, 100.0, 100.0]
    for owner in (np.array([1, 1, 2, 2]), np.array([101.0, 101.0, np.nan, 2.0])):
        reps = {"1": 1.0} if owner[0] == 1 else {"101": 1.0}
        h = optimize(stake, 1.0, 10.0, owner=owner, capacity=reps)
        assert h[:2].sum() == pytest.approx(1.0, rel=TOL)
        assert h[2:].sum() == pytest.approx(9.0, rel=TOL)
    res = optimize_detailed(stake, 1.0, 10.0, owner=[1, 1, 2, 2], capacity={"1": 1.0, 2.0: 3.0})
    assert set(res.rep_price) == {"1", 2.0}  # keyed like the capacity given
    assert res.hours[2:].sum() == pytest.approx(3.0, rel=TOL)


@pytest.mark.parametrize(
    ("value", "name"),
    [(1, "1"), (np.int64(7), "7"), (101.0, "101"), (np.float64(2.5), "2.5"), (" ann ", "ann"),
     ("rep_01", "rep_01"), (None, None), (np.nan, None), (pd.NA, None), ("  ", None),
     # the text of a whole float (a float column of ids cast to text) is the rep of that number ...
     ("202.0", "202"), (" 101.00 ", "101"), ("-3.0", "-3"), ("-0.0", "0"), ("0.0", "0"),
     # ... other text is a name of its own
     ("007", "007"), ("007.0", "007.0"), ("+1.0", "+1.0"), ("A-1", "A-1"), ("1e3", "1e3"),
     ("101.5", "101.5"), ("1.", "1."), (".0", ".0"), ("1.0e3", "1.0e3")],
)  # fmt: skip
def test_rep_name(value, name):
    assert optimizer_module.rep_name(value) == name


@pytest.mark.parametrize("capacity", [5.0, [1.0, 2.0], np.array([1.0, 2.0]), "a"])
def test_capacity_that_is_no_mapping_of_reps_is_a_named_error(capacity):
    """A number per rep, or one for all, failed inside dict() ("'float' object is not iterable",
    "cannot convert dictionary update sequence element #0"), naming neither capacity nor what it needs."""
    with pytest.raises(ValueError, match=r"capacity must map each rep to its hours .* got "):
        optimize([1.0, 2.0], 1.0, 2.0, owner=["a", "b"], capacity=capacity)


def test_capacity_reps_equal_by_name_are_listed_twice():
    with pytest.raises(ValueError, match="more than once"):
        optimize([1.0, 1.0], 1.0, 2.0, owner=[1, 1], capacity={1: 1.0, "1": 2.0})


def test_infinite_capacity_means_no_rep_limit():
    h = optimize([100.0, 100.0], 1.0, 6.0, owner=["a", "a"], capacity={"a": np.inf})
    assert np.allclose(h, 3.0)


def test_zero_capacity_rep_gets_nothing():
    h = optimize([100.0, 100.0, 1.0], 1.0, 6.0, owner=["a", "a", "b"], capacity={"a": 0.0, "b": 5.0})
    assert np.all(h[:2] == 0.0)
    assert h[2] == pytest.approx(5.0, rel=TOL) or h[2] <= 5.0


def test_team_limit_binds_and_unused_hours_when_everyone_is_capped():
    stake = np.array([100.0, 60.0, 30.0])
    res = optimize_detailed(stake, 1.0, hours=3.0, cap=2.0)
    assert res.hours.sum() == pytest.approx(3.0, rel=TOL)
    assert res.team_price > 0
    assert res.unused_hours == 0.0
    res = optimize_detailed(stake, 1.0, hours=10.0, cap=2.0)
    assert np.array_equal(res.hours, np.full(3, 2.0))
    assert res.team_price == 0.0
    assert res.unused_hours == pytest.approx(4.0)


def test_zero_hours():
    res = optimize_detailed([10.0, 20.0], [1.0, 2.0], hours=0.0)
    assert np.array_equal(res.hours, np.zeros(2))
    assert res.total_gain == 0.0
    # the price of the first hour: the best marginal gain at zero hours
    assert res.team_price == pytest.approx(10.0)


def test_hours_none_is_a_named_error_not_an_internal_one():
    """None was the budget curve's open hours inside: it reached the solver as NaN (an AssertionError)."""
    for solve in (optimize, optimize_detailed):
        with pytest.raises(ValueError, match=r"hours must be a number .* got None"):
            solve([200.0, 100.0], 1.0, None)
        with pytest.raises(ValueError, match=r"hours must be a number .* got True"):  # was 1 hour
            solve([200.0, 100.0], 1.0, True)


def test_zero_stake_accounts_get_their_floor():
    res = optimize_detailed([0.0, 50.0, 0.0], 1.0, hours=5.0, floor=[0.5, 0.5, 0.0])
    assert res.hours[0] == 0.5
    assert res.hours[2] == 0.0
    assert res.hours[1] == pytest.approx(4.5, rel=TOL)
    res = optimize_detailed([0.0, 0.0], 1.0, hours=5.0, floor=0.25)
    assert np.array_equal(res.hours, [0.25, 0.25])
    assert res.team_price == 0.0
    assert res.unused_hours == pytest.approx(4.5)


def test_no_accounts():
    res = optimize_detailed(np.array([]), 1.0, hours=3.0)
    assert res.hours.shape == (0,)
    assert res.total_gain == 0.0
    assert res.unused_hours == 3.0


def test_floors_that_exactly_fill_the_capacity():
    h = optimize([10.0, 20.0, 30.0], 1.0, hours=3.0, floor=1.0, owner=["a", "a", "b"], capacity={"a": 2.0})
    assert np.allclose(h, 1.0)


def test_tiny_limits_hold_despite_rounding_in_log_price():
    # Found by fuzzing: a capacity equal to tiny floors next to a huge stake and scale. Rounding of the
    # log-price leaves ~1e-11 hours above the floor, which must not break a 2e-6 hour capacity.
    stake = np.array([1.09226475e33, 8.59472275e-41])
    scale = np.array([2242.07313534, 11.65041571])
    floor = np.array([1e-6, 1e-6])
    cap = np.array([np.inf, 10.22687775])
    h = optimize(stake, scale, 100.0, floor, cap, owner=["b", "b"], capacity={"b": 2e-6})
    assert h.sum() <= 2e-6
    assert np.all(h >= floor)


def test_floor_cost():
    # A floor on a low-value account takes hours from a high-value one.
    stake, scale, hours = np.array([1000.0, 1.0, 1.0]), 2.0, 4.0
    floor = np.array([0.0, 1.0, 1.0])
    res = optimize_detailed(stake, scale, hours, floor=floor)
    free = gain(stake, scale, optimize(stake, scale, hours)).sum()
    assert res.floor_cost == pytest.approx(free - res.total_gain, rel=1e-9)
    assert res.floor_cost > 100.0
    assert np.allclose(res.hours, [2.0, 1.0, 1.0])
    assert optimize_detailed(stake, scale, hours).floor_cost == 0.0


# --------------------------------------------------------------------------------------------- errors


def test_floors_above_team_hours_say_by_how_much():
    with pytest.raises(InfeasibleError, match=r"need 12 hours but the team has 10: 2 hours short"):
        optimize([1.0, 1.0, 1.0], 1.0, hours=10.0, floor=4.0)
    # one hour is "1 hour", not "1 hours"
    with pytest.raises(InfeasibleError, match=r"need 11 hours but the team has 10: 1 hour short"):
        optimize([1.0, 1.0], 1.0, hours=10.0, floor=5.5)
    with pytest.raises(InfeasibleError, match=r"negative \(-1\): 1 hour short of 0"):
        optimize([1.0, 1.0], 1.0, hours=-1.0)


def test_floors_above_rep_capacity_name_the_rep():
    with pytest.raises(InfeasibleError) as err:
        optimize(
            [1.0, 1.0, 1.0],
            1.0,
            hours=100.0,
            floor=[3.0, 3.0, 1.0],
            owner=["ann", "ann", "bob"],
            capacity={"ann": 5.0, "bob": 0.5},
        )
    msg = str(err.value)
    assert "rep 'ann'" in msg
    assert "its 2 accounts with a floor need 6 hours but its capacity is 5: 1 hour short" in msg
    assert "rep 'bob'" in msg
    assert "0.5 hours short" in msg
    assert isinstance(err.value, KammlError)
    assert err.value.exit_code == 6


def test_many_reps_short_of_their_floors_make_one_short_line():
    """An allocation audit: every rep was listed (50 reps gave a 6 KB line, 20,000 about 140 KB)."""
    reps = 200
    owner = np.repeat([f"rep{i}" for i in range(reps)], 2)
    capacity = {f"rep{i}": 2.0 - 0.001 * (i + 1) for i in range(reps)}  # rep199 furthest short
    with pytest.raises(InfeasibleError) as err:
        optimize(np.ones(2 * reps), 1.0, hours=1e6, floor=1.0, owner=owner, capacity=capacity)
    msg = str(err.value)
    assert len(msg) < 1200
    named = [f"rep{i}" for i in range(reps) if f"rep 'rep{i}'" in msg]
    assert named == ["rep195", "rep196", "rep197", "rep198", "rep199"]  # the five furthest short
    assert "and 195 more reps short by 0.001 to 0.195 hours (200 reps, 20.1 hours short in all)" in msg


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"hours": -5.0}, r"negative \(-5\)"),
        ({"floor": [-1.0, 0.0]}, "floor negative hours"),
        ({"cap": [1.0, -2.0]}, "cap negative hours"),
        ({"floor": [2.0, 0.0], "cap": 1.5}, "floor above cap for 1 account, by up to 0.5 hours"),
        ({"owner": ["a", "b"], "capacity": {"a": -1.0}}, r"negative hours for 1 rep \('a': -1\)"),
    ],
)
def test_infeasible_inputs(kwargs, pattern):
    args = {"stake": [1.0, 2.0], "scale": 1.0, "hours": 5.0} | kwargs
    with pytest.raises(InfeasibleError, match=pattern):
        optimize(**args)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"stake": [1.0, np.nan]}, "stake must be finite: 1 account is NaN or infinite"),
        ({"stake": [1.0, np.inf]}, "stake must be finite"),
        ({"stake": [1.0, -2.0]}, r"stake must be >= 0: 1 account \(e.g. position 1"),
        ({"cap": [np.nan, 1.0]}, "cap has NaN for 1 account$"),
        ({"stake": [[1.0, 2.0]]}, "one-dimensional"),
        ({"stake": [1.0 + 1.0j, 2.0]}, "stake must be real numbers, got complex"),
        ({"scale": np.complex128(1.0)}, "scale must be real numbers"),
        ({"hours": 5.0 + 0.0j}, "hours must be real numbers"),
        ({"scale": [1.0, 0.0]}, "scale must be > 0"),
        ({"scale": [1.0, 2.0, 3.0]}, r"scale must be a scalar or have one value per account \(2\)"),
        ({"floor": [np.nan, 0.0]}, "floor must be finite"),
        ({"cap": [np.nan, 1.0]}, "cap has NaN"),
        ({"hours": np.nan}, "hours must be finite"),
        ({"hours": [1.0, 2.0]}, "single number"),
        ({"capacity": {"a": 1.0}}, "capacity needs owner"),
        ({"owner": ["a"], "capacity": {"a": 1.0}}, "owner must have one value per account"),
        ({"owner": [["a"], ["b"]], "capacity": {"a": 1.0}}, r"owner must name a rep per account .* \['a'\]"),
        ({"owner": [{"a": 1}, "a"], "capacity": {"a": 1.0}}, r"owner must name a rep .* \{'a': 1\}"),
        ({"owner": ["a", "a"], "capacity": {"a": np.nan}}, "capacity is NaN"),
        ({"owner": ["a", "a"], "capacity": {"a": None}}, "capacity is NaN"),
        ({"owner": ["a", "a"], "capacity": {"a": "x"}}, r"capacity must be hours .* got 'x' for rep 'a'"),
        ({"owner": ["a", "a"], "capacity": {"b": 1.0, "a": True}}, "capacity .* got True for rep 'a'"),
        ({"owner": ["a", "a"], "capacity": pd.Series({"a": True})}, "capacity .* got True for rep 'a'"),
        ({"owner": ["a", "a"], "capacity": {"a": [1.0]}}, r"capacity .* got \[1.0\] for rep 'a'"),
        ({"owner": ["a", "a"], "capacity": pd.Series([1.0, 2.0], index=["a", "a"])}, "more than once"),
    ],
)
def test_bad_inputs_are_value_errors(kwargs, pattern):
    args = {"stake": [1.0, 2.0], "scale": 1.0, "hours": 5.0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        optimize(**args)


# ------------------------------------------------------------------------------------------ properties


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    finite = {"allow_nan": False, "allow_infinity": False, "allow_subnormal": False}
    stake = draw(arrays(float, n, elements=st.floats(0.0, 1e5, **finite)))
    scale = draw(arrays(float, n, elements=st.floats(0.05, 100.0, **finite)))
    floor = draw(arrays(float, n, elements=st.sampled_from([0.0, 0.1, 0.5, 2.0])))
    room = draw(arrays(float, n, elements=st.floats(0.0, 20.0, **finite)))
    capped = draw(arrays(bool, n))
    cap = np.where(capped, floor + room, np.inf)
    owner = np.array(draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n)), dtype=object)
    extra = draw(st.tuples(*[st.floats(0.0, 30.0, **finite)] * 3))
    capacity = {r: floor[owner == r].sum() + e for r, e in zip(("a", "b"), extra[:2], strict=True)}
    hours = floor.sum() + extra[2]
    return dict(stake=stake, scale=scale, hours=hours, floor=floor, cap=cap, owner=owner, capacity=capacity)


FLOORS_TAKE_ALMOST_ALL = dict(  # found by hypothesis in CI: 0.0078 free hours worth 110 each
    stake=np.array([6.0, 0.0, 0.0]),
    scale=np.full(3, 0.0546875),
    hours=2.1078125,
    floor=np.array([0.0, 2.0, 0.1]),
    cap=np.full(3, np.inf),
    owner=np.array(["a", "a", "a"], dtype=object),
    capacity={"a": 3.1, "b": 0.0},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
@example(FLOORS_TAKE_ALMOST_ALL)
def test_constraints_hold_and_never_worse_than_equal_split(p):
    h = optimize(**p)
    assert_feasible(h, p["hours"], p["floor"], p["cap"], p["owner"], p["capacity"])
    even = equal_split(p["hours"], p["floor"], p["cap"], p["owner"], p["capacity"])
    ours = gain(p["stake"], p["scale"], h).sum()
    baseline = gain(p["stake"], p["scale"], even).sum()
    # the optimizer stops with the hours used within a relative 1e-9 of the limit, never above: the gain
    # left on the table is at most that many hours at the highest marginal value (stake / scale)
    unspent = 1e-9 * p["hours"] * float(np.max(p["stake"] / p["scale"], initial=0.0))
    assert ours >= baseline - 1e-7 * max(1.0, baseline) - unspent


@settings(max_examples=40, deadline=None)
@given(problems())
def test_floor_cost_is_never_negative_and_prices_are_ordered(p):
    res = optimize_detailed(**p)
    assert res.floor_cost >= 0.0
    assert res.team_price >= 0.0
    assert all(price >= res.team_price for price in res.rep_price.values())
    assert res.unused_hours >= 0.0


@settings(max_examples=40, deadline=None)
@given(problems(), st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=4))
def test_budgets_give_what_each_budget_solved_alone_gives(p, fractions):
    # the budget curve shares the checks and the reps' own prices across budgets: same numbers, bit for bit
    budgets = [f * p["hours"] for f in fractions]
    args = {key: value for key, value in p.items() if key != "hours"}
    results = optimize_budgets(budgets=budgets, **args)
    assert len(results) == len(budgets)
    for budget, res in zip(budgets, results, strict=True):
        try:
            alone = optimize_detailed(hours=budget, **args)
        except InfeasibleError:
            assert res is None
            continue
        assert res is not None
        assert np.array_equal(res.hours, alone.hours)
        assert (res.total_gain, res.team_price, res.floor_cost, res.unused_hours) == (
            alone.total_gain,
            alone.team_price,
            alone.floor_cost,
            alone.unused_hours,
        )
        assert res.rep_price == alone.rep_price


def test_budgets_below_the_floors_are_none_and_a_reps_shortfall_still_raises():
    stake, floor = [3.0, 2.0, 1.0], [1.0, 1.0, 0.0]
    res = optimize_budgets(stake, 1.0, [1.0, 2.0, 0.0, 5.0], floor=floor)
    assert res[0] is None
    assert res[2] is None
    assert res[1] is not None
    assert np.allclose(res[1].hours, [1.0, 1.0, 0.0])
    assert res[3] is not None
    assert res[3].hours.sum() == pytest.approx(5.0)
    assert optimize_budgets(stake, 1.0, []) == []
    with pytest.raises(InfeasibleError, match="rep 'ann'"):  # no budget helps a rep short of its floors
        optimize_budgets(stake, 1.0, [10.0], floor=floor, owner=["ann", "ann", None], capacity={"ann": 1.5})
    with pytest.raises(InfeasibleError, match=r"negative \(-1\)"):
        optimize_budgets(stake, 1.0, [1.0, -1.0])
    with pytest.raises(ValueError, match="hours must be finite"):
        optimize_budgets(stake, 1.0, [np.inf])


def test_marginal_value_is_finite_for_a_vanishing_scale_and_a_zero_stake():
    with np.errstate(all="ignore"):
        res = optimize_detailed([100.0, 50.0, 0.0], [1e-320, 2.0, 1.0], hours=3.0, floor=0.5)
    assert np.isfinite(res.marginal).all()  # inf x 0 gave NaN for the vanishing scale
    assert res.marginal[0] == 0.0  # served in full by its floor: one more hour adds nothing
    assert res.marginal[2] == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"floor": 0.5}, {"cap": 2.0}, {"owner": ["a", "a", None], "capacity": {"a": 2.0}, "floor": 0.1}],
)
def test_a_subnormal_scale_is_served_in_full_and_the_others_get_the_hours(kwargs):
    """A scale of 5e-324 hours overflows hours / scale: the price search ended in an AssertionError."""
    stake, scale = [1.0, 5.0, 2.0], [5e-324, 1.0, 3.0]
    res = optimize_detailed(stake, scale, 10.0, **kwargs)
    assert_feasible(res.hours, 10.0, **kwargs)
    assert res.gain[0] == 1.0  # any hours at all win the whole stake
    rest = optimize_detailed(
        stake[1:], scale[1:], 10.0 - res.hours[0], **_without_first(kwargs, res.hours[0])
    )
    np.testing.assert_allclose(res.hours[1:], rest.hours, rtol=1e-9)
    assert res.team_price == pytest.approx(rest.team_price, rel=1e-9)
    alone = optimize_detailed([1.0], [5e-324], 10.0, floor=kwargs.get("floor", 0.0))
    assert np.isfinite(alone.hours).all()
    assert alone.total_gain == 1.0
    assert alone.team_price == 0.0  # a price-free team leaves what it cannot use
    assert alone.unused_hours == pytest.approx(10.0 - alone.hours[0])


def _without_first(kwargs, first_hours):
    """The options for the accounts after the first, whose hours leave its rep's capacity."""
    out = {key: value[1:] if isinstance(value, list) else value for key, value in kwargs.items()}
    if "capacity" in kwargs:
        rep = kwargs["owner"][0]
        out["capacity"] = {**kwargs["capacity"], rep: kwargs["capacity"][rep] - first_hours}
    return out


@pytest.mark.parametrize(
    ("stake", "scale"),
    [
        ([1000.0, 1000.0], [1e10, 1.5e10]),  # one ulp of the log-price is worth 1e-4 hours
        ([1e-300, 1.0, 1.0], [1.0, 1e-300, 1e300]),  # one ulp is worth 1e287 hours of the last account
        ([1.0, 1.0, 1.0], [1e-300, 1e300, 1.0]),
    ],
)
def test_a_priced_team_uses_its_hours_to_the_tolerance_whatever_the_scales(stake, scale):
    """With a positive price every team hour is worth something, so none may be left unused."""
    res = optimize_detailed(stake, scale, 10.0)
    assert res.team_price > 0
    assert res.hours.sum() <= 10.0
    assert res.hours.sum() == pytest.approx(10.0, rel=TOL)
    assert res.unused_hours == 0.0
    assert (res.hours >= 0).all()


@pytest.mark.parametrize(
    ("scale", "hours"),
    [(1e12, 1e-3), (1e7, 1e-9), (1e10, 1e-3), (8.0208095e8, 16.11862320005465)],
)
def test_hours_below_an_ulp_of_the_price_still_all_go_to_a_lone_account(scale, hours):
    """A lone account without cap takes every hour; its bracket's low end rounded onto the price at 0
    hours when hours / scale was below an ulp of the log-price, and it got 0 (or 99.5 %) of the hours."""
    res = optimize_detailed([1000.0], [scale], hours)
    assert res.hours[0] <= hours
    assert res.hours[0] == pytest.approx(hours, rel=TOL)
    two = optimize([1000.0, 1000.0], [scale, scale], hours)
    assert two.sum() == pytest.approx(hours, rel=TOL)


def test_a_floor_a_rounding_above_its_cap_is_the_cap():
    """0.1 + 0.2 hours of floor under a cap of 0.3 was refused as "floor 0.3 > cap 0.3"; a real gap is
    still refused, with the values written in full."""
    h = optimize([1.0, 1.0], 1.0, 3.0, floor=0.1 + 0.2, cap=0.3)
    assert h.tolist() == [0.3, 0.3]
    with pytest.raises(InfeasibleError, match=r"floor 0\.3000001 > cap 0\.3\)"):
        optimize([1.0, 1.0], 1.0, 3.0, floor=0.3000001, cap=0.3)


@pytest.mark.parametrize("budgets", [3.0, "3", np.array(3.0)])
def test_budgets_that_are_not_a_sequence_are_a_named_error(budgets):
    """A single number was a raw TypeError ("not iterable"), a text one budget per letter."""
    with pytest.raises(ValueError, match="budgets must be a sequence of team hours"):
        optimize_budgets([1.0, 1.0], 1.0, budgets)


def test_a_rep_full_at_its_floors_does_not_set_the_teams_price():
    """Floors fill the team's hours and rep a's capacity: one more team hour can only go to account 2.

    The team price was account 1's margin (606.5, the full rep's), not account 2's (6.07).
    """
    args = {"floor": [0.5, 0.5], "owner": ["a", None], "capacity": {"a": 0.5}}
    res = optimize_detailed([1000.0, 10.0], 1.0, 1.0, **args)
    more = optimize_detailed([1000.0, 10.0], 1.0, 1.0 + 1e-4, **args)
    assert res.team_price == pytest.approx(10.0 * np.exp(-0.5), rel=1e-9)
    assert res.team_price == pytest.approx((more.total_gain - res.total_gain) / 1e-4, rel=1e-3)
    assert res.rep_price["a"] == pytest.approx(1000.0 * np.exp(-0.5), rel=1e-9)  # its capacity binds


def test_accounts_between_floor_and_cap_have_their_price_as_marginal_gain_exactly():
    """The interior accounts' marginal gain is their price, exactly: Spark's, computed from its hours
    after the shrink to the budget, differed in the last digits, so tiers by marginal gain split them by
    rounding noise there (tests/spark: `test_allocation_equals_in_memory`); this pins the in-memory side,
    which the interpolation of the last bracket could move."""
    rng = np.random.default_rng(4)
    n = 3_000
    stake, scale = rng.lognormal(5, 1.5, n), rng.uniform(1, 8, n)
    owner = rng.choice(np.array(["ann", "bob", None], dtype=object), n)
    res = optimize_detailed(stake, scale, 1_600.0, floor=0.25, cap=3.0, owner=owner, capacity={"ann": 500.0})
    interior = (res.hours > 0.25) & (res.hours < 3.0)
    assert interior.sum() > 100
    price = np.where(owner == "ann", res.rep_price["ann"], res.team_price)
    np.testing.assert_array_equal(res.marginal[interior], price[interior])
    computed = stake / scale * np.exp(-res.hours / scale)  # what the hours themselves say: within 1e-9
    np.testing.assert_allclose(res.marginal, computed, rtol=1e-9)
    at_cap = res.hours >= 3.0
    assert np.all(res.marginal[at_cap] >= price[at_cap] * (1 - 1e-12))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"hours": "3"}, "hours must be numbers, not text: got '3'"),
        ({"hours": np.str_("3")}, "hours must be numbers, not text: got '3'"),
        ({"floor": "0.5"}, "floor must be numbers, not text: got '0.5'"),
        ({"cap": ["2", "2"]}, "cap must be numbers, not text: got '2'"),
        ({"cap": pd.Series(["2", 2.0])}, "cap must be numbers, not text: got '2'"),
        ({"stake": ["1", "2"]}, "stake must be numbers, not text: got '1'"),
        ({"scale": b"1"}, "scale must be numbers, not text: got b'1'"),
        ({"owner": ["a", "a"], "capacity": {"a": "1"}}, r"capacity must be hours .* got '1' for rep 'a'"),
    ],
)
def test_numbers_written_as_text_are_refused_by_name(kwargs, pattern):
    """An audit: "3" hours, a floor of "0.5" or a rep's capacity of "1" were read as numbers, while
    other wrong types were refused naming the argument."""
    args = {"stake": [1.0, 2.0], "scale": 1.0, "hours": 3.0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        optimize(**args)


def test_yes_no_and_text_are_refused_by_name_and_floor_none_is_no_floor():
    """An allocation audit: stakes [True, False] were read as 1 and 0 (hours of true were refused),
    text failed with numpy's words naming no argument, and floor=None read as NaN floors."""
    with pytest.raises(ValueError, match="stake must be numbers, got true/false"):
        optimize([True, False], 1.0, 3.0)
    with pytest.raises(ValueError, match="stake must be numbers, not text: got 'a'"):
        optimize(["a", 2.0], 1.0, 3.0)
    with pytest.raises(ValueError, match="scale must be numbers"):
        optimize([1.0, 2.0], ["x", 1.0], 3.0)
    np.testing.assert_array_equal(optimize([1.0, 2.0], 1.0, 3.0, floor=None), optimize([1.0, 2.0], 1.0, 3.0))


def test_one_floored_account_of_a_rep_short_is_singular():
    from kamml.allocation.optimizer import reps_short

    lines = reps_short(
        ["ann", "bo"], np.array([1.0, 4.0]), np.array([0.5, 1.0]), np.array([1, 4]), np.array([True, True])
    )
    assert "rep 'ann': the floors of its 1 account with a floor need 1 hour but" in " ".join(lines)
    assert "rep 'bo': the floors of its 4 accounts with a floor need 4 hours" in " ".join(lines)


def test_per_account_length_errors_group_the_account_count():
    """'one value per account (1234), got shape (1233,)' read without separators, unlike kamml's counts."""
    with pytest.raises(
        ValueError, match=r"scale must be a scalar or have one value per account \(1,234\), got 1,233 values"
    ):
        optimize(np.ones(1234), np.ones(1233), 5.0)
    with pytest.raises(
        ValueError, match=r"owner must have one value per account \(1,234\), got 1,233 values"
    ):
        optimize(np.ones(1234), 1.0, 5.0, owner=["a"] * 1233, capacity={"a": 1.0})


def test_a_scale_near_the_largest_float_plans_without_a_numpy_warning():
    """A scale of 1e308 overflowed k * a in the first guess: right hours, but numpy's RuntimeWarning
    "overflow encountered in multiply" in a batch job's log (a Spark parity audit)."""
    import warnings

    stake, scale = [100.0, 100.0, 300.0, 50.0], [1e308, 5.0, 5.0, 3.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = optimize_detailed(stake, scale, 10.0, floor=0.25)
    assert_feasible(res.hours, 10.0, floor=0.25)
    rest = optimize_detailed(stake[1:], scale[1:], 10.0 - res.hours[0], floor=0.25)
    np.testing.assert_allclose(res.hours[1:], rest.hours, rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"stake": pd.Series(pd.to_datetime(["2024-01-01", "2024-06-01"]))},
            "stake must be numbers, got dates",
        ),
        (
            {"stake": np.array(["2024-01-01", "2024-06-01"], dtype="datetime64[D]")},
            "stake must be numbers, got dates",
        ),
        (
            {"stake": pd.Series(pd.to_datetime(["2024-01-01", "2024-06-01"]).tz_localize("UTC"))},
            r"stake must be numbers, got dates \(datetime64\[ns, UTC\]\)",
        ),
        ({"scale": pd.to_timedelta([1, 2], unit="h")}, "scale must be numbers, got durations"),
        ({"floor": pd.to_timedelta([0, 1], unit="h")}, "floor must be numbers, got durations"),
        ({"cap": pd.to_timedelta([1, 2], unit="h")}, "cap must be numbers, got durations"),
        ({"hours": np.timedelta64(3, "h")}, "hours must be numbers, got durations"),
        ({"hours": np.datetime64("2024-01-01")}, "hours must be numbers, got dates"),
        (
            {"stake": np.array([np.datetime64("2024-01-01"), np.datetime64("2024-06-01")], dtype=object)},
            r"stake must be numbers, got dates \(object\)",  # were stakes of 19723 and 19875 (days)
        ),
    ],
)
def test_dates_and_durations_are_refused_by_name(kwargs, pattern):
    """An allocation audit: a date or duration array was read as its integer nanoseconds (a stake of
    1.7e18 per account, a cap of 3.6e12 hours for 1 h) and planned without a word, while a capacity of
    1 h (a Timedelta) was refused naming capacity and the rep."""
    args = {"stake": [1.0, 2.0], "scale": 1.0, "hours": 3.0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        optimize(**args)


def test_gain_refuses_what_optimize_refuses():
    """`gain` read dates as nanoseconds (a gain of 1e18) and the text "1" as a stake of 1."""
    with pytest.raises(ValueError, match="stake must be numbers, got dates"):
        gain(pd.to_datetime(["2024-01-01"]), 1.0, 1.0)
    with pytest.raises(ValueError, match="stake must be numbers, not text"):
        gain(["1"], 1.0, 1.0)
    with pytest.raises(ValueError, match="hours must be numbers, got true/false"):
        gain([1.0], 1.0, [True])
    np.testing.assert_array_equal(
        gain([100.0, 50.0], [2.0, 1.0], [2.0, 0.5]), [100.0, 50.0] * -np.expm1([-1.0, -0.5])
    )


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"stake": [1.0, pd.NA]}, r"stake must be finite: 1 account is NaN or infinite \(e.g. position 1"),
        ({"scale": np.array([1.0, pd.NA], dtype=object)}, "scale must be finite: 1 account"),
        ({"floor": [0.0, pd.NA]}, "floor must be finite: 1 account"),
        ({"cap": [pd.NA, 2.0]}, "cap has NaN for 1 account"),
        ({"hours": pd.NA}, "hours must be finite"),
        ({"stake": [1.0, pd.NaT]}, "stake must be finite: 1 account"),
    ],
)
def test_pandas_missing_values_in_plain_lists_are_missing_values(kwargs, pattern):
    """pd.NA in a list was "float() argument must be a string or a real number, not 'NAType'" while
    the same NA in an Int64 Series was "must be finite: 1 account is NaN": one rule for both."""
    args = {"stake": [1.0, 2.0], "scale": 1.0, "hours": 3.0} | kwargs
    with pytest.raises(ValueError, match=pattern):
        optimize(**args)


@pytest.mark.parametrize(
    "owner",
    [np.array([["a"], ["b"]]), pd.DataFrame({"owner": ["a", "b"]}), {"a", "b"}, {0: "a", 1: "b"}],
    ids=["2-d array", "DataFrame", "set", "dict"],
)
def test_an_owner_that_is_no_sequence_of_reps_is_refused_by_name(owner):
    """A 2-d owner was pandas' "Data must be 1-dimensional", a DataFrame "ValueError: 2" and a set
    "'set' type is unordered": none named owner; a dict's values were taken in its order."""
    with pytest.raises(
        ValueError, match=r"owner must have one value per account \(2\), in account order, got"
    ):
        optimize([1.0, 2.0], 1.0, 3.0, owner=owner, capacity={"a": 1.0})


ONE_OWNER_EACH = r"owner must have one value per account \(2\), "


@pytest.mark.parametrize(
    ("owner", "pattern"),
    [(["a", "b", "c"], ONE_OWNER_EACH + "got 3 values"),
     (np.array([["a"], ["b"]]), ONE_OWNER_EACH + "in account order, got a ndarray of shape"),
     ({"a", "b"}, ONE_OWNER_EACH + "in account order, got a set")],
    ids=["too long", "2-d array", "set"],
)  # fmt: skip
def test_an_owner_without_a_capacity_is_checked_alike(owner, pattern):
    """With capacity None the owner was not looked at: a wrong-length or 2-d owner passed silently."""
    for call in (optimize, optimize_detailed):
        with pytest.raises(ValueError, match=pattern):
            call([1.0, 2.0], 1.0, 3.0, owner=owner)
    with pytest.raises(ValueError, match=pattern):
        optimize_budgets([1.0, 2.0], 1.0, [3.0], owner=owner)
    np.testing.assert_array_equal(
        optimize([1.0, 2.0], 1.0, 3.0, owner=["a", "b"]), optimize([1.0, 2.0], 1.0, 3.0)
    )


def test_masked_values_are_refused_by_name():
    """np.asarray dropped a masked array's mask: the masked stake (a missing value) was planned as its
    hidden number."""
    stake = np.ma.masked_array([5.0, 2.0], mask=[True, False])
    with pytest.raises(ValueError, match=r"stake has 1 masked value \(position 0; .*stake\.filled\(0\)"):
        optimize(stake, 1.0, 3.0)
    unmasked = np.ma.masked_array([5.0, 2.0], mask=[False, False])
    np.testing.assert_array_equal(optimize(unmasked, 1.0, 3.0), optimize([5.0, 2.0], 1.0, 3.0))
