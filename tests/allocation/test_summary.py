"""The value of the last hour in words: the team's price, or the reps' when their capacities bind."""

from __future__ import annotations

import pandas as pd
import pytest

from kamml.allocation import allocate
from kamml.allocation.summary import amount, last_hour, rep_price_span
from kamml.config import AllocationConfig


@pytest.mark.parametrize(
    ("value", "text"),
    [(23_370.4, "23,370"), (1_322.0, "1,322"), (100, "100"), (12.345, "12.3"), (0.35, "0.350"), (0, "0")],
)
def test_amount_never_uses_an_exponent(value, text):
    assert amount(value) == text
    assert amount(float("nan")) == amount(None) == "n/a"


def test_last_hour_names_the_reps_prices_when_they_bind():
    scores = pd.DataFrame(
        {
            "account_id": range(40),
            "clv": [1000.0 + 50 * i for i in range(40)],
            "p_churn": 0.3,
            "owner": ["ann", "bob"] * 20,
        }
    )
    bound = allocate(scores, 300, AllocationConfig(capacity={"ann": 10.0, "bob": 20.0})).attrs["allocation"]
    assert bound["team_price"] == 0
    low, high = rep_price_span(bound)
    assert 0 < low <= high
    expected = (
        f"{amount(low)} to {amount(high)} per hour of a rep at capacity (the team's total is not the limit)"
    )
    assert last_hour(bound) == expected
    team = allocate(scores, 20, AllocationConfig()).attrs["allocation"]
    assert rep_price_span(team) is None
    assert last_hour(team) == amount(team["team_price"])
