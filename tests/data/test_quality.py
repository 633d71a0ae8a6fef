"""The data-quality summary: soft problems are counted with examples, never raised."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.data import QualityReport, TableStats, load_data, validate
from kamml.errors import Problem, SchemaError


@pytest.fixture
def world(tx):
    accounts = pd.DataFrame({"account_id": [1, 2, 4, 5], "owner": ["a", "b", "a", None]})
    referrals = pd.DataFrame(
        {
            "referrer_id": [1, 9, 2],
            "referred_id": [2, 3, 8],
            "ts": pd.to_datetime(["2024-01-10", "2024-02-01", "2024-02-02"]),
        }
    )
    activities = pd.DataFrame(
        {"account_id": [1, 2, 7, 7], "ts": pd.to_datetime(["2024-01-02"] * 4), "hours": [1.0, 0.5, 2.0, 1.0]}
    )
    tx = tx.assign(transaction_id=[10, 11, 11, 11, 12])
    return {"transactions": tx, "accounts": accounts, "referrals": referrals, "activities": activities}


def test_soft_problems_are_counted(backend, world):
    report = validate(world, backend=backend)
    assert report.count("refunds") == 1
    assert report.count("zero amounts") == 1
    assert report.count("transaction ids shared by rows that differ") == 2  # lines of id 11: kept
    assert report.count("duplicate transaction ids") == 0  # no row repeats another exactly
    assert report.count("accounts without transactions") == 2  # 4 and 5
    assert report.count("transactions of accounts missing") == 1  # the row of account 3
    assert report.count("referrals from unknown accounts") == 1  # 9
    assert report.count("referrals to unknown accounts") == 1  # 8
    assert report.count("activities of unknown accounts") == 2  # two rows of account 7
    examples = {n.rule.split(" (")[0]: list(n.examples) for n in report.notes}
    assert examples["accounts without transactions"] == [4, 5]
    assert examples["referrals from unknown accounts"] == [9]
    assert examples["activities of unknown accounts"] == [7]
    assert examples["transaction ids shared by rows that differ"] == [11]


def test_table_stats(backend, world):
    report = validate(world, backend=backend)
    tx = report.tables["transactions"]
    assert (tx.rows, tx.accounts) == (5, 3)
    assert tx.first == pd.Timestamp("2024-01-05")
    assert tx.last == pd.Timestamp("2024-03-31")
    assert tx.origin == "DataFrame"
    assert report.tables["referrals"].accounts is None
    assert report.tables["activities"].accounts == 3
    assert report.end == pd.Timestamp("2024-04-01")
    assert report.end_source == "the last transaction"


def test_to_text_reads_as_a_summary(backend, world):
    text = validate(world, backend=backend).to_text()
    assert text.startswith("Data check passed: no errors, 8 data-quality notes.")
    assert "Observed time ends 2024-03-31 (inclusive; from the last transaction)." in text
    assert "transactions             5 rows" in text
    assert "2024-01-05 .. 2024-03-31" in text
    assert "  - transactions.amount: refunds or credits (amount < 0) (1 row; e.g. -20.0)" in text
    assert "  - activities.account_id: activities of unknown accounts" in text


def test_to_text_of_clean_data_says_so(backend):
    tx = pd.DataFrame({"account_id": [1], "ts": ["2024-01-01"], "amount": [3.0]})
    text = validate({"transactions": tx}, backend=backend).to_text()
    assert "no errors, 0 data-quality notes" in text
    assert "No data-quality notes." in text
    assert "accounts      not given" in text
    assert (
        "transactions             1 row             1 account    2024-01-01 .. 2024-01-01" in text
    )  # "1 rows"


def test_to_dict_is_json_ready(backend, world):
    report = validate(world, backend=backend)
    out = json.loads(json.dumps(report.to_dict()))
    assert out["status"] == "ok"
    assert out["end"] == "2024-04-01T00:00:00"
    assert out["tables"]["transactions"]["rows"] == 5
    assert out["tables"]["transactions"]["columns"] == [
        "account_id",
        "ts",
        "amount",
        "quantity",
        "transaction_id",
    ]
    notes = {n["rule"].split(" (")[0]: n for n in out["notes"]}
    assert notes["refunds or credits"]["rows"] == 1
    assert notes["refunds or credits"]["examples"] == [-20.0]


def test_dataset_keeps_what_the_report_says(backend, world):
    data = load_data(world, backend=backend)
    assert len(data.to_pandas("transactions")) == 5  # the rows of id 11 differ: lines, all kept
    repeated = {**world, "transactions": pd.concat([world["transactions"], world["transactions"].iloc[[1]]])}
    again = load_data(repeated, backend=backend)
    assert len(again.to_pandas("transactions")) == 5  # an exact repeat is dropped
    assert again.quality.count("duplicate transaction ids") == 1
    assert data.quality.tables["accounts"].rows == 4


def test_report_counts_by_table():
    report = QualityReport(
        tables={"transactions": TableStats("transactions", "x", 3)},
        notes=[
            Problem("transactions", "amount", "zero amounts", 2),
            Problem("accounts", None, "zero amounts", 1),
        ],
    )
    assert report.count("zero") == 3
    assert report.count("zero", table="accounts") == 1
    assert "Observed time" not in report.to_text()


def test_a_stretch_without_any_transaction_gets_a_note(backend):
    """Months missing from an export read as months nobody bought: the report says so."""
    days = pd.date_range("2023-01-01", "2025-12-31")
    kept = days[~((days >= "2025-03-01") & (days < "2025-09-01"))]
    tx = pd.DataFrame({"account_id": np.arange(len(kept)) % 40, "ts": kept, "amount": 10.0})
    report = validate({"transactions": tx}, backend=backend)
    (note,) = [n for n in report.notes if n.rule.startswith("no transaction of any account")]
    assert "from 2025-03-01 to 2025-08-31" in note.rule
    everyday = tx.assign(ts=days[: len(tx)])
    assert not [n for n in validate({"transactions": everyday}, backend=backend).notes if n.column == "ts"]


def test_a_gap_note_needs_gap_days_without_any_transaction(backend):
    """A stretch of 59 days without a transaction got the note "60 days or more" promises: the days
    between two transaction days were counted with one of them."""
    days = pd.date_range("2024-01-01", "2024-03-31")
    notes = {}
    for empty in (59, 60):
        later = pd.date_range(days[-1] + pd.Timedelta(days=empty + 1), periods=90)
        tx = pd.DataFrame({"account_id": 1, "ts": days.append(later), "amount": 10.0})
        found = validate({"transactions": tx}, backend=backend).notes
        notes[empty] = [n for n in found if n.rule.startswith("no transaction of any account")]
    assert notes[59] == []
    assert notes[60][0].examples == ("2024-04-01 to 2024-05-30",)  # 60 days


def test_a_placeholder_date_centuries_back_gets_its_gap_note(backend):
    """A row dated 1700-01-01 got no note (1900 did): the gap, counted in nanoseconds, wrapped around
    past 292 years (an input audit)."""
    days = pd.date_range("2024-01-01", "2025-12-31")
    tx = pd.DataFrame({"account_id": np.arange(len(days)) % 40, "ts": days, "amount": 10.0})
    tx["ts"] = tx["ts"].astype("datetime64[s]")
    tx.loc[0, "ts"] = pd.Timestamp("1700-01-01")
    report = validate({"transactions": tx}, backend=backend)
    (note,) = [n for n in report.notes if n.rule.startswith("no transaction of any account")]
    assert "from 1700-01-02 to 2024-01-01" in note.rule


def test_a_few_rows_after_a_long_gap_are_named_as_the_data_end(backend, caplog):
    """One row dated nine months after the rest set the data end: every account read as dormant (mean
    p_churn 0.27 -> 0.89) with only a gap note (a bad-input audit)."""
    days = pd.date_range("2024-01-01", "2025-12-31")
    tx = pd.DataFrame({"account_id": np.arange(len(days)) % 40, "ts": days, "amount": 10.0})
    stray = pd.concat([tx, tx.iloc[[5]].assign(ts=pd.Timestamp("2026-10-01"))], ignore_index=True)
    with caplog.at_level("WARNING", logger="kamml.data.quality"):
        report = validate({"transactions": stray}, backend=backend)
    (note,) = [n for n in report.notes if n.rule.startswith("no transaction of any account")]
    assert "only 1 day of transactions follows the last gap (from 2026-10-01)" in note.rule
    assert "(transactions every 1 day otherwise)" in note.rule
    assert "set data.end (or --cutoff) before the gap" in caplog.text
    kept = days[~((days >= "2025-03-01") & (days < "2025-09-01"))]  # a real gap, months after it: no hint
    months = pd.DataFrame({"account_id": np.arange(len(kept)) % 40, "ts": kept, "amount": 10.0})
    (note,) = [n for n in validate({"transactions": months}, backend=backend).notes if n.column == "ts"]
    assert "of transactions follow" not in note.rule


def test_activities_logged_in_minutes_get_a_note(backend, world):
    minutes = {**world, "activities": world["activities"].assign(hours=world["activities"]["hours"] * 60)}
    notes = validate(minutes, backend=backend).notes
    (note,) = [n for n in notes if n.table == "activities" and n.column == "hours"]
    assert note.rule.startswith("the median activity lasts")
    assert "minutes" in note.rule
    assert not [n for n in validate(world, backend=backend).notes if n.column == "hours"]


def test_activities_that_end_a_quarter_before_the_transactions_get_a_note(backend, world):
    """An activities export that stops early read as months without sales hours (the effort features,
    and the effort response before it left such periods out), with no word in the report."""
    assert not [
        n for n in validate(world, backend=backend).notes if n.table == "activities" and n.column == "ts"
    ]
    late = pd.DataFrame({"account_id": [1], "ts": pd.to_datetime(["2024-06-30"]), "amount": [10.0]})
    longer = {**world, "transactions": pd.concat([world["transactions"], late], ignore_index=True)}
    (note,) = [
        n for n in validate(longer, backend=backend).notes if n.table == "activities" and n.column == "ts"
    ]
    assert note.rule.startswith("the last activity is on 2024-01-02, 180 days before the last transaction")
    assert "2024-06-30" in note.rule


def test_extreme_amounts_get_a_note_naming_their_accounts(backend):
    """One mis-keyed amount is read as the account's spend by every model: the report names it."""
    rng = np.random.default_rng(0)
    n = 2_000
    tx = pd.DataFrame(
        {
            "account_id": np.arange(n) % 200,
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 300, unit="D"),
            "amount": rng.lognormal(4.0, 1.0, n),
        }
    )
    assert not [n for n in validate({"transactions": tx}, backend=backend).notes if "extreme" in n.rule]
    tx.loc[7, "amount"] = 5e7
    tx.loc[8, "amount"] = -6e7  # a mis-keyed refund counts too
    (note,) = [n for n in validate({"transactions": tx}, backend=backend).notes if "extreme" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("transactions", "amount", 2)
    assert note.examples == ("-6e+07 (account 8)", "5e+07 (account 7)")


def test_the_packaged_cdnow_log_has_no_extreme_amount(backend):
    from kamml.datasets.cdnow import load_cdnow

    tx = load_cdnow()
    assert not [n for n in validate({"transactions": tx}, backend=backend).notes if "extreme" in n.rule]


@pytest.mark.parametrize("seed", range(6))
def test_the_cheap_pass_before_the_percentile_changes_no_note(seed, monkeypatch):
    """`_below_any_bar` skips the exact percentile only where the note could not appear: the notes with
    and without it are the same, near the bar too (the largest amount at 99x to 101x the percentile)."""
    import ibis

    from kamml.data import quality

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3_000))
    amount = rng.lognormal(3.0, 1.0, n) * rng.choice([-1.0, 1.0, 0.0], n, p=[0.1, 0.85, 0.05])
    q99 = float(np.quantile(np.abs(amount[amount != 0]), 0.99))
    amount[: seed % 3] = q99 * quality.EXTREME_AMOUNT_RATIO * rng.uniform(0.99, 1.01, seed % 3)
    frame = pd.DataFrame({"account_id": np.arange(n), "amount": amount})
    table = ibis.duckdb.connect().create_table("tx", frame)
    with_pass = quality.amount_notes(table)
    if seed % 3 == 0:  # nothing near the bar: the shortcut is taken
        assert quality._below_any_bar(table)
    monkeypatch.setattr(quality, "_below_any_bar", lambda _: False)
    assert with_pass == quality.amount_notes(table)
    if not any(np.abs(amount) > quality.EXTREME_AMOUNT_RATIO * q99):
        assert with_pass == []


def test_relationship_notes_without_other_tables_read_nothing():
    """With transactions alone there is nothing to relate: no query (the group-by took 7 s on 100M rows)."""
    from kamml.data import quality

    class Unread:
        def __getattr__(self, name):
            raise AssertionError(f"read {name}")

    assert quality.relationship_notes(Unread(), None, None, None) == []


def _accounts_note(sizes: list[str]) -> list[Problem]:
    tx = pd.DataFrame({"account_id": [1], "ts": ["2024-01-02"], "amount": [1.0]})
    accounts = pd.DataFrame(
        {"account_id": range(1, len(sizes) + 1), "size": sizes, "segment": ["SMB"] * len(sizes)}
    )
    data = load_data({"transactions": tx, "accounts": accounts})
    return [n for n in data.quality.notes if n.table == "accounts" and n.column in ("size", "segment")]


def test_number_text_reads_alike_on_every_engine():
    """DuckDB's cast read '1_000' as a number and Spark's '1d' (`kamml.io.NUMBER_PATTERN` decides)."""
    (note,) = _accounts_note(["1_000", "1d", *[str(i) for i in range(30)]])
    assert (note.n_rows, tuple(note.examples)) == (2, ("1_000", "1d"))


def test_a_few_words_in_a_column_of_numbers_are_named():
    """One 'n/a' among sizes made the column text (a category to the models) without a word."""
    (note,) = _accounts_note(["n/a", "unknown", *[str(i) for i in range(30)], "n/a"])
    assert (note.column, note.n_rows, tuple(note.examples)) == ("size", 3, ("n/a", "unknown"))
    assert note.rule.startswith("mostly numbers (30 of 33 values), but not these")


@pytest.mark.parametrize(
    ("sizes", "shown"),
    [
        ([f"{i},5" for i in range(20)], ("0,5", "1,5", "10,5", "11,5", "12,5")),  # a decimal comma
        (["1.234,56", "12,5", *[str(i) for i in range(18)]], ("1.234,56", "12,5")),  # a European file's
        (["1,200", "12,000.50", *[str(i) for i in range(30)]], ("1,200", "12,000.50")),  # thousands
    ],
)
def test_numbers_written_with_a_comma_are_named(sizes, shown):
    """A semicolon export's sizes in decimal comma ("12,5") became a category of as many levels as values,
    without a word: no value read as a number, so the mostly-numbers note did not count them."""
    (note,) = _accounts_note(sizes)
    assert note.column == "size"
    assert tuple(note.examples) == shown
    assert "with a comma" in note.rule
    assert "decimal point" in note.rule


@pytest.mark.parametrize(
    "sizes",
    [
        [str(i) for i in range(20)],  # all numbers: nothing to say
        ["small", "large"] * 10,  # a category
        ["n/a", "x", *[str(i) for i in range(8)]],  # 80 % numbers: a code or a mixed column, not a slip
        ["nan", " 2.5e1 ", "NaN", *[str(i) for i in range(20)]],  # pandas' text of a missing number
    ],
)
def test_text_columns_that_are_not_nearly_all_numbers_get_no_note(sizes):
    assert _accounts_note(sizes) == []


def test_an_account_created_in_the_future_is_noted():
    """created_at in 2030 for an account buying since 2024 passed without a word (its age missing)."""
    tx = pd.DataFrame({"account_id": [1, 2], "ts": ["2024-01-02", "2024-01-03"], "amount": [1.0, 2.0]})
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": ["2023-01-01", "2030-01-01"]})
    notes = [n for n in load_data({"transactions": tx, "accounts": accounts}).quality.notes]
    (note,) = [n for n in notes if n.column == "created_at"]
    assert note.rule.startswith("created after today")
    assert (note.n_rows, tuple(note.examples)) == (1, ("2030-01-01",))


def test_an_account_created_after_its_first_purchase_is_noted():
    """created_at a year after purchases began left the account's age missing at the cutoffs between."""
    tx = pd.DataFrame(
        {"account_id": [1, 2, 3], "ts": ["2024-01-02 09:00", "2024-01-03", "2024-01-04"], "amount": [1.0] * 3}
    )
    created = ["2024-01-02 17:00", "2025-01-01", "2023-06-01"]  # later the same day is not noted
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "created_at": created})
    notes = load_data({"transactions": tx, "accounts": accounts}).quality.notes
    (note,) = [n for n in notes if n.rule.startswith("created_at after the day of the account's first")]
    assert (note.table, note.column, note.n_rows, tuple(note.examples)) == ("accounts", "account_id", 1, (2,))


def test_a_referral_of_an_account_that_had_bought_before_it_is_noted():
    """An existing customer logged as referred: noted, since its spend before the referral counts nowhere
    (until the sixty-first session it counted in the referrer's referred_spend without a word)."""
    tx = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 4],
            "ts": ["2024-01-01", "2024-01-10", "2024-03-01 08:00", "2024-03-15"],
            "amount": [1.0] * 4,
        }
    )
    refs = pd.DataFrame(
        {
            "referrer_id": [1, 1, 1, 1],
            "referred_id": [2, 3, 4, 4],
            # 3 bought earlier on its referral's day: not noted; 4 again after it bought: its first date
            "ts": ["2024-03-01", "2024-03-01 12:00", "2024-02-01", "2024-06-01"],
        }
    )
    notes = load_data({"transactions": tx, "referrals": refs}).quality.notes
    (note,) = [n for n in notes if n.rule.startswith("referrals of accounts that bought before")]
    assert (note.table, note.column, note.n_rows, tuple(note.examples)) == (
        "referrals",
        "referred_id",
        1,
        (2,),
    )
    assert "referred_spend" in note.rule


def test_a_referral_made_before_the_referrer_was_an_account_is_noted(backend):
    """A referrer that was no account yet on the referral's day, neither buying nor created (a lead or
    partner who referred, or a referral dated wrong), passed without a word while the features leave the
    referral out at the cutoffs before the referrer exists; noted and kept, per referrer-referred pair at
    its first date, as the features read it. A referrer created before it, one buying the same day and
    an unknown one are not noted here."""
    tx = pd.DataFrame(
        {
            "account_id": [1, 2, 3, 5, 6, 7],
            "ts": ["2024-01-01", "2024-03-01", "2024-03-01 18:00", "2024-05-01", "2024-01-01", "2024-05-01"],
            "amount": [1.0] * 6,
        }
    )
    created = [None, None, None, None, "2024-03-01", None, "2024-01-15"]
    accounts = pd.DataFrame({"account_id": [1, 2, 3, 4, 5, 6, 7], "created_at": created})
    refs = pd.DataFrame(
        {
            "referrer_id": [1, 2, 3, 4, 9, 5, 5, 7],
            "referred_id": [6, 6, 6, 6, 6, 1, 1, 6],
            # 2 referred before it bought; 3 earlier on its first purchase's day: not noted; 4 never bought
            # and has no created_at; 9 is unknown (its own note); 5 twice before it was created or bought,
            # one pair; 7 was created before it referred (an account whose purchases came later)
            "ts": [
                "2024-02-01",
                "2024-02-01",
                "2024-03-01 09:00",
                "2024-02-01",
                "2024-02-01",
                "2024-02-01",
                "2024-04-01",
                "2024-02-01",
            ],
        }
    )
    data = load_data({"transactions": tx, "accounts": accounts, "referrals": refs}, backend=backend)
    (note,) = [n for n in data.quality.notes if n.rule.startswith("referrals made before the referrer")]
    assert (note.table, note.column, note.n_rows, tuple(note.examples)) == (
        "referrals",
        "referrer_id",
        3,
        (2, 4, 5),
    )
    assert "kept" in note.rule
    assert "referrals_made" in note.rule
    assert data.referrals is not None
    assert data.referrals.count().execute() == 8  # kept as data


def test_activities_after_the_last_transaction_are_noted_without_a_data_end():
    """With data.end they are errors; with the end taken from the transactions they passed unsaid."""
    tx = pd.DataFrame({"account_id": [1, 2], "ts": ["2024-01-02", "2024-01-03"], "amount": [1.0, 2.0]})
    act = pd.DataFrame(
        {"account_id": [1, 2, 1], "ts": ["2024-01-01", "2024-02-01", "2024-03-05"], "hours": [1.0, 2.0, 1.5]}
    )
    (note,) = [
        n for n in load_data({"transactions": tx, "activities": act}).quality.notes if n.table == "activities"
    ]
    assert (note.column, note.n_rows, tuple(note.examples)) == ("ts", 2, ("2024-02-01 00:00:00",))
    assert note.rule.startswith("after the last transaction's day (2024-01-03")


def test_examples_of_a_note_are_the_smallest_ids(backend, world):
    """Forty unknown accounts in activities, in shuffled order: the note names the five smallest."""
    unknown = np.random.default_rng(3).permutation(np.arange(100, 140))
    activities = pd.DataFrame(
        {"account_id": unknown, "ts": pd.Timestamp("2024-01-02"), "hours": np.ones(unknown.size)}
    )
    report = validate({**world, "activities": activities}, backend=backend)
    (note,) = [n for n in report.notes if n.rule.startswith("activities of unknown accounts")]
    assert list(note.examples) == [100, 101, 102, 103, 104]


def test_example_ids_read_in_number_order_and_amounts_rounded(backend, world):
    """A report audit: ids 10, 107, 124, 21, 38 (sorted as text) and refunds as -10763.151947671951."""
    unknown = np.array([107, 21, 9, 124, 38, 10, 300])
    activities = pd.DataFrame(
        {"account_id": unknown, "ts": pd.Timestamp("2024-01-02"), "hours": np.ones(unknown.size)}
    )
    report = validate({**world, "activities": activities}, backend=backend)
    (note,) = [n for n in report.notes if n.rule.startswith("activities of unknown accounts")]
    assert list(note.examples) == [9, 10, 21, 38, 107]
    assert "e.g. 9, 10, 21, 38, 107)" in str(note)
    refund = Problem("transactions", "amount", "refunds", 2, (-10763.151947671951, -5.0, 0.1 + 0.2))
    assert str(refund).endswith("e.g. -10763.15195, -5.0, 0.3)")


def test_amounts_or_hours_that_add_up_past_any_money_are_refused(backend):
    """Two amounts of 1e308 passed validation; `kamml score` then failed in the value model ("infinite
    values in feature columns ['spend_total']", exit 5) naming no table (an input audit)."""
    days = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"])
    tx = pd.DataFrame({"account_id": [1, 1, 2, 3], "ts": days, "amount": [1e308, 1e308, 5.0, 6.0]})
    with pytest.raises(
        SchemaError, match=r"transactions\.amount: the values add up to more than 1e\+300.*1e\+308"
    ):
        validate({"transactions": tx}, backend=backend)
    acts = pd.DataFrame({"account_id": [1, 2], "ts": days[:2], "hours": [1e308, 1e308]})
    with pytest.raises(SchemaError, match=r"activities\.hours: the values add up"):
        validate({"transactions": tx.assign(amount=5.0), "activities": acts}, backend=backend)
    validate({"transactions": tx.assign(amount=[1e299, -1e299, 5.0, 6.0])}, backend=backend)  # passes


def test_accounts_columns_of_types_no_feature_reads_are_noted(tmp_path):
    """Lists, structs, maps, bytes and dates of Parquet accounts were left out of the features unsaid."""
    pd.DataFrame({"account_id": [1, 2], "ts": ["2024-01-02", "2024-01-03"], "amount": [1.0, 2.0]}).to_parquet(
        tmp_path / "transactions.parquet"
    )
    accounts = pa.table(
        {
            "account_id": [1, 2],
            "tags": [["a"], ["b", "c"]],
            "info": [{"x": 1}, {"x": 2}],
            "props": pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64())),
            "blob": [b"a", b"b"],
            "signup": [datetime.date(2020, 1, 1)] * 2,
            "created_at": [datetime.date(2020, 1, 1)] * 2,  # kamml's own: no note
            "size": [1.0, 2.0],
            "segment": ["a", "b"],
        }
    )
    pq.write_table(accounts, tmp_path / "accounts.parquet")
    notes = [n for n in load_data(tmp_path).quality.notes if n.table == "accounts"]
    assert [n.column for n in notes] == ["tags", "info", "props", "blob", "signup"]
    by_column = {n.column: n.rule for n in notes}
    assert by_column["tags"].startswith("of type array<string>: not used by any feature")
    assert "binary" in by_column["blob"]
    assert "date" in by_column["signup"]


def test_ids_written_two_ways_in_one_table_are_noted(backend, tmp_path):
    """Two exports joined, one writing 00117 and one 117: two accounts, the purchases split, unsaid."""
    (tmp_path / "transactions.csv").write_text(
        "account_id,ts,amount\n00117,2024-01-05,10\n117,2024-02-05,5\n0042,2024-02-06,5\nA9,2024-02-07,1\n"
    )
    (tmp_path / "accounts.csv").write_text("account_id,segment\n00117,smb\n117,smb\n0042,ent\nA9,ent\n")
    data = load_data(tmp_path, backend=backend)
    notes = [n for n in data.quality.notes if "two ways" in n.rule]
    assert [(n.table, n.column, n.n_rows) for n in notes] == [
        ("transactions", "account_id", 2),
        ("accounts", "account_id", 2),
    ]
    assert notes[0].examples == ("00117", "117")
    assert "leading zeros" in notes[0].rule
    assert len(data.transactions.execute()) == 4  # read as before: a note, not a change


def test_ids_of_one_spelling_give_no_two_ways_note(backend, tmp_path):
    """Codes with leading zeros, each written one way, are ids like any other."""
    (tmp_path / "transactions.csv").write_text(
        "account_id,ts,amount\n00117,2024-01-05,10\n00118,2024-02-05,5\n"
    )
    data = load_data(tmp_path, backend=backend)
    assert not [n for n in data.quality.notes if "two ways" in n.rule]


@pytest.mark.parametrize(
    ("sizes", "shown"),
    [
        ([f"${i}00" for i in range(1, 21)], ("$100", "$1000", "$1100", "$1200", "$1300")),
        ([f"{i},50 €" for i in range(20)], ("0,50 €", "1,50 €", "10,50 €", "11,50 €", "12,50 €")),
        (["£12.50", "-$3", *[str(i) for i in range(18)]], ("-$3", "£12.50")),
    ],
)
def test_numbers_written_with_a_currency_sign_are_named(sizes, shown):
    """An export's revenue '$1200' became a category of as many levels as values, without a word."""
    (note,) = _accounts_note(sizes)
    assert note.column == "size"
    assert tuple(note.examples) == shown
    assert "currency sign" in note.rule
    assert "decimal point" in note.rule
