from __future__ import annotations

import logging
import re

import ibis
import numpy as np
import pandas as pd
import pytest

from kamml.errors import ConfigError, DataError
from kamml.models.effort_panel import PANEL_COLUMNS, effort_panel

from .conftest import CUTOFF, TINY_CUTOFF, make_book, tiny, tiny_panel


def test_panel_follows_its_definition():
    panel = tiny_panel(*tiny())
    assert list(panel.columns) == list(PANEL_COLUMNS)
    rows = {(int(r.account_id), int(r.period)): r for r in panel.itertuples()}
    assert set(rows) == {(1, 1), (1, 2), (2, 1)}  # account 2 is too young in period 2
    a = rows[(1, 1)]  # [2024-04-01, 2024-07-01), state over [2023-04-02, 2024-04-01)
    assert (a.period_start, a.period_end) == (pd.Timestamp("2024-04-01"), pd.Timestamp("2024-07-01"))
    assert (a.orders, a.hours, a.recency_days, a.age_days) == (2.0, 3.0, 51.0, 455.0)
    assert a.value == pytest.approx(60.0 / 365 * 180)
    assert a.frequency == pytest.approx(2.0)
    assert a.past_hours == pytest.approx(5.0 / 183 * 91)  # hours are logged from 2023-10-01 on
    b = rows[(1, 2)]  # [2024-01-01, 2024-04-01), the data start one day later than a full year back
    assert (b.orders, b.hours, b.recency_days, b.age_days) == (1.0, 2.0, 214.0, 364.0)
    assert b.value == pytest.approx(130.0 / 364 * 180)
    assert b.frequency == pytest.approx(2.0 / 364 * 365)
    assert b.past_hours == pytest.approx(3.0 / 92 * 91)
    c = rows[(2, 1)]  # young account: its state is a rate over its 103 days
    assert (c.orders, c.hours, c.recency_days, c.age_days, c.past_hours) == (0.0, 0.25, 103.0, 103.0, 0.0)
    assert c.value == pytest.approx(10.0 / 103 * 180)


def test_past_hours_are_a_rate_over_the_logged_part_of_the_accounts_trailing_window():
    """Past hours were divided by the whole trailing year, before the activity log began too: with 3 months
    logged an account read a quarter of its rate (an audit). Like value and frequency, they are a rate
    over the account's life since its first purchase when it is shorter: hours before it are left out."""
    tx, act = tiny()
    shifted = act.assign(ts=act["ts"].where(act.index > 0, pd.Timestamp("2024-01-01")))  # log from 2024
    a, b = tiny_panel(tx, shifted).set_index(["account_id", "period"]).loc[[(1, 1), (1, 2)], "past_hours"]
    assert a == pytest.approx(5.0 / 91 * 91)  # 5 h logged over [2024-01-01, 2024-04-01), a quarter
    assert b == 0.0  # the period starts on the log's first day: nothing logged before it
    prospecting = pd.DataFrame({"account_id": [2], "ts": pd.to_datetime(["2023-11-01"]), "hours": [4.0]})
    panel = tiny_panel(tx, pd.concat([act, prospecting], ignore_index=True))
    young = panel.set_index(["account_id", "period"]).loc[(2, 1)]
    assert young["past_hours"] == 0.0  # its first purchase was on 2023-12-20
    pd.testing.assert_frame_equal(panel, tiny_panel(tx, act))


def test_refunds_that_net_to_rounding_leave_no_spend_in_the_panel():
    """A full refund of 0.1 + 0.2 nets 5.6e-17, not 0: the account-period entered the fit with a log
    value some 40 below any real one (the features' rule, `net_sum`, calls such a net 0)."""
    tx, act = tiny()
    refunded = pd.DataFrame(
        {"account_id": 3, "ts": pd.to_datetime(["2023-12-01 10:00", "2023-12-01 11:00", "2023-12-05 10:00"]),
         "amount": [0.1, 0.2, -0.3]}
    )  # fmt: skip
    hours = pd.DataFrame({"account_id": [3], "ts": pd.to_datetime(["2024-05-01"]), "hours": [1.0]})
    panel = tiny_panel(pd.concat([tx, refunded]), pd.concat([act, hours]))
    assert 3 not in set(panel["account_id"])
    pd.testing.assert_frame_equal(panel, tiny_panel(tx, act))  # the others as they were


def test_panel_never_reads_rows_at_or_after_the_cutoff():
    tx, act = tiny()
    before = tiny_panel(tx, act)
    late_tx = pd.DataFrame(
        {"account_id": [1, 2, 3], "ts": pd.to_datetime(["2024-07-01", "2024-09-01", "2025-01-01"]),
         "amount": [5e5, 7.0, 1.0]}
    )  # fmt: skip
    late_act = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-07-01", "2024-08-01"]), "hours": [80.0, 9.0]}
    )
    after = tiny_panel(pd.concat([tx, late_tx]), pd.concat([act, late_act]))
    pd.testing.assert_frame_equal(before, after)


def test_panel_takes_ibis_tables():
    import ibis

    tx, act = tiny()
    panel = effort_panel(ibis.memtable(tx), ibis.memtable(act), TINY_CUTOFF, max_periods=2)
    pd.testing.assert_frame_equal(panel, tiny_panel(tx, act))


def test_panel_carries_the_account_size_when_asked():
    tx, act = tiny()
    accounts = pd.DataFrame({"account_id": [1, 3], "employees": [40, 7], "tier": ["gold", "silver"]})
    panel = effort_panel(tx, act, TINY_CUTOFF, max_periods=2, accounts=accounts, size_column="employees")
    plain = tiny_panel(tx, act)
    pd.testing.assert_frame_equal(panel[list(PANEL_COLUMNS)], plain)
    expected = plain["account_id"].map({1: 40.0}).to_numpy(dtype=float)  # account 2 has no row: NaN
    np.testing.assert_array_equal(panel["size"].to_numpy(), expected)
    with pytest.raises(DataError, match=r"accounts.tier must be numeric .* it is string"):
        effort_panel(tx, act, TINY_CUTOFF, accounts=accounts, size_column="tier")
    with pytest.raises(DataError, match=r"the accounts table lacks column\(s\) seats"):
        effort_panel(tx, act, TINY_CUTOFF, accounts=accounts, size_column="seats")
    with pytest.raises(DataError, match="'seats' needs an accounts table"):
        effort_panel(tx, act, TINY_CUTOFF, size_column="seats")


def test_periods_after_the_last_activity_are_left_out_not_read_as_unserved(caplog):
    """Periods after effort logging stopped were fitted as periods in which no account got an hour.

    An activities export that ends before the transactions (a CRM extract taken earlier) left its last
    periods with 0 hours on every account: read as unserved periods, the fit's scale moved by 15 % on
    a 1,500-account book with random hours (make_book), and the diagnostics counted them as periods.
    """
    tx, act, _ = make_book(300, seed=4)
    stop = pd.Timestamp("2025-07-01")  # two quarters before the cutoff: nothing logged since
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        panel = effort_panel(tx, act[act["ts"] < stop], CUTOFF)
    assert panel["period_start"].min() == pd.Timestamp("2024-01-01")  # still the 8 periods' reach
    assert panel["period_end"].max() == stop  # the two after the last activity are left out
    assert sorted(panel["period"].unique()) == [3, 4, 5, 6, 7, 8]
    pd.testing.assert_frame_equal(  # the periods kept are those of the full activities table
        panel.reset_index(drop=True),
        effort_panel(tx, act, CUTOFF).query("period >= 3").reset_index(drop=True),
    )
    assert "no activities after 2025-04-04" in caplog.text
    assert "the 2 planning periods after it are left out" in caplog.text
    with pytest.raises(DataError, match=r"activities from 2023-01-04 to 2023-04-04"):
        effort_panel(tx, act[act["ts"] < pd.Timestamp("2023-06-01")], CUTOFF)


def test_an_activity_log_that_begins_after_the_transactions_is_noted(caplog):
    """Activities for the last 6 months of a 3-year history: the fit left out six periods and cut
    the past hours' windows without a word (an audit)."""
    tx, act, accounts = make_book(300, seed=4)
    begin = pd.Timestamp("2025-07-01")
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        panel = effort_panel(tx, act[act["ts"] >= begin], CUTOFF)
    assert sorted(panel["period"].unique()) == [1, 2]
    said = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "activities.ts begins on 2025-07-04, 915 days after the first transaction (2023-01-01)" in said
    assert "the 6 planning periods before it are left out" in said
    assert "past hours are counted from it" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):  # all 8 periods, shorter windows
        panel = effort_panel(tx, act[act["ts"] >= pd.Timestamp("2023-07-01")], CUTOFF, accounts=accounts)
    assert panel["period"].nunique() == 8
    assert "(2023-01-01): past hours are counted from it rather than read as hours of zero" in caplog.text
    assert "left out" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):  # logged from the start: silent
        effort_panel(tx, act, CUTOFF)
    assert "activities.ts begins" not in caplog.text


def test_the_panel_does_not_depend_on_the_order_of_the_rows():
    # the engine's output order and parallel float sums vary; the panel (and so the fit) must not
    tx, act, _ = make_book(300, seed=8)
    cutoff = pd.Timestamp("2025-07-01")
    panel = effort_panel(tx, act, cutoff)
    shuffled = effort_panel(tx.sample(frac=1.0, random_state=1), act.sample(frac=1.0, random_state=2), cutoff)
    pd.testing.assert_frame_equal(panel, shuffled, check_exact=True)


@pytest.mark.parametrize("kind", ["int64", "decimal(10, 2)", "date"])
def test_panel_takes_ibis_tables_with_whole_or_decimal_hours_and_dates(kind):
    """Integer or decimal hours of an Ibis table raised AttributeError (no isnan); dates had no epoch."""
    import ibis

    tx, act = tiny()
    if kind == "date":
        tx, act = tx.assign(ts=tx["ts"].dt.normalize()), act.assign(ts=act["ts"].dt.normalize())
        tables = (ibis.memtable(tx).cast({"ts": "date"}), ibis.memtable(act).cast({"ts": "date"}))
    else:
        act = act.assign(hours=act["hours"].round())
        tables = (ibis.memtable(tx), ibis.memtable(act).cast({"hours": kind}))
    panel = effort_panel(*tables, TINY_CUTOFF, max_periods=2)
    pd.testing.assert_frame_equal(panel, tiny_panel(tx, act))


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_hours_or_dates_that_are_not_numbers_or_dates_name_the_column():
    import ibis

    tx, act = tiny()
    text = act.assign(hours=act["hours"].astype(str).where(act.index > 0, "two"))
    with pytest.raises(DataError, match=r"activities.hours must hold numbers"):
        tiny_panel(tx, text)
    with pytest.raises(DataError, match=r"activities.hours must be numeric, it is string"):
        effort_panel(tx, ibis.memtable(text), TINY_CUTOFF)
    with pytest.raises(DataError, match=r"transactions.ts must hold dates"):
        tiny_panel(tx.assign(ts="soon"), act)
    with pytest.raises(DataError, match=r"transactions.ts must be a timestamp, it is string"):
        effort_panel(ibis.memtable(tx.assign(ts="soon")), act, TINY_CUTOFF)


def test_account_ids_of_two_types_are_a_data_error_naming_both_columns():
    """Text ids in the activities beside whole numbers in the transactions were pandas' merge ValueError."""
    tx, act = tiny()
    with pytest.raises(DataError, match=r"account_id is string and transactions.account_id is int"):
        tiny_panel(tx, act.assign(account_id=act["account_id"].astype(str)))
    as_float = tiny_panel(tx, act.assign(account_id=act["account_id"].astype(float)))
    np.testing.assert_array_equal(as_float["hours"], tiny_panel(tx, act)["hours"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("period_months", float("nan")),
        ("period_months", None),
        ("period_months", "3"),
        ("period_months", True),
        ("max_periods", True),
        ("horizon_days", False),
        ("history_days", float("inf")),
        ("min_history_days", None),
    ],
)
def test_a_period_setting_that_is_no_whole_number_is_a_config_error_naming_it(name, value):
    """NaN and None raised a bare ValueError or TypeError, True passed as 1 month, and the text "3" was
    refused as 'got 3', as if 3 were wrong (an audit)."""
    tx, act = tiny()
    with pytest.raises(ConfigError, match=rf"effort response: {name} must be a whole number .*got {value!r}"):
        effort_panel(tx, act, TINY_CUTOFF, **{"max_periods": 2, name: value})


@pytest.mark.parametrize("months", [10**6, 2**40])
def test_periods_longer_than_the_calendar_reaches_find_no_period_rather_than_crash(months):
    """A period reaching back before the year 1677 raised pandas' ValueError or an OverflowError (an audit):
    it starts before any data, so no period qualifies, as for any period too long for the history."""
    tx, act = tiny()
    with pytest.raises(DataError, match=rf"no {months}-month planning period before 2024-07-01 has"):
        effort_panel(tx, act, TINY_CUTOFF, period_months=months)


def test_hours_that_read_as_minutes_are_warned_of_naming_the_column(caplog):
    """Activities logged in minutes gave a panel, and a fitted k, 60 times too large (278 h over the
    horizon against 4.6 h on a 600-account book) without a word when the fit was called directly: only
    `load_data` noted it (an audit). The panel is the same; a warning names activities.hours."""
    tx, act, _ = make_book(300, seed=2)
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        hours = effort_panel(tx, act, CUTOFF)
    assert "minutes" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        minutes = effort_panel(tx, act.assign(hours=act["hours"] * 60), CUTOFF)
    np.testing.assert_allclose(minutes["hours"], hours["hours"] * 60)
    assert re.search(
        r"activities.hours: the median activity before 2026-01-01 lasts \d+(\.\d+)? hours \(more than a "
        r"working day\): are the hours logged in minutes\? The effort response reads them as hours",
        caplog.text,
    )


def test_activities_of_no_account_with_transactions_are_a_data_error_naming_the_ids():
    """Activities keyed by another id (a CRM's, not billing's) gave '4,786 account-periods (0 with
    hours)': the user read that no hours were logged, while thousands were, on ids the transactions lack
    (an audit). The error names the column and an id of each table."""
    tx, act, _ = make_book(300, seed=2)
    with pytest.raises(DataError) as refused:
        effort_panel(tx, act.assign(account_id=act["account_id"] + 100_000), CUTOFF)
    message = str(refused.value)
    assert re.search(r"none of the [\d,]+ activities rows before 2026-01-01 is of an account", message)
    assert "activities.account_id must hold the ids of transactions.account_id" in message
    assert re.search(r"e\.g\. 1000\d\d in activities, \d+ in transactions", message)


def test_activities_of_unknown_accounts_are_warned_of_and_left_out_of_the_panel(caplog):
    """A share of the activities keyed by ids no account has moved the fitted scale without a word from
    the fit (only `load_data`'s notes said it): the warning names the table, the column, how many rows
    of what share, and that their hours are left out. The panel is the one without those rows."""
    tx, act, accounts = make_book(300, seed=2)
    stray = act.iloc[::10].assign(account_id=act["account_id"].iloc[::10] + 100_000)
    both = pd.concat([act, stray], ignore_index=True)
    rows = len(both)
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        panel = effort_panel(tx, both, CUTOFF)
    message = caplog.text
    share = f"{100 * len(stray) / rows:.1f}%"
    assert f"{len(stray):,} of the {rows:,} activities rows before 2026-01-01 ({share})" in message
    assert "activities.account_id" in message
    assert "their hours are left out of the fit" in message
    assert re.search(r"e\.g\. 1000\d\d", message)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        pd.testing.assert_frame_equal(panel, effort_panel(tx, act, CUTOFF))
    assert "of no account" not in caplog.text
    # an account of the accounts table without transactions yet (a prospect) is an account, also when
    # the accounts table's id is NOT NULL and the activities' is not
    prospect = pd.DataFrame({"account_id": [999], "ts": [CUTOFF - pd.Timedelta(days=9)], "hours": [1.0]})
    known = pd.concat([accounts, pd.DataFrame({"account_id": [999], "size": [1.0]})], ignore_index=True)
    strict = ibis.memtable(known).cast({"account_id": "!int64"})
    with_prospect = pd.concat([act, prospect], ignore_index=True)
    for listed in (known, strict):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
            effort_panel(tx, with_prospect, CUTOFF, accounts=listed)
        assert "of no account" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.models.effort"):
        effort_panel(tx, with_prospect, CUTOFF)
    assert re.search(r"1 of the [\d,]+ activities rows", caplog.text)
