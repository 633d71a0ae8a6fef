"""The feature catalogue: every column `build_features` can return, with its group and definition.

`{w}` stands for each configured window in days, `{name}` for a column of the accounts table.
docs/features.md is this table in prose; a test keeps the two and the builder in step.
"""

from __future__ import annotations

import re

__all__ = [
    "BOUNDS",
    "CATALOGUE",
    "FILLED_WITH_HISTORY",
    "NEVER_MISSING",
    "bounds",
    "definition",
    "describe",
    "never_missing",
]

#: column pattern -> (group, definition). Times in `time.unit` for rfm, days elsewhere.
CATALOGUE: dict[str, tuple[str, str]] = {
    "frequency": ("rfm", "repeat purchase days: purchase days before the cutoff minus 1 (0 without one)"),
    "recency": ("rfm", "time from the first to the last purchase day"),
    "T": ("rfm", "time from the first purchase day to the day before the cutoff (age)"),
    "monetary": (
        "rfm",
        "mean net spend of the repeat purchase days (0 without repeats), a later refund netted against "
        "the latest purchase day before it",
    ),
    "spend_total": ("windows", "net spend before the cutoff (refunds subtracted)"),
    "orders_total": ("windows", "purchase days before the cutoff"),
    "quantity_total": (
        "windows",
        "units bought before the cutoff (quantities as given, when absent 1 or 0 on a refund)",
    ),
    "days_since_first": ("windows", "days from the first transaction (any amount) to the cutoff"),
    "spend_{w}d": ("windows", "net spend in the last {w} days"),
    "orders_{w}d": ("windows", "purchase days in the last {w} days"),
    "quantity_{w}d": ("windows", "units in the last {w} days"),
    "cutoff_month": ("calendar", "month (1-12) of the cutoff"),
    "cutoff_quarter": ("calendar", "quarter (1-4) of the cutoff"),
    "spend_last_year_horizon": (
        "calendar",
        "net spend in the models' label window (at most 365 days) starting 365 days before the cutoff "
        "(missing when the first transaction is later)",
    ),
    "spend_trend": (
        "trend",
        "net spend in the last 182 days / the 182 days before (missing if no prior or under 364 days "
        "of history)",
    ),
    "spend_slope_12m": (
        "trend",
        "least-squares slope of daily net spend over the days since the first row (at most 360), "
        "per 30 days of 30-day spend",
    ),
    "order_size_trend": ("trend", "units per order in the last 182 days / in the 182 days before"),
    "gap_mean": ("regularity", "mean days between consecutive purchase days"),
    "gap_std": ("regularity", "standard deviation of the gaps (population, missing without a gap)"),
    "gap_max": ("regularity", "longest gap between purchase days"),
    "days_since_last": ("regularity", "days from the last purchase day to the cutoff"),
    "overdue_ratio": ("regularity", "days_since_last / gap_mean (above 1: later than usual)"),
    "refund_count": ("breadth", "refund rows (amount < 0)"),
    "zero_amount_count": ("breadth", "rows with amount 0"),
    "refund_share": ("breadth", "refunded amount / gross positive spend"),
    "n_products": (
        "products",
        "distinct products bought (positive spend, a known product, needs a product column)",
    ),
    "top_product_share": (
        "products",
        "the top product's share of the gross positive spend on known products",
    ),
    "referrals_made": ("referral", "accounts this account referred before the cutoff"),
    "referrals_made_365d": ("referral", "accounts it referred in the last 365 days"),
    "days_since_last_referral": ("referral", "days from its last referral to the cutoff"),
    "referred_spend": (
        "referral",
        "net spend before the cutoff of the accounts it referred, after their referral",
    ),
    "referrals_2hop": (
        "referral",
        "referrals made by the accounts it referred (paths of two hops, one back to itself included)",
    ),
    "was_referred": ("referral", "1 when the account itself was referred"),
    "hours_total": ("effort", "sales hours logged on the account before the cutoff"),
    "hours_{w}d": ("effort", "sales hours in the last {w} days"),
    "activities_365d": ("effort", "sales activities in the last 365 days"),
    "days_since_last_activity": ("effort", "days from the last sales activity to the cutoff"),
    "hours_per_spend_365d": ("effort", "hours / net spend over the last 365 days"),
    "account_age_days": ("static", "days from accounts.created_at to the cutoff"),
    "btyd_p_alive": ("btyd", "BG/NBD probability that the account is still active"),
    "btyd_expected_purchases": ("btyd", "BG/NBD expected purchase days over the training window"),
    "btyd_p_zero": ("btyd", "BG/NBD probability of no purchase over the training window"),
    "btyd_order_value": ("btyd", "Gamma-Gamma expected order value"),
    "btyd_value": ("btyd", "BTYD expected value over the training window (purchases x order value)"),
    "attr_{name}": ("static", "an attribute of the accounts table (numbers as float, text as category)"),
}

#: Columns `build_features` never leaves missing: counts, sums and the calendar, 0 for an account without
#: any. A missing one in rows sent to a model (a CRM's record without the key) would be scored as an
#: unknown value the models never saw, so scoring refuses it.
NEVER_MISSING = frozenset(
    {
        "spend_total",
        "orders_total",
        "quantity_total",
        "spend_{w}d",
        "orders_{w}d",
        "quantity_{w}d",
        "cutoff_month",
        "cutoff_quarter",
        "refund_count",
        "zero_amount_count",
        "referrals_made",
        "referrals_made_365d",
        "referred_spend",
        "referrals_2hop",
        "was_referred",
        "hours_total",
        "hours_{w}d",
        "activities_365d",
    }
)

#: Columns `build_features` fills whenever the account has a purchase day (``"T"``: T is known) or a
#: repeat purchase day (``"frequency"``: frequency >= 1), and mostly leaves missing otherwise (an account
#: whose rows are all refunds has no T but a ``days_since_first``): the check runs one way only. One
#: missing in a row with that history (a CRM's record without the key) would be scored as "no history"
#: that it has.
FILLED_WITH_HISTORY: dict[str, str] = {
    "days_since_first": "T",
    "days_since_last": "T",
    "gap_mean": "frequency",
    "gap_std": "frequency",
    "gap_max": "frequency",
    "overdue_ratio": "frequency",
}

#: The range `build_features` keeps a column in, both ends included (None: no upper end). A value outside
#: it in a CRM's row (month 13, a negative count or day count) was scored as a feature value no account
#: had (clv x 0.95 to 1.76); scoring refuses it. Net spends, quantities and their trends have no range.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "orders_total": (0, None),
    "orders_{w}d": (0, None),
    "days_since_first": (0, None),
    "cutoff_month": (1, 12),
    "cutoff_quarter": (1, 4),
    "gap_mean": (0, None),
    "gap_std": (0, None),
    "gap_max": (0, None),
    "days_since_last": (0, None),
    "overdue_ratio": (0, None),
    "refund_count": (0, None),
    "zero_amount_count": (0, None),
    "refund_share": (0, None),
    "n_products": (0, None),
    "top_product_share": (0, 1),
    "referrals_made": (0, None),
    "referrals_made_365d": (0, None),
    "days_since_last_referral": (0, None),
    "referrals_2hop": (0, None),
    "was_referred": (0, 1),
    "hours_total": (0, None),
    "hours_{w}d": (0, None),
    "activities_365d": (0, None),
    "days_since_last_activity": (0, None),
    "hours_per_spend_365d": (0, None),
    "account_age_days": (0, None),
}

_PATTERNS = [
    (
        re.compile(
            "^" + re.escape(k).replace(r"\{w\}", r"(?P<w>\d+)").replace(r"\{name\}", r"(?P<name>.+)") + "$"
        ),
        k,
    )
    for k in CATALOGUE
]


def _match(column: str) -> tuple[str, re.Match[str]] | None:
    """The catalogue key whose pattern `column` matches (``spend_{w}d`` for ``spend_90d``), or None."""
    for pattern, key in _PATTERNS:
        found = pattern.match(column)
        if found:
            return key, found
    return None


def describe(column: str) -> tuple[str, str]:
    """Group and definition of a feature column; KeyError for a column the catalogue does not know."""
    matched = _match(column)
    if matched is None:
        raise KeyError(column)
    return CATALOGUE[matched[0]]


def never_missing(column: str) -> bool:
    """Whether `build_features` always fills `column` (`NEVER_MISSING`); False for one it does not know."""
    matched = _match(column)
    return matched is not None and matched[0] in NEVER_MISSING


def bounds(column: str) -> tuple[float, float | None] | None:
    """The range `build_features` keeps `column` in (`BOUNDS`); None for one without (or unknown)."""
    matched = _match(column)
    return None if matched is None else BOUNDS.get(matched[0])


def definition(column: str) -> str:
    """The definition of one column in words, its window or attribute filled in (for reason codes)."""
    matched = _match(column)
    if matched is None:
        raise KeyError(column)
    key, found = matched
    text = CATALOGUE[key][1]
    parts = found.groupdict()
    if parts.get("w"):
        text = text.replace("{w}", parts["w"])
    if parts.get("name"):
        text = f"{parts['name'].replace('_', ' ')} (account attribute)"
    return text
