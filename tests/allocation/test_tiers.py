import doctest

import numpy as np
import pandas as pd
import pytest

from kamml.allocation import tiers as tiers_module
from kamml.allocation.tiers import (
    PHRASES,
    SMALL_STAKE_SHARE,
    assign_tiers,
    check_tiers,
    rank_accounts,
    reason_codes,
    share_counts,
    tie_ranks,
    top_count,
    top_threshold,
)
from kamml.config import REASONS_MIN_CHARS, AllocationConfig, Config
from kamml.errors import ConfigError


def test_doctests():
    result = doctest.testmod(tiers_module)
    assert result.attempted >= 3
    assert result.failed == 0


# ---------------------------------------------------------------------------------------------- ranks


def test_rank_by_value_then_stake_then_account_id():
    value = [3.0, 5.0, 5.0, 5.0, 1.0]
    stake = [9.0, 1.0, 2.0, 2.0, 0.0]
    ids = [10, 30, 40, 20, 50]
    assert rank_accounts(value, stake, ids).tolist() == [4, 3, 2, 1, 5]


def test_rank_is_a_permutation_and_independent_of_row_order():
    rng = np.random.default_rng(0)
    value = rng.integers(0, 5, 200).astype(float)  # many ties
    stake = rng.integers(0, 3, 200).astype(float)
    ids = np.array([f"acc-{i:03d}" for i in rng.permutation(200)])
    rank = rank_accounts(value, stake, ids)
    assert sorted(rank.tolist()) == list(range(1, 201))
    perm = rng.permutation(200)
    again = rank_accounts(value[perm], stake[perm], ids[perm])
    assert dict(zip(ids[perm], again, strict=True)) == dict(zip(ids, rank, strict=True))


# ---------------------------------------------------------------------------------------------- tiers


def test_default_tiers_cut_cumulative_shares():
    tier = assign_tiers(np.arange(1, 101))
    counts = pd.Series(tier).value_counts().to_dict()
    assert counts == {"strategic": 5, "key": 15, "maintain": 30, "nurture": 50}
    assert tier[0] == "strategic"
    assert tier[-1] == "nurture"


def test_tiers_are_sorted_by_share_and_user_named_tiers_work():
    tier = assign_tiers(np.arange(1, 11), {"silver": 1.0, "gold": 0.3})
    assert tier.tolist() == ["gold"] * 3 + ["silver"] * 7


def test_shares_that_are_not_exact_in_binary_do_not_take_an_extra_account():
    """0.07 * 100 and 0.55 * 100 are a hair above 7 and 55 in floating point."""
    tier = assign_tiers(np.arange(1, 101), {"a": 0.07, "b": 0.55, "c": 1.0})
    assert pd.Series(tier).value_counts().to_dict() == {"a": 7, "b": 48, "c": 45}


def test_rank_order_does_not_matter():
    tier = assign_tiers([3, 1, 2])
    assert tier.tolist() == ["nurture", "strategic", "maintain"]


def test_a_tie_across_a_tier_edge_goes_whole_to_its_last_members_tier():
    """Ranks 2-4 tie (same value and stake) across the edge of the top 20 % of 10: all three are "key"."""
    value = np.array([9.0, 5.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, np.nan])
    stake = np.array([1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, np.nan])
    rank = rank_accounts(value, stake, np.arange(10))
    untied = tie_ranks(rank, value, stake)
    assert untied.tolist() == [1, 4, 4, 4, 5, 6, 7, 9, 8, 10]  # 1.0 with stakes 1 and 2 do not tie
    tier = assign_tiers(untied, {"top": 0.2, "mid": 0.5, "rest": 1.0})
    assert tier.tolist() == ["top", "mid", "mid", "mid", "mid", "rest", "rest", "rest", "rest", "rest"]
    assert assign_tiers(rank, {"top": 0.2, "mid": 0.5, "rest": 1.0})[1] == "top"  # without: split
    assert tie_ranks([2, 1], [np.nan, np.nan], [1.0, 1.0]).tolist() == [2, 2]  # NaN ties with NaN


def test_tied_accounts_get_one_tier_in_the_plan():
    """Accounts without history score alike; a tier's edge among them gave them different tiers."""
    from kamml.allocation import allocate
    from kamml.config import AllocationConfig

    rng = np.random.default_rng(3)
    clv = np.concatenate([rng.lognormal(6, 1, 60), np.full(40, 300.0)])  # 40 identical new accounts
    scores = pd.DataFrame({"account_id": rng.permutation(100), "clv": clv, "p_churn": 0.3, "p_alive": 0.9})
    plan = allocate(scores, 50, AllocationConfig())
    same = plan.set_index("account_id").loc[scores.loc[scores["clv"] == 300.0, "account_id"]]
    assert same["expected_gain"].nunique() == 1
    assert same["tier"].nunique() == 1
    ranks = same["rank"]
    limits = [5, 20, 50]  # the default tiers' edges among 100 accounts
    assert any(ranks.min() <= edge < ranks.max() for edge in limits), "the tie must straddle an edge"


@pytest.mark.parametrize(
    ("tiers", "match"),
    [({}, "at least two tiers"), ({"a": 0.0, "b": 1.0}, r"'allocation.tiers.a': .*\(0, 1\]"),
     ({"a": 1.5, "b": 1.0}, "got 1.5"), ({"a": 0.5, "b": 0.5, "c": 1.0}, "same cumulative share"),
     ({"a": True, "b": 1.0}, r"'allocation.tiers.a': .*got true"),
     ({"a": "x", "b": 1.0}, r"tiers.a': .*got x")],
)  # fmt: skip
def test_bad_tiers_are_config_errors(tiers, match):
    with pytest.raises(ConfigError, match=match):
        check_tiers(tiers)


@pytest.mark.parametrize(
    ("tiers", "match"),
    [
        ({"a": 0.5}, r"'allocation\.tiers': at least two tiers"),
        ({"a": 1.0}, r"'allocation\.tiers': at least two tiers"),
        (
            {"a": 0.1, "b": 0.5},
            r"'allocation\.tiers\.b': the last tier.s cumulative share must be 1 .*0\.5$",
        ),
        ({"s": 0.05, "k": 0.15, "m": 0.3, "n": 0.5}, r"'allocation\.tiers\.n': .*\(shares are cumulative"),
    ],
)
def test_tiers_that_cannot_be_meant_are_refused(tiers, match):
    # {a: 0.5} put every account in tier a; a last share below 1 was ignored, its tier taking the rest
    with pytest.raises(ConfigError, match=match):
        check_tiers(tiers)


@pytest.mark.parametrize(
    ("tiers", "match"),
    [
        (
            {"strategic": 0.05, "key": 0.2, "maintain": 0.2, "nurture": 1.0},
            r"'allocation\.tiers': the tiers 'key' and 'maintain' have the same cumulative share, 0\.2 ",
        ),
        (
            {"a": 0.5, "b": 1.0, "c": 1},
            r"'allocation\.tiers': the tiers 'b' and 'c' have the same .* share, 1 ",
        ),
    ],
)
def test_tiers_with_the_same_share_are_named(tiers, match):
    """The message printed every tier and share and left the user to find the two that clash."""
    with pytest.raises(ConfigError, match=match):
        check_tiers(tiers)
    with pytest.raises(ValueError, match=match):
        AllocationConfig(tiers=tiers)


@pytest.mark.parametrize(
    ("tiers", "match"),
    [
        ({"key": 0.5, " key": 1.0}, r"'allocation\.tiers': the names 'key' and ' key' differ only by spaces"),
        ({"top": 0.5, "(none)": 1.0}, r"'allocation\.tiers\.\(none\)': .*reads as no tier"),
        ({"NA": 0.2, "rest": 1.0}, r"'allocation\.tiers\.NA': .*reads as no tier"),
        ({"top": 0.2, "null": 1.0}, r"'allocation\.tiers\.null': .*reads as no tier"),
    ],
)
def test_tier_names_that_read_as_another_or_as_none_are_refused(tiers, match):
    """A tier "NA" or "null" read back from the allocation CSV as missing, and the report shows missing
    tiers as "(none)": such a tier merged with the accounts without one; " key" looked like "key"."""
    with pytest.raises(ConfigError, match=match):
        check_tiers(tiers)
    with pytest.raises(ValueError, match=match):  # pydantic's ValidationError, when the config is read
        AllocationConfig(tiers=tiers)


# -------------------------------------------------------------------------------------------- reasons


def frame(**columns):
    base = {
        "stake_retention": [50.0, 1.0, 1.0, 0.0, 5.0],
        "stake_growth": [10.0, 30.0, 1.0, 0.0, 1.0],
        "stake_referral": [0.0, 0.0, 20.0, 0.0, 1.0],
        "clv": [1000.0, 100.0, 10.0, 0.0, 20.0],
        "p_churn": [0.2, 0.1, 0.3, 0.0, 0.9],
        "referral_value": [0.0, 0.0, 40.0, 0.0, 2.0],
    }
    base.update(columns)
    return pd.DataFrame(base)


def split(reasons):
    return [r.split("; ") if r else [] for r in reasons]


def test_dominant_part_leads_the_reasons():
    reasons = split(reason_codes(frame()))
    assert reasons[0][0] == PHRASES["retention"]
    assert reasons[1][0] == PHRASES["growth"]
    assert reasons[2][0] == PHRASES["influencer"]  # referral dominates and it is the top referrer
    assert reasons[3] == [PHRASES["no_stake"]]
    assert reasons[4][0] == PHRASES["high_churn"]  # retention dominates with p_churn >= 0.5


def test_p_churn_exactly_at_the_threshold_is_high_churn_risk():
    reasons = split(reason_codes(frame(p_churn=[0.5, 0.1, 0.3, 0.0, 0.9])))
    assert reasons[0][0] == PHRASES["high_churn"]  # retention dominates row 0


def test_flags_are_added_once():
    reasons = split(reason_codes(frame()))
    assert PHRASES["top_value"] in reasons[0]  # the biggest clv
    assert reasons[4].count(PHRASES["high_churn"]) == 1
    assert all(r.count(PHRASES["influencer"]) <= 1 for r in reasons)
    assert PHRASES["top_value"] not in reasons[3]  # zero value is never top-decile


def tied_frame(clv, referral=None):
    n = len(clv)
    return pd.DataFrame(
        {
            "stake_retention": 1.0,
            "stake_growth": 0.0,
            "stake_referral": 0.0,
            "clv": np.asarray(clv, dtype=float),
            "p_churn": 0.1,
            "referral_value": np.zeros(n) if referral is None else np.asarray(referral, dtype=float),
        }
    )


def flagged(reasons, phrase):
    return np.array([phrase in r.split("; ") for r in reasons])


def test_top_decile_and_influencer_never_cover_a_tie_beyond_the_top_ten_percent():
    """60 of 100 accounts at the same clv were all "top-decile value"; a tie across the edge of the
    top 10 % is now left out as a whole, and a distinct top above it is still flagged."""
    tied = np.r_[np.full(60, 50.0), np.arange(40.0)]
    reasons = reason_codes(tied_frame(tied, referral=tied))
    assert not flagged(reasons, PHRASES["top_value"]).any()
    assert not flagged(reasons, PHRASES["influencer"]).any()
    top = np.r_[np.full(5, 100.0), np.full(60, 50.0), np.arange(35.0)]
    reasons = reason_codes(tied_frame(top, referral=top))
    np.testing.assert_array_equal(flagged(reasons, PHRASES["top_value"]), top == 100.0)
    np.testing.assert_array_equal(flagged(reasons, PHRASES["influencer"]), top == 100.0)
    assert top_threshold(top) == 50.0


@pytest.mark.parametrize("seed", range(20))
def test_top_flags_are_at_most_a_tenth_never_zero_and_equal_for_equal_values(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    values = rng.integers(0, int(rng.integers(1, 30)), n).astype(float)  # many ties, some zeros
    flags = flagged(reason_codes(tied_frame(values)), PHRASES["top_value"])
    assert flags.sum() <= top_count(n) == max(1, int(np.ceil(0.1 * n - 1e-9)))
    assert not flags[values <= 0].any()
    for value in np.unique(values):  # a tie is flagged as a whole or not at all
        assert len(set(flags[values == value])) == 1
    if flags.any():  # and what is flagged is the top: every larger value too
        assert (values[~flags] < values[flags].min()).all()
    distinct = rng.permutation(n) + 1.0  # no ties: exactly the top tenth
    flags = flagged(reason_codes(tied_frame(distinct)), PHRASES["top_value"])
    np.testing.assert_array_equal(flags, distinct > n - top_count(n))


def test_referral_dominant_without_the_flag_reads_referral_influence():
    reasons = split(reason_codes(frame(referral_value=[0.0, 0.0, 40.0, 0.0, 100.0])))
    assert reasons[2][0] == PHRASES["referral"]
    assert PHRASES["influencer"] in reasons[4]


def test_inactive_accounts_and_drivers():
    drivers = [
        "spend is high; orders more often than usual; new product; fourth",
        None,
        "",
        ["a", "b"],
        np.nan,
    ]
    reasons = split(
        reason_codes(
            frame(drivers=drivers, stake_growth=[10.0, 30.0, 1.0, 20.0, 1.0]),  # every account has a stake
            active=[True, False, True, True, True],
            max_drivers=3,
        )
    )
    assert reasons[0][-3:] == ["spend is high", "orders more often than usual", "new product"]
    assert "fourth" not in reasons[0]
    assert PHRASES["inactive"] in reasons[1]
    assert PHRASES["inactive"] not in reasons[0]
    assert reasons[3][-2:] == ["a", "b"]
    assert reasons[2][-1] in PHRASES.values()  # empty drivers add nothing


def test_drivers_follow_the_model_behind_the_lead():
    """A churn-led account gets the churn model's drivers, a growth-led one the value model's, a
    referral-led one the influence model's, and only those that raise the prediction behind the lead;
    without the lead model's phrases, the value model's are used."""
    v = ["orders: 1 (lowers value)", "spend: 9 (raises value)", "size: 3 (raises value)"]
    c = ["orders: 1 (lowers churn risk)", "idle days: 300 (raises churn risk)", "gaps: 2 (raises churn risk)"]
    r = ["reach: 0 (lowers referral value)", "referrals: 4 (raises referral value)"]
    text = "; ".join([*v, *c, *r])
    only_value = "; ".join(v)
    # leads: retention, growth, influencer, no stake, referral influence (not the top referrer)
    data = frame(drivers=[text] * 5, stake_referral=[0.0, 0.0, 20.0, 0.0, 9.0])
    reasons = split(reason_codes(data, max_drivers=1))
    assert reasons[0] == [PHRASES["retention"], PHRASES["top_value"], c[1]]
    assert reasons[1] == [PHRASES["growth"], v[1]]
    assert reasons[2] == [PHRASES["influencer"], r[1]]
    assert reasons[3] == [PHRASES["no_stake"]]  # nothing at stake: no driver argues it matters
    assert reasons[4] == [PHRASES["referral"], PHRASES["high_churn"], r[1]]
    every = split(reason_codes(data, max_drivers=3))
    assert every[0][-2:] == c[1:]
    assert all("(lowers " not in phrase for reason in every for phrase in reason)  # never against the lead
    two = split(reason_codes(frame(drivers=[only_value] * 5), max_drivers=2))
    assert two[0][-1] == "no top driver raises churn risk"  # the churn model named none: no value drivers
    legacy = split(reason_codes(frame(drivers=["spend is high; new product"] * 5), max_drivers=2))
    assert legacy[0][-2:] == ["spend is high", "new product"]  # phrases without endings: value drivers


def test_a_lead_whose_model_names_no_raising_driver_says_so():
    """The demo's plan read "growth potential" alone on 397 of 5,000 accounts whose value drivers all
    lowered value, as if the drivers were missing; a churn model with no contributions (all zero) put the
    value model's drivers after "high churn risk". Drivers not computed (empty) still add nothing."""
    lowering = "orders: 1 (lowers value); idle days: 3 (lowers churn risk); reach: 0 (lowers referral value)"
    no_churn = "spend: 9 (raises value); referrals: 4 (raises referral value)"  # churn contributions all 0
    data = frame(drivers=[lowering, lowering, lowering, lowering, no_churn])
    reasons = split(reason_codes(data))
    assert reasons[0][-1] == "no top driver raises churn risk"  # retention lead
    assert reasons[1] == [PHRASES["growth"], "no top driver raises value"]
    assert reasons[2] == [PHRASES["influencer"], "no top driver raises referral value"]
    assert reasons[3] == [PHRASES["no_stake"]]  # no driver after nothing at stake, nor this note
    assert reasons[4] == [PHRASES["high_churn"], "no top driver raises churn risk"]
    empty = split(reason_codes(frame(drivers=["", None, " ", np.nan, ""])))
    assert empty == split(reason_codes(frame()))  # not explained (beyond --explain-top): nothing said


def test_drivers_as_lists_with_missing_phrases_name_no_none():
    """A Parquet or Spark list column of drivers may hold nulls beside its phrases: they were joined
    as text, and a rep read "growth potential; spend: 9 (raises value); None" (or "; nan")."""
    phrase = "spend: 9 (raises value)"
    lists = [[phrase, None], [phrase, np.nan], np.array([None, phrase], dtype=object), [None], []]
    data = frame(drivers=pd.Series(lists, dtype=object))
    reasons = split(reason_codes(data))
    assert reasons[1] == [PHRASES["growth"], phrase]
    assert not any(part in {"None", "nan", "NaN", "<NA>"} for reason in reasons for part in reason)
    assert reasons == split(reason_codes(frame(drivers=[phrase, phrase, phrase, None, None])))


def test_no_drivers_column_and_no_referral_column():
    data = frame().drop(columns="referral_value")
    reasons = reason_codes(data)
    assert len(reasons) == len(data)
    assert all(PHRASES["influencer"] not in r for r in reasons)
    assert reasons.index.equals(data.index)


def test_reasons_of_an_empty_frame():
    assert reason_codes(frame().iloc[:0]).tolist() == []


def test_an_account_with_nothing_at_stake_is_in_the_last_tier():
    """Where most accounts had nothing at stake, one of them was "strategic" by its id alone."""
    from kamml.allocation import allocate
    from kamml.config import AllocationConfig

    nothing = pd.DataFrame({"account_id": range(5), "clv": 0.0, "p_churn": 0.2})
    plan = allocate(nothing, 10, AllocationConfig(floor_hours=0.25))
    assert set(plan["tier"]) == {"nurture"}
    some = pd.DataFrame({"account_id": range(10), "clv": [500.0, 300.0] + [0.0] * 8, "p_churn": 0.2})
    tiers = allocate(some, 10, AllocationConfig()).set_index("account_id")["tier"]
    assert tiers.loc[0] == "strategic"
    assert set(tiers.loc[2:]) == {"nurture"}
    assert assign_tiers([1, 2, 3], stake=[0.0, np.nan, 1.0]).tolist() == ["nurture", "nurture", "nurture"]


def test_a_stake_of_almost_nothing_leads_with_little_value_at_stake():
    """An allocation audit: 310 of 2,000 accounts led with "referral influence", their referral value
    among the book's lowest and their clv 2 against a book median of 565: the other parts were smaller."""
    data = pd.DataFrame(
        {
            "stake_retention": [300.0, 10.0, 0.2, 0.0],
            "stake_growth": [700.0, 900.0, 0.3, 0.0],
            "stake_referral": [0.0, 90.0, 4.0, 0.0],
            "clv": [1000.0, 900.0, 0.5, 0.0],
            "p_churn": [0.3, 0.1, 0.9, 0.5],
            "referral_value": [0.0, 90.0, 4.0, 0.0],
        }
    )
    # mean stake 501.125: 1 % of it is 5.01, above the third account's 4.5
    leads = [r.split("; ")[0] for r in reason_codes(data)]
    assert leads == [PHRASES["growth"], PHRASES["growth"], PHRASES["small_stake"], PHRASES["no_stake"]]
    assert PHRASES["high_churn"] in reason_codes(data)[2]  # the flags still say what they say
    given = [r.split("; ")[0] for r in reason_codes(data, small_stake=4.0)]  # a whole table's (Spark)
    assert given[2] == PHRASES["referral"]
    assert SMALL_STAKE_SHARE == 0.01


def test_referral_leads_only_with_a_referral_value_at_least_the_books_median():
    """404 of the demo's 5,000 accounts led with "referral influence" whose referral value (median 55)
    was below the book's median (97): the influence model's base rate, not a sign of influence."""
    book = frame(
        stake_retention=[10.0, 4.0, 50.0, 50.0, 0.0],
        stake_growth=[5.0, 6.0, 500.0, 500.0, 0.0],
        stake_referral=[30.0, 30.0, 600.0, 100.0, 40.0],
        clv=[15.0, 20.0, 1000.0, 1000.0, 1.0],
        p_churn=[0.9, 0.1, 0.1, 0.1, 0.9],
        referral_value=[60.0, 60.0, 200.0, 200.0, 80.0],
    )
    leads = reason_codes(book, small_stake=0.0).str.split("; ").str[0].tolist()
    # the book's median referral value is 80: the first two fall back to their larger other part, the
    # third (200, tied with the fourth at the top, so no influencer flag) leads with it, and the last
    # has no other part and keeps its referral lead
    assert leads == [
        "high churn risk",
        "growth potential",
        "referral influence",
        "growth potential",
        "referral influence",
    ]
    assert reason_codes(book, small_stake=0.0, referral_median=50.0).str.split("; ").str[0].tolist()[:2] == [
        "referral influence",
        "referral influence",
    ]


def test_a_referral_part_ten_times_the_others_leads_below_the_median():
    """An allocation audit: 99.8 % of an account's stake was referral and its reasons read "growth
    potential", because its referral value was below the book's median."""
    from kamml.allocation.tiers import REFERRAL_LEAD_RATIO

    book = frame(
        stake_retention=[1.0, 1.0, 5.0, 5.0, 5.0],
        stake_growth=[3.0, 11.0, 5.0, 5.0, 5.0],
        stake_referral=[2000.0, 100.0, 5.0, 5.0, 5.0],
        clv=[10.0, 20.0, 30.0, 30.0, 30.0],
        p_churn=0.1,
        referral_value=[1.0, 1.0, 50.0, 50.0, 50.0],
    )
    leads = reason_codes(book, small_stake=0.0).str.split("; ").str[0].tolist()
    assert leads[:2] == [PHRASES["referral"], PHRASES["growth"]]  # 3 / 2000 < 0.1; 11 / 100 >= 0.1
    assert REFERRAL_LEAD_RATIO == 0.1


def test_no_driver_follows_a_lead_of_no_or_little_value_at_stake():
    """An allocation audit read "no value at stake; high churn risk; orders: 1 (raises value)"."""
    data = frame(
        stake_retention=[300.0, 0.0, 0.5],
        stake_growth=[700.0, 0.0, 0.5],
        stake_referral=[0.0, 0.0, 0.0],
        clv=[1000.0, 0.0, 1.0],
        p_churn=[0.3, 0.9, 0.2],
        referral_value=[0.0, 0.0, 0.0],
        drivers=["orders: 9 (raises value)"] * 3,
    )
    assert split(reason_codes(data)) == [
        [PHRASES["growth"], PHRASES["top_value"], "orders: 9 (raises value)"],
        [PHRASES["no_stake"], PHRASES["high_churn"]],
        [PHRASES["small_stake"]],
    ]


def test_no_value_flag_follows_a_lead_of_no_or_little_value_at_stake():
    """With growth weighted 0, the book's largest account with p_churn 0 read "no value at stake;
    top-decile value" in the plan: a rep reads the two as contradicting each other. Risk flags stay."""
    from kamml.allocation import allocate

    clv = [5000.0] + [100.0] * 11
    p_churn = [0.0, *np.linspace(0.05, 0.6, 11).tolist()]
    referral = [0.0] * 11 + [900.0]
    scores = pd.DataFrame(
        {"account_id": range(12), "clv": clv, "p_churn": p_churn, "referral_value": referral}
    )
    plan = allocate(scores, 20.0, AllocationConfig(weights={"growth": 0.0})).set_index("account_id")
    assert plan.loc[0, "reasons"] == PHRASES["no_stake"]
    data = frame(
        stake_retention=[300.0, 0.0, 0.001, 0.0],
        stake_growth=[700.0, 0.0, 0.001, 0.0],
        stake_referral=[0.0, 0.0, 0.001, 0.0],
        clv=[10.0, 1000.0, 900.0, 1.0],
        p_churn=[0.3, 0.9, 0.0, 0.2],
        referral_value=[0.0, 0.0, 800.0, 0.0],
    )
    assert split(reason_codes(data, top_share=0.5)) == [
        [PHRASES["growth"]],
        [PHRASES["no_stake"], PHRASES["high_churn"]],
        [PHRASES["small_stake"]],
        [PHRASES["no_stake"]],
    ]


def test_share_counts_keep_the_float_products_rounding_out_at_any_size():
    """0.07 x 280M is 19,600,000.000000004: the tier took 19,600,001 accounts (an absolute 1e-9 held only to
    about 1e7 accounts), and 0.2 x 10 = 2.0000000000000004 is still 2."""
    assert share_counts([0.07], 280_000_000).tolist() == [19_600_000]
    assert share_counts([0.07, 0.2, 1.0], 3_000_000_000).tolist() == [210_000_000, 600_000_000, 3_000_000_000]
    assert share_counts([0.2], 10).tolist() == [2]
    assert share_counts([0.25], 10).tolist() == [3]  # 2.5 accounts: the share holds at most 3
    assert top_count(280_000_000, 0.07) == 19_600_000
    assert top_count(7, 0.1) == 1


def test_reasons_name_no_part_of_the_stake_that_is_switched_off():
    """An audit: with referral weight 0 the demo's plan still called 500 accounts "influencer", and with
    retention weight 0 1,392 accounts "high churn risk", parts the plan gives no value to."""
    from kamml.allocation import allocate
    from kamml.config import AllocationConfig

    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {
            "account_id": range(40),
            "clv": rng.uniform(100.0, 1000.0, 40),
            "p_churn": rng.uniform(0.0, 1.0, 40),
            "referral_value": rng.uniform(0.0, 2000.0, 40),
        }
    )

    def phrases(weights):
        plan = allocate(scores, 20, AllocationConfig(floor_hours=0.0, weights=weights))
        return {p for reason in plan["reasons"] for p in reason.split("; ")}

    every = phrases({"retention": 1.0, "growth": 0.3, "referral": 0.5})
    assert {PHRASES["influencer"], PHRASES["high_churn"], PHRASES["top_value"]} <= every
    no_referral = phrases({"retention": 1.0, "growth": 0.3, "referral": 0.0})
    assert not {PHRASES["influencer"], PHRASES["referral"]} & no_referral
    assert PHRASES["top_value"] in no_referral
    no_retention = phrases({"retention": 0.0, "growth": 0.3, "referral": 0.5})
    assert not {PHRASES["high_churn"], PHRASES["retention"]} & no_retention
    assert PHRASES["influencer"] in no_retention
    referral_only = phrases({"retention": 0.0, "growth": 0.0, "referral": 0.5})
    assert not {PHRASES["top_value"], PHRASES["growth"], PHRASES["high_churn"]} & referral_only
    assert PHRASES["top_value"] in phrases({"retention": 1.0, "growth": 0.0, "referral": 0.5})


def test_reasons_keep_whole_phrases_within_the_configured_length():
    """A CRM's text field (255 characters in many) cut the demo's longest reasons mid-driver: with
    ``max_chars`` whole phrases are dropped from the end, drivers first, and the lead always stays."""
    driver = "net spend in the last 180 days: 519,967 (raises value)"
    frame = pd.DataFrame(
        {
            "stake_retention": [1.0, 60.0, 1.0],
            "stake_growth": [90.0, 30.0, 0.0],
            "stake_referral": [0.0, 0.0, 0.0],
            "clv": [100.0, 50.0, 0.0],
            "p_churn": [0.1, 0.6, 0.0],
            "drivers": ["; ".join([driver] * 3), None, None],
        }
    )
    whole = reason_codes(frame, max_drivers=3)
    assert len(whole[0]) > 120
    short = reason_codes(frame, max_drivers=3, max_chars=120)
    assert short[0] == "; ".join(["growth potential", "top-decile value", driver])
    assert short[1:].tolist() == whole[1:].tolist()  # short enough already
    assert reason_codes(frame, max_drivers=3, max_chars=25)[0] == "growth potential"  # the lead stays
    assert reason_codes(frame, max_drivers=3, max_chars=len(whole[0])).tolist() == whole.tolist()


@pytest.mark.parametrize("value", [0, 19, 2.5, True, "long"])
def test_a_reasons_length_below_the_longest_lead_or_not_a_whole_number_is_refused(value):
    with pytest.raises(ConfigError, match=r"allocation\.reasons_max_chars"):
        Config.from_dict({"allocation": {"reasons_max_chars": value}})
    assert Config.from_dict({"allocation": {"reasons_max_chars": None}}).allocation.reasons_max_chars is None
    assert Config().allocation.reasons_max_chars is None  # no limit by default
    leads = ("retention", "growth", "referral", "high_churn", "influencer", "no_stake", "small_stake")
    assert max(len(PHRASES[lead]) for lead in leads) == REASONS_MIN_CHARS
