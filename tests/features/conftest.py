from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from kamml.data import load_data


@pytest.fixture
def make_data() -> Callable[..., Any]:
    """Build a validated Dataset from small frames (transactions required, other tables optional)."""

    def make(transactions: pd.DataFrame, end: str | None = None, **tables: pd.DataFrame) -> Any:
        source = {"transactions": transactions, **tables}
        config = None
        if end is not None:
            from kamml.config import Config

            config = Config.from_dict({"data": {"end": end}})
        return load_data(source, config)

    return make


def tx(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Transactions from (account_id, date, amount[, quantity[, product]]) tuples."""
    cols = ["account_id", "ts", "amount", "quantity", "product"]
    frame = pd.DataFrame([r + (None,) * (5 - len(r)) for r in rows], columns=cols)
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["quantity"] = pd.to_numeric(frame["quantity"]).fillna(1.0)
    if frame["product"].isna().all():
        frame = frame.drop(columns="product")
    return frame
