"""The plan's value of the last hour in words, shared by the console lines and the report.

When the reps' capacities bind and the team's total does not, the team's price (lambda) is 0: an extra
team hour is worth nothing, while an hour more for a rep at capacity is worth that rep's price. Saying
"the value of the last hour is 0" there told a manager that more hours were worthless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kamml.text import counted

#: From this size on a figure is written with an exponent ("1e+300"): ``kamml allocate --hours 1e300``
#: printed its hours as 301 digits and 100 separators, in the plan line and on the budget curve's chart.
#: Below it, digits beyond a float's 15-16 significant ones cannot appear.
LARGE = 1e15
#: Below this size (not 0) a figure reads "under 0.000001": a plan of accounts worth 1e-12 each read
#: "expected gain 0.000000000000509", 17 digits to count to tell it is nearly nothing (the drivers'
#: rule, `kamml.models.drivers.TINY`).
TINY = 1e-6

__all__ = [
    "LARGE",
    "TINY",
    "accounts_text",
    "amount",
    "hours_text",
    "last_hour",
    "plan_line",
    "rep_capacity",
    "rep_price_span",
    "short_budgets",
]


def amount(value: Any) -> str:
    """A figure as a person reads it: thousands separators, an exponent only from `LARGE`; "n/a" if none.

    Three significant digits below 100; under `TINY` (not 0), "under 0.000001".
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(x):
        return "n/a"
    if abs(x) >= LARGE:
        return f"{x:.6g}"
    if x == 0:
        return "0"  # -0.0 too: "-0" reads as a loss
    if abs(x) < TINY:
        return "under 0.000001" if x > 0 else "between -0.000001 and 0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:,.{max(0, 2 - math.floor(math.log10(abs(x))))}f}"  # three significant digits


def accounts_text(n: int) -> str:
    """A count of accounts in words: "5,000 accounts", "1 account"."""
    return counted(n, "account")


def hours_text(value: float, *, exact: bool = False) -> str:
    """Hours as text: whole hours from 100 up (unless `exact`), else up to 2 decimals, trailing zeros cut.

    A small plan's 2.25 h read "2" in whole hours, and 1,999.6 of 2,000 hours read "2,000 of 2,000".
    From `LARGE` on, an exponent: "1e+300". A zero has no minus sign ("0", not "-0").
    """
    if not math.isfinite(value):
        return "–"
    if abs(value) >= LARGE:
        return f"{value:.6g}"
    text = f"{value:,.{2 if exact or abs(value) < 100 else 0}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text  # -0.0 or -0.001 hours: no minus sign on a zero


def rep_capacity(capacity: Mapping[Any, Any] | None) -> dict[str, float]:
    """The configured hours of each rep with a limit, by rep name as `rep_price` names them, for the report.

    A rep of ``.inf`` hours has no limit and is left out, as is every rep without ``allocation.capacity``:
    the report measured each rep's hours against nothing ("rep_03: 160 h" did not say it was all it had).
    """
    hours = {str(rep): float(value) for rep, value in (capacity or {}).items()}
    return {rep: value for rep, value in hours.items() if math.isfinite(value)}


def rep_price_span(plan: Mapping[str, Any]) -> tuple[float, float] | None:
    """The lowest and highest price of the reps at capacity when they, not the team's total, bind."""
    team = plan.get("team_price")
    reps = [float(v) for v in (plan.get("rep_price") or {}).values() if v is not None and float(v) > 0]
    if not reps or team is None or float(team) > 0:
        return None
    return min(reps), max(reps)


def last_hour(plan: Mapping[str, Any]) -> str:
    """The value of the last hour: the team's price, or the span of the prices of the reps at capacity."""
    span = rep_price_span(plan)
    if span is None:
        return amount(plan.get("team_price"))
    low, high = span
    shown = amount(low) if low == high else f"{amount(low)} to {amount(high)}"
    return f"{shown} per hour of a rep at capacity (the team's total is not the limit)"


def plan_line(plan: Mapping[str, Any], accounts: int | None = None) -> str:
    """A plan in one line: accounts, hours used of the budget, expected gain and the value of the last hour.

    Hours keep up to two decimals: to one decimal, a plan's 2.25 hours read "2.2" (the CLI and `kamml run`
    each had their own copy of this line).
    """
    n = int(plan.get("n_accounts", 0) if accounts is None else accounts)
    used, budget = (float(plan.get(key, math.nan)) for key in ("hours_used", "hours"))
    return (
        f"{accounts_text(n)}, {hours_text(used, exact=True)} of "
        f"{_hours(hours_text(budget, exact=True))}, expected gain {amount(plan.get('total_expected_gain'))}, "
        f"value of the last hour (lambda) {last_hour(plan)}"
    )


def short_budgets(budgets: Any, floors: float) -> str | None:
    """The budget curve's budgets that cannot cover the floors, in one line; None when there are none.

    A demo's curve logged one line per budget ("200 hours cannot cover the floors", five times over).
    """
    short = sorted(float(b) for b in budgets)
    if not short:
        return None
    if len(short) == 1:
        which = _hours(hours_text(short[0], exact=True))
    else:
        span = f"{hours_text(short[0], exact=True)} to {hours_text(short[-1], exact=True)}"
        which = f"{len(short)} budgets ({span} hours)"
    return f"budget curve: {which} cannot cover the floors ({_hours(hours_text(floors, exact=True))})"


def _hours(text: str) -> str:
    """Hours as text with their unit, singular for one ("1 hour", "0.5 hours")."""
    return f"{text} hour{'' if text == '1' else 's'}"
