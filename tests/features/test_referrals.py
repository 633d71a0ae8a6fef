"""Referred accounts' spend by days since their referral (`kamml.features.referrals`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kamml.features.referrals import referral_spend_by_age

from .conftest import tx

CUTOFF = "2024-07-01"


def _refs(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "referrer_id": [r for r, _, _ in rows],
            "referred_id": [d for _, d, _ in rows],
            "ts": pd.to_datetime([t for _, _, t in rows], format="ISO8601"),
        }
    )


def test_spend_by_age_counts_what_referred_accounts_spent_after_their_referral_before_the_cutoff(make_data):
    t = tx(
        [
            (1, "2024-01-01 00:00", 10.0),
            (2, "2024-06-01 09:00", 7.0),  # before its referral that day: not counted
            (2, "2024-06-01 12:00", 100.0),  # age 0
            (2, "2024-06-03 00:00", 20.0),  # age 2
            (2, "2024-07-05 00:00", 999.0),  # after the cutoff
            (3, "2024-06-29 00:00", 5.0),  # date only, on its referral day (logged at 15:00): age 0
            (3, "2024-06-30 00:00", 6.0),  # age 1
        ]
    )
    refs = _refs(
        [
            (1, 2, "2024-06-01 10:00"),
            (1, 2, "2024-06-20"),  # the same pair again: one referral, at its first date
            (1, 3, "2024-06-29 15:00"),
            (2, 3, "2024-07-02"),  # after the cutoff
        ]
    )
    data = make_data(t, end="2024-12-31", referrals=refs)
    spend, seen = referral_spend_by_age(data, CUTOFF, 40)
    expected = np.zeros(40)
    expected[0], expected[1], expected[2] = 105.0, 6.0, 20.0
    np.testing.assert_allclose(spend, expected)
    # the June 1 referral is seen at ages 0 .. 29, the June 29 one at ages 0 and 1
    np.testing.assert_allclose(seen, [2, 2] + [1] * 28 + [0] * 10)


def test_spend_by_age_is_zero_without_referrals(make_data):
    data = make_data(tx([(1, "2024-01-01", 10.0)]), end="2024-12-31")
    spend, seen = referral_spend_by_age(data, CUTOFF, 30)
    assert spend.shape == seen.shape == (30,)
    assert not spend.any()
    assert not seen.any()


def test_spend_at_ages_past_the_window_is_left_out_and_old_referrals_are_seen_at_every_age(make_data):
    t = tx([(1, "2023-01-01", 1.0), (2, "2023-01-10", 50.0), (2, "2023-03-01", 70.0)])
    data = make_data(t, end="2024-12-31", referrals=_refs([(1, 2, "2023-01-10")]))
    spend, seen = referral_spend_by_age(data, CUTOFF, 30)
    assert spend[0] == 50.0
    assert spend.sum() == 50.0
    assert (seen == 1).all()
