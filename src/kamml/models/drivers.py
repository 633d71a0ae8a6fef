"""Model drivers in words: what an account's feature value is, and which prediction it moves which way.

`kamml.models.bundle` writes the scores' ``drivers`` text with these phrases; the allocation
(`kamml.allocation.tiers`) reads it back by `DRIVER_TARGETS`, to name the drivers of the model behind an
account's main reason. Kept free of LightGBM so that the allocation imports it cheaply.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DRIVER_TARGETS", "HUGE", "PERCENT", "PLAIN", "TINY", "feature_words", "phrase", "target_of"]

#: What each model's drivers move, as the end of every phrase says: "(raises value)", "(lowers churn
#: risk)", "(raises referral value)".
DRIVER_TARGETS = {"value": "value", "churn": "churn risk", "referral": "referral value"}
_ENDINGS = {f"({verb} {text})": key for key, text in DRIVER_TARGETS.items() for verb in ("raises", "lowers")}


def target_of(text: str) -> str | None:
    """The `DRIVER_TARGETS` key a driver phrase ends with ("churn" for "... (raises churn risk)"), or None.

    None for a phrase of scores written before drivers named their model (value drivers only).
    """
    start = text.rfind(" (")
    return _ENDINGS.get(text[start + 1 :]) if start >= 0 else None


#: Words a sales rep reads for the features whose catalogue definition is a data scientist's (model
#: names, ratios written as formulas, table names); the others read as their definition.
PLAIN = {
    "frequency": "repeat purchase days",
    "recency": "time from the first to the last purchase ({unit})",
    "T": "time since the first purchase ({unit})",
    "monetary": "average spend of a repeat purchase day",
    "gap_std": "how irregular the gaps between purchases are (days)",
    "overdue_ratio": "days since the last purchase, in usual gaps between purchases (above 1: overdue)",
    "spend_trend": "spend of the last 6 months against the 6 before (1: level)",
    "order_size_trend": "units per order of the last 6 months against the 6 before (1: level)",
    "spend_slope_12m": "monthly change of spend over the last 12 months (or since the first purchase)",
    "spend_last_year_horizon": "spend in the same season last year",
    "zero_amount_count": "free or zero-amount orders",
    "quantity_total": "units bought to date",
    "refund_count": "refunds to date",
    "refund_share": "share of its spend refunded",
    "n_products": "distinct products bought",
    "top_product_share": "share of its spend on its top product",
    "referrals_2hop": "referrals made by the accounts it referred",
    "was_referred": "came through a referral (1: yes)",
    "hours_per_spend_365d": "sales hours per unit of spend in the last 365 days",
    "account_age_days": "days since the account was opened",
    "days_since_first": "days since the first transaction",
    "days_since_last": "days since the last purchase",
    "days_since_last_referral": "days since its last referral",
    "days_since_last_activity": "days since the last sales activity",
    "cutoff_month": "month of the year (1-12)",
    "cutoff_quarter": "quarter of the year (1-4)",
    "btyd_p_alive": "chance the account is still buying",
    "btyd_expected_purchases": "purchases expected in {window}, from the purchase history",
    "btyd_p_zero": "chance of no purchase in {window}, from the purchase history",
    "btyd_order_value": "order value expected from the purchase history",
    "btyd_value": "value expected in {window}, from the purchase history",
}
#: From this size on a driver's value reads as "1.23e+15": a monetary of 1e300 printed 300 digits, and
#: floats past 2**53 (about 9e15) no longer hold whole numbers exactly anyway.
HUGE = 1e15
#: Below this size (not 0) a driver's value reads as "under 0.000001": an expected 3.2e-10 of a
#: long-lapsed account read "3.2e-10", which a sales rep does not read as nearly nothing; above it a
#: small number is written out ("0.000042"), so amounts in millions still read as what was spent.
TINY = 1e-6
#: Features shown as percentages.
PERCENT = frozenset({"refund_share", "top_product_share", "btyd_p_alive", "btyd_p_zero"})


def feature_words(feature: str, unit_days: int = 1, window_days: int | None = None) -> str:
    """What a feature column measures, in the words the reasons use (`PLAIN`, else its definition).

    `window_days`: the model's training label window, over which the BTYD features count (on CDNOW
    126 days against a 273-day horizon, so "value expected from the purchase history: 3,185" beside a
    clv of 5,915 read as a contradiction); "the training window" when not given.
    """
    return _definition(feature, unit_days, window_days)


@functools.lru_cache(maxsize=4096)
def _definition(feature: str, unit_days: int = 1, window_days: int | None = None) -> str:
    """A feature's words for a driver (cached: asked once per row and driver): `PLAIN`, or its definition."""
    if feature in PLAIN:
        unit = {1: "days", 7: "weeks"}.get(unit_days, f"units of {unit_days} days")
        window = "the training window" if window_days is None else f"{int(window_days)} days"
        return PLAIN[feature].replace("{unit}", unit).replace("{window}", window)
    from kamml.features.catalogue import definition  # here: the allocation imports this module without Ibis

    try:
        text = definition(feature)
    except KeyError:
        return feature.replace("_", " ")
    return text.replace(" before the cutoff", " to date").replace(" to the cutoff", " to date")


@functools.lru_cache(maxsize=256)
def _missing(feature: str) -> str:
    """What a missing value of `feature` means: no (repeat) purchase for the history's columns, else no data.

    A gap ratio is missing without a repeat purchase: "no data (raises churn risk)" read as missing data
    (8,923 accounts' reasons on CDNOW). The spend slope is missing for a history under 60 days.
    """
    from kamml.features.catalogue import FILLED_WITH_HISTORY  # here: see _definition

    if feature == "spend_slope_12m":
        return "under 60 days of history"
    return {"frequency": "no repeat purchase yet", "T": "no purchase yet"}.get(
        FILLED_WITH_HISTORY.get(feature, ""), "no data"
    )


def phrase(feature: str, value: Any, unit_days: int = 1, window_days: int | None = None) -> str:
    """A driver in words: the feature's words and the account's value ("no data" when missing).

    A missing value can drive a prediction (LightGBM routes it down its own branch): a ratio over a
    window without spend, a date that never happened. Numbers of any kind read alike (a Decimal from a
    Spark DataFrame or a CRM's JSON reads as the number it is), to three digits or two decimals, and below
    0.01 to two digits written out (amounts in millions: 0.0034, not "0.00" as if nothing was spent;
    0.000042, not "4.2e-05"); below `TINY` as "under 0.000001" (or "between -0.000001 and 0"), not
    "3.2e-10"; from `HUGE` on in three digits of scientific notation ("1.23e+20", not 21 digits); a value
    just below 1 never as 1 ("0.996", "just under 1", not "1.00"); an infinite one as "infinite" (not
    "inf"); shares and probabilities read as percentages, never as certain when they are not ("over 99%",
    "under 1%", not "100%" or "0%"); a value shown as zero has no minus sign ("0", not "-0"). `unit_days`
    is the time unit of ``recency`` and ``T`` (`ModelBundle.unit_days`), `window_days` the training window
    of the BTYD features (`feature_words`). A column of the purchase history that is missing for want of a
    (repeat) purchase says so instead of "no data". A ";" in a text value (an account attribute) becomes
    ",": drivers are "; "-separated, so a phrase must not contain the separator.
    """
    text = _definition(feature, unit_days, window_days)
    if value is None or value is pd.NA:
        return f"{text}: {_missing(feature)}"
    if isinstance(value, str):
        return f"{text}: {value.replace(';', ',')}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{text}: {str(value).replace(';', ',')}"
    if np.isnan(number):
        return f"{text}: {_missing(feature)}"
    if np.isinf(number):  # "inf" is Python's word, not a rep's
        return f"{text}: {'infinite' if number > 0 else 'minus infinite'}"
    if feature in PERCENT:
        shown = f"{number * 100:.3g}%" if abs(number * 100) >= HUGE else f"{number:.0%}"
        if shown == "100%" and number < 1:  # 0.9996 read "100%": a certainty the model does not claim
            shown = "over 99%"
        elif shown in ("0%", "-0%") and number > 0:
            shown = "under 1%"
        return f"{text}: {_unsigned_zero(shown)}"
    size = abs(number)
    if size >= HUGE:
        shown = f"{number:.3g}"
    elif size >= 100 or number == round(number):
        shown = f"{number:,.0f}"
    elif size < TINY:
        shown = "under 0.000001" if number > 0 else "between -0.000001 and 0"
    elif size < 0.01:  # two digits, written out: "0.000042", not "4.2e-05"
        shown = np.format_float_positional(number, precision=2, unique=False, fractional=False, trim="-")
    elif size >= 1:
        shown = f"{number:.3g}"
    elif size < 0.995:
        shown = f"{number:.2f}"
    elif size < 0.9995:  # 0.996 read "1.00", as if exactly 1 (an overdue ratio's due day): a third decimal
        shown = f"{number:.3f}"
    else:
        shown = "just under 1" if number > 0 else "just above -1"
    return f"{text}: {_unsigned_zero(shown)}"


def _unsigned_zero(shown: str) -> str:
    """A shown number without its minus sign when all its digits are 0 ("-0", "-0%" of a -0.0 or -0.001)."""
    return shown[1:] if shown.startswith("-") and not shown.strip("-0.,%") else shown
