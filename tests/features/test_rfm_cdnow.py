"""BTYD conventions on CDNOW: kamml's rfm group against an independent pandas computation of lifetimes'
`summary_data_from_transaction_data(freq="W", observation_period_end="1997-09-30")`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import load_cdnow
from kamml.features import build_features


def lifetimes_style_summary(tx: pd.DataFrame, end: str, unit_days: int) -> pd.DataFrame:
    """Written here from the lifetimes definitions: merge per day, first day, repeat days' mean value."""
    end_ts = pd.Timestamp(end)
    tx = tx[tx["ts"] <= end_ts]
    per_day = tx.groupby(["account_id", tx["ts"].dt.normalize()])["amount"].sum().reset_index()
    per_day = per_day.sort_values(["account_id", "ts"])
    first = per_day.groupby("account_id")["ts"].transform("min")
    summary = pd.DataFrame(
        {
            "frequency": per_day.groupby("account_id").size() - 1,
            "recency": (
                per_day.groupby("account_id")["ts"].max() - per_day.groupby("account_id")["ts"].min()
            ).dt.days
            / unit_days,
            "T": (end_ts - per_day.groupby("account_id")["ts"].min()).dt.days / unit_days,
        }
    )
    repeat = per_day[per_day["ts"] > first]
    summary["monetary"] = repeat.groupby("account_id")["amount"].mean()
    summary["monetary"] = summary["monetary"].fillna(0.0)
    return summary.astype("float64")


@pytest.mark.parametrize(("unit", "days"), [("weeks", 7), ("days", 1)])
def test_rfm_matches_lifetimes_conventions_on_cdnow(unit, days):
    tx = load_cdnow()
    data = load_data({"transactions": tx})
    cfg = Config.from_dict({"time": {"unit": unit}})
    feats = build_features(data, "1997-10-01", cfg)[["frequency", "recency", "T", "monetary"]]
    expected = lifetimes_style_summary(tx, "1997-09-30", days)
    assert len(feats) == 23_570
    pd.testing.assert_frame_equal(feats.sort_index(), expected.sort_index(), check_names=False, rtol=1e-9)
    # published fact of the classic calibration period: 39 weeks for the earliest customers
    assert np.isclose(feats["T"].max(), 38.857142857 if unit == "weeks" else 272)
