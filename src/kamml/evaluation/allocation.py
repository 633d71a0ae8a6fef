"""Score allocations of sales hours against the synthetic world's truth, the oracle and simple rules.

The synthetic world (`kamml.datasets.synthetic.World`) knows every account's true gain curve
``stake x (1 - exp(-h / k))``, so any allocation has an exact true expected gain. The **oracle** is the
optimizer run on the true stakes and scales with the same hours and limits; a policy's gain as a share of
the oracle's says how much of the achievable gain it captures (DESIGN §8). Beside kamml's recommended
allocation sit three rules a sales manager might use without a model, all on past revenue (the amount of
the last `window_days` before the world's end):

- ``equal``: the same hours for every account that bought in the window (every account when none did);
- ``by_revenue``: hours proportional to past revenue, no account above the cap (the excess goes to the
  others, in proportion);
- ``top_n``: the cap to each of the N accounts with the most past revenue, N = hours / cap (the remainder
  to the next account).

The bar for kamml's allocation, end to end: at least 85 % of the oracle's gain and at least 20 % more than
the best of the three rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kamml.allocation.optimizer import optimize
from kamml.errors import ConfigError, InfeasibleError, Problem, SchemaError

if TYPE_CHECKING:
    from kamml.datasets.synthetic import World

__all__ = [
    "SIMPLE_RULES",
    "compare_allocations",
    "equal_hours",
    "evaluate_allocation",
    "hours_by_revenue",
    "oracle_hours",
    "past_revenue",
    "simple_rule_hours",
    "top_n_by_revenue",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

SIMPLE_RULES = ("equal", "by_revenue", "top_n")
"""Names of the simple rules, as keys of `simple_rule_hours` and rows of `compare_allocations`."""

COMPARISON_COLUMNS = (
    "policy",
    "hours",
    "true_gain",
    "share_of_oracle",
    "vs_best_rule",
    "revenue",
    "revenue_per_hour",
    "gain_per_hour",
)


# ------------------------------------------------------------------------------------------ simple rules


def equal_hours(
    n_accounts: int, hours: float, *, cap: float | None = None, eligible: npt.ArrayLike | None = None
) -> FloatArray:
    """The same hours for every eligible account, ``min(hours / n_eligible, cap)``; others get 0.

    Examples
    --------
    >>> equal_hours(4, 10.0, cap=3.0, eligible=[True, True, False, True]).tolist()
    [3.0, 3.0, 0.0, 3.0]
    """
    team = _team_hours(hours)
    mask = np.ones(n_accounts, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if mask.shape != (n_accounts,):
        raise ValueError(f"eligible must have one flag per account ({n_accounts}), got shape {mask.shape}")
    out = np.zeros(n_accounts)
    count = int(mask.sum())
    if count:
        each = team / count
        out[mask] = each if cap is None else min(each, _cap(cap))
    return out


def hours_by_revenue(revenue: npt.ArrayLike, hours: float, *, cap: float | None = None) -> FloatArray:
    """Hours proportional to past revenue, at most `cap` each; what the cap cuts goes to the others.

    Exactly: ``h_i = min(cap, c x revenue_i)`` with c such that the hours add up to `hours` (or every
    account with revenue sits at the cap). Negative revenue counts as 0; with no revenue at all the hours
    are split equally.

    Examples
    --------
    >>> hours_by_revenue([100.0, 50.0, 50.0, 0.0], 8.0, cap=3.0).tolist()
    [3.0, 2.5, 2.5, 0.0]
    """
    team = _team_hours(hours)
    r = np.maximum(np.nan_to_num(np.asarray(revenue, dtype=float), nan=0.0), 0.0)
    if r.sum() <= 0:
        return equal_hours(r.size, team, cap=cap)
    r = r / r.max()  # scale-free: keeps the factor below finite for tiny or huge revenues
    if cap is None:
        return team * r / r.sum()
    top = _cap(cap)
    order = np.argsort(-r, kind="stable")
    sorted_r = r[order]
    # with the j biggest at the cap, the rest share what is left in proportion: c_j = left / rest revenue
    j = np.arange(r.size + 1)
    rest = np.concatenate([np.cumsum(sorted_r[::-1])[::-1], [0.0]])  # revenue outside the j biggest
    left = team - j * top
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(rest > 0, left / rest, np.inf)
    # the first j that is consistent: the (j+1)-th biggest stays below the cap at that c
    nxt = np.concatenate([sorted_r, [0.0]])
    with np.errstate(invalid="ignore"):  # inf x 0 when nothing is left to share: not consistent
        ok = (left >= 0) & (c * nxt <= top * (1 + 1e-12))
    first = int(np.argmax(ok)) if ok.any() else r.size
    out = np.zeros(r.size)
    capped = order[:first]
    out[capped] = top
    if first < r.size and np.isfinite(c[first]):
        free = order[first:]
        out[free] = np.minimum(c[first] * r[free], top)
    else:  # every account with revenue is at the cap
        out[r <= 0] = 0.0
    return out


def top_n_by_revenue(revenue: npt.ArrayLike, hours: float, *, cap: float) -> FloatArray:
    """The cap to each of the N accounts with most past revenue, N = floor(hours / cap); the rest to the next.

    Ties in revenue are broken by position (stable). Accounts without revenue get hours only when every
    account with revenue already has the cap.

    Examples
    --------
    >>> top_n_by_revenue([5.0, 9.0, 1.0, 7.0], 5.0, cap=2.0).tolist()
    [1.0, 2.0, 0.0, 2.0]
    """
    team = _team_hours(hours)
    top = _cap(cap)
    r = np.nan_to_num(np.asarray(revenue, dtype=float), nan=0.0)
    order = np.argsort(-r, kind="stable")
    n_full = min(int(team // top), r.size)
    out = np.zeros(r.size)
    out[order[:n_full]] = top
    if n_full < r.size:
        out[order[n_full]] = min(team - n_full * top, top)
    return out


def past_revenue(
    transactions: pd.DataFrame,
    account_ids: npt.ArrayLike,
    end: pd.Timestamp | str,
    window_days: int = 365,
) -> pd.Series:
    """Revenue (sum of amount, refunds included) per account in the `window_days` before `end`.

    Returns a float Series indexed by `account_ids` (0 for accounts without rows in the window).
    """
    if window_days <= 0:
        raise ConfigError(f"window_days must be > 0, got {window_days}")
    stop = pd.Timestamp(end)
    start = stop - pd.Timedelta(days=window_days)
    ts = transactions["ts"]
    rows = transactions[(ts >= start) & (ts < stop)]
    by_account = rows.groupby("account_id")["amount"].sum()
    index = pd.Index(np.asarray(account_ids), name="account_id")
    return by_account.reindex(index).fillna(0.0).astype(float).rename("revenue")


def simple_rule_hours(
    world: World, hours: float, *, cap: float = 40.0, window_days: int = 365
) -> dict[str, FloatArray]:
    """Hours of the three simple rules for a world's accounts (aligned with ``world.truth.account_id``).

    Parameters
    ----------
    world : kamml.datasets.synthetic.World
        The synthetic world; its transactions before ``world.end`` are the past.
    hours : float
        The team's hours.
    cap : float, default 40
        Most hours per account (`AllocationConfig.cap_hours`); also the hours of each top-N account.
    window_days : int, default 365
        The past revenue window.

    Returns
    -------
    dict
        ``{"equal": ..., "by_revenue": ..., "top_n": ...}``, arrays of hours per account.
    """
    ids = world.truth["account_id"].to_numpy()
    revenue = past_revenue(world.transactions, ids, world.end, window_days).to_numpy()
    bought = revenue > 0
    eligible = bought if bought.any() else None
    return {
        "equal": equal_hours(ids.size, hours, cap=cap, eligible=eligible),
        "by_revenue": hours_by_revenue(revenue, hours, cap=cap),
        "top_n": top_n_by_revenue(revenue, hours, cap=cap),
    }


# ------------------------------------------------------------------------------------------- comparison


def oracle_hours(
    world: World,
    hours: float,
    horizon_days: int,
    *,
    floor: npt.ArrayLike = 0.0,
    cap: float | None = None,
    capacity: Mapping[Any, float] | None = None,
    weights: Mapping[str, float | str] | None = None,
) -> FloatArray:
    """The oracle's allocation: the optimizer on the world's true stakes and effort scales.

    `floor`, `cap` and `capacity` (per rep, owners from ``world.accounts``) as in
    `kamml.allocation.optimizer.optimize`; `weights` as in ``World.stake_and_scale``.
    """
    truth = world.stake_and_scale(horizon_days, weights)
    owner = None
    if capacity is not None:
        owners = world.accounts.set_index("account_id")["owner"]
        owner = owners.reindex(truth["account_id"].to_numpy()).to_numpy(dtype=object)
    return optimize(
        truth["stake"].to_numpy(dtype=float),
        truth["effort_scale"].to_numpy(dtype=float),
        hours,
        floor=floor,
        cap=cap,
        owner=owner,
        capacity=capacity,
    )


def compare_allocations(
    world: World,
    hours_by_policy: Mapping[str, npt.ArrayLike | pd.Series],
    horizon_days: int,
    *,
    hours: float | None = None,
    floor: npt.ArrayLike = 0.0,
    cap: float | None = None,
    capacity: Mapping[Any, float] | None = None,
    weights: Mapping[str, float | str] | None = None,
    rules: Sequence[str] = SIMPLE_RULES,
) -> pd.DataFrame:
    """True expected gain of each allocation, as a share of the oracle's and against the simple rules.

    Parameters
    ----------
    world : kamml.datasets.synthetic.World
        The world whose truth scores the allocations.
    hours_by_policy : mapping
        Policy name -> hours per account: an array aligned with ``world.truth.account_id`` or a Series
        indexed by account_id (accounts left out get 0).
    horizon_days : int
        The horizon of the gain (that of the scores behind the allocations).
    hours : float, optional
        The oracle's team hours; by default the most hours any policy uses.
    floor, cap, capacity
        The oracle's limits, as in `oracle_hours` (give it those the recommended allocation had, for a
        fair share; floors cost gain).
    weights : mapping, optional
        Weights of retention, growth and referral in the true gain (each 1 by default: the true
        expected revenue the hours add).
    rules : sequence of str, default SIMPLE_RULES
        Which policies are the simple rules behind ``vs_best_rule`` (those present in `hours_by_policy`).

    Returns
    -------
    pandas.DataFrame
        One row per policy, in the given order, then ``oracle``: policy, hours (used), true_gain,
        share_of_oracle, vs_best_rule (true_gain / best simple rule's - 1; NaN without rules),
        revenue (true expected revenue in the horizon with those hours, referrals included),
        revenue_per_hour and gain_per_hour (per hour used).

    Raises
    ------
    kamml.errors.SchemaError
        When hours do not align with the world's accounts.
    kamml.errors.InfeasibleError
        On negative or non-finite hours.
    """
    ids = world.truth["account_id"].to_numpy()
    aligned = {name: _aligned(name, value, ids) for name, value in hours_by_policy.items()}
    if "oracle" in aligned:
        raise ConfigError("'oracle' is the name of the oracle's row; give the policy another name")
    team = float(hours) if hours is not None else max((float(h.sum()) for h in aligned.values()), default=0.0)
    aligned["oracle"] = oracle_hours(
        world, team, horizon_days, floor=floor, cap=cap, capacity=capacity, weights=weights
    )
    rows = []
    for name, h in aligned.items():
        used = float(h.sum())
        gain = world.true_gain(h, horizon_days, weights)
        revenue = float(world.expected_value(horizon_days, h)["total"].sum())
        rows.append((name, used, gain, revenue))
    table = pd.DataFrame(rows, columns=["policy", "hours", "true_gain", "revenue"])
    oracle_gain = float(table["true_gain"].iloc[-1])
    table["share_of_oracle"] = table["true_gain"] / oracle_gain if oracle_gain > 0 else np.nan
    present = [r for r in rules if r in aligned]
    best = float(table.loc[table["policy"].isin(present), "true_gain"].max()) if present else np.nan
    table["vs_best_rule"] = table["true_gain"] / best - 1 if present and best > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        per_hour = np.where(table["hours"] > 0, 1 / table["hours"].to_numpy(), np.nan)
    table["revenue_per_hour"] = table["revenue"] * per_hour
    table["gain_per_hour"] = table["true_gain"] * per_hour
    logger.info(
        "allocation vs oracle (gain %.6g with %.6g hours): %s",
        oracle_gain,
        team,
        ", ".join(f"{p} {s:.1%}" for p, s in zip(table["policy"], table["share_of_oracle"], strict=True)),
    )
    return table[list(COMPARISON_COLUMNS)]


def evaluate_allocation(
    world: World,
    allocation: pd.DataFrame,
    horizon_days: int,
    *,
    hours: float | None = None,
    cap: float | None = 40.0,
    floor: npt.ArrayLike = 0.0,
    capacity: Mapping[Any, float] | None = None,
    window_days: int = 365,
    weights: Mapping[str, float | str] | None = None,
    name: str = "kamml",
) -> pd.DataFrame:
    """Compare an allocation table with the simple rules and the oracle on the same team hours.

    Parameters
    ----------
    world : kamml.datasets.synthetic.World
        The world the allocation was made for (scores as of ``world.end``).
    allocation : pandas.DataFrame
        The allocation table (``account_id``, ``recommended_hours``), as from `kamml.allocate`.
    horizon_days : int
        The horizon of the scores behind the allocation.
    hours : float, optional
        The team's hours for the rules and the oracle; the allocation's total by default.
    cap : float or None, default 40
        Most hours per account, for the rules and the oracle (the top-N rule needs one; 40 when None).
    floor, capacity, weights
        The oracle's floors and per-rep capacity, and the gain's weights, as in `compare_allocations`.
    window_days : int, default 365
        Past revenue window of the rules.
    name : str, default "kamml"
        The allocation's row name.

    Returns
    -------
    pandas.DataFrame
        As `compare_allocations`: the allocation, ``equal``, ``by_revenue``, ``top_n`` and ``oracle``.
    """
    missing = [c for c in ("account_id", "recommended_hours") if c not in allocation.columns]
    if missing:
        raise SchemaError([Problem("allocation", c, "missing column") for c in missing])
    recommended = allocation.set_index("account_id")["recommended_hours"].astype(float)
    team = float(recommended.sum()) if hours is None else float(hours)
    policies: dict[str, npt.ArrayLike | pd.Series] = {name: recommended}
    policies.update(simple_rule_hours(world, team, cap=40.0 if cap is None else cap, window_days=window_days))
    return compare_allocations(
        world,
        policies,
        horizon_days,
        hours=team,
        floor=floor,
        cap=cap,
        capacity=capacity,
        weights=weights,
    )


# ---------------------------------------------------------------------------------------------- helpers


def _team_hours(hours: float) -> float:
    """The team's hours as a finite float >= 0."""
    value = float(hours)
    if not np.isfinite(value) or value < 0:
        raise InfeasibleError(f"the team's hours must be a finite number >= 0, got {value}")
    return value


def _cap(cap: float) -> float:
    """A cap per account as a finite float > 0."""
    value = float(cap)
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"the cap per account must be a finite number of hours > 0, got {value}")
    return value


def _aligned(name: str, hours: npt.ArrayLike | pd.Series, ids: npt.NDArray[Any]) -> FloatArray:
    """Hours of one policy as an array aligned with the world's account ids; checked."""
    if isinstance(hours, pd.Series):
        unknown = ~hours.index.isin(ids)
        if unknown.any():
            bad = hours.index[unknown]
            rule = f"policy {name!r}: account_id not in the world"
            raise SchemaError([Problem("hours", "account_id", rule, len(bad), tuple(bad[:5]))])
        if hours.index.has_duplicates:
            dup = hours.index[hours.index.duplicated()]
            rule = f"policy {name!r}: account_id appears more than once"
            raise SchemaError([Problem("hours", "account_id", rule, len(dup), tuple(dup[:5]))])
        h = hours.reindex(ids).fillna(0.0).to_numpy(dtype=float)
    else:
        h = np.asarray(hours, dtype=float)
        if h.shape != ids.shape:
            raise SchemaError(
                f"hours of policy {name!r}: expected {ids.size} values aligned with truth.account_id, "
                f"got shape {h.shape}"
            )
    if not np.all(np.isfinite(h)) or (h < 0).any():
        raise InfeasibleError(f"hours of policy {name!r} must be finite and >= 0")
    return h
