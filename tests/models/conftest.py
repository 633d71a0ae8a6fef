"""Books shared by the effort response's tests (`test_effort.py`) and its panel's (`test_effort_panel.py`)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from kamml.models.effort_panel import effort_panel

START = pd.Timestamp("2023-01-01")
CUTOFF = pd.Timestamp("2026-01-01")


def make_book(
    n: int, seed: int, *, scale: float = 2.0, exponent: float = 0.0, uplift: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A book with hours assigned at random each quarter (no confounding) and a known response.

    Each quarter an account gets random hours, is served with probability 1 - exp(-h / k),
    k = scale * size ** exponent, and orders as a Poisson process whose rate rises by `uplift` when
    served; order amounts are proportional to size. Returns transactions, activities and the accounts
    with their ``size``.
    """
    rng = np.random.default_rng(seed)
    quarters = pd.date_range(START, CUTOFF, freq="QS")
    size = np.exp(rng.normal(0.0, 1.0, n))
    rate = 0.03 * rng.gamma(4.0, 0.25, n)  # orders per day, unserved
    k = scale * size**exponent
    tx, act = [], []
    for q0, q1 in itertools.pairwise(quarters):
        days = (q1 - q0).days
        hours = np.rint(4 * rng.lognormal(np.log(2.0), 0.8, n) * (rng.random(n) < 0.7)) / 4
        served = rng.random(n) < -np.expm1(-hours / k)
        count = rng.poisson(rate * days * (1 + uplift * served))
        acc = np.repeat(np.arange(n), count)
        ts = q0 + pd.to_timedelta(rng.integers(0, days * 86_400, acc.size), unit="s")
        amount = 100.0 * size[acc] * rng.gamma(5.0, 0.2, acc.size)
        tx.append(pd.DataFrame({"account_id": acc + 1, "ts": ts, "amount": amount}))
        has = np.flatnonzero(hours > 0)
        act.append(
            pd.DataFrame({"account_id": has + 1, "ts": q0 + pd.Timedelta(days=3), "hours": hours[has]})
        )
    accounts = pd.DataFrame({"account_id": np.arange(1, n + 1), "size": size})
    return pd.concat(tx, ignore_index=True), pd.concat(act, ignore_index=True), accounts


def tiny() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two accounts whose panel is worked out by hand in `test_panel_follows_its_definition`."""
    tx = pd.DataFrame(
        [
            (1, "2023-01-02 10:00", 100.0),
            (1, "2023-06-01 09:00", 50.0),
            (1, "2023-06-01 15:00", -20.0),  # refund: the day's spend is 30
            (1, "2024-02-10 12:00", 30.0),
            (1, "2024-05-05 08:00", 40.0),
            (1, "2024-05-06 08:00", 0.0),  # a free order is an order
            (1, "2024-07-01 00:00", 999.0),  # at the cutoff: not read
            (2, "2023-12-20 11:00", 10.0),
        ],
        columns=["account_id", "ts", "amount"],
    )
    act = pd.DataFrame(
        [
            (1, "2023-10-01 10:00", 3.0),
            (1, "2024-01-15 10:00", 1.5),
            (1, "2024-03-31 23:00", 0.5),
            (1, "2024-04-01 00:00", 2.0),
            (1, "2024-06-30 23:00", 1.0),
            (1, "2024-07-01 00:00", 5.0),  # at the cutoff: not read
            (2, "2024-05-01 10:00", 0.25),
        ],
        columns=["account_id", "ts", "hours"],
    )
    tx["ts"] = pd.to_datetime(tx["ts"])
    act["ts"] = pd.to_datetime(act["ts"])
    return tx, act


TINY_CUTOFF = pd.Timestamp("2024-07-01")


def tiny_panel(tx: pd.DataFrame, act: pd.DataFrame) -> pd.DataFrame:
    return effort_panel(tx, act, TINY_CUTOFF, max_periods=2)
