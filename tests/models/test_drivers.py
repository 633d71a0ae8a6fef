from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from kamml.models.drivers import DRIVER_TARGETS, feature_words, phrase, target_of


def test_driver_phrases_read_as_words_for_numbers_and_missing_values():
    assert phrase("spend_90d", 12345.6) == "net spend in the last 90 days: 12,346"
    assert (
        phrase("hours_per_spend_365d", float("nan"))
        == "sales hours per unit of spend in the last 365 days: no data"
    )
    assert phrase("attr_industry", None).endswith(": no data")
    assert phrase("attr_industry", "finance").endswith(": finance")
    assert phrase("attr_region", "north; coastal").endswith(": north, coastal")  # no separator inside
    assert phrase("orders_365d", Decimal("5.0")) == phrase("orders_365d", 5.0)  # a Spark count
    assert phrase("orders_365d", pd.NA).endswith(": no data")


def test_model_history_phrases_name_their_window_and_why_a_gap_is_missing():
    """A CDNOW audit: BTYD's value over the 126-day training window read like the 273-day clv beside it,
    and "no data" stood for no repeat purchase on 8,923 accounts' reasons."""
    assert phrase("btyd_value", 3185.0, window_days=126) == (
        "value expected in 126 days, from the purchase history: 3,185"
    )
    assert phrase("btyd_p_zero", 0.1, window_days=126).startswith("chance of no purchase in 126 days")
    assert phrase("btyd_expected_purchases", 2.0).startswith("purchases expected in the training window")
    assert phrase("overdue_ratio", float("nan")).endswith(": no repeat purchase yet")
    assert phrase("gap_mean", None).endswith(": no repeat purchase yet")
    assert phrase("days_since_last", float("nan")).endswith(": no purchase yet")
    assert phrase("spend_slope_12m", float("nan")).endswith(": under 60 days of history")
    assert phrase("spend_90d", float("nan")).endswith(": no data")


def test_a_phrase_names_its_model_by_its_ending_only():
    for key, target in DRIVER_TARGETS.items():
        for verb in ("raises", "lowers"):
            assert target_of(f"{phrase('spend_90d', 3.0)} ({verb} {target})") == key
    assert target_of("net spend in the last 90 days: 3") is None  # scores written before the endings
    assert target_of("region: north (raises value) (raises churn risk)") == "churn"  # a value's own text
    assert target_of("a ratio (above 1: late): 5 (lowers value)") == "value"
    assert target_of("region: (raises value) x") is None


def test_a_rep_reads_plain_words_units_and_percentages():
    assert phrase("btyd_p_alive", 0.9996) == "chance the account is still buying: over 99%"
    assert phrase("top_product_share", 0.594) == phrase("top_product_share", 0.594).split(":")[0] + ": 59%"
    assert phrase("recency", 12.0) == "time from the first to the last purchase (days): 12"
    assert phrase("recency", 12.0, unit_days=7) == "time from the first to the last purchase (weeks): 12"
    assert phrase("T", 3.0, unit_days=30).startswith("time since the first purchase (units of 30 days)")
    for feature in ("overdue_ratio", "account_age_days", "btyd_value", "gap_std", "frequency"):
        words = phrase(feature, 1.0)
        assert "_" not in words
        assert "BTYD" not in words
        assert "BG/NBD" not in words


def test_small_numbers_and_the_cutoff_read_plainly():
    assert phrase("btyd_expected_purchases", 6.97e-06).endswith(": 0.000007")
    # amounts in millions: $3,400 read "0.00", as if nothing was spent
    assert phrase("spend_180d", 0.0034).endswith(": 0.0034")
    assert phrase("spend_180d", -0.00042).endswith(": -0.00042")
    assert phrase("spend_180d", 0.012).endswith(": 0.01")
    assert phrase("spend_trend", 0.456).endswith(": 0.46")
    assert phrase("spend_trend", -2.5).endswith(": -2.5")
    assert phrase("quantity_365d", 0.0).endswith(": 0")
    assert phrase("quantity_365d", 12345.0).endswith(": 12,345")
    assert phrase("days_since_last", 187.0) == "days since the last purchase: 187"
    assert phrase("referrals_made", 6.0) == "accounts this account referred to date: 6"
    assert "cutoff" not in phrase("spend_total", 5.0)


def test_extreme_numbers_read_in_a_few_digits_and_ordinary_ones_in_full():
    assert phrase("monetary", 1e300) == "average spend of a repeat purchase day: 1e+300"
    assert phrase("spend_90d", -1.234e20).endswith(": -1.23e+20")
    assert phrase("btyd_p_alive", 1e300).endswith(": 1e+302%")  # a broken share, not 300 digits
    assert phrase("spend_90d", 999_999_999_999_999.0).endswith(": 999,999,999,999,999")
    assert phrase("spend_90d", Decimal("1E+300")).endswith(": 1e+300")


def test_tiny_numbers_and_zero_read_without_an_exponent_or_a_minus_sign():
    """An audit of the demo's reasons: "purchases expected in 180 days, from the purchase history: 4.2e-05
    (raises churn risk)", and expected values of 3.2e-10 on long-lapsed accounts; a -0.0 read "-0"."""
    assert phrase("btyd_expected_purchases", 4.2e-05).endswith(": 0.000042")
    assert phrase("btyd_value", 3.2e-10).endswith(": under 0.000001")
    assert phrase("spend_slope_12m", -4.5e-05).endswith(": -0.000045")
    assert phrase("spend_slope_12m", -4.5e-09).endswith(": between -0.000001 and 0")
    assert phrase("spend_180d", 0.00028).endswith(": 0.00028")
    assert phrase("spend_180d", 1.5e-06).endswith(": 0.0000015")  # $1.50 in millions: still spent
    assert phrase("spend_slope_12m", -0.0).endswith(": 0")
    assert phrase("refund_share", -0.0).endswith(": 0%")
    assert phrase("refund_share", -0.001).endswith(": 0%")
    for value in (4.2e-05, -4.5e-05, 6.97e-06, 1e-300, -0.0):
        assert "e-" not in phrase("btyd_expected_purchases", value)


def test_infinity_reads_as_a_word_and_a_value_below_1_never_as_1():
    """An audit: an infinite value read "inf", and 0.996 read "1.00", as if exactly 1 (an overdue ratio
    of 1 is the day a purchase is due)."""
    assert phrase("overdue_ratio", float("inf")).endswith(": infinite")
    assert phrase("spend_trend", -np.inf).endswith(": minus infinite")
    assert phrase("btyd_p_alive", np.inf).endswith(": infinite")
    assert phrase("spend_trend", 0.996).endswith(": 0.996")
    assert phrase("spend_trend", 0.9949).endswith(": 0.99")
    assert phrase("spend_trend", 0.99996).endswith(": just under 1")
    assert phrase("spend_trend", -0.996).endswith(": -0.996")
    assert phrase("spend_trend", -0.99996).endswith(": just above -1")
    assert phrase("spend_trend", 1.0).endswith(": 1")


def test_every_feature_reads_in_a_reps_words_without_formulas_or_data_terms():
    """An audit of the demo's and CDNOW's reasons: "refunded amount / gross positive spend: 19%", "units
    bought to date (quantities as given, when absent 1 or 0 on a refund): 5,544", "distinct products
    bought (positive spend, a known product, needs a product column): 5", the catalogue's definitions."""
    from kamml.features.catalogue import CATALOGUE

    for key in CATALOGUE:
        feature = key.replace("{w}", "90").replace("{name}", "industry")
        words = feature_words(feature)
        for term in ("/", "<", ">", "=", "_", "rows", "column", "hops", "gross", "as given", "known product"):
            assert term not in words, (feature, words)
    assert feature_words("refund_share") == "share of its spend refunded"
    assert phrase("refund_share", 0.19) == "share of its spend refunded: 19%"


def test_a_share_just_short_of_all_or_nothing_never_reads_as_certain():
    """p_alive 0.9996 read "100%" and 0.004 "0%": a rep reads certainty the model does not claim."""
    words = phrase("btyd_p_alive", 0.0).split(":")[0]
    assert phrase("btyd_p_alive", 0.9996) == f"{words}: over 99%"
    assert phrase("btyd_p_alive", 0.996) == f"{words}: over 99%"
    assert phrase("btyd_p_alive", 0.994) == f"{words}: 99%"
    assert phrase("btyd_p_alive", 1.0) == f"{words}: 100%"
    assert phrase("btyd_p_zero", 0.004) == phrase("btyd_p_zero", 0.0).split(":")[0] + ": under 1%"
    assert phrase("btyd_p_zero", 0.0) == phrase("btyd_p_zero", 0.0).split(":")[0] + ": 0%"
    assert phrase("refund_share", 0.006).endswith(": 1%")
