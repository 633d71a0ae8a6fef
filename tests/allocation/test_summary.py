"""The value of the last hour in words: the team's price, or the reps' when their capacities bind."""

from __future__ import annotations

import pandas as pd
import pytest

from kamml.allocation import allocate
from kamml.allocation.summary import (
    accounts_text,
    amount,
    hours_text,
    last_hour,
    plan_line,
    rep_price_span,
    short_budgets,
)
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


def test_short_budgets_say_in_one_line_which_budgets_miss_the_floors():
    """The demo's curve logged one line per budget under its 1,091.5 hours of floors."""
    assert short_budgets([], 10.0) is None
    assert short_budgets([5.0], 10.0) == "budget curve: 5 hours cannot cover the floors (10 hours)"
    five = short_budgets([1000.0, 200.0, 400.0, 600.0, 800.0], 1091.5)
    assert five == "budget curve: 5 budgets (200 to 1,000 hours) cannot cover the floors (1,091.5 hours)"


def test_one_hour_is_singular():
    assert short_budgets([1.0], 1.0) == "budget curve: 1 hour cannot cover the floors (1 hour)"
    assert short_budgets([0.5], 2.0) == "budget curve: 0.5 hours cannot cover the floors (2 hours)"


def test_the_plan_line_keeps_quarter_hours_and_says_one_account():
    """To one decimal a plan's 2.25 of 2.25 hours read "2.2 of 2.2"; one account read "1 accounts"."""
    plan = {"hours_used": 2.25, "hours": 2.25, "total_expected_gain": 12.5, "team_price": 3.0}
    assert plan_line(plan, 1) == (
        "1 account, 2.25 of 2.25 hours, expected gain 12.5, value of the last hour (lambda) 3.00"
    )
    big = {"n_accounts": 5000, "hours_used": 1999.6, "hours": 2000.0, "total_expected_gain": 2066750.4}
    assert plan_line(big).startswith("5,000 accounts, 1,999.6 of 2,000 hours, expected gain 2,066,750,")


def test_accounts_are_counted_in_words():
    """The score and allocate lines read "1 accounts" and "5000 accounts" (no separator in a log line)."""
    assert [accounts_text(n) for n in (0, 1, 5000)] == ["0 accounts", "1 account", "5,000 accounts"]


@pytest.mark.parametrize(("value", "text"), [(1e300, "1e+300"), (-2.5e20, "-2.5e+20"), (1.7e308, "1.7e+308")])
def test_figures_beyond_a_quadrillion_are_short(value, text):
    """`kamml allocate --hours 1e300` printed its hours as 301 digits and 100 separators (chart too)."""
    assert amount(value) == text
    assert hours_text(value) == hours_text(value, exact=True) == text
    assert amount(999_999_999_999_999.0) == "999,999,999,999,999"


def test_the_plan_line_of_a_huge_budget_fits_on_a_line():
    plan = {"n_accounts": 4, "hours_used": 120.25, "hours": 1e300, "total_expected_gain": 86.5}
    plan["team_price"] = 0
    line = plan_line(plan)
    assert line == (
        "4 accounts, 120.25 of 1e+300 hours, expected gain 86.5, value of the last hour (lambda) 0"
    )


@pytest.mark.parametrize("value", [-0.0, -0.0004, -1e-9])
def test_a_figure_shown_as_zero_has_no_minus_sign(value):
    """-0.0 (a price or gain computed as a difference) read "-0" in the plan line and the report."""
    assert hours_text(value) == hours_text(value, exact=True) == "0"
    assert amount(-0.0) == "0"
    plan = {
        "n_accounts": 2,
        "hours_used": -0.0,
        "hours": 10.0,
        "total_expected_gain": -0.0,
        "team_price": -0.0,
    }
    assert "-0" not in plan_line(plan)


def test_a_plan_of_almost_nothing_reads_without_a_string_of_zeros():
    """Accounts worth 1e-12 each read "expected gain 0.000000000000509, value of the last hour (lambda)
    0.0000000000000326": 17 digits a manager counts to tell it is nearly nothing."""
    scores = pd.DataFrame({"account_id": [1, 2, 3], "clv": [1e-12] * 3, "p_churn": [0.0] * 3})
    line = plan_line(allocate(scores, hours=10.0).attrs["allocation"])
    assert line.endswith("expected gain under 0.000001, value of the last hour (lambda) under 0.000001")
    assert amount(3.2e-300) == "under 0.000001"
    assert amount(-3.2e-10) == "between -0.000001 and 0"
    assert amount(0.0000042) == "0.00000420"  # from 1e-6 on, written out as before
