"""Speed and quality of the effort allocation optimizer (kamml.allocation.optimizer).

Speed: 1,000,000 accounts over 50 reps (lognormal stakes, 10 % inactive, 10 % without an owner, floors,
caps, some reps' capacity binding); bar: <= 5 s for `optimize`. Also the budget curve's 20 budgets.
Quality: on many small random problems, the optimizer's gain as a share of an LP upper bound (each gain
curve replaced by the minimum of its tangents, which lies above it, solved by HiGHS via
scipy.optimize.linprog); bar: >= 99.9 %.

Run: ``.venv/bin/python benchmarks/allocation.py [--accounts N] [--reps R] [--problems P]``.
Exits non-zero when the quality bar is missed; the time is printed, not enforced (machines differ).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _flags import whole
from scipy import sparse
from scipy.optimize import linprog

from kamml.allocation.optimizer import gain, optimize, optimize_budgets, optimize_detailed


def world(n: int, n_reps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    stake = rng.lognormal(mean=7.0, sigma=1.5, size=n)
    stake[rng.random(n) < 0.10] = 0.0  # inactive accounts
    scale = 2.0 + 0.5 * np.sqrt(stake / np.median(stake[stake > 0]))  # bigger accounts need more hours
    floor = np.where(stake > 0, 0.5, 0.0)
    reps = np.array([f"rep_{r:02d}" for r in range(n_reps)], dtype=object)
    owner = reps[rng.integers(0, n_reps, size=n)]
    owner[rng.random(n) < 0.10] = None
    per_rep_floors = {r: floor[owner == r].sum() for r in reps}
    capacity = {r: per_rep_floors[r] * rng.uniform(1.5, 6.0) for r in reps}  # some bind, some do not
    hours = 2.0 * floor.sum()
    return dict(stake=stake, scale=scale, hours=hours, floor=floor, cap=40.0, owner=owner, capacity=capacity)


def speed(n: int, n_reps: int, repeats: int) -> float:
    args = world(n, n_reps)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        h = optimize(**args)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    res = optimize_detailed(**args)
    detailed = time.perf_counter() - start
    binding = sum(p > res.team_price * (1 + 1e-9) for p in res.rep_price.values())
    print(
        f"speed: {n:,} accounts, {n_reps} reps: optimize {min(times):.2f} s best / {np.median(times):.2f} s "
        f"median of {repeats} (bar <= 5 s); optimize_detailed {detailed:.2f} s (solves twice to price floors)"
    )
    print(
        f"       team hours {args['hours']:,.0f}, used {h.sum():,.0f}; team price {res.team_price:.4g}/h; "
        f"{binding} of {n_reps} reps at capacity; floors cost {res.floor_cost:,.0f} of {res.total_gain:,.0f}"
    )
    return min(times)


def curve_speed(n: int, n_reps: int) -> None:
    """The budget curve's solver: 20 budgets (10 % to 200 % of the hours) in one `optimize_budgets` call."""
    args = world(n, n_reps)
    hours = args.pop("hours")
    budgets = [hours * i / 10 for i in range(1, 21)]
    start = time.perf_counter()
    results = optimize_budgets(budgets=budgets, **args)
    elapsed = time.perf_counter() - start
    solved = sum(res is not None for res in results)
    print(
        f"curve: {n:,} accounts, {n_reps} reps, 20 budgets ({solved} cover the floors): optimize_budgets "
        f"{elapsed:.2f} s (each budget with and without floors; reps' own prices found once)"
    )


def lp_upper_bound(stake, scale, hours, floor, cap, owner, capacity, n_points: int = 200) -> float:
    """Max of the LP where each gain is replaced by the minimum of its tangents (>= the true optimum)."""
    n = stake.size
    blocks, rhs = [], []
    for i in range(n):
        top = min(cap[i], hours)
        uniform = np.linspace(floor[i], top, n_points)
        lo_u, hi_u = -np.expm1(-floor[i] / scale[i]), -np.expm1(-top / scale[i])
        by_gain = -scale[i] * np.log1p(-np.linspace(lo_u, hi_u, n_points))  # dense where it bends
        points = np.unique(np.clip(np.concatenate([uniform, by_gain]), floor[i], top))
        slope = stake[i] / scale[i] * np.exp(-points / scale[i])
        block = np.zeros((points.size, 2 * n))  # z_i - slope * h_i <= gain(p) - slope * p
        block[:, i] = -slope
        block[:, n + i] = 1.0
        blocks.append(block)
        rhs.append(gain(stake[i], scale[i], points) - slope * points)
    limits = [np.r_[np.ones(n), np.zeros(n)]]
    rhs_limits = [hours]
    for rep, c in capacity.items():
        limits.append(np.r_[(owner == rep).astype(float), np.zeros(n)])
        rhs_limits.append(c)
    a_ub = sparse.csr_array(np.vstack([*blocks, np.array(limits)]))
    b_ub = np.concatenate([*rhs, rhs_limits])
    bounds = [(floor[i], min(cap[i], hours)) for i in range(n)] + [(None, stake[i]) for i in range(n)]
    res = linprog(np.r_[np.zeros(n), -np.ones(n)], A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(-res.fun)


def random_problem(rng: np.random.Generator) -> dict:
    n = int(rng.integers(1, 9))
    stake = rng.lognormal(3.0, 1.5, size=n) * (rng.random(n) > 0.15)
    scale = rng.uniform(0.3, 8.0, size=n)
    floor = rng.choice([0.0, 0.0, 0.25, 1.0], size=n)
    cap = np.where(rng.random(n) < 0.5, floor + rng.uniform(0.1, 6.0, size=n), np.inf)
    owner = rng.choice(np.array(["a", "b", None], dtype=object), size=n)
    capacity = {r: floor[owner == r].sum() + rng.uniform(0.0, 5.0) for r in ("a", "b")}
    hours = floor.sum() + rng.uniform(0.0, 12.0)
    return dict(stake=stake, scale=scale, hours=hours, floor=floor, cap=cap, owner=owner, capacity=capacity)


def quality(n_problems: int) -> float:
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(n_problems):
        p = random_problem(rng)
        ours = gain(p["stake"], p["scale"], optimize(**p)).sum()
        bound = lp_upper_bound(**p)
        ratios.append(1.0 if bound <= 0 else ours / bound)
    worst, best = min(ratios), max(ratios)
    print(
        f"quality: {n_problems} random problems (1-8 accounts, 2 reps, floors, caps): optimizer gain / LP "
        f"upper bound: min {100 * worst:.4f} %, median {100 * np.median(ratios):.4f} %, "
        f"max {100 * best:.6f} % (bar >= 99.9 %; above 100 % would mean a broken constraint)"
    )
    return worst if best <= 1 + 1e-7 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=whole(1), default=1_000_000)
    parser.add_argument("--reps", type=whole(1), default=50)
    parser.add_argument("--repeats", type=whole(1), default=3)
    parser.add_argument("--problems", type=whole(1), default=300)
    args = parser.parse_args()
    speed(args.accounts, args.reps, args.repeats)
    curve_speed(args.accounts, args.reps)
    worst = quality(args.problems)
    return 0 if worst >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
