from __future__ import annotations

import contextlib
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamml.config import Config, FeaturesConfig
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import ConfigError, EngineError
from kamml.features import (
    build_features,
    build_labels,
    build_training_frame,
    training_cutoffs,
    write_features,
)
from kamml.features._context import as_cutoff
from kamml.features.build import settle

from .conftest import tx

CUTOFF = "2024-07-01"


@pytest.fixture
def simple(make_data):
    rows = [
        (1, "2024-01-10", 100.0, 2, "a"),
        (1, "2024-01-10", 50.0, 1, "b"),  # same day: merged into one purchase day
        (1, "2024-03-01", 80.0, 2, "a"),
        (1, "2024-05-01", -30.0, -1, "a"),  # refund-only day: not a purchase day
        (1, "2024-06-20", 0.0, 1, "c"),  # zero amount: a purchase day
        (2, "2024-06-01", 40.0, 1, "a"),
        (1, "2024-07-01", 999.0, 1, "a"),  # at the cutoff: future
        (3, "2024-08-15", 70.0, 1, "a"),  # account created after the cutoff
    ]
    return make_data(tx(rows), end="2024-12-31")


def test_rfm_rules(simple):
    f = build_features(simple, CUTOFF)
    assert list(f.index) == [1, 2]  # account 3 did not exist at the cutoff
    a = f.loc[1]
    # purchase days: 01-10 (150), 03-01 (80), 06-20 (0); the refund day 05-01 is not one
    assert a["frequency"] == 2
    assert a["recency"] == (pd.Timestamp("2024-06-20") - pd.Timestamp("2024-01-10")).days
    assert a["T"] == (pd.Timestamp("2024-06-30") - pd.Timestamp("2024-01-10")).days
    assert a["monetary"] == pytest.approx((80 - 30 + 0) / 2)  # the refund returns 03-01's order
    assert a["spend_total"] == pytest.approx(150 + 80 - 30 + 0)
    assert a["orders_total"] == 3
    assert a["refund_count"] == 1
    assert a["zero_amount_count"] == 1
    assert a["refund_share"] == pytest.approx(30 / 230)
    assert a["n_products"] == 2  # a and b have positive spend; c only a zero-amount row
    assert a["top_product_share"] == pytest.approx(180 / 230)
    b = f.loc[2]
    assert b["frequency"] == 0
    assert b["monetary"] == 0
    assert np.isnan(b["gap_mean"])


def test_monetary_keeps_small_repeat_spend_beside_a_huge_first_purchase(make_data):
    """monetary was the total less the first day's spend: 1e30 then 17,442 read 0 (an audit's finding)."""
    days = ["2024-01-10", "2024-03-01", "2024-04-01"]
    rows = [(1, day, amount, 1, "a") for day, amount in zip(days, [1e30, 17_442.0, 8.0], strict=True)]
    a = build_features(make_data(tx(rows), end="2024-12-31"), CUTOFF).loc[1]
    assert a["monetary"] == pytest.approx((17_442 + 8) / 2)


def test_windows_and_regularity(simple):
    f = build_features(simple, CUTOFF)
    a = f.loc[1]
    assert a["spend_30d"] == 0.0  # 06-20 is a zero-amount day
    assert a["orders_30d"] == 1
    assert a["spend_90d"] == pytest.approx(-30.0)  # net of the refund on 05-01
    assert a["spend_180d"] == pytest.approx(200.0)
    gaps = [(pd.Timestamp("2024-03-01") - pd.Timestamp("2024-01-10")).days, 111]
    assert a["gap_mean"] == pytest.approx(np.mean(gaps))
    assert a["gap_std"] == pytest.approx(np.std(gaps))
    assert a["days_since_last"] == 11
    assert a["overdue_ratio"] == pytest.approx(11 / np.mean(gaps))


def test_the_cutoffs_calendar_reaches_accounts_without_transactions(make_data):
    """An account created before the cutoff that has not bought yet got NaN month and quarter."""
    accounts = pd.DataFrame(
        {"account_id": [1, 2, 9], "created_at": pd.to_datetime(["2023-01-01", "2024-02-01", "2024-01-01"])}
    )
    data = make_data(tx([(1, "2024-01-10", 10.0, 1, "a"), (2, "2024-05-01", 5.0, 1, "a")]), accounts=accounts)
    features = build_features(data, "2024-03-01")
    assert features.loc[[1, 2, 9], "cutoff_month"].tolist() == [3.0] * 3  # 2: created, no purchase yet
    assert features.loc[[1, 2, 9], "cutoff_quarter"].tolist() == [1.0] * 3


def test_labels(simple):
    lab = build_labels(simple, CUTOFF, 90)
    assert list(lab.index) == [1, 2]
    assert lab.loc[1, "value"] == 999.0
    assert lab.loc[1, "churned"] == 0
    assert lab.loc[2, "churned"] == 1
    assert lab.loc[2, "value"] == 0.0


def test_the_label_window_is_cutoff_to_cutoff_plus_horizon_exclusive(make_data):
    """Its last day (cutoff + horizon - 1, to the last second) counts; cutoff + horizon does not."""
    t = tx(
        [
            (1, "2024-01-05 00:00:00", 1.0),
            (2, "2024-01-05 00:00:00", 1.0),
            (3, "2024-01-05 00:00:00", 1.0),
            (1, "2024-09-28 23:59:59", 7.0),  # the window's last moment (2024-07-01 + 90 days - 1 s)
            (2, "2024-09-29 00:00:00", 5.0),  # the first moment after it
            (3, "2024-06-30 23:59:59", 3.0),  # before the cutoff: a feature, not a label
        ]
    )
    lab = build_labels(make_data(t, end="2024-12-31"), CUTOFF, 90)
    assert lab["value"].to_dict() == {1: 7.0, 2: 0.0, 3: 0.0}
    assert lab["churned"].to_dict() == {1: 0, 2: 1, 3: 1}


def test_nonrenewal_churn_label(make_data):
    t = tx(
        [(a, d, 10.0) for a in (1, 2, 3, 4) for d in ("2024-03-01", "2024-06-01")] + [(1, "2024-08-01", 5.0)]
    )
    t = pd.concat([t, tx([(3, "2024-08-01", 5.0), (4, "2024-08-01", 5.0)])], ignore_index=True)
    accs = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4],
            # 1: ends inside the horizon (not renewed) although it still buys; 2: ends later, buys nothing;
            # 3: ended before the cutoff, buys; 4: no contract, buys
            "contract_end": pd.to_datetime(["2024-08-15", "2025-06-30", "2024-05-01", None]),
        }
    )
    data = make_data(t, end="2024-12-31", accounts=accs)
    plain = build_labels(data, CUTOFF, 90)
    assert plain["churned"].to_dict() == {1: 0, 2: 1, 3: 0, 4: 0}
    assert "contract_lapsed" not in plain.columns
    lab = build_labels(data, CUTOFF, 90, churn="no_purchase_or_nonrenewal")
    assert lab["churned"].to_dict() == {1: 1, 2: 1, 3: 0, 4: 0}
    assert lab["contract_lapsed"].to_dict() == {1: 1, 2: 0, 3: 0, 4: 0}
    f = build_features(data, CUTOFF)
    assert not any("contract_end" in c for c in f.columns)  # the last known end would leak renewals
    cfg = Config.from_dict(
        {"models": {"churn_label": "no_purchase_or_nonrenewal"}, "time": {"horizon_days": 90}}
    )
    frame = build_training_frame(data, [pd.Timestamp(CUTOFF)], cfg)
    assert frame.set_index("account_id")["churned"].to_dict() == {1: 1, 2: 1, 3: 0, 4: 0}
    from kamml.models.bundle import feature_columns

    assert "contract_lapsed" not in feature_columns(frame)


def test_nonrenewal_rule_needs_contract_end(simple):
    with pytest.raises(ConfigError, match="contract_end"):
        build_labels(simple, CUTOFF, 90, churn="no_purchase_or_nonrenewal")
    with pytest.raises(ConfigError, match="unknown churn label rule"):
        build_labels(simple, CUTOFF, 90, churn="lapsed")


def test_label_window_past_data_end_is_refused(simple):
    with pytest.raises(ConfigError, match="ends after the data end"):
        build_labels(simple, "2024-12-01", 90)


def test_label_window_past_data_end_names_the_last_day_and_the_latest_cutoff(simple):
    # the data's end is exclusive (the day after the last day): the message named that day as "the data
    # end", a day the data do not cover, and left the reader to work out the cutoff that would fit
    last_day = (simple.end - pd.Timedelta(days=1)).date()
    latest = (simple.end - pd.Timedelta(days=90)).date()
    with pytest.raises(ConfigError) as caught:
        build_labels(simple, "2024-12-01", 90)
    message = str(caught.value)
    assert f"data end {last_day} (its last day)" in message
    assert f"the latest cutoff for 90 days is {latest}" in message
    build_labels(simple, latest, 90)  # that cutoff is accepted


def test_label_window_past_data_end_names_the_cutoff_as_the_labels_read_it(simple):
    """An aware cutoff is read in UTC: 19:00 in New York on 2024-11-30 is the cutoff 2024-12-01, which
    the message named 2024-11-30."""
    with pytest.raises(ConfigError, match=r"label window 2024-12-01 \+ 90 days ends after"):
        build_labels(simple, pd.Timestamp("2024-11-30 19:00", tz="America/New_York"), 90)


@pytest.mark.parametrize(
    ("horizon", "message"),
    [
        (0, r"horizon_days must be from 1 to 36,525 days \(a century\), got 0"),
        (-5, r"horizon_days must be from 1 to 36,525 days.*got -5"),
        (36_526, r"horizon_days must be from 1 to 36,525 days.*got 36,526"),
        (1.5, r"horizon_days must be a whole number of days \(an int\), got 1.5"),
        (True, r"horizon_days must be a whole number of days \(an int\), got True"),
    ],
)
def test_labels_refuse_a_horizon_that_is_no_whole_number_of_days(simple, horizon, message):
    """0 and -5 gave empty windows (every account churned), 1.5 a 1-day window."""
    with pytest.raises(ConfigError, match=message):
        build_labels(simple, CUTOFF, horizon)
    assert build_labels(simple, CUTOFF, np.int64(90)).loc[1, "value"] == 999.0


def test_config_edits_in_place_are_checked(simple):
    """Edits inside a list or dict skip validation on assignment: a window of -30 built spend_-30d."""
    cfg = Config()
    cfg.features.windows.append(-30)
    with pytest.raises(ConfigError, match=r"'features\.windows\[4\]' must be a whole number .*, got -30$"):
        build_features(simple, CUTOFF, cfg)
    cfg = Config()
    cfg.features.groups["rfm"] = False
    with pytest.raises(ConfigError, match=r"'features\.groups\.rfm' cannot be switched off"):
        build_features(simple, CUTOFF, cfg)


@pytest.mark.parametrize("config", ["default", {"time": {"unit": "weeks"}}, "data"])
def test_a_config_that_is_not_a_config_is_refused_with_the_way_to_load_one(simple, tmp_path, config):
    """The config's name, a dict or `cfg.data` (which `load_data` takes) was an AttributeError: 'str'
    object has no attribute 'features'."""
    if config == "data":
        config = Config().data
    calls = (
        lambda: build_features(simple, CUTOFF, config),
        lambda: build_training_frame(simple, ["2024-05-01"], config),
        lambda: write_features(simple, CUTOFF, tmp_path / "f.parquet", config),
    )
    for call in calls:
        with pytest.raises(
            TypeError, match=r"config must be a kamml Config, got a (str|dict|DataConfig).*load_config"
        ):
            call()


@pytest.mark.parametrize("source", ["frame", "dict"])
def test_unloaded_tables_are_refused_with_the_way_to_load_them(source):
    """A frame or a dict of frames (what a notebook holds) was an AttributeError: 'DataFrame' object has no
    attribute 'transactions'."""
    t = tx([(1, "2024-01-10", 10.0)])
    data = t if source == "frame" else {"transactions": t}
    for call in (lambda: build_features(data, CUTOFF), lambda: build_labels(data, CUTOFF, 30)):
        with pytest.raises(TypeError, match=r"a kamml Dataset.*got a (DataFrame|dict).*kamml\.load_data"):
            call()


def test_cutoff_must_be_a_date(simple):
    with pytest.raises(ConfigError, match=r"must be a date .*'2024-07-01 12:00'.*time of day 12:00:00"):
        build_features(simple, "2024-07-01 12:00")
    # midnight in +05:00 is 19:00 UTC the day before: a time of day in the data's time, not a date
    with pytest.raises(ConfigError, match=r"time of day 19:00:00 UTC"):
        build_features(simple, "2024-07-01T00:00:00+05:00")
    with pytest.raises(ConfigError, match=r"cutoff 'garbage' is not a date"):
        build_features(simple, "garbage")
    with pytest.raises(ConfigError, match="no cutoff given"):
        build_features(simple, None)
    utc_midnight = build_features(simple, pd.Timestamp(CUTOFF, tz="UTC"))
    pd.testing.assert_frame_equal(utc_midnight, build_features(simple, CUTOFF))


def test_a_time_of_day_under_a_second_is_named_not_read_as_midnight(simple):
    """A cutoff 1 ns or 1 us past midnight was refused as having 'the time of day 00:00:00'."""
    with pytest.raises(ConfigError, match=r"time of day 00:00:00\.000000001:"):
        build_features(simple, pd.Timestamp(CUTOFF) + pd.Timedelta(1, "ns"))
    with pytest.raises(ConfigError, match=r"time of day 00:00:00\.000001 UTC:"):
        build_features(simple, pd.Timestamp(CUTOFF, tz="UTC") + pd.Timedelta(1, "us"))


@pytest.mark.parametrize(
    ("period", "before", "after"),
    [
        (pd.Period("2024-06", "M"), "2024-06-01", "2024-07-01"),
        (pd.Period("2024Q2", "Q"), "2024-04-01", "2024-07-01"),
        (pd.Period("2024-06-30", "D"), "2024-06-30", "2024-07-01"),
    ],
)
def test_a_period_cutoff_is_refused_naming_the_two_days_it_could_mean(simple, period, before, after):
    """A pandas Period was "not a date: give one as YYYY-MM-DD" (a daily one too), and a single one for
    build_training_frame's cutoffs a TypeError ('Period' object is not iterable). A cutoff is the first
    day not read: a period could mean its first day or the day after its last, so neither is guessed."""
    reason = (
        rf"cutoff {re.escape(repr(period))} is a period, not a day: a cutoff is the first day not read "
        rf".*{before} to leave the period out, {after} to read it whole"
    )
    with pytest.raises(ConfigError, match=reason):
        build_features(simple, period)
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    for cutoffs in ([period], period):
        with pytest.raises(ConfigError, match=reason):
            build_training_frame(simple, cutoffs, cfg)


@pytest.mark.parametrize(
    ("value", "before", "after"),
    [
        (np.datetime64("2024-06"), "2024-06-01", "2024-07-01"),
        (np.datetime64("2024"), "2024-01-01", "2025-01-01"),
        (np.datetime64("2024-06-27", "W"), "2024-06-27", "2024-07-04"),
    ],
)
def test_a_numpy_month_year_or_week_cutoff_is_refused_as_a_period_is(simple, value, before, after):
    """np.datetime64("2024-06") was read as 2024-06-01, leaving June out, where "2024-06" and
    pd.Period("2024-06") are refused: a month, year or week could mean its first day or the day after it."""
    reason = (
        rf"cutoff {re.escape(repr(value))} is a period, not a day: a cutoff is the first day not read "
        rf".*{before} to leave the period out, {after} to read it whole"
    )
    with pytest.raises(ConfigError, match=reason):
        build_features(simple, value)
    with pytest.raises(ConfigError, match=reason):
        build_labels(simple, value, 30)
    daily = build_features(simple, np.datetime64(CUTOFF))  # a day, in any finer unit, is a day
    pd.testing.assert_frame_equal(daily, build_features(simple, np.datetime64(CUTOFF + "T00", "h")))
    pd.testing.assert_frame_equal(daily, build_features(simple, CUTOFF))


def test_a_cutoff_on_a_day_the_calendar_lacks_says_so(simple):
    """2023-02-29 was "not a date: give one as YYYY-MM-DD", though it was written so; 2024-02-29 is a day."""
    for day in ("2023-02-29", "1900-02-29", "2024-04-31"):
        reason = r"is not a valid date \(day is out of range for month\)$"
        with pytest.raises(ConfigError, match=rf"cutoff '{day}' {reason}"):
            build_features(simple, day)
    assert as_cutoff("2024-02-29") == pd.Timestamp("2024-02-29")


def test_a_cutoff_outside_the_dates_the_data_can_hold_is_a_config_error(simple):
    """0202-07-01 (a typo for 2022) was pandas' OverflowError "Cannot convert Timestamp to nanoseconds"."""
    for day in ("0202-07-01", "1677-09-21", "2262-04-12", "3000-01-01"):
        with pytest.raises(
            ConfigError, match=rf"cutoff '{day}' is outside the dates kamml reads \(1677-09-22"
        ):
            build_features(simple, day)
        with pytest.raises(ConfigError, match=rf"cutoff '{day}' is outside"):
            build_labels(simple, day, 30)
    assert as_cutoff("1677-09-22") == pd.Timestamp("1677-09-22")


def test_cutoff_after_the_data_end_is_refused_and_the_end_itself_is_observed(simple, make_data):
    # data.end 2024-12-31: the exclusive end is 2025-01-01, the latest cutoff with every day observed
    assert len(build_features(simple, "2025-01-01")) == 3
    with pytest.raises(ConfigError, match=r"cutoff 2025-01-02 is after the data end 2025-01-01.*data\.end"):
        build_features(simple, "2025-01-02")
    # without a declared end, the day after the last transaction is the end
    undeclared = make_data(tx([(1, "2024-03-01", 10.0), (2, "2024-05-31", 5.0)]))
    assert len(build_features(undeclared, "2024-06-01")) == 2
    with pytest.raises(ConfigError, match=r"after the data end 2024-06-01 .*the last transaction"):
        build_features(undeclared, "2024-07-01")


def test_groups_switch_off_and_absent_tables_are_skipped(simple, caplog):
    cfg = Config.from_dict({"features": {"groups": {"trend": False, "breadth": False}}})
    with caplog.at_level("INFO", logger="kamml.features"):
        f = build_features(simple, CUTOFF, cfg)
    assert "spend_trend" not in f.columns
    assert "refund_share" not in f.columns
    assert "frequency" in f.columns
    assert any("no referrals table" in r.message for r in caplog.records)


def test_a_skipped_group_is_said_once_per_data_not_once_per_snapshot(simple, make_data, caplog):
    """ "feature group ... skipped" was logged at every snapshot and feature build, about 8 times a job
    (a user walkthrough): once for the data the job loaded, again for data loaded anew."""
    cfg = Config.from_dict({"time": {"horizon_days": 60}})

    def skipped() -> list[str]:
        return [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]

    with caplog.at_level("INFO", logger="kamml.features"):
        build_training_frame(simple, ["2024-04-01", "2024-05-01", "2024-07-01"], cfg)
        build_features(simple, CUTOFF, cfg)
    said = skipped()
    assert sorted(said) == [
        "feature group 'effort' skipped: no activities table",
        "feature group 'referral' skipped: no referrals table",
        "feature group 'static' skipped: no accounts table",
    ]
    caplog.clear()
    again = make_data(simple.transactions.to_pandas(), end="2024-12-31")  # another job's data
    with caplog.at_level("INFO", logger="kamml.features"):
        build_features(again, CUTOFF, cfg)
        build_features(again, CUTOFF, cfg)
    assert sorted(skipped()) == sorted(said)


def test_unknown_group_is_a_config_error(simple):
    with pytest.raises(ConfigError, match=r"unknown key 'features\.groups\.rfmm'"):  # when the config is read
        Config.from_dict({"features": {"groups": {"rfmm": False}}})
    cfg = Config()  # and a config built around that check
    cfg.features = FeaturesConfig.model_construct(windows=[30, 90, 180, 365], groups={"rfmm": False})
    with pytest.raises(ConfigError, match="rfmm"):
        build_features(simple, CUTOFF, cfg)


def test_an_accounts_row_counts_from_its_created_at_day(make_data):
    """Accounts 1 and 5 bought before the cutoff; their rows are dated on or after it. Their attributes
    were read all the same: a row that did not exist at the cutoff is the account's later existence (an
    audit: a CRM creating rows at a second purchase lifted the backtest's churn AUC past BTYD's)."""
    t = tx([(i, "2024-05-01", 10.0) for i in (1, 2, 3, 5)])
    acc = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4, 5],
            "created_at": pd.to_datetime(
                ["2024-08-01", None, "2024-01-01", "2024-08-01", "2024-07-01 09:00"], format="ISO8601"
            ),
            "size": [50.0, 60.0, 70.0, 80.0, 90.0],
            "segment": ["x", "y", "z", "w", "v"],
        }
    )
    data = make_data(t, end="2024-12-31", accounts=acc)
    f = build_features(data, "2024-07-01")
    assert f.index.tolist() == [1, 2, 3, 5]  # 4 has neither a purchase nor a row dated before the cutoff
    np.testing.assert_array_equal(f["attr_size"], [np.nan, 60.0, 70.0, np.nan])  # 2: no date, counts
    assert f["attr_segment"].isna().tolist() == [True, False, False, True]
    assert f.loc[3, "attr_segment"] == "z"
    assert np.isnan(f.loc[1, "account_age_days"])  # no age before its row's date
    assert f.loc[3, "account_age_days"] == 182.0
    later = build_features(data, "2024-08-02")  # the rows exist by then (4 enters by its row)
    assert later["attr_size"].tolist() == [50.0, 60.0, 70.0, 80.0, 90.0]


def test_referral_effort_static_groups(make_data):
    t = tx([(1, "2024-01-05", 10.0), (2, "2024-03-01", 20.0), (3, "2024-04-01", 5.0), (4, "2024-05-01", 1.0)])
    refs = pd.DataFrame(
        {
            "referrer_id": [1, 2, 1],
            "referred_id": [2, 3, 4],
            "ts": pd.to_datetime(["2024-03-01", "2024-04-01", "2024-08-01"]),
        }
    )
    acts = pd.DataFrame(
        {
            "account_id": [1, 1, 2],
            "ts": pd.to_datetime(["2024-06-01", "2024-02-01", "2024-06-15"]),
            "hours": [2.0, 3.0, 1.5],
        }
    )
    accs = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4, 5],
            "created_at": pd.to_datetime(["2023-01-01"] * 4 + ["2024-06-01"]),
            "segment": ["smb", "ent", "smb", "smb", "ent"],
            "size": [10, 500, 20, 5, 50],
            "owner": ["r1"] * 5,
        }
    )
    data = make_data(t, end="2024-12-31", referrals=refs, activities=acts, accounts=accs)
    f = build_features(data, CUTOFF)
    assert list(f.index) == [1, 2, 3, 4, 5]  # account 5 has no transactions but exists
    assert f.loc[1, "referrals_made"] == 1  # the 08-01 referral is after the cutoff
    assert f.loc[1, "referred_spend"] == 20.0
    assert f.loc[1, "referrals_2hop"] == 1
    assert f.loc[3, "was_referred"] == 1
    assert f.loc[1, "was_referred"] == 0
    assert f.loc[1, "hours_30d"] == 2.0
    assert f.loc[1, "hours_total"] == 5.0
    assert f.loc[5, "frequency"] == 0
    assert f.loc[5, "account_age_days"] == 30
    assert f.loc[2, "attr_size"] == 500
    assert str(f["attr_segment"].dtype) == "category"
    assert "attr_owner" not in f.columns


def test_training_cutoffs_keep_label_windows_inside():
    cuts = training_cutoffs("2024-12-31", 90, 3, 30)
    assert cuts[0] + pd.Timedelta(days=90) <= pd.Timestamp("2024-12-31")
    assert [c.strftime("%Y-%m-%d") for c in cuts] == ["2024-10-02", "2024-09-02", "2024-08-03"]


def test_training_cutoffs_refuse_a_step_or_horizon_of_no_days():
    """step_days=0 gave one cutoff `snapshots` times, so every row was stacked that often (time.step_days
    refuses 0, the Python API took it); a negative step ran the snapshots past the data end."""
    for step in (0, -30):
        with pytest.raises(ConfigError, match=rf"step_days must be from 1 .* got {step}"):
            training_cutoffs("2024-12-31", 90, 3, step)
    with pytest.raises(ConfigError, match=r"horizon_days must be from 1 .* got 0"):
        training_cutoffs("2024-12-31", 0, 3, 30)


def test_training_cutoffs_refuse_a_count_of_no_snapshots():
    """snapshots=0 or a negative count returned no cutoffs (the training frame then failed far from the
    cause), True gave one and 2.5 a bare TypeError; each now names ``snapshots`` and its rule."""
    for count in (0, -2):
        with pytest.raises(ConfigError, match=rf"snapshots must be from 1 to 1,000, got {count}"):
            training_cutoffs("2024-12-31", 90, count, 30)
    for count in (True, 2.5, "3"):
        with pytest.raises(ConfigError, match=r"snapshots must be a whole number \(an int\)"):
            training_cutoffs("2024-12-31", 90, count, 30)
    assert len(training_cutoffs("2024-12-31", 90, np.int64(2), 30)) == 2


@pytest.mark.parametrize(
    ("end", "message"),
    [
        (20241231, r"end 20241231 is a number, not a date"),  # read as nanoseconds: cutoffs in 1969
        ("12/31/2024", r"end '12/31/2024' is not a date written YYYY-MM-DD"),  # read month first
        ("2024-12", r"end '2024-12' is not a date written YYYY-MM-DD"),  # read as 2024-12-01
        (np.datetime64("2024-12"), r"end .* is a period, not a day"),  # read as 2024-12-01
        (None, r"no end given"),  # AttributeError: 'NaTType' object has no attribute 'normalize'
        ("soon", r"end 'soon' is not a date written YYYY-MM-DD"),  # pandas' DateParseError
        ("0001-01-01", r"end '0001-01-01' is outside the dates kamml reads"),  # OutOfBoundsDatetime
    ],
)
def test_training_cutoffs_read_the_end_as_every_cutoff_is_read(end, message):
    """`end` went to pandas as given, where a cutoff is refused with the rule it breaks."""
    with pytest.raises(ConfigError, match=message):
        training_cutoffs(end, 90, 3, 30)


def test_training_cutoffs_are_naive_utc_midnights_whatever_the_end():
    """An aware end gave aware cutoffs in its zone: midnights in New York, one an hour off across the
    clock change, which the training frame refused as times of day (05:00 UTC). An end with a time of
    day still counts from the midnight before it (that day is not observed whole)."""
    want = training_cutoffs("2024-12-31", 90, 3, 60)
    for end in (
        pd.Timestamp("2024-12-31", tz="UTC"),
        pd.Timestamp("2024-12-30 19:00", tz="America/New_York"),  # 2024-12-31 00:00 UTC
        pd.Timestamp("2024-12-31 15:30"),
        "2024-12-31 15:30",
        np.datetime64("2024-12-31T15:30"),
    ):
        assert training_cutoffs(end, 90, 3, 60) == want, end
    assert all(c.tzinfo is None and c == c.normalize() for c in want)


def test_training_frame_refuses_a_repeated_cutoff(simple):
    """A cutoff given twice stacked its snapshot twice: every (snapshot, account) row appeared twice."""
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    same_day = ["2024-05-01", "2024-07-01", pd.Timestamp("2024-05-01")]  # one day in two spellings
    with pytest.raises(ConfigError, match=r"cutoffs repeat 2024-05-01: each snapshot"):
        build_training_frame(simple, same_day, cfg)


def test_training_frame_stacks_snapshots(simple):
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    frame = build_training_frame(simple, ["2024-05-01", "2024-07-01"], cfg)
    assert set(frame["snapshot"]) == {pd.Timestamp("2024-05-01"), pd.Timestamp("2024-07-01")}
    assert {"account_id", "value", "churned", "frequency"} <= set(frame.columns)
    assert len(frame) == 1 + 2


def test_the_snapshot_column_holds_each_cutoff_as_the_features_read_it(simple):
    """A UTC-aware cutoff (or one written ...Z) was kept as given: the features read it as the naive UTC day,
    but the snapshot column held it aware, and beside naive cutoffs became a category of mixed objects."""
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    cutoffs = [pd.Timestamp("2024-07-01", tz="UTC"), "2024-06-01T00:00:00Z", "2024-05-01"]
    frame = build_training_frame(simple, cutoffs, cfg)
    assert pd.api.types.is_datetime64_dtype(frame["snapshot"])  # naive, not a category
    assert set(frame["snapshot"]) == {pd.Timestamp(d) for d in ("2024-05-01", "2024-06-01", "2024-07-01")}
    aware = build_training_frame(simple, [pd.Timestamp("2024-07-01", tz="UTC")], cfg)
    assert aware["snapshot"].dt.tz is None


@pytest.mark.parametrize("cutoffs", [[], (), iter([])])
def test_training_frame_refuses_no_cutoffs_naming_the_argument(simple, cutoffs):
    """No cutoffs blamed a config setting the call did not use: "time.snapshots must be at least 1"."""
    with pytest.raises(ConfigError, match=r"cutoffs is empty: no training snapshots to build"):
        build_training_frame(simple, cutoffs)


def test_the_snapshot_column_has_one_dtype_whatever_type_the_cutoffs_have(simple):
    """Cutoffs as str or date gave a datetime64[s] column, as datetime [us], from training_cutoffs [ns]:
    the same snapshots made frames that differed in dtype (and in `astype("int64")`, by 10**9)."""
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    days = ["2024-05-01", "2024-07-01"]
    stamps = build_training_frame(simple, [pd.Timestamp(d).as_unit("ns") for d in days], cfg)
    for cutoffs in (
        days,
        [pd.Timestamp(d).date() for d in days],
        [pd.Timestamp(d).to_pydatetime() for d in days],
    ):
        frame = build_training_frame(simple, cutoffs, cfg)
        assert frame["snapshot"].dtype == np.dtype("datetime64[ns]")
        pd.testing.assert_frame_equal(frame, stamps)


@pytest.mark.parametrize("with_accounts", [False, True])
def test_training_frame_refuses_a_cutoff_on_or_before_the_first_transaction(make_data, with_accounts):
    """Such a snapshot was built silently: no rows at all, or (accounts created earlier) rows without any
    purchase history, stacked beside the others; only the jobs checked the cutoffs."""
    rows = [(1, "2024-01-10", 100.0), (1, "2024-03-01", 80.0), (2, "2024-06-01", 40.0)]
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": pd.to_datetime(["2023-06-01"] * 2)})
    tables = {"accounts": accounts} if with_accounts else {}
    data = make_data(tx(rows), end="2024-12-31", **tables)
    cfg = Config.from_dict({"time": {"horizon_days": 60}})
    for cutoffs in (["2023-12-01"], ["2024-07-01", "2024-01-10", "2023-12-01"]):
        with pytest.raises(
            ConfigError,
            match=r"cutoffs? 2023-12-01(, 2024-01-10)? (is|are) on or before the day of the first "
            r"transaction \(transactions\.ts: 2024-01-10\)",
        ):
            build_training_frame(data, cutoffs, cfg)
    # a day of history is a snapshot (the jobs ask for more, for BG/NBD)
    assert set(build_training_frame(data, ["2024-01-11"], cfg)["account_id"]) >= {1}


@pytest.mark.parametrize(
    "single",
    [
        "2024-07-01",
        pd.Timestamp("2024-07-01"),
        pd.Timestamp("2024-07-01").date(),
        np.datetime64("2024-07-01"),
    ],
)
def test_training_frame_refuses_a_single_cutoff_for_cutoffs(simple, single):
    """A str was read as one cutoff per character: "cutoff '2' is not a date"."""
    with pytest.raises(ConfigError, match=r"cutoffs must be a sequence of cutoff dates.*\[cutoff\]"):
        build_training_frame(simple, single)
    assert set(build_training_frame(simple, [single])["snapshot"]) == {pd.Timestamp("2024-07-01")}


# --- same-day merge: the window in day_rows equals an independent per-day group-by --------------------

same_day_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=3),
        st.integers(min_value=0, max_value=40),
        st.sampled_from([-20.0, -5.0, 0.0, 10.0, 35.5]),
    ),
    min_size=1,
    max_size=30,
)


def _per_day_reference(rows: list[tuple[int, int, float]], cutoff: pd.Timestamp) -> pd.DataFrame:
    """rfm, purchase-day counts and gaps from transactions merged per account and day in pandas."""
    t = pd.DataFrame(rows, columns=["account_id", "day", "amount"])
    days = t.groupby(["account_id", "day"]).agg(
        spend=("amount", "sum"), buy=("amount", lambda a: (a >= 0).any())
    )
    c = (cutoff - pd.Timestamp("2024-01-01")).days
    out = {}
    for acc, d in days.groupby(level="account_id"):
        d = d.droplevel("account_id")
        p = d[d["buy"]].sort_index()
        gaps = np.diff(p.index.to_numpy()).astype(float)
        order = p["spend"].copy()  # a refund-only day returns the latest order before it
        for when, refund in d.loc[~d["buy"], "spend"].items():
            if (p.index < when).any():
                order[p.index[p.index < when].max()] += refund
        out[acc] = {
            "frequency": max(len(p) - 1.0, 0.0),  # no purchase day: 0, as without history
            "monetary": order.iloc[1:].mean() if len(p) > 1 else 0.0,
            "orders_30d": float((p.index >= c - 30).sum()),
            "spend_total": d["spend"].sum(),
            "gap_max": gaps.max() if len(gaps) else np.nan,
            "gap_mean": gaps.mean() if len(gaps) else np.nan,
            "days_since_last": float(c - p.index.max()) if len(p) else np.nan,
        }
    return pd.DataFrame.from_dict(out, orient="index")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=same_day_rows)
def test_same_day_merge_matches_a_per_day_group_by(make_data, rows):
    """Refunds on a purchase day (first or later, in any input order) count in its spend; refund-only
    days are not purchase days, and return the latest order before them; same-day orders are one
    purchase day."""
    base = pd.Timestamp("2024-01-01")
    cutoff = base + pd.Timedelta(days=41)
    t = pd.DataFrame(
        [(a, base + pd.Timedelta(days=d), x) for a, d, x in rows], columns=["account_id", "ts", "amount"]
    )
    got = build_features(make_data(t, end="2024-12-31"), cutoff)
    want = _per_day_reference(rows, cutoff)
    pd.testing.assert_frame_equal(got[want.columns], want, check_names=False, check_index_type=False)


# --- point in time: appending rows dated at or after the cutoff changes no feature value --------------

day = st.integers(min_value=0, max_value=400)
amount = st.floats(min_value=-50, max_value=500, allow_nan=False, allow_infinity=False)
acct = st.integers(min_value=1, max_value=6)
rows = st.lists(st.tuples(acct, day, amount), min_size=1, max_size=25)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    past=rows,
    future=rows,
    refs=st.lists(st.tuples(acct, acct, day), max_size=6),
    acts=st.lists(st.tuples(acct, day), max_size=6),
)
def test_future_rows_change_no_feature(make_data, past, future, refs, acts):
    base = pd.Timestamp("2024-01-01")
    cutoff = base + pd.Timedelta(days=200)

    def frames(include_future: bool):
        # one fixed past row each, so both versions have the same tables (and the fixed referral's
        # referrer a purchase, so the referrals name a known account, or loading refuses them)
        tx_rows = [(1, base, 1.0)] + [(a, base + pd.Timedelta(days=d % 200), x) for a, d, x in past]
        r_rows = [(1, 2, base)] + [(a, b, base + pd.Timedelta(days=d % 200)) for a, b, d in refs if a != b]
        act_rows = [(1, base, 1.0)] + [(a, base + pd.Timedelta(days=d % 200), 1.0) for a, d in acts]
        if include_future:
            tx_rows += [(a, cutoff + pd.Timedelta(days=d), x) for a, d, x in future]
            r_rows += [(a, b, cutoff + pd.Timedelta(days=d)) for a, b, d in refs if a != b]
            act_rows += [(a, cutoff + pd.Timedelta(days=d), 2.0) for a, d in acts]
        t = pd.DataFrame(tx_rows, columns=["account_id", "ts", "amount"])
        r = pd.DataFrame(r_rows, columns=["referrer_id", "referred_id", "ts"])
        a = pd.DataFrame(act_rows, columns=["account_id", "ts", "hours"])
        return make_data(t, end="2026-01-01", referrals=r, activities=a)

    before = build_features(frames(False), cutoff)
    after = build_features(frames(True), cutoff)
    pd.testing.assert_frame_equal(before, after)


def test_every_column_is_in_the_catalogue_and_docs(make_data):
    from pathlib import Path

    from kamml.features.catalogue import CATALOGUE, describe

    t = tx([(1, "2024-01-05", 10.0, 1, "a"), (2, "2024-03-01", 20.0, 2, "b")])
    refs = pd.DataFrame({"referrer_id": [1], "referred_id": [2], "ts": pd.to_datetime(["2024-03-01"])})
    acts = pd.DataFrame({"account_id": [1], "ts": pd.to_datetime(["2024-06-01"]), "hours": [2.0]})
    accs = pd.DataFrame(
        {"account_id": [1, 2], "created_at": pd.to_datetime(["2023-01-01"] * 2), "size": [1, 2]}
    )
    data = make_data(t, end="2024-12-31", referrals=refs, activities=acts, accounts=accs)
    f = build_features(data, CUTOFF)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    for col in f.columns:
        describe(col)  # raises KeyError for an undocumented column
    for key in CATALOGUE:
        assert f"`{key}`" in docs
    # each column's catalogue group is the group that builds it (n_products read "breadth", built by
    # "products": switching breadth off kept it)
    for group in {describe(col)[0] for col in f.columns} - {"btyd", "rfm"}:  # rfm cannot be off
        cfg = Config.from_dict({"features": {"groups": {group: False}}})
        without = build_features(data, CUTOFF, cfg)
        dropped = set(f.columns) - set(without.columns)
        assert {describe(col)[0] for col in dropped} == {group}, group
        assert dropped == {col for col in f.columns if describe(col)[0] == group}, group


def test_definition_fills_in_the_window_and_the_attribute():
    from kamml.features.catalogue import definition

    assert definition("spend_90d") == "net spend in the last 90 days"
    assert definition("attr_industry") == "industry (account attribute)"
    assert "{" not in definition("hours_365d")


def test_no_definition_holds_the_drivers_separator():
    """Drivers are '; '-separated in the scores: a definition with ';' would read as two drivers."""
    from kamml.features.catalogue import CATALOGUE, definition

    columns = [key.replace("{name}", "x").replace("{w}", "30") for key in CATALOGUE]
    assert not [column for column in columns if ";" in definition(column)]


def test_settle_rounds_to_about_ten_digits_and_keeps_specials():
    x = np.array([1.0, 1 / 3, -123456.789, 1e-300, 0.0, np.nan, np.inf, -np.inf])
    out = settle(x)
    finite = np.isfinite(x)
    np.testing.assert_allclose(out[finite], x[finite], rtol=2.4e-10, atol=0)
    assert np.isnan(out[5])
    assert out[6] == np.inf
    assert out[7] == -np.inf
    np.testing.assert_array_equal(settle(out), out)  # idempotent
    near = np.nextafter(1 / 3, 1.0)  # one ulp apart: the same settled value
    assert settle(np.array([near]))[0] == out[1]


def test_the_same_data_gives_bit_identical_features_run_after_run(tmp_path):
    # DuckDB sums floats in parallel; without `settle` about 1,000 of 250,000 values differed between runs
    world = synthetic.generate(3000, seed=5, years=2.0)
    world.write(tmp_path)
    data = load_data(tmp_path, Config.from_dict({"engine": {"threads": 2}}))
    first = build_features(data, world.end.normalize())
    for _ in range(3):
        pd.testing.assert_frame_equal(build_features(data, world.end.normalize()), first, check_exact=True)


def _dated(s):
    return pd.to_datetime(s, format="ISO8601")


def test_an_account_without_created_at_enters_at_its_first_transaction():
    """Accounts rows that cannot be placed in time were in every past snapshot: a leak of who buys."""
    transactions = pd.DataFrame(
        {
            "account_id": [1, 1, 2, 3],
            "ts": _dated(["2024-01-05", "2024-06-01", "2024-05-01", "2024-12-30"]),
            "amount": [10.0, 10.0, 500.0, 1.0],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4, 5],
            "created_at": _dated(["2023-01-01", None, None, None, "2024-02-01"]),
        }
    )
    data = load_data({"transactions": transactions, "accounts": accounts})
    early = build_features(data, "2024-03-01")
    # 1 bought before; 5 was created before (a prospect with a date); 2 buys only later, 4 never
    assert sorted(early.index) == [1, 5]
    labels = build_labels(data, "2024-03-01", 180)
    assert 2 not in labels.index  # its first purchase is not a label of an account "without history"
    late = build_features(data, "2024-12-31")
    assert sorted(late.index) == [1, 2, 3, 5]  # 4 has neither a transaction nor a created_at: not scored
    no_column = load_data({"transactions": transactions, "accounts": accounts.drop(columns="created_at")})
    assert sorted(build_features(no_column, "2024-03-01").index) == [1]


def test_static_columns_choose_the_attributes_and_refuse_an_unknown_one():
    transactions = pd.DataFrame(
        {"account_id": [1, 2], "ts": _dated(["2024-01-05", "2024-06-06"]), "amount": [10.0, 20.0]}
    )
    accounts = pd.DataFrame(
        {
            "account_id": [1, 2],
            "created_at": _dated(["2023-01-01", "2023-01-01"]),
            "industry": ["retail", "energy"],
            "status": ["active", "closed"],  # today's status: a leak in every past snapshot
        }
    )
    data = load_data({"transactions": transactions, "accounts": accounts})
    every = build_features(data, "2024-03-01")
    assert {"attr_industry", "attr_status"} <= set(every.columns)
    chosen = Config.from_dict({"features": {"static_columns": ["industry"]}})
    some = build_features(data, "2024-03-01", chosen)
    assert "attr_industry" in some.columns
    assert "attr_status" not in some.columns
    assert "account_age_days" in some.columns  # from created_at, always point-in-time
    wrong = Config.from_dict({"features": {"static_columns": ["industri"]}})
    with pytest.raises(ConfigError, match=r"^'features\.static_columns' names 'industri'"):
        build_features(data, "2024-03-01", wrong)


def test_static_columns_without_an_accounts_table_are_noted_once_per_build(simple, caplog):
    """features.static_columns was ignored without a word on data without accounts (with them an unknown
    name is refused); a warning names it, once per frame built, not once per snapshot."""
    cfg = Config.from_dict({"features": {"static_columns": ["industry"]}, "time": {"horizon_days": 60}})

    def notes() -> list[str]:
        return [r.message for r in caplog.records if "features.static_columns (industry)" in r.message]

    with caplog.at_level("WARNING", logger="kamml.features"):
        frame = build_training_frame(simple, ["2024-05-01", "2024-07-01"], cfg)
    assert not any(c.startswith("attr_") for c in frame.columns)
    assert len(notes()) == 1
    assert "no accounts table" in notes()[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="kamml.features"):
        build_features(simple, CUTOFF, cfg)
        build_features(simple, CUTOFF, Config())  # not set: nothing to note
    assert len(notes()) == 1


def test_an_accounts_column_of_only_nulls_without_a_type_is_an_attribute_of_missing_values(tmp_path):
    """pyarrow writes a column of only nulls with Parquet's null type: the static group skipped it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    transactions = pd.DataFrame(
        {"account_id": [1, 2], "ts": _dated(["2024-01-05", "2024-06-06"]), "amount": [10.0, 20.0]}
    )
    transactions.to_parquet(tmp_path / "transactions.parquet")
    accounts = pa.table(
        {
            "account_id": [1, 2],
            "created_at": _dated(["2023-01-01", "2023-01-01"]),
            "industry": ["retail", "energy"],
            "region": pa.nulls(2),
        }
    )
    assert accounts.schema.field("region").type == pa.null()
    pq.write_table(accounts, tmp_path / "accounts.parquet")
    features = build_features(load_data(tmp_path), "2024-03-01")
    assert features["attr_region"].isna().all()
    assert features["attr_industry"].tolist() == ["retail", "energy"]
    chosen = Config.from_dict({"features": {"static_columns": ["region"]}})  # named, it is there too
    assert "attr_region" in build_features(load_data(tmp_path), "2024-03-01", chosen).columns


def test_referred_spend_counts_only_what_the_referred_account_bought_after_its_referral():
    """As the referral label does: an existing customer logged as referred had its whole spend before the
    referral credited to the referrer's referred_spend, so the feature and the label measured two things."""
    transactions = pd.DataFrame(
        {
            "account_id": [1, 2, 2, 2, 3, 3, 9],
            "ts": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-10",
                    "2024-03-20 08:00",
                    "2024-04-01",
                    "2024-03-20",
                    "2024-05-02",
                    "2024-12-30",
                ],
                format="ISO8601",
            ),
            "amount": [10.0, 5.0, 7.0, 100.0, 3.0, -1.0, 1.0],
        }
    )
    referrals = pd.DataFrame(
        {
            "referrer_id": [1, 1],
            "referred_id": [2, 3],
            "ts": pd.to_datetime(["2024-03-20 12:00", "2024-03-20 12:00"]),
        }
    )
    features = build_features(load_data({"transactions": transactions, "referrals": referrals}), "2024-12-01")
    # 2: 5 and 7 before the referral (the morning of its day) left out; 3: a date-only purchase on the
    # referral's day cannot be placed before it and counts, and its refund nets off, as in the label
    assert features.loc[1, "referred_spend"] == 100.0 + 3.0 - 1.0


def test_a_repeated_referral_counts_once_in_features_labels_and_a_note():
    transactions = pd.DataFrame(
        {
            "account_id": [1, 2, 2, 9],
            "ts": _dated(["2024-01-01", "2024-01-10", "2024-04-01", "2024-12-30"]),
            "amount": [10.0, 5.0, 100.0, 1.0],
        }
    )
    referrals = pd.DataFrame(
        {
            "referrer_id": [1, 1, 1],
            "referred_id": [2, 2, 2],
            "ts": _dated(["2024-03-20", "2024-03-20", "2024-05-01"]),  # exported twice, logged again
        }
    )
    data = load_data({"transactions": transactions, "referrals": referrals})
    labels = build_labels(data, "2024-03-16", 90)
    assert labels.loc[1, "referral_value"] == 100.0  # not 200
    assert labels.loc[1, "referrals"] == 1.0
    features = build_features(data, "2024-12-01")
    assert features.loc[1, "referrals_made"] == 1.0
    assert features.loc[1, "referred_spend"] == 100.0  # the 5 bought before the referral is not its
    (note,) = [n for n in data.quality.notes if "repeating a referrer-referred pair" in n.rule]
    assert note.n_rows == 2


def test_edge_histories_read_as_documented():
    """Refund-only history: frequency 0 (was -1); no gap: gap_std missing (was 0); a missing product is
    no product, and an account without a positive product purchase has 0 products (was missing)."""
    transactions = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 3, 3, 4, 9],
            "ts": _dated(
                [
                    "2024-02-01",
                    "2024-02-01",
                    "2024-01-01",
                    "2024-01-02",
                    "2024-01-03",
                    "2024-01-05",
                    "2024-12-30",
                ]
            ),
            "amount": [-20.0, 15.0, 5.0, 5.0, 6.0, 0.0, 1.0],
            "product": ["a", "a", None, None, "b", "a", "a"],
        }
    )
    f = build_features(load_data({"transactions": transactions}), "2024-03-01")
    assert f.loc[1, "frequency"] == 0.0
    assert np.isnan(f.loc[2, "gap_std"])  # one purchase day: no gap, like gap_mean
    assert np.isnan(f.loc[2, "gap_mean"])
    assert f.loc[3, "gap_std"] == 0.0  # two equal gaps: a real zero
    assert f.loc[3, "n_products"] == 1.0  # "b"; the missing product is not a second one
    assert f.loc[3, "top_product_share"] == 1.0
    assert f.loc[4, "n_products"] == 0.0  # only a zero amount


def test_the_calendar_window_is_the_training_label_window_at_scoring_too():
    """With train_horizon_days < horizon_days the trees learnt on a 90-day year-ago window and were
    scored with a 180-day one (2.2 times the spend)."""
    from kamml.evaluation.backtest import _train_config
    from kamml.models.bundle import ModelBundle

    world = synthetic.generate(300, seed=3, years=3.0)
    cfg = Config.from_dict({"time": {"horizon_days": 180, "train_horizon_days": 90}})
    data = load_data({"transactions": world.transactions}, cfg)
    cut = pd.Timestamp("2025-06-01")
    scoring = build_features(data, cut, cfg)["spend_last_year_horizon"]
    training = build_features(data, cut, _train_config(cfg))["spend_last_year_horizon"]
    pd.testing.assert_series_equal(scoring, training)
    assert scoring.sum() > 0
    scoring_cfg = ModelBundle.scoring_config.__get__(
        type(
            "B", (), {"feature_config": None, "unit_days": 1, "horizon_days": 180, "train_horizon_days": 90}
        )()
    )(cfg)
    pd.testing.assert_series_equal(
        build_features(data, cut, scoring_cfg)["spend_last_year_horizon"], training
    )


# ------------------------------------------------------------------------------ day edges at the cutoff


def test_an_account_created_on_the_cutoff_day_does_not_exist_yet(make_data):
    accs = pd.DataFrame({"account_id": [1, 2], "created_at": pd.to_datetime(["2024-01-01", CUTOFF])})
    data = make_data(tx([(1, "2024-03-01", 10.0)]), end="2024-12-31", accounts=accs)
    assert list(build_features(data, CUTOFF).index) == [1]


def test_a_referral_on_the_cutoff_day_is_in_the_label_window(make_data):
    t = tx([(1, "2024-03-01", 10.0), (2, "2024-08-01", 50.0)])
    refs = pd.DataFrame({"referrer_id": [1], "referred_id": [2], "ts": pd.to_datetime([CUTOFF])})
    labels = build_labels(make_data(t, end="2024-12-31", referrals=refs), CUTOFF, 90)
    assert labels.loc[1, "referral_value"] == 50.0
    assert labels.loc[1, "referrals"] == 1.0


def test_referral_value_counts_spend_after_the_referral_not_earlier_that_day(make_data):
    """A purchase at 01:00 before a referral at 05:00 the same day was credited to the referrer."""
    t = tx([(1, "2024-03-01 00:00", 10.0), (2, "2024-08-01 01:00", 100.0), (2, "2024-08-01 10:00", 33.0)])
    refs = pd.DataFrame({"referrer_id": [1], "referred_id": [2], "ts": pd.to_datetime(["2024-08-01 05:00"])})
    labels = build_labels(make_data(t, end="2024-12-31", referrals=refs), CUTOFF, 90)
    assert labels.loc[1, "referral_value"] == 33.0


def test_referral_value_counts_a_date_only_purchase_on_the_referral_day(make_data):
    """A billing export without times (midnight) read as before a referral logged at 10:00 that day: on
    a synthetic world with its transactions cut to the date the influence label fell 26 % (an audit)."""
    t = tx([(1, "2024-03-01", 10.0), (2, "2024-08-01", 100.0), (2, "2024-08-20", 5.0)])
    refs = pd.DataFrame({"referrer_id": [1], "referred_id": [2], "ts": pd.to_datetime(["2024-08-01 10:00"])})
    labels = build_labels(make_data(t, end="2024-12-31", referrals=refs), CUTOFF, 90)
    assert labels.loc[1, "referral_value"] == 105.0


def test_the_training_frame_labels_cover_the_training_horizon():
    """With time.train_horizon_days the features used it and the labels horizon_days, so the documented
    `ModelBundle.fit(build_training_frame(data, cutoffs, config), config)` failed (an audit)."""
    days = pd.date_range("2023-01-01", "2024-12-30", freq="7D")
    t = pd.DataFrame({"account_id": np.tile([1, 2, 3], len(days)), "ts": np.repeat(days, 3), "amount": 10.0})
    data = load_data({"transactions": t})
    cfg = Config.from_dict({"time": {"horizon_days": 180, "train_horizon_days": 90}})
    cuts = training_cutoffs(data.end, 90, 2, 90)
    frame = build_training_frame(data, cuts, cfg)
    assert frame.attrs["horizon_days"] == frame.attrs["feature_window_days"] == 90
    first = frame[frame["snapshot"] == cuts[0]].set_index("account_id")
    assert first["value"].to_dict() == build_labels(data, cuts[0], 90)["value"].to_dict()


def test_a_contract_ending_on_the_last_day_of_the_window_lapses_and_one_a_day_later_does_not(make_data):
    """The label window is [cutoff, cutoff + 90 days): 2024-09-28 is its last day, 2024-09-29 after it."""
    t = tx([(a, d, 10.0) for a in (1, 2) for d in ("2024-03-01", "2024-08-01")])
    ends = pd.to_datetime(["2024-09-28", "2024-09-29"])
    data = make_data(t, end="2024-12-31", accounts=pd.DataFrame({"account_id": [1, 2], "contract_end": ends}))
    lab = build_labels(data, CUTOFF, 90, churn="no_purchase_or_nonrenewal")
    assert lab["contract_lapsed"].to_dict() == {1: 1, 2: 0}


def test_hours_per_spend_is_0_with_spend_and_no_activity_whether_or_not_it_ever_had_any(make_data):
    """Account 2 (no activity at all) got NaN, account 1 (activity older than 365 days) 0."""
    t = tx([(1, "2024-03-01", 100.0), (2, "2024-03-01", 100.0), (3, "2024-03-01", -5.0)])
    acts = pd.DataFrame({"account_id": [1], "ts": pd.to_datetime(["2022-01-01"]), "hours": [2.0]})
    f = build_features(make_data(t, end="2024-12-31", activities=acts), CUTOFF)
    assert f.loc[[1, 2], "hours_per_spend_365d"].tolist() == [0.0, 0.0]
    assert np.isnan(f.loc[3, "hours_per_spend_365d"])  # no positive spend: nothing to divide by


def _effort_reference(t: pd.DataFrame, acts: pd.DataFrame, accs: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    """The effort columns from docs/features.md in plain pandas: rows before the cutoff, whole UTC days."""
    cut = pd.Timestamp(cutoff)
    epoch = pd.Timestamp("1970-01-01")
    cday = (cut - epoch).days
    t = t[t["ts"] < cut].assign(day=lambda d: (d["ts"].dt.floor("D") - epoch).dt.days)
    a = acts[acts["ts"] < cut].assign(day=lambda d: (d["ts"].dt.floor("D") - epoch).dt.days)
    ids = set(t["account_id"]) | set(accs.loc[accs["created_at"] < cut, "account_id"])
    out = pd.DataFrame(index=pd.Index(sorted(ids), name="account_id"))
    recent = a[a["day"] >= cday - 365]
    out["hours_total"] = a.groupby("account_id")["hours"].sum()
    for w in (30, 90, 180, 365):
        out[f"hours_{w}d"] = a[a["day"] >= cday - w].groupby("account_id")["hours"].sum()
    out["activities_365d"] = recent.groupby("account_id").size().astype(float)
    out = out.fillna(0.0)  # sums and counts of an account without activities
    out["days_since_last_activity"] = (cday - a.groupby("account_id")["day"].max()).astype(float)
    spent = t[t["day"] >= cday - 365]
    net = spent.groupby("account_id")["amount"].sum()
    net = net.where(net.abs() > spent["amount"].abs().groupby(spent["account_id"]).sum() * 1e-9, 0.0)
    net = net.reindex(out.index).where(lambda s: s.notna() | ~out.index.isin(t["account_id"]), 0.0)
    out["hours_per_spend_365d"] = (out["hours_365d"] / net).where(net > 0)
    return out.apply(lambda c: settle(c.to_numpy(dtype=float)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_effort_features_match_a_pandas_reference_on_random_books(make_data, seed):
    """Hours, counts, recency and hours per spend against their documented definitions: times of day,
    midnights, the cutoff instant and window edges, zero, fractional and huge hours, repeated rows,
    activities of unknown accounts or of accounts without transactions, text ids (odd seeds)."""
    rng = np.random.default_rng(seed)
    start, cut = pd.Timestamp("2023-01-01"), pd.Timestamp(CUTOFF)

    def when(days: int) -> pd.Timestamp:
        ts = start + pd.Timedelta(seconds=int(rng.integers(0, days * 86_400)))
        return ts.floor("D") if rng.random() < 0.3 else ts

    t = pd.DataFrame(
        [
            (i, when(700), float(np.round(rng.normal(100, 80), 2)))
            for i in range(30)
            for _ in range(rng.integers(0, 8))
        ],
        columns=["account_id", "ts", "amount"],
    )
    hours = [0.0, 0.25, 1.5, float(rng.exponential(3)), 1e9]
    rows = [(i, when(700), hours[rng.integers(0, 5)]) for i in range(33) for _ in range(rng.integers(0, 8))]
    edges = [0, 1, 30, 365]  # days back: the cutoff instant itself (future), then window edges
    rows += [(i % 4, cut - pd.Timedelta(days=d), 2.0) for i, d in enumerate(edges)]
    rows += [(i % 4, cut - pd.Timedelta(days=d, seconds=1), 3.0) for i, d in enumerate(edges)]
    acts = pd.DataFrame(rows, columns=["account_id", "ts", "hours"])
    acts = pd.concat([acts, acts.iloc[:3]], ignore_index=True)  # repeated rows count as given
    accs = pd.DataFrame({"account_id": range(32), "created_at": start})  # 30, 31: no transactions
    if seed % 2:
        for frame in (t, acts, accs):
            frame["account_id"] = "A" + frame["account_id"].astype(str)
    data = make_data(t, end="2024-12-31", activities=acts, accounts=accs)
    want = _effort_reference(t, acts, accs, CUTOFF)
    got = build_features(data, CUTOFF)[list(want.columns)]
    pd.testing.assert_frame_equal(got, want, check_names=False, rtol=1e-9)


def test_spend_exactly_365_days_before_the_cutoff_is_in_the_365_day_window(make_data):
    t = tx([(1, "2023-07-02", 100.0), (1, "2024-03-01", 100.0)])  # 2023-07-02 = cutoff - 365 days
    acts = pd.DataFrame({"account_id": [1], "ts": pd.to_datetime(["2024-03-01"]), "hours": [10.0]})
    f = build_features(make_data(t, end="2024-12-31", activities=acts), CUTOFF)
    assert f.loc[1, "hours_per_spend_365d"] == pytest.approx(10.0 / 200.0)


def _slope_reference(days: list[str], amounts: list[float], cutoff: str) -> float:
    """np.polyfit of daily spend over the days since the first row (at most 360), x 900 (per 30 days of
    30-day spend); missing under 60 days."""
    c = pd.Timestamp(cutoff)
    back = [(c - pd.Timestamp(d)).days for d in days]  # 1 = the day before the cutoff
    n = min(max(back), 360)
    if n < 60:
        return float("nan")
    spend = np.zeros(n)
    for b, a in zip(back, amounts, strict=True):
        if b <= n:
            spend[n - b] += a  # oldest day first
    return 900.0 * float(np.polyfit(np.arange(n), spend, 1)[0])


@pytest.mark.parametrize(
    ("days", "amounts"),
    [
        (["2024-06-20"], [50.0]),  # one bin: no slope
        (["2024-05-10", "2024-06-20"], [50.0, 80.0]),  # 52 days: too short
        (["2024-04-10", "2024-05-10", "2024-06-20"], [20.0, 50.0, 80.0]),  # 82 days, rising
        (["2024-05-01", "2024-05-21", "2024-06-10", "2024-06-30"], [100.0] * 4),  # steady: 0 (bins: +50)
        (["2024-03-01", "2024-06-20"], [100.0, 0.0]),  # young and falling: was read as rising
        (["2022-01-05", "2023-09-01", "2024-02-01", "2024-06-29"], [10.0, 30.0, -5.0, 40.0]),  # 12 bins
        (["2023-07-01", "2023-07-10"], [60.0, 20.0]),  # an old history, nothing in the year: flat
    ],
)
def test_spend_slope_counts_only_the_days_the_history_covers(make_data, days, amounts):
    """A 30-day bin before an account's first row is no history, not zero spend, and the bin holding the
    first row is only partly seen: each read a young account as rising (a CDNOW audit: a customer sloping
    at -0.4 over his ten months read +9.99; a steady 300 per 30 days from 31 days back read +200)."""
    rows = [(1, d, a) for d, a in zip(days, amounts, strict=True)]
    f = build_features(make_data(tx(rows), end="2024-12-31"), CUTOFF)
    expected = _slope_reference(days, amounts, CUTOFF)
    if np.isnan(expected):
        assert np.isnan(f.loc[1, "spend_slope_12m"])
    else:
        assert f.loc[1, "spend_slope_12m"] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_spend_trend_needs_the_earlier_half_year_observed_whole(make_data):
    """100 every 30 days from 2023-12-15 read 6.0 (600 against the 100 of the earlier half-year's last
    17 days); missing until the first row is 364 days back, then the ratio of the two half-years."""
    steady = [(1, str(d.date()), 100.0) for d in pd.date_range("2023-12-15", "2024-06-30", freq="30D")]
    old = [(2, "2023-07-03", 100.0), (2, "2023-10-01", 50.0), (2, "2024-03-01", 300.0)]  # 364 days back
    f = build_features(make_data(tx(steady + old), end="2024-12-31"), CUTOFF)
    assert np.isnan(f.loc[1, "spend_trend"])
    assert f.loc[2, "spend_trend"] == pytest.approx(300.0 / 150.0)


def test_static_columns_refuse_a_date_and_a_column_kamml_reads_itself():
    """A date named in static_columns was skipped without a word (a feature audit); so were owner and
    the other columns kamml reads for themselves. Both are config errors naming the column."""
    transactions = pd.DataFrame(
        {"account_id": [1, 2], "ts": _dated(["2024-01-05", "2024-06-06"]), "amount": [1.0, 2.0]}
    )
    accounts = pd.DataFrame(
        {
            "account_id": [1, 2],
            "since": _dated(["2020-01-01", "2021-01-01"]),
            "tier": ["a", "b"],
            "owner": ["ann", "bob"],
        }
    )
    data = load_data({"transactions": transactions, "accounts": accounts})
    dated = Config.from_dict({"features": {"static_columns": ["since", "tier"]}})
    with pytest.raises(
        ConfigError,
        match=r"^'features\.static_columns' names 'since' \(timestamp.*number, a yes/no or a text",
    ):
        build_features(data, "2024-03-01", dated)
    owner = Config.from_dict({"features": {"static_columns": ["tier", "owner"]}})
    with pytest.raises(
        ConfigError, match=r"^'features\.static_columns' names 'owner': accounts columns kamml reads"
    ):
        build_features(data, "2024-03-01", owner)
    every = build_features(data, "2024-03-01")  # by default a date is no attribute, as documented
    assert "attr_tier" in every.columns
    assert "attr_since" not in every.columns


def test_write_features_out_of_memory_is_an_engine_error(world_path, tmp_path):
    """The out-of-core path let DuckDB's OutOfMemoryException through, where build_features names the
    setting to change."""
    from kamml.errors import EngineError
    from kamml.features import write_features

    data = load_data(world_path, None)
    data.backend.raw_sql("SET memory_limit='4MB'")
    data.backend.raw_sql("SET threads=1")
    with pytest.raises(EngineError, match=r"DuckDB ran out of memory .*raise engine\.memory_limit"):
        write_features(data, data.end, tmp_path / "features.parquet")


def test_write_features_writes_numbers_as_doubles(make_data, tmp_path):
    """Counts summed from 1.0 literals (orders_total, refund_count) and the cutoff's month reached the
    file as DECIMAL columns: the engine reads ``1.0`` as a decimal and Ibis dropped the float64 cast as
    a no-op, so pandas read them back as Python Decimals, not as the floats build_features returns."""
    import pyarrow.parquet as pq

    from kamml.features import write_features

    data = make_data(
        tx([(1, "2024-01-05", 10.0), (1, "2024-02-05", -2.0), (2, "2024-02-01", 0.0)]), end="2024-06-30"
    )
    path = write_features(data, "2024-03-01", tmp_path / "features.parquet")
    kinds = {field.name: str(field.type) for field in pq.read_schema(path)}
    built = build_features(data, "2024-03-01")
    assert {kinds[name] for name in built.columns} == {"double"}
    written = pd.read_parquet(path).set_index("account_id").sort_index()
    pd.testing.assert_frame_equal(written[built.columns], built, check_dtype=True, rtol=1e-9)


def test_a_full_refund_leaves_no_net_spend_to_divide_by(make_data):
    """0.1 + 0.2 refunded as 0.3 nets 5.6e-17 in floats: account 1 read 3.6e16 hours per unit of spend
    and account 2 a spend trend of 9e17 (the summing order could as well make either missing)."""
    rows = [
        (a, d, x) for a in (1, 2) for d, x in (("2023-09-01", 0.1), ("2023-09-01", 0.2), ("2023-09-20", -0.3))
    ]
    rows += [(2, "2023-05-01", 5.0), (2, "2024-06-01", 50.0)]
    acts = pd.DataFrame({"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-01"] * 2), "hours": [2.0, 2.0]})
    f = build_features(make_data(tx(rows), end="2024-12-31", activities=acts), CUTOFF)
    assert np.isnan(f.loc[1, "hours_per_spend_365d"])  # as documented: the net spend is not positive
    assert np.isnan(f.loc[2, "spend_trend"])  # the earlier half-year nets nothing
    assert f.loc[2, "hours_per_spend_365d"] == pytest.approx(2.0 / 50.0)


def test_a_repeat_order_refunded_in_full_has_no_order_value(make_data):
    """monetary read 5.6e-17 (0.1 + 0.2 - 0.3 in floats), a positive order value that Gamma-Gamma fits:
    one such customer moved CDNOW's p from 6.3 to 4.1 and gamma from 15 to 27."""
    rows = [(1, "2024-01-10", 40.0), (1, "2024-03-01", 0.1), (1, "2024-03-01", 0.2), (1, "2024-03-01", -0.3)]
    f = build_features(make_data(tx(rows), end="2024-12-31"), CUTOFF)
    assert f.loc[1, "frequency"] == 1.0
    assert f.loc[1, "monetary"] == 0.0


def test_snapshot_progress_lines_group_from_1000_on(make_data, monkeypatch, caplog):
    """time.snapshots may be 1,000: 'training snapshot 1000 of 1000' read without separators; '1 accounts'."""
    from kamml.features.snapshots import Snapshot

    data = make_data(tx([(1, "2020-01-01", 10.0), (1, "2023-06-01", 5.0)]), end="2024-01-01")
    one_row = pd.DataFrame({"frequency": [1.0]}, index=pd.Index([1], name="account_id"))
    monkeypatch.setattr("kamml.features.build._build_snapshot", lambda *args: Snapshot.of(one_row, None))
    cutoffs = pd.date_range("2020-01-02", periods=1000, freq="D")
    with caplog.at_level("INFO", logger="kamml"):
        build_training_frame(data, cutoffs, Config())
    assert "training snapshot 1,000 of 1,000 at 2022-09-27: 1 account in" in caplog.text


def test_a_ratio_too_large_for_a_float_is_missing_not_infinite(make_data):
    """A net spend of 5e-324 (the smallest float) made hours per spend infinite: scoring then stopped in
    memory, and on Spark with a bare PythonException (a parity audit). A quotient beyond the floats has no
    value to give, as a net spend of 0."""
    t = tx([(1, "2024-03-01", 5e-324), (2, "2024-03-01", 100.0)])
    acts = pd.DataFrame({"account_id": [1, 2], "ts": pd.to_datetime(["2024-04-01"] * 2), "hours": [2.0, 2.0]})
    f = build_features(make_data(t, end="2024-12-31", activities=acts), CUTOFF)
    assert np.isnan(f.loc[1, "hours_per_spend_365d"])
    assert f.loc[2, "hours_per_spend_365d"] == pytest.approx(0.02)
    assert not np.isinf(f.select_dtypes("number").to_numpy(dtype=float)).any()


def _rfm_windows_reference(t: pd.DataFrame, cutoff: str, windows: tuple[int, ...]) -> pd.DataFrame:
    """rfm and window columns from docs/features.md in plain pandas: a per-day group-by, no windows."""
    cut = pd.Timestamp(cutoff)
    cday = (cut - pd.Timestamp("1970-01-01")).days
    t = t[t["ts"] < cut].assign(day=lambda d: (d["ts"].dt.floor("D") - pd.Timestamp("1970-01-01")).dt.days)
    rows = []
    for account, g in t.groupby("account_id"):
        buys = sorted(set(g.loc[g["amount"] >= 0, "day"]))
        net = g.groupby("day")["amount"].sum()
        repeat_spend = 0.0
        for day, amount in zip(g["day"], g["amount"], strict=True):  # a refund returns the latest order
            home = day if amount >= 0 else max((b for b in buys if b <= day), default=None)
            if home is not None and home > buys[0]:
                repeat_spend += amount
        row = {
            "account_id": account,
            "frequency": max(len(buys) - 1, 0),
            "recency": buys[-1] - buys[0] if buys else 0,
            "T": cday - 1 - buys[0] if buys else np.nan,
            "monetary": repeat_spend / (len(buys) - 1) if len(buys) > 1 else 0.0,
            "spend_total": net.sum(),
            "orders_total": len(buys),
            "quantity_total": g["quantity"].sum(),
            "days_since_first": cday - g["day"].min(),
        }
        for w in windows:
            recent = g[g["day"] >= cday - w]
            row[f"spend_{w}d"] = recent["amount"].sum()
            row[f"orders_{w}d"] = sum(b >= cday - w for b in buys)
            row[f"quantity_{w}d"] = recent["quantity"].sum()
        rows.append(row)
    return pd.DataFrame(rows).set_index("account_id").astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rfm_and_window_features_match_a_pandas_reference_on_random_books(make_data, seed):
    """frequency, recency, T, monetary and the spend, order and quantity windows against a plain per-day
    pandas computation: same-day orders, refunds (before any order, on and between order days), zero
    amounts, times of day, rows at the cutoff instant and after it, windows unsorted and repeated."""
    rng = np.random.default_rng(seed)
    start, cut = pd.Timestamp("2023-06-01"), pd.Timestamp(CUTOFF)
    rows = []
    for account in range(25):
        for _ in range(int(rng.integers(1, 9))):
            ts = start + pd.Timedelta(seconds=int(rng.integers(0, 420 * 86_400)))
            ts = ts.floor("D") if rng.random() < 0.3 else ts
            ts = cut if rng.random() < 0.05 else ts
            kind = rng.random()
            amount = (
                0.0 if kind < 0.1 else float(np.round(rng.normal(60, 40) * (-0.5 if kind < 0.3 else 1), 2))
            )
            rows.append(
                (account, ts, amount, float(rng.integers(-1, 4)) if amount < 0 else float(rng.integers(1, 4)))
            )
    t = pd.DataFrame(rows, columns=["account_id", "ts", "amount", "quantity"])
    t = pd.concat([t, t.iloc[:5]], ignore_index=True)  # exact duplicate rows: the same day, merged
    cfg = Config.from_dict({"features": {"windows": [365, 30, 7, 30, 500]}})
    built = build_features(make_data(t, end="2024-12-31"), CUTOFF, cfg)
    ref = _rfm_windows_reference(t, CUTOFF, (7, 30, 365, 500))
    assert list(built.index) == list(ref.index)
    pd.testing.assert_frame_equal(built[ref.columns], ref, rtol=1e-8, atol=1e-6)


def test_write_features_shows_the_file_only_whole(make_data, tmp_path):
    """DuckDB wrote a new file in place: a reader (a scheduler waiting for it, a notebook) saw it grow
    through partial sizes, and a killed write left a truncated Parquet file under the name. The file is
    written beside the name and renamed onto it, as kamml's other outputs are."""
    import threading

    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    n = 400_000
    t = pd.DataFrame(
        {
            "account_id": rng.integers(0, 150_000, n),
            "ts": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 540 * 86_400, n), unit="s"),
            "amount": np.round(rng.normal(50, 30, n), 2),
        }
    )
    data = make_data(t, end="2024-12-31")
    target = tmp_path / "out" / "features.parquet"
    sizes: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                sizes.append(target.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        write_features(data, "2024-07-01", target)
    finally:
        done.set()
        watcher.join()
    whole = target.stat().st_size
    assert set(sizes) <= {whole}, f"the name showed partial files of {sorted(set(sizes) - {whole})} bytes"
    assert pq.read_metadata(target).num_rows == len(build_features(data, "2024-07-01"))
    assert [p.name for p in target.parent.iterdir()] == ["features.parquet"]  # no temporary file left


@pytest.mark.parametrize("with_accounts", [False, True])
def test_features_refuse_a_cutoff_on_or_before_the_first_transaction(make_data, tmp_path, with_accounts):
    """`build_features` there returned an empty frame (or, with accounts created earlier, rows without
    any purchase history) and `write_features` wrote an empty file, without a word; scoring and training
    already refused such a cutoff."""
    rows = [(1, "2024-01-10", 100.0), (1, "2024-03-01", 80.0), (2, "2024-06-01", 40.0)]
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": pd.to_datetime(["2023-06-01"] * 2)})
    tables = {"accounts": accounts} if with_accounts else {}
    data = make_data(tx(rows), end="2024-12-31", **tables)
    target = tmp_path / "features.parquet"
    for cutoff in ("2023-12-01", "2024-01-10"):
        expected = (
            rf"cutoff {cutoff} is on or before the day of the first transaction \(transactions\.ts: "
            r"2024-01-10\).*give a cutoff after 2024-01-10"
        )
        with pytest.raises(ConfigError, match=expected):
            build_features(data, cutoff)
        with pytest.raises(ConfigError, match=expected):
            write_features(data, cutoff, target)
    assert not target.exists()
    assert list(build_features(data, "2024-01-11").index) == ([1, 2] if with_accounts else [1])


@pytest.mark.parametrize("with_accounts", [False, True])
def test_labels_refuse_a_cutoff_on_or_before_the_first_transaction(make_data, with_accounts):
    """`build_labels` there returned an empty frame (or, with accounts created earlier, rows of accounts
    without any history) without a word, where `build_features` refuses the cutoff; `build_past_window`
    reads its window before the cutoff, which may start before the first transaction: only its own
    cutoff is checked, and a window reaching back before the data still counts what it holds."""
    from kamml.features.build import build_past_window

    rows = [(1, "2024-01-10", 100.0), (1, "2024-03-01", 80.0), (2, "2024-06-01", 40.0)]
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": pd.to_datetime(["2023-06-01"] * 2)})
    tables = {"accounts": accounts} if with_accounts else {}
    data = make_data(tx(rows), end="2024-12-31", **tables)
    for cutoff in ("2023-12-01", "2024-01-10"):
        expected = (
            rf"cutoff {cutoff} is on or before the day of the first transaction \(transactions\.ts: "
            r"2024-01-10\).*labels.*give a cutoff after 2024-01-10"
        )
        with pytest.raises(ConfigError, match=expected):
            build_labels(data, cutoff, 90)
        with pytest.raises(ConfigError, match=expected):
            build_past_window(data, cutoff, 90)
    assert build_labels(data, "2024-01-11", 90)["value"].to_dict() == {
        1: 80.0,
        **({2: 0.0} if with_accounts else {}),
    }
    past = build_past_window(data, "2024-01-11", 365)  # its window starts a year before the data
    assert past["value"].to_dict() == {1: 100.0, **({2: 0.0} if with_accounts else {})}


@pytest.mark.parametrize("window", [36_526, 10**9, 10**19])
def test_a_window_longer_than_a_century_is_refused(simple, window):
    """`features.windows` had no upper end: 10**9 days built spend_1000000000d (the lifetime spend under
    another name) and 10**19, past an int64, ended in Ibis' TypeError; a window is bounded as the time
    settings are (`MAX_DAYS`), also when appended to a loaded config."""
    says = rf"'features\.windows\[{{}}\]' must be a whole number from 1 to 36,525, got {window} \(a window"
    with pytest.raises(ConfigError, match=says.format(1)):
        Config.from_dict({"features": {"windows": [30, window]}})
    cfg = Config()
    cfg.features.windows.append(window)
    with pytest.raises(ConfigError, match=says.format(4)):
        build_features(simple, CUTOFF, cfg)
    longest = Config.from_dict({"features": {"windows": [36_525]}})
    frame = build_features(simple, CUTOFF, longest)
    assert frame["spend_36525d"].tolist() == frame["spend_total"].tolist()


def test_write_features_refuses_to_write_over_its_input(tmp_path):
    """`write_features` to the transactions file replaced the table it had just read (to the folder holding
    it, removed it); `score_spark` and the CLI refuse such an output, now `write_features` does too, before
    any work, and the input is left whole."""
    from kamml.errors import DataError

    folder = tmp_path / "in"
    folder.mkdir()
    source = folder / "transactions.parquet"
    tx([(1, "2024-01-05", 10.0), (2, "2024-01-10", 5.0)]).to_parquet(source)
    before = source.read_bytes()
    data = load_data(folder, Config.from_dict({"data": {"end": "2024-03-31"}}))
    for target in (source, folder):
        with pytest.raises(DataError, match=rf"cannot write {re.escape(str(target))}: it .*transactions"):
            write_features(data, "2024-02-01", target)
    assert source.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["transactions.parquet"]
    assert write_features(data, "2024-02-01", tmp_path / "features.parquet") == tmp_path / "features.parquet"


@pytest.fixture
def spark_data(tmp_path):
    """Three accounts' transactions in a Parquet file, loaded on a local[1] Spark session (stopped after)."""
    pytest.importorskip("pyspark")
    from kamml.engine import java_available

    if not java_available():
        pytest.fail("the Spark tests need Java 17 (it is on every CI machine)")
    folder = tmp_path / "in"
    folder.mkdir()
    t = tx([(1, "2024-01-05", 10.0), (1, "2024-02-01", 20.0), (2, "2024-01-10", 5.0), (3, "2024-03-01", 7.0)])
    t.to_parquet(folder / "transactions.parquet", coerce_timestamps="us")  # Spark reads microseconds
    spark = {"master": "local[1]", "conf": {"spark.sql.shuffle.partitions": "2"}}
    config = Config.from_dict({"engine": {"name": "spark", "spark": spark}, "data": {"end": "2024-03-31"}})
    yield load_data(folder, config), config, folder / "transactions.parquet"
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.mark.spark
@pytest.mark.slow
def test_write_features_on_spark_replaces_the_folder_whole(spark_data, tmp_path):
    """Spark wrote its parts in place: a second write to the same name failed on Spark's PATH_ALREADY_EXISTS
    (DuckDB's replaces the file), and a reader of the name saw the folder while its parts were being
    written. The parts are written into a hidden folder beside the name and renamed onto it, as
    `kamml.spark.write_atomic` does for the Spark jobs; a write that fails leaves the old folder as it was."""
    import threading

    data, config, source = spark_data
    target = tmp_path / "out" / "features.parquet"
    write_features(data, "2024-02-01", target, config)
    assert sorted(pd.read_parquet(target)["account_id"]) == [1, 2]
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.update(p.name for p in target.iterdir())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        write_features(data, "2024-03-02", target, config)  # the second write, over the first
    finally:
        done.set()
        watcher.join()
    assert "_temporary" not in seen, "a reader saw the parts being written under the name"
    assert sorted(pd.read_parquet(target)["account_id"]) == [1, 2, 3]
    source.unlink()  # Spark reads the tables when it writes: the next write fails inside its job
    # a raw Py4JJavaError with the whole Java stack (a traceback in the CLI); now kamml's EngineError (exit
    # 4) saying what kamml was doing and Spark's own first line of the cause
    with pytest.raises(EngineError) as caught:
        write_features(data, "2024-02-01", target, config)
    said = str(caught.value)
    assert re.match(
        rf"Spark failed while writing the features to {re.escape(str(target))}: "
        r"\[FAILED_READ_FILE\.FILE_NOT_EXIST\] Encountered error while reading file \S*transactions\.parquet",
        said,
    ), said
    assert "\n" not in said
    assert "\tat " not in said
    assert "An error occurred while calling" not in said
    with pytest.raises(
        EngineError, match=r"^Spark failed while computing the features at 2024-02-01: \[FAILED_READ"
    ):
        build_features(data, "2024-02-01", config)  # a read inside Spark's job, collected to pandas
    assert sorted(pd.read_parquet(target)["account_id"]) == [1, 2, 3]  # the old folder, whole
    assert [p.name for p in target.parent.iterdir()] == ["features.parquet"]  # no hidden folder left


@pytest.mark.spark
@pytest.mark.slow
def test_write_features_on_spark_returns_a_uri_as_given_and_refuses_its_input(spark_data, tmp_path):
    """On Spark the path came back through `Path`, which folds a URI's ``//`` (``s3a://bucket/x`` as
    ``s3a:/bucket/x``); a local path is still a `Path`. The folder holding the transactions file was
    accepted as the output, and the swap would have replaced the input with the features."""
    from kamml.errors import DataError

    data, config, source = spark_data
    uri = f"file://{tmp_path}/out/features.parquet"
    written = write_features(data, "2024-02-01", uri, config)
    assert written == uri
    assert isinstance(written, str)
    assert sorted(pd.read_parquet(tmp_path / "out" / "features.parquet")["account_id"]) == [1, 2]
    local = tmp_path / "local.parquet"
    assert write_features(data, "2024-02-01", local, config) == local
    for target in (source, source.parent):
        with pytest.raises(DataError, match=rf"cannot write {re.escape(str(target))}: it .*transactions"):
            write_features(data, "2024-02-01", target, config)
    assert sorted(p.name for p in source.parent.iterdir()) == ["transactions.parquet"]


# --- point in time on the synthetic world: features read only [.., cutoff), labels [cutoff, +horizon) --

_TABLES = ("transactions", "accounts", "referrals", "activities")


@pytest.fixture(scope="module", params=[7, 11])
def world_tables(request: pytest.FixtureRequest) -> tuple[dict[str, pd.DataFrame], Config]:
    """A 300-account synthetic world's four tables, and a config whose data end is the world's."""
    world = synthetic.generate(n_accounts=300, seed=request.param)
    last_day = (world.end - pd.Timedelta(days=1)).date()  # data.end names the last day observed
    return {name: getattr(world, name) for name in _TABLES}, Config.from_dict(
        {"data": {"end": str(last_day)}}
    )


def _before(tables: dict[str, pd.DataFrame], when: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables without any row dated at or after `when` (accounts rows: created at or after it)."""
    out = {name: frame[frame["ts"] < when] for name, frame in tables.items() if name != "accounts"}
    accounts = tables["accounts"]
    out["accounts"] = accounts[accounts["created_at"] < when]
    return out


@pytest.mark.slow
def test_deleting_every_row_at_or_after_the_cutoff_changes_no_feature_on_the_synthetic_world(world_tables):
    """Every column at four cutoffs (the first year to the last month) is exactly what the data cut at
    the cutoff gives: transactions, referrals and activities at or after it, and the accounts rows
    created then, deleted."""
    tables, cfg = world_tables
    full = load_data(tables, cfg)
    for cutoff in pd.to_datetime(["2023-09-01", "2024-07-15", "2025-03-03", "2025-12-01"]):
        built = build_features(full, cutoff, cfg)
        cut = build_features(load_data(_before(tables, cutoff), cfg), cutoff, cfg)
        assert len(built) > 50
        pd.testing.assert_frame_equal(built, cut, check_exact=True, obj=f"features at {cutoff.date()}")


@pytest.mark.slow
def test_labels_read_only_the_window_from_the_cutoff_on_the_synthetic_world(world_tables):
    """Labels over [cutoff, cutoff + 90 days) are unchanged when every row from cutoff + 90 days is
    deleted, the amounts before the cutoff are tripled (the accounts existing at it stay the same) and
    the activities before it deleted; and change when a purchase inside the window does."""
    tables, cfg = world_tables
    full = load_data(tables, cfg)
    horizon = 90
    for cutoff in pd.to_datetime(["2024-02-01", "2025-06-01"]):
        stop = cutoff + pd.Timedelta(days=horizon)
        labels = build_labels(full, cutoff, horizon)
        other = _before(tables, stop)
        t = other["transactions"].copy()
        t.loc[t["ts"] < cutoff, "amount"] *= 3.0
        other["transactions"] = t
        acts = other["activities"]
        other["activities"] = acts[acts["ts"] >= cutoff]  # past effort is no label's
        moved = build_labels(load_data(other, cfg), cutoff, horizon)
        pd.testing.assert_frame_equal(labels, moved, check_exact=True, obj=f"labels at {cutoff.date()}")
        inside = t.index[(t["ts"] >= cutoff) & (t["amount"] > 0)][:1]  # the control: the window counts
        t.loc[inside, "amount"] += 1000.0
        changed = build_labels(load_data(other, cfg), cutoff, horizon)
        assert changed["value"].sum() == pytest.approx(labels["value"].sum() + 1000.0)
