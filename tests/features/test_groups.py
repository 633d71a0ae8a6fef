"""The daily feature groups against an independent pandas computation of docs/features.md's definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.features import build_features

CUTOFF = pd.Timestamp("2024-07-01")
WINDOWS = [1, 7, 30, 182, 365]
HORIZON = 90


def _log(seed: int) -> pd.DataFrame:
    """Random rows crowding the edges: at and after the cutoff, exactly N and N +- 1 days back, any time of
    day, several a day, refunds, zero amounts, missing quantities."""
    rng = np.random.default_rng(seed)
    n = 200
    edges = [0, 1, 2, 6, 7, 8, 29, 30, 31, 181, 182, 183, 275, 276, 364, 365, 366]
    back = np.where(rng.random(n) < 0.5, rng.choice(edges, n), rng.integers(-10, 500, n))
    seconds = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 86_400, n))
    amount = np.where(rng.random(n) < 0.1, 0.0, np.round(rng.normal(40, 50, n), 2))
    quantity = np.where(rng.random(n) < 0.2, np.nan, rng.integers(-2, 5, n).astype(float))
    return pd.DataFrame(
        {
            "account_id": rng.integers(1, 7, n),
            "ts": CUTOFF - pd.to_timedelta(back, unit="D") + pd.to_timedelta(seconds, unit="s"),
            "amount": amount,
            "quantity": quantity,
        }
    )


def _reference(log: pd.DataFrame) -> pd.DataFrame:
    """The documented definitions, computed per account and calendar day in pandas."""
    t = log[log.ts < CUTOFF].copy()
    t["day"] = t.ts.dt.floor("D")
    t["units"] = t.quantity.fillna(pd.Series(np.where(t.amount < 0, 0.0, 1.0), index=t.index))
    back = pd.to_timedelta
    out = {}
    for acc, g in t.groupby("account_id"):
        daily = g.groupby("day").agg(spend=("amount", "sum"), buy=("amount", lambda a: (a >= 0).any()))
        days = daily.index[daily.buy]
        r: dict[str, float] = {"spend_total": g.amount.sum(), "orders_total": len(days)}
        r["quantity_total"] = g.units.sum()
        r["days_since_first"] = (CUTOFF - g.day.min()).days
        for w in WINDOWS:  # the last w days: from the day w days before the cutoff on
            inside = g.day >= CUTOFF - back(w, "D")
            r[f"spend_{w}d"] = g.amount[inside].sum()
            r[f"orders_{w}d"] = (days >= CUTOFF - back(w, "D")).sum()
            r[f"quantity_{w}d"] = g.units[inside].sum()
        start = CUTOFF - back(365, "D")
        year_ago = (g.day >= start) & (g.day < start + back(HORIZON, "D"))
        r["spend_last_year_horizon"] = g.amount[year_ago].sum() if g.day.min() <= start else np.nan
        recent = g.day >= CUTOFF - back(182, "D")
        prior = ~recent & (g.day >= CUTOFF - back(364, "D"))
        whole = g.day.min() <= CUTOFF - back(364, "D")
        earlier = g.amount[prior].sum()
        r["spend_trend"] = g.amount[recent].sum() / earlier if whole and earlier > 0 else np.nan
        orders_recent = (days >= CUTOFF - back(182, "D")).sum()
        orders_prior = ((days >= CUTOFF - back(364, "D")) & (days < CUTOFF - back(182, "D"))).sum()
        size_prior = g.units[prior].sum() / orders_prior if orders_prior else 0.0
        size_recent = g.units[recent].sum() / orders_recent if orders_recent else np.nan
        r["order_size_trend"] = size_recent / size_prior if size_prior > 0 else np.nan
        gaps = np.diff(days.to_numpy()) / np.timedelta64(1, "D")
        r["gap_mean"] = gaps.mean() if len(gaps) else np.nan
        r["gap_std"] = gaps.std() if len(gaps) else np.nan
        r["gap_max"] = gaps.max() if len(gaps) else np.nan
        r["days_since_last"] = (CUTOFF - days.max()).days if len(days) else np.nan
        r["overdue_ratio"] = r["days_since_last"] / r["gap_mean"]
        r["refund_count"] = (g.amount < 0).sum()
        r["zero_amount_count"] = (g.amount == 0).sum()
        gross = g.amount[g.amount > 0].sum()
        r["refund_share"] = -g.amount[g.amount < 0].sum() / gross if gross > 0 else np.nan
        out[acc] = r
    return pd.DataFrame.from_dict(out, orient="index").astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_daily_groups_match_a_pandas_reference_at_the_window_edges(seed):
    """Windows, calendar, trend ratios, regularity and breadth read as docs/features.md defines them: a
    row exactly w days back is in the w-day window, one w + 1 days back is not, none at or after the
    cutoff counts."""
    log = _log(seed)
    cfg = Config.from_dict(
        {"data": {"end": "2025-12-31"}, "time": {"horizon_days": HORIZON}, "features": {"windows": WINDOWS}}
    )
    got = build_features(load_data({"transactions": log}, cfg), CUTOFF, cfg)
    want = _reference(log)
    pd.testing.assert_frame_equal(
        got.loc[want.index, want.columns], want, check_names=False, check_index_type=False, rtol=1e-9
    )
