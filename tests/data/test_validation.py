"""The validator: each rule, the canonical types it produces, and a property test over arbitrary frames."""

from __future__ import annotations

import contextlib
import datetime as dt

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kamml.config import Config, DataConfig
from kamml.data import QualityReport, load_data, validate
from kamml.data.validation import NUMBER_HINT
from kamml.errors import ConfigError, DataError, KammlError, SchemaError


def _problems(source, config=None, backend=None) -> dict[tuple[str, str | None], list]:
    with pytest.raises(SchemaError) as caught:
        load_data(source, config, backend=backend)
    out: dict[tuple[str, str | None], list] = {}
    for p in caught.value.problems:
        out.setdefault((p.table, p.column), []).append(p)
    return out


def test_valid_frame_gives_canonical_types(backend, tx):
    data = load_data({"transactions": tx.assign(product=["a", " b ", "", None, "c"])}, backend=backend)
    frame = data.to_pandas("transactions")
    assert list(frame.columns) == ["account_id", "ts", "amount", "quantity", "product"]
    assert frame["account_id"].dtype == np.int64
    assert pd.api.types.is_datetime64_dtype(frame["ts"])
    assert frame["amount"].dtype == np.float64
    assert sorted(frame["product"].dropna()) == ["a", "b", "c"]  # trimmed, empty text is null
    assert data.end == pd.Timestamp("2024-04-01")  # day after the last transaction
    assert data.backend is backend


def test_quantity_defaults_to_one_unit_and_to_none_on_a_refund(backend, tx):
    """A refund row without a quantity added a unit to its account, as if it had bought more."""
    frame = tx.drop(columns="quantity")
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert got.sort_values("ts")["quantity"].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]  # 02-01 is the refund
    assert got["quantity"].dtype == np.float64
    with_nulls = tx.assign(quantity=[2.0, None, None, 1.0, 1.0])  # the refund's and 01-10's missing
    got = load_data({"transactions": with_nulls}, backend=backend).to_pandas("transactions")
    assert got.sort_values("ts")["quantity"].tolist() == [2.0, 1.0, 0.0, 1.0, 1.0]
    given = load_data({"transactions": tx}, backend=backend).to_pandas("transactions")
    assert sorted(given["quantity"]) == [-1.0, 1.0, 1.0, 1.0, 2.0]  # a refund's own quantity is kept


def test_a_purchase_with_a_negative_quantity_is_noted(backend, tx):
    """quantity -3 on a purchase passed without a word and made quantity_total negative (a design
    audit); a refund's negative quantity is the rule, and gets no note."""
    plain = load_data({"transactions": tx}, backend=backend).quality.notes
    assert not any("negative quantity" in n.rule for n in plain)  # the refund's -1 is expected
    bought = tx.assign(quantity=[-3.0, -1.0, 1.0, 1.0, 2.0])
    notes = load_data({"transactions": bought}, backend=backend).quality.notes
    (note,) = [n for n in notes if "negative quantity" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("transactions", "quantity", 1)
    assert note.rule == "negative quantity on a purchase (amount > 0), counted as negative units"


def test_text_values_are_parsed(backend):
    frame = pd.DataFrame(
        {
            "account_id": [" 7", "8 ", "9"],
            "ts": ["2024-01-05", "2024-01-06T10:30:00", " 2024-01-07 23:59:59.5 "],
            "amount": ["1.5", " -2 ", "1e3"],
        }
    )
    got = (
        load_data({"transactions": frame}, backend=backend)
        .to_pandas("transactions")
        .sort_values("account_id")
    )
    assert got["account_id"].tolist() == [7, 8, 9]  # whole-number text becomes int64
    assert got["ts"].tolist() == [
        pd.Timestamp("2024-01-05"),
        pd.Timestamp("2024-01-06 10:30"),
        pd.Timestamp("2024-01-07 23:59:59.5"),
    ]
    assert got["amount"].tolist() == [1.5, -2.0, 1000.0]


def test_utc_offsets_are_applied_when_consistent(backend):
    frame = pd.DataFrame(
        {
            "account_id": [1, 2, 3],
            "ts": ["2024-01-05T10:00:00+02:00", "2024-01-05 23:30:00+0200", "2024-01-06 01:00+02"],
            "amount": [1.0, 1.0, 1.0],
        }
    )
    got = (
        load_data({"transactions": frame}, backend=backend)
        .to_pandas("transactions")
        .sort_values("account_id")
    )
    assert got["ts"].tolist() == [
        pd.Timestamp("2024-01-05 08:00"),
        pd.Timestamp("2024-01-05 21:30"),
        pd.Timestamp("2024-01-05 23:00"),
    ]


def test_an_offset_after_a_blank_is_applied(backend):
    """Ruby's and Rails' exports write "2024-01-05 10:00:00 +0100": the engines could not parse it."""
    ts = ["2024-01-05 10:00:00 +0100", "2024-01-05 10:00:00  -05:30", "2024-01-05T10:00:00.5 +02"]
    ts += ["2024-01-05 10:00 +01:00", "2024-01-05 10:00:00+01:00"]
    frame = pd.DataFrame({"account_id": [1, 2, 3, 4, 5], "ts": ts, "amount": 1.0})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert got.sort_values("account_id")["ts"].tolist() == [
        pd.Timestamp("2024-01-05 09:00"),
        pd.Timestamp("2024-01-05 15:30"),
        pd.Timestamp("2024-01-05 08:00:00.5"),
        pd.Timestamp("2024-01-05 09:00"),
        pd.Timestamp("2024-01-05 09:00"),
    ]
    bad = frame.assign(ts=["2024-01-05 10:00:00 +0100", "2024-01-05 +0100", "x 10:00:00 +01", *ts[:2]])
    with pytest.raises(SchemaError, match=r"unparseable date.*\(2 rows"):
        load_data({"transactions": bad}, backend=backend)


def test_a_decimal_comma_in_the_seconds_is_read(backend):
    """ISO 8601 allows "10:00:00,5", as Python's logging writes times: it was an unparseable date."""
    ts = ["2024-01-05T10:00:00,25Z", "2024-01-05 10:00:00,125 +0100", "2024-01-05T10:00:00,5-05:00"]
    ts += ["2024-01-05 10:00:00,5 EST"]
    frame = pd.DataFrame({"account_id": [1, 2, 3, 4], "ts": ts, "amount": 1.0})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert got.sort_values("account_id")["ts"].tolist() == [
        pd.Timestamp("2024-01-05 10:00:00.25"),
        pd.Timestamp("2024-01-05 09:00:00.125"),
        pd.Timestamp("2024-01-05 15:00:00.5"),
        pd.Timestamp("2024-01-05 15:00:00.5"),
    ]
    naive = frame.assign(
        ts=["2024-01-05 10:00:00,5", "2024-01-05 10:00:00.5", "2024-01-05 10:00:00", "2024-1-5"]
    )
    got = load_data({"transactions": naive}, backend=backend).to_pandas("transactions")
    assert (
        got.sort_values("account_id")["ts"].tolist()
        == pd.to_datetime(
            ["2024-01-05 10:00:00.5", "2024-01-05 10:00:00.5", "2024-01-05 10:00", "2024-01-05"],
            format="ISO8601",
        ).tolist()
    )
    bad = naive.assign(ts=["2024-01-05 10:00,5", "2024-01-05, 10:00:00", "2024-01-05 10:00:00,", "2024-1-5"])
    with pytest.raises(SchemaError, match=r"unparseable date.*\(3 rows"):
        load_data({"transactions": bad}, backend=backend)


def test_one_utc_offset_throughout_is_not_a_note(backend):
    ts = ["2024-01-05T10:00:00+02:00", "2024-07-05T10:00:00+02:00"]
    frame = pd.DataFrame({"account_id": [1, 2], "ts": ts, "amount": 1.0})
    data = load_data({"transactions": frame}, backend=backend)
    assert not [n.rule for n in data.quality.notes if "UTC offset" in n.rule]


def test_zulu_times_are_utc(backend):
    frame = pd.DataFrame(
        {"account_id": [1, 2], "ts": ["2024-01-05T10:00:00Z", "2024-01-06T10:00Z"], "amount": 1.0}
    )
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert sorted(got["ts"]) == [pd.Timestamp("2024-01-05 10:00"), pd.Timestamp("2024-01-06 10:00")]


def test_tz_aware_frame_columns_become_naive_utc(backend):
    ts = pd.to_datetime(["2024-07-01 12:00", "2024-07-02 12:00"]).tz_localize("Europe/Berlin")
    frame = pd.DataFrame({"account_id": [1, 2], "ts": ts, "amount": [1.0, 2.0]})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert sorted(got["ts"]) == [pd.Timestamp("2024-07-01 10:00"), pd.Timestamp("2024-07-02 10:00")]
    mixed = pd.DataFrame(
        {
            "account_id": [1, 2],
            "ts": [
                pd.Timestamp("2024-07-01 12:00", tz="Europe/Berlin"),
                pd.Timestamp("2024-07-01 12:00", tz="UTC"),
            ],
            "amount": [1.0, 2.0],
        }
    )
    got = load_data({"transactions": mixed}, backend=backend).to_pandas("transactions")
    assert sorted(got["ts"]) == [pd.Timestamp("2024-07-01 10:00"), pd.Timestamp("2024-07-01 12:00")]


@pytest.mark.parametrize("zone", ["BST", "IST", "CST"])
def test_a_zone_abbreviation_of_several_meanings_is_refused(backend, zone):
    """BST was read as Bangladesh (+06:00): a British export's 10:00 became 04:00 UTC, not 09:00."""
    frame = pd.DataFrame({"account_id": ["1"], "ts": [f"2024-07-01 10:00:00 {zone}"], "amount": ["1"]})
    problems = _problems({"transactions": frame}, backend=backend)
    assert "a time zone abbreviation with more than one meaning" in problems["transactions", "ts"][0].rule


@pytest.mark.parametrize("zone", ["EDT", "CEST", "AEST"])
def test_a_zone_abbreviation_the_engines_do_not_know_is_named(backend, zone):
    """Summer-time abbreviations (EDT, CEST) were only an "unparseable date", though the date was fine."""
    ts = [f"2024-07-01 10:00:00 {zone}", "2024-13-01 10:00 EDT"]
    frame = pd.DataFrame({"account_id": ["1", "2"], "ts": ts, "amount": ["1"] * 2})
    problems = {p.rule: p for p in _problems({"transactions": frame}, backend=backend)["transactions", "ts"]}
    unknown = [p for rule, p in problems.items() if "time zone abbreviation the engines do not know" in rule]
    assert len(unknown) == 1
    assert list(unknown[0].examples) == [f"2024-07-01 10:00:00 {zone}"]
    assert "write the offset" in unknown[0].rule
    assert any(rule.startswith("unparseable date") for rule in problems)  # month 13: no date at all


@pytest.mark.parametrize("zone", ["America/New_York", "EST", "Etc/GMT+5"])
def test_a_named_time_zone_beside_naive_text_is_mixed_time_zones(backend, zone):
    """The engine applies a named zone, so naive text beside it was silently read as UTC instead."""
    frame = pd.DataFrame(
        {
            "account_id": ["1", "2"],
            "ts": [f"2024-03-01 01:00:00 {zone}", "2024-03-01 01:00:00"],
            "amount": ["1"] * 2,
        }
    )
    problems = _problems({"transactions": frame}, backend=backend)
    assert "mixed time zones" in problems["transactions", "ts"][0].rule
    named = frame.assign(ts=[f"2024-03-01 01:00:00 {zone}"] * 2)
    got = load_data({"transactions": named}, backend=backend).to_pandas("transactions")
    assert got["ts"].tolist() == [pd.Timestamp("2024-03-01 06:00")] * 2  # every value named: applied


def test_naive_and_aware_objects_are_mixed_time_zones(backend):
    frame = pd.DataFrame(
        {
            "account_id": [1, 2],
            "ts": [pd.Timestamp("2024-07-01 12:00", tz="Europe/Berlin"), pd.Timestamp("2024-07-01 12:00")],
            "amount": [1.0, 2.0],
        }
    )
    problems = _problems({"transactions": frame}, backend=backend)
    assert "mixed time zones" in problems["transactions", "ts"][0].rule


def test_wrong_types_are_named(backend):
    frame = pd.DataFrame(
        {"account_id": [True, False], "ts": [1, 2], "amount": [True, False], "quantity": ["x", "1"]}
    )
    problems = _problems({"transactions": frame}, backend=backend)
    assert "wrong type" in problems["transactions", "account_id"][0].rule
    assert "wrong type: expected dates" in problems["transactions", "ts"][0].rule
    assert "got boolean" in problems["transactions", "amount"][0].rule
    quantity = problems["transactions", "quantity"][0]
    assert quantity.rule.startswith("unparseable number")
    assert quantity.n_rows == 1
    assert list(quantity.examples) == ["x"]


def test_number_text_is_decimal_on_every_engine(backend, tx):
    """DuckDB's cast read "1_000" as 1000 (Spark refused it) and Spark's read "1d" (DuckDB refused it):
    number text is decimal digits, sign, point and exponent (`NUMBER_PATTERN`) on both."""
    good = ["+1", ".5", "5.", "1E+3", " 2 "]
    frame = pd.DataFrame({"account_id": range(5), "ts": tx["ts"], "amount": good})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert got.sort_values("account_id")["amount"].tolist() == [1.0, 0.5, 5.0, 1000.0, 2.0]
    bad = ["1_000", "1d", "0x1p3", "1,5", "1e"]
    frame = pd.DataFrame({"account_id": range(5), "ts": tx["ts"], "amount": bad})
    (problem,) = _problems({"transactions": frame}, backend=backend)["transactions", "amount"]
    assert problem.rule == f"unparseable number{NUMBER_HINT}"
    assert "decimal point" in NUMBER_HINT  # "1,5": the comma is the common misreading
    assert problem.n_rows == 5


def test_float_ids(backend):
    ok = pd.DataFrame({"account_id": [1.0, 2.0], "ts": ["2024-01-01"] * 2, "amount": [1.0, 1.0]})
    got = load_data({"transactions": ok}, backend=backend).to_pandas("transactions")
    assert got["account_id"].dtype == np.int64
    bad = pd.DataFrame({"account_id": [1.5, np.nan, np.inf], "ts": ["2024-01-01"] * 3, "amount": [1.0] * 3})
    problems = _problems({"transactions": bad}, backend=backend)
    rules = {p.rule.split(" (")[0]: p.n_rows for p in problems["transactions", "account_id"]}
    assert rules == {"not a whole number": 2, "null or empty id": 1}


@pytest.mark.parametrize("form", ["parquet", "frame"])
def test_unsigned_ids_beyond_int64_are_named(backend, tmp_path, form):
    """A uint64 id above 2**63 - 1 is refused alike from a Parquet file and a frame, in the scores' words
    (an ids audit: a frame's such ids were read as text codes, a file's refused as "id above ...")."""
    from kamml.io import OUTSIDE_INT64_RULE

    def source(frame: pd.DataFrame, stem: str):
        if form == "frame":
            return frame
        frame.to_parquet(tmp_path / f"{stem}.parquet")
        return tmp_path / f"{stem}.parquet"

    ids = np.array([1, 2**63, 2**64 - 1], dtype=np.uint64)
    ok = pd.DataFrame({"account_id": ids[:1], "ts": ["2024-01-01"], "amount": [1.0]})
    got = load_data({"transactions": source(ok, "ok")}, backend=backend).to_pandas("transactions")
    assert got["account_id"].tolist() == [1]
    bad = pd.DataFrame({"account_id": ids, "ts": ["2024-01-01"] * 3, "amount": [1.0] * 3})
    (problem,) = _problems({"transactions": source(bad, "bad")}, backend=backend)[
        "transactions", "account_id"
    ]
    assert problem.rule == OUTSIDE_INT64_RULE
    assert problem.n_rows == 2
    assert [str(e) for e in problem.examples] == [str(2**63), str(2**64 - 1)]


def test_frame_unsigned_ids_beyond_int64_are_refused_in_every_id_column(backend, tx):
    """The referrals' ids and a mapped account_id are ids too; an accounts attribute of such numbers stays
    text, a category, as before (only id columns follow the file rule)."""
    big = np.array([2**63 + 5], dtype=np.uint64)
    referrals = pd.DataFrame(
        {"referrer_id": big, "referred_id": np.array([1], np.uint64), "ts": ["2024-01-02"]}
    )
    problems = _problems({"transactions": tx, "referrals": referrals}, backend=backend)
    assert [p.rule for p in problems["referrals", "referrer_id"]] == [
        "id outside int64 (|id| above 2**63 - 1, the largest kamml keeps)"
    ]
    mapped = Config.from_dict({"data": {"columns": {"transactions": {"account_id": "customer"}}}})
    frame = tx.rename(columns={"account_id": "Customer"}).astype({"Customer": np.uint64})
    frame.loc[0, "Customer"] = 2**63
    problems = _problems({"transactions": frame}, mapped, backend=backend)
    assert [p.n_rows for p in problems["transactions", "Customer"]] == [1]
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "code": np.array([1, 2, 2**64 - 1], np.uint64)})
    data = load_data({"transactions": tx, "accounts": accounts}, backend=backend)
    assert data.to_pandas("accounts").sort_values("account_id")["code"].tolist() == ["1", "2", str(2**64 - 1)]


def test_decimal_ids_are_read_exactly(backend, tmp_path):
    """Snowflake's and Oracle's NUMBER(38,0) ids arrive as Parquet decimals: two ids beyond 2**53 were
    rounded through a float to one, merging two accounts without a word."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(ids: list[str], scale: int = 0) -> str:
        path = tmp_path / f"tx_{len(list(tmp_path.iterdir()))}.parquet"
        values = pa.array([decimal.Decimal(i) for i in ids], pa.decimal128(38, scale))
        n = len(ids)
        pq.write_table(pa.table({"account_id": values, "ts": ["2024-01-01"] * n, "amount": [1.0] * n}), path)
        return str(path)

    big = ["12345678901234567", "12345678901234568", "9223372036854775807"]
    got = load_data({"transactions": write(big)}, backend=backend).to_pandas("transactions")
    assert got["account_id"].tolist() == [int(i) for i in big]
    problems = _problems({"transactions": write(["1.50", "2.00", "1e20"], scale=2)}, backend=backend)
    rules = {p.rule.split(" (")[0]: list(p.examples) for p in problems["transactions", "account_id"]}
    assert rules == {"not a whole number": ["1.50"], "id outside int64": ["100000000000000000000.00"]}
    from kamml.io import OUTSIDE_INT64_RULE

    assert OUTSIDE_INT64_RULE in {p.rule for p in problems["transactions", "account_id"]}


def test_ids_become_text_everywhere_when_any_key_is_text(backend, tx):
    accounts = pd.DataFrame({"account_id": ["1", "2", "A-3"], "segment": ["x", "y", "z"]})
    refs = pd.DataFrame({"referrer_id": [1], "referred_id": [2], "ts": ["2024-02-01"]})
    data = load_data({"transactions": tx, "accounts": accounts, "referrals": refs}, backend=backend)
    for name, column in [
        ("transactions", "account_id"),
        ("accounts", "account_id"),
        ("referrals", "referrer_id"),
    ]:
        assert data.tables[name].schema()[column].is_string(), name
    assert set(data.to_pandas("transactions")["account_id"]) == {"1", "2", "3"}
    # the joins line up: account "A-3" has no transactions, transactions of "3" no account row
    assert data.quality.count("accounts without transactions") == 1
    assert data.quality.count("transactions of accounts missing") == 1


def test_leading_zero_ids_stay_text(backend):
    frame = pd.DataFrame({"account_id": ["007", "7"], "ts": ["2024-01-01"] * 2, "amount": [1.0, 2.0]})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert sorted(got["account_id"]) == ["007", "7"]


def test_a_minus_zero_id_is_a_code_as_in_the_scores_not_account_zero(backend, write_csv, tmp_path):
    """An id "-0" passed INT_PATTERN and was cast to 0: its rows merged into account 0 without a word, and an
    accounts table with rows "0" and "-0" held two rows of account 0 (the duplicate check saw two
    texts), while `kamml allocate` read the scores' "-0" as its own account. No integer is written
    "-0": it is a code like "-007", on every entry point."""
    from kamml.allocation.scores_file import read_scores

    tx_csv = write_csv("tx.csv", "account_id,ts,amount\n0,2024-01-01,1\n-0,2024-01-02,2\n-0.0,2024-01-03,3\n")
    accounts = write_csv("accounts.csv", "account_id,segment\n0,x\n-0,y\n")
    data = load_data({"transactions": tx_csv, "accounts": accounts}, backend=backend)
    got = data.to_pandas("transactions").sort_values("ts")["account_id"].tolist()
    assert got == ["0", "-0", "-0"]  # "-0.0" is "-0" as "119.0" is "119"
    assert sorted(data.to_pandas("accounts")["account_id"]) == ["-0", "0"]  # two accounts, one row each
    scores = tmp_path / "scores.csv"
    scores.write_text("account_id,clv,p_churn\n0,1,0.1\n-0,2,0.2\n-0.0,3,0.3\n")
    assert read_scores(scores)["account_id"].tolist() == ["0", "-0", "-0"]  # the tables' reading


def test_whole_float_ids_written_as_text_are_the_numbers_they_spell(backend, tx):
    """A CSV written by pandas from float ids ("119.0") turned every table's ids into text, so no row
    of that table met an account; "007.0" and "1.5" stay text as written."""
    as_text = tx.assign(account_id=tx["account_id"].astype(float).astype(str))
    assert as_text["account_id"].iloc[0] == "1.0"
    got = load_data({"transactions": as_text}, backend=backend).to_pandas("transactions")
    assert got["account_id"].tolist() == tx["account_id"].tolist()
    assert pd.api.types.is_integer_dtype(got["account_id"])
    codes = tx.assign(account_id=["007.0", "007.0", "1.5", "-3.00", "12.0"])
    kept = load_data({"transactions": codes}, backend=backend).to_pandas("transactions")
    assert kept["account_id"].tolist() == ["007.0", "007.0", "1.5", "-3", "12"]


def test_ids_in_scientific_notation_are_refused(backend, write_csv):
    """A spreadsheet shows 16-digit ids as 4.50000E+15 and saves them so: every account became one,
    without a word (ids are text, and the rounded ones were equal)."""
    rows = "4.50000E+15,2024-01-01,1\n4.50000E+15,2024-01-02,2\n4.5e+15,2024-01-03,3\nA1E5,2024-01-04,4\n"
    csv = write_csv("tx.csv", "account_id,ts,amount\n" + rows)
    (problem,) = _problems({"transactions": csv}, backend=backend)[("transactions", "account_id")]
    assert "scientific notation" in problem.rule
    assert "as text" in problem.rule
    assert problem.n_rows == 3
    assert "4.50000E+15" in problem.examples
    codes = write_csv("codes.csv", "account_id,ts,amount\n1E5,2024-01-01,1\nE+15,2024-01-02,2\n")
    got = load_data({"transactions": codes}, backend=backend).to_pandas("transactions")
    assert sorted(got["account_id"]) == ["1E5", "E+15"]  # codes without a spreadsheet's sign stay ids


def test_nineteen_digit_ids_in_a_csv_are_whole_numbers_as_in_parquet(backend, write_csv, tmp_path):
    """Ids of 19 digits within int64 are whole numbers from a CSV as from Parquet (they were text from a
    CSV only, so one world gave int64 or string ids, and ranks broke ties in another order, by its file
    format); beyond int64 they stay text, as "007" does."""
    big = [2**60 + 7, 2**63 - 1, -(2**63), 999_999_999_999_999_999]
    rows = "".join(f"{i},2024-01-0{n + 1},1.5\n" for n, i in enumerate(big))
    csv = write_csv("tx.csv", "account_id,ts,amount\n" + rows)
    pd.DataFrame({"account_id": big, "ts": ["2024-01-01"] * 4, "amount": [1.5] * 4}).to_parquet(
        tmp_path / "tx.parquet"
    )
    for source in (csv, tmp_path / "tx.parquet"):
        got = load_data({"transactions": source}, backend=backend).to_pandas("transactions")
        assert got["account_id"].dtype == np.int64, source
        assert sorted(got["account_id"].tolist()) == sorted(big), source
    rows = f"{2**63},2024-01-01,1\n7,2024-01-02,1\n"
    beyond = write_csv("beyond.csv", "account_id,ts,amount\n" + rows)
    got = load_data({"transactions": beyond}, backend=backend).to_pandas("transactions")
    assert sorted(got["account_id"]) == ["7", "9223372036854775808"]
    floats = write_csv("floats.csv", f"account_id,ts,amount\n{2**62}.0,2024-01-01,1\n7.0,2024-01-02,1\n")
    got = load_data({"transactions": floats}, backend=backend).to_pandas("transactions")
    assert sorted(got["account_id"].tolist()) == [7, 2**62]


def test_transaction_ids_are_deduplicated(backend, tx):
    """An exact repeat (a file delivered twice) is dropped; rows sharing an id but differing are kept."""
    frame = tx.assign(transaction_id=["t1", "t1", "t2", None, None])  # t1: a purchase and its refund
    frame = pd.concat([frame, frame.iloc[[2, 3]]], ignore_index=True)  # t2 and an id-less row repeated
    data = load_data({"transactions": frame}, backend=backend)
    got = data.to_pandas("transactions")
    assert len(got) == 6  # the repeat of t2 dropped; rows without an id are all kept
    assert sorted(got.loc[got["transaction_id"] == "t1", "amount"]) == [-20.0, 100.0]  # the refund too
    assert got["transaction_id"].isna().sum() == 3
    assert data.quality.count("duplicate transaction ids") == 1
    assert data.quality.count("transaction ids shared by rows that differ") == 1
    assert data.quality.tables["transactions"].rows == 7  # rows as given


def test_lines_that_differ_only_outside_the_contract_are_kept(backend, tx):
    """Two lines of one invoice, told apart by a line number kamml does not read, or by how the amount is
    written ("10", "10.00"), are not a repeat: the note said "kept" while one was dropped."""
    lines = (
        tx.iloc[[0, 0, 1]].reset_index(drop=True).assign(transaction_id=["t1", "t1", "t2"], line_no=[1, 2, 1])
    )
    got = load_data({"transactions": lines}, backend=backend)
    assert len(got.to_pandas("transactions")) == 3
    assert got.quality.count("duplicate transaction ids") == 0
    written = lines.drop(columns="line_no").astype({"amount": str})
    written.loc[1, "amount"] = f"{float(written['amount'].iloc[1]):.2f}"
    assert written["amount"].iloc[0] != written["amount"].iloc[1]
    assert len(load_data({"transactions": written}, backend=backend).to_pandas("transactions")) == 3
    twice = pd.concat([lines, lines.iloc[[0]]], ignore_index=True)  # a real repeat is still dropped
    data = load_data({"transactions": twice}, backend=backend)
    assert len(data.to_pandas("transactions")) == 3
    assert data.quality.count("duplicate transaction ids") == 1
    repeat = lines.iloc[[2]].assign(transaction_id="t2")  # t2 repeated exactly; t1's lines differ
    both = load_data({"transactions": pd.concat([lines, repeat], ignore_index=True)}, backend=backend)
    examples = {n.rule.split(" (")[0]: list(n.examples) for n in both.quality.notes}
    assert examples["duplicate transaction ids"] == ["t2"]  # each note its own ids, not one shared list
    assert examples["transaction ids shared by rows that differ"] == ["t1"]


def test_rows_repeated_without_transaction_ids_are_noted_and_kept(backend, tx, monkeypatch):
    """Without ids a repeat may be two equal purchases (CDNOW has 255 such rows): kept, with a note."""
    import kamml.data.validation as validation

    frame = pd.concat([tx, tx.iloc[[1, 1, 3]]], ignore_index=True)  # one row three times, one twice
    data = load_data({"transactions": frame}, backend=backend)
    assert len(data.to_pandas("transactions")) == len(frame)
    note = next(n for n in data.quality.notes if n.rule.startswith("rows repeating another row"))
    assert (note.table, note.column, note.n_rows) == ("transactions", None, 3)
    assert sorted(note.examples) == sorted({tx["account_id"].iloc[1], tx["account_id"].iloc[3]})
    assert "map one to drop repeats" in note.rule
    clean = load_data({"transactions": tx}, backend=backend)
    assert clean.quality.count("rows repeating another row") == 0
    # large tables: a bucket of accounts first, every row only when the bucket shows repeats
    monkeypatch.setattr(validation, "EXACT_REPEAT_ROWS", 0)
    monkeypatch.setattr(validation, "REPEAT_SAMPLE", 1)  # the bucket is every account
    assert load_data({"transactions": frame}, backend=backend).quality.count("rows repeating") == 3
    monkeypatch.setattr(validation, "REPEAT_SAMPLE", 2**31 - 1)  # a bucket without these accounts
    assert load_data({"transactions": frame}, backend=backend).quality.count("rows repeating") == 0


def test_note_examples_are_the_smallest_by_value_not_as_text(backend, tmp_path, write_csv):
    """A CSV's examples were its text's smallest ("-1", "-10", "-100", "-2", "-2.5": not the largest
    refunds, and -9 passed over) and account ids came as "10" before "9"; Parquet's numbers were picked by
    value, then shown as text sorts them (-10.0, -100.0, -3.0)."""
    amounts = ["-1", "-2", "-2.5", "-3", "-5", "-9", "-10", "-100", "4"]
    accounts = [1, 2, 3, 9, 10, 100, 2, 9, 10]
    rows = "".join(
        f"{a},2024-01-0{i + 1},{x}\n" for i, (a, x) in enumerate(zip(accounts, amounts, strict=True))
    )
    text = "account_id,ts,amount\n" + rows
    repeated = (
        text + "2,2024-01-02,-2\n9,2024-01-04,-3\n10,2024-01-05,-5\n100,2024-01-06,-9\n3,2024-01-03,-2.5\n"
    )
    csv = write_csv("csv/transactions.csv", repeated)
    frame = pd.read_csv(csv)
    frame.to_parquet(tmp_path / "transactions.parquet")
    for source, shown in (
        (csv, ("-100", "-10", "-9", "-5", "-3")),
        (tmp_path, (-100.0, -10.0, -9.0, -5.0, -3.0)),
    ):
        data = load_data(source, backend=backend)
        (refunds,) = [n for n in data.quality.notes if n.rule.startswith("refunds")]
        assert refunds.examples == shown
        (repeats,) = [n for n in data.quality.notes if n.rule.startswith("rows repeating")]
        assert tuple(map(str, repeats.examples)) == ("2", "3", "9", "10", "100")
    # dates by their instant, not their text: a day written without zeros (2024-1-5) is one too
    late = "account_id,ts,amount\n1,2024-1-9,1\n1,2024-01-10,1\n1,2024-1-8,1\n"
    with pytest.raises(SchemaError) as info:
        validate(write_csv("late/transactions.csv", late), Config(data=DataConfig(end="2024-01-07")))
    (problem,) = info.value.problems
    assert problem.examples == ("2024-1-8", "2024-1-9", "2024-01-10")


def test_repeated_id_examples_are_the_smallest_by_number_not_as_text(backend, write_csv):
    """The duplicate-id error and both transaction-id notes listed a CSV's ids as text sorts them ("10",
    "100" before "9"), where the refunds' and repeats' notes sort them by their number."""
    ids = ["10", "9", "100", "2", "30", "7"]
    exact = "".join(f"1,2024-01-0{i + 1},5,{t}\n" * 2 for i, t in enumerate(ids))
    differ = "".join(f"1,2024-01-0{i + 1},5,d{t}\n1,2024-01-0{i + 1},6,d{t}\n" for i, t in enumerate(ids))
    csv = write_csv("tx/transactions.csv", "account_id,ts,amount,transaction_id\n" + exact + differ)
    notes = {n.rule.split(" (")[0]: n.examples for n in load_data(csv, backend=backend).quality.notes}
    assert notes["duplicate transaction ids"] == ("2", "7", "9", "10", "30")
    assert notes["transaction ids shared by rows that differ"] == ("d10", "d100", "d2", "d30", "d7")  # text
    accounts = "".join(f"{a},x\n" * 2 for a in ids)
    write_csv("acc/transactions.csv", "account_id,ts,amount\n1,2024-01-01,5\n")
    write_csv("acc/accounts.csv", "account_id,segment\n" + accounts)
    with pytest.raises(SchemaError) as info:
        load_data(csv.parent.parent / "acc", backend=backend)
    (problem,) = [p for p in info.value.problems if p.rule.startswith("duplicate account ids")]
    assert problem.examples == ("2", "7", "9", "10", "30")


def test_activities_repeated_in_every_column_are_noted_and_kept(backend, tx):
    """An activities export delivered twice doubled every account's hours (features and the effort
    response's scale) without a word; transactions repeated so are noted, activities were not."""
    acts = pd.DataFrame(
        {
            "account_id": [1, 1, 2],
            "ts": pd.to_datetime(["2024-01-05 10:00", "2024-01-05 11:00", "2024-01-10 09:30"]),
            "hours": [1.0, 1.0, 0.5],
            "kind": ["call", "call", "meeting"],
        }
    )
    twice = pd.concat([acts, acts.iloc[[0, 2, 2]]], ignore_index=True)  # one row twice, one three times
    data = load_data({"transactions": tx, "activities": twice}, backend=backend)
    assert len(data.to_pandas("activities")) == len(twice)  # kept: two equal calls can be real
    note = next(n for n in data.quality.notes if n.rule.startswith("activities repeating"))
    assert (note.table, note.column, note.n_rows) == ("activities", None, 3)
    assert sorted(note.examples) == [1, 2]
    assert "hours count twice" in note.rule
    differ = acts.assign(kind=["call", "demo", "meeting"], ts=acts["ts"].iloc[[0, 0, 2]].to_numpy())
    clean = load_data({"transactions": tx, "activities": differ}, backend=backend)
    assert clean.quality.count("activities repeating") == 0  # one column differs: not a repeat


def test_rows_repeated_with_an_empty_transaction_id_are_noted_and_kept(backend, tx, tmp_path):
    """A file delivered twice with its id column blank went unnoted (an audit: scores 844k -> 1,460k)."""
    frame = tx.assign(transaction_id=None)
    twice = pd.concat([frame, frame.iloc[[1, 1, 3]]], ignore_index=True)
    (tmp_path / "transactions.csv").write_text(twice.to_csv(index=False))  # blank ids, as a CSV has them
    for source in ({"transactions": twice}, tmp_path):
        data = load_data(source, backend=backend)
        assert len(data.to_pandas("transactions")) == len(twice)  # kept, as rows without the column are
        note = next(n for n in data.quality.notes if n.rule.startswith("rows without a transaction id"))
        assert (note.table, note.column, note.n_rows) == ("transactions", "transaction_id", 3)
        assert sorted(map(str, note.examples)) == ["1", "2"]  # the accounts as the input wrote them
    named = pd.concat([frame.assign(transaction_id=["a", "b", None, None, "c"])] * 2, ignore_index=True)
    data = load_data({"transactions": named}, backend=backend)  # ids repeated exactly: dropped, noted
    assert data.quality.count("duplicate transaction ids") == 3
    note = next(n for n in data.quality.notes if n.rule.startswith("rows without a transaction id"))
    assert note.n_rows == 2
    clean = load_data({"transactions": frame}, backend=backend)
    assert clean.quality.count("rows without a transaction") == 0


@pytest.mark.parametrize("empty", ["", "  "])
def test_blank_transaction_ids_count_as_no_id_in_the_duplicate_notes(backend, tx, empty):
    """Blank ids are no ids (the drop and the counts said so) but the notes' key kept them as an id:
    an exact repeat of "a" was noted as rows that differ, and blank rows gave "-1 rows" of duplicates."""
    frame = tx.assign(transaction_id=["a", "b", "c", empty, empty])
    frame.loc[4, ["account_id", "ts", "amount", "quantity"]] = frame.loc[
        3, ["account_id", "ts", "amount", "quantity"]
    ]
    data = load_data(
        {"transactions": pd.concat([frame, frame.iloc[[0]]], ignore_index=True)}, backend=backend
    )
    assert len(data.to_pandas("transactions")) == 5  # the repeat of "a" dropped, the blank rows kept
    assert data.quality.count("duplicate transaction ids") == 1
    assert data.quality.count("transaction ids shared by rows that differ") == 0
    (note,) = [n for n in data.quality.notes if n.rule.startswith("duplicate transaction ids")]
    assert note.examples == ("a",)
    assert data.quality.count("rows without a transaction id repeating") == 1  # the two blank rows
    lines = frame.assign(transaction_id=["a", "b", "b", empty, empty])  # "b": two lines that differ
    data = load_data({"transactions": lines}, backend=backend)
    found = [(n.rule[:39], n.n_rows) for n in data.quality.notes if "transaction id" in n.rule]
    assert found == [
        ("transaction ids shared by rows that dif", 1),
        ("rows without a transaction id repeating", 1),
    ]


@pytest.mark.parametrize(
    ("ids", "bitmap"),
    [
        ([-3, -3, 7, None, 9], True),  # narrow range, negative ids: counted by a bitmap
        ([1, 2**40, 2**40, None, 5], False),  # wider than BITMAP_MAX_BITS: count(DISTINCT)
    ],
)
def test_whole_number_transaction_ids_are_deduplicated(backend, tx, ids, bitmap, monkeypatch):
    import kamml.data.validation as validation

    used: list[dict] = []
    original = validation._bitmap_distinct
    monkeypatch.setattr(validation, "_bitmap_distinct", lambda plan: used.append(original(plan)) or used[-1])
    frame = tx.assign(transaction_id=pd.array(ids, dtype="Int64"), account_id=[1, 1, 2, 2, 2])
    repeat = next(i for i, v in enumerate(ids) if v is not None and ids.index(v) < i)
    original_row = ids.index(ids[repeat])
    for column in ("ts", "account_id", "amount", "quantity"):  # the repeated id repeats its whole row
        frame.iloc[repeat, frame.columns.get_loc(column)] = frame[column].iloc[original_row]
    data = load_data({"transactions": frame}, backend=backend)
    assert len(data.to_pandas("transactions")) == 4
    assert data.quality.count("duplicate transaction ids") == 1
    assert data.quality.tables["transactions"].accounts == 2
    assert ("transaction_id_distinct" in used[0]) is bitmap
    assert "accounts" in used[0]  # account ids 1..2 are narrow


def test_hours_and_referral_rules(backend, tx):
    acts = pd.DataFrame({"account_id": [1, 1, 2], "ts": ["2024-01-01"] * 3, "hours": [1.0, -2.0, np.inf]})
    refs = pd.DataFrame(
        {"referrer_id": [1, "2"], "referred_id": ["1", 3], "ts": ["2024-01-01", "2024-01-02"]}
    )
    problems = _problems({"transactions": tx, "activities": acts, "referrals": refs}, backend=backend)
    hours = {p.rule.split(" (")[0]: p.n_rows for p in problems["activities", "hours"]}
    assert hours == {"negative hours": 1, "not a finite number": 1}
    assert problems["referrals", "referrer_id"][0].rule.startswith("self-referral")
    assert problems["referrals", "referrer_id"][0].n_rows == 1


def test_referral_ids_of_a_wrong_type_in_both_columns_are_a_schema_error(backend, tx):
    """Both ids boolean (or dates): the self-referral rule crashed with an AttributeError, no SchemaError."""
    for values in ([True, False], list(pd.to_datetime(["2024-01-01", "2024-01-02"]))):
        refs = pd.DataFrame(
            {"referrer_id": values, "referred_id": values[::-1], "ts": ["2024-01-01", "2024-01-02"]}
        )
        problems = _problems({"transactions": tx, "referrals": refs}, backend=backend)
        for column in ("referrer_id", "referred_id"):
            assert [p.rule.split(":")[0] for p in problems["referrals", column]] == ["wrong type"]


def test_an_empty_referrals_parquet_of_untyped_columns_loads_empty(tmp_path, tx):
    """`pd.DataFrame(columns=[...]).to_parquet()`, a pipeline's empty referrals extract, writes Parquet's
    null type in every column: load_data crashed with an AttributeError (the self-referral rule)."""
    tx.to_parquet(tmp_path / "transactions.parquet", index=False)
    pd.DataFrame(columns=["referrer_id", "referred_id", "ts"]).to_parquet(tmp_path / "referrals.parquet")
    data = load_data(tmp_path)
    assert data.quality.tables["referrals"].rows == 0
    assert data.to_pandas("referrals").empty


def test_amount_and_quantity_both_of_a_wrong_type_are_a_schema_error(backend):
    """Both booleans (or timestamps): the negative-quantity note compared two null literals, a scalar that
    crashed the table's query with an AttributeError instead of naming the two columns' types."""
    for values in ([True, False], list(pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True))):
        tx = pd.DataFrame(
            {"account_id": [1, 2], "ts": ["2024-01-01"] * 2, "amount": values, "quantity": values}
        )
        problems = _problems({"transactions": tx}, backend=backend)
        for column in ("amount", "quantity"):
            assert [p.rule.split(":")[0] for p in problems["transactions", column]] == ["wrong type"]


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("referrals", ["referrer_id", "referred_id", "ts"]),
        ("activities", ["account_id", "ts", "hours"]),
        ("accounts", ["account_id", "created_at"]),
    ],
)
def test_an_empty_untyped_parquet_table_takes_the_books_text_ids(tmp_path, tx, table, columns):
    """An empty extract's untyped id columns were int64 beside text account ids: the relationship notes
    or the features failed with an Ibis type error ("int64 and string are not comparable")."""
    from kamml.features import build_features

    tx.assign(account_id="a" + tx["account_id"].astype(str)).to_parquet(tmp_path / "transactions.parquet")
    pd.DataFrame(columns=columns).to_parquet(tmp_path / f"{table}.parquet")
    data = load_data(tmp_path)
    id_column = "referrer_id" if table == "referrals" else "account_id"
    assert data.to_pandas(table).empty
    assert getattr(data, table).schema()[id_column].is_string()
    assert list(build_features(data, "2024-03-01").index) == ["a1", "a2"]


def test_zero_hours_are_not_negative(backend, tx):
    acts = pd.DataFrame({"account_id": [1, 2], "ts": ["2024-01-01"] * 2, "hours": [0.0, 1.5]})
    data = load_data({"transactions": tx, "activities": acts}, backend=backend)
    assert sorted(data.to_pandas("activities")["hours"]) == [0.0, 1.5]
    assert not [n.rule for n in data.quality.notes if n.table == "activities"]


def test_data_end_and_future(backend, tx):
    cfg = DataConfig(end=dt.date(2024, 2, 29))
    problems = _problems({"transactions": tx}, cfg, backend=backend)
    (after_end,) = problems["transactions", "ts"]
    assert after_end.rule.startswith(
        "after the data end (config data.end: 2024-02-29, the last day included)"
    )
    assert after_end.n_rows == 2
    assert list(after_end.examples) == ["2024-03-01 15:30:00", "2024-03-31 00:00:00"]
    ok = load_data({"transactions": tx}, DataConfig(end=dt.date(2024, 3, 31)), backend=backend)
    assert ok.end == pd.Timestamp("2024-04-01")
    assert ok.quality.end_source == "config data.end"
    future = tx.assign(ts=tx["ts"].where(tx.index != 0, pd.Timestamp.now() + pd.Timedelta(days=3)))
    problems = _problems({"transactions": future}, backend=backend)
    assert problems["transactions", "ts"][0].rule.startswith("in the future")


def test_a_timestamp_at_midnight_tomorrow_is_in_the_future(backend, tx):
    tomorrow = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=1)
    future_tx = tx.assign(ts=tx["ts"].where(tx.index != 0, tomorrow))
    problems = _problems({"transactions": future_tx}, backend=backend)
    (future,) = problems["transactions", "ts"]
    assert future.rule.startswith("in the future")
    assert future.n_rows == 1


def test_accounts_attributes_from_csv_are_typed(backend, write_csv, tx):
    path = write_csv(
        "accounts.csv",
        "account_id,Owner,created_at,size,score,code,segment\n1,r1,2023-01-01,10,1.5,007,smb\n2,,,20,2,8,\n",
    )
    data = load_data({"transactions": tx, "accounts": path}, backend=backend)
    schema = data.accounts.schema()
    assert list(schema.names) == ["account_id", "created_at", "owner", "size", "score", "code", "segment"]
    assert schema["size"].is_integer()
    assert schema["score"].is_floating()
    assert schema["code"].is_string()  # "007" is a code, not a number
    assert schema["created_at"].is_timestamp()
    got = data.to_pandas("accounts").sort_values("account_id")
    assert got["owner"].tolist() == ["r1", None]


def test_a_csv_attribute_at_hour_24_is_no_date(backend, write_csv, tx):
    """DuckDB's cast read "2024-01-05 24:00" as the next midnight, Spark's as nothing: one CSV column was
    dates on one engine and text on the other. Hours run 00 to 23 in a date attribute, as in ts."""
    path = write_csv("accounts.csv", "account_id,signed,renewed\n1,2024-01-05 24:00,2024-01-05 23:59\n")
    data = load_data({"transactions": tx, "accounts": path}, backend=backend)
    assert data.accounts.schema()["signed"].is_string()
    assert data.accounts.schema()["renewed"].is_timestamp()


def test_a_negative_leading_zero_attribute_is_a_code_too(backend, write_csv, tx):
    path = write_csv("accounts.csv", "account_id,code\n1,-007\n2,8\n")
    data = load_data({"transactions": tx, "accounts": path}, backend=backend)
    assert data.accounts.schema()["code"].is_string()  # "-007" is a code like "007", not -7
    assert data.to_pandas("accounts").sort_values("account_id")["code"].tolist() == ["-007", "8"]


def test_a_csv_attribute_is_a_number_only_as_number_pattern_reads_it(backend, write_csv, tx):
    """DuckDB's cast read the size "1_000" as 1000.0 where Spark's kept it text (a category): the same
    CSV gave the engines different features. Number text is `NUMBER_PATTERN`'s, as for amounts."""
    path = write_csv("accounts.csv", "account_id,size,score\n1,1_000,1.5\n2,2,nan\n3,3,-4e2\n")
    data = load_data({"transactions": tx, "accounts": path}, backend=backend)
    assert data.accounts.schema()["size"].is_string()
    assert data.accounts.schema()["score"].is_floating()
    got = data.to_pandas("accounts").sort_values("account_id")
    assert got["size"].tolist() == ["1_000", "2", "3"]


def test_csv_whole_number_attributes_with_a_sign_or_19_digits_stay_whole(backend, write_csv, tx):
    """ "+5" made a column float (the whole-number pattern had no "+", as NUMBER_PATTERN has), and a
    19-digit number too, losing its last digits; beyond int64 the column stays text, as from a frame."""
    path = write_csv(
        "accounts.csv",
        "account_id,size,big,huge,code\n1,+5,9223372036854775807,9223372036854775808,+05\n"
        "2,-3,-9223372036854775808,1,7\n3,7,1234567890123456789,2,8\n",
    )
    data = load_data({"transactions": tx, "accounts": path}, backend=backend)
    schema = data.accounts.schema()
    assert schema["size"].is_integer()
    assert schema["big"].is_integer()
    assert schema["huge"].is_string()
    assert schema["code"].is_string()  # "+05" is a code like "007"
    got = data.to_pandas("accounts").sort_values("account_id")
    assert got["size"].tolist() == [5, -3, 7]
    assert got["big"].tolist() == [2**63 - 1, -(2**63), 1234567890123456789]
    assert got["huge"].tolist() == ["9223372036854775808", "1", "2"]


def test_an_infinite_numeric_attribute_is_refused_naming_the_column(backend, write_csv, tx):
    """An inf size passed validation and stopped training with a model error (exit 5; an audit)."""
    path = write_csv("accounts.csv", "account_id,size,brand\n1,10,inf\n2,inf,acme\n3,-Infinity,x\n")
    problems = _problems({"transactions": tx, "accounts": path}, backend=backend)
    (size,) = problems["accounts", "size"]
    assert size.rule.startswith("not a finite number")
    assert size.n_rows == 2
    assert sorted(size.examples) == ["-Infinity", "inf"]
    assert ("accounts", "brand") not in problems  # "inf" among words is a category, not a number
    typed = pd.DataFrame({"account_id": [1, 2, 3], "size": [1.0, np.inf, np.nan]})
    (size,) = _problems({"transactions": tx, "accounts": typed}, backend=backend)["accounts", "size"]
    assert size.n_rows == 1  # NaN is a missing value, kept
    fine = load_data({"transactions": tx, "accounts": typed.assign(size=[1.0, 2.0, np.nan])}, backend=backend)
    assert fine.accounts.schema()["size"].is_floating()


def test_column_mapping_from_config(backend, tx):
    frame = tx.rename(columns={"account_id": "Customer", "ts": "date", "amount": "revenue"})
    accounts = pd.DataFrame({"cust": [1, 2, 3], "tier": ["a", "b", "c"]})
    cfg = Config.from_dict(
        {
            "data": {
                "columns": {
                    "transactions": {"account_id": "customer", "ts": "date", "amount": "revenue"},
                    "accounts": {"account_id": "cust", "segment": "tier"},
                }
            }
        }
    )
    data = load_data({"transactions": frame, "accounts": accounts}, cfg, backend=backend)
    assert list(data.transactions.columns) == ["account_id", "ts", "amount", "quantity"]
    assert list(data.accounts.columns) == ["account_id", "segment"]
    # the message names the user's column and kamml's name for it
    broken = frame.assign(revenue="lots")
    problems = _problems({"transactions": broken}, cfg, backend=backend)
    assert problems["transactions", "revenue"][0].rule == f"unparseable number{NUMBER_HINT} [amount]"


def test_unknown_mapped_column_is_a_config_error(backend, tx):
    cfg = Config.from_dict({"data": {"columns": {"transactions": {"acount_id": "customer"}}}})
    with pytest.raises(ConfigError, match=r"acount_id.*valid columns here: account_id"):
        load_data({"transactions": tx}, cfg, backend=backend)


def test_all_problems_are_collected(backend):
    frame = pd.DataFrame({"account_id": [None, 2], "ts": ["bad", "2024-01-01"], "amount": ["x", "1"]})
    problems = _problems(
        {"transactions": frame, "accounts": pd.DataFrame({"segment": ["a"]})}, backend=backend
    )
    assert set(problems) == {
        ("transactions", "account_id"),
        ("transactions", "ts"),
        ("transactions", "amount"),
        ("accounts", "account_id"),
    }


def test_empty_optional_table_is_a_note(backend, tx):
    refs = pd.DataFrame({"referrer_id": pd.Series([], dtype="int64"), "referred_id": [], "ts": []})
    data = load_data({"transactions": tx, "referrals": refs}, backend=backend)
    assert data.quality.count("empty table") == 0
    assert any(n.table == "referrals" and n.rule.startswith("empty table") for n in data.quality.notes)
    assert data.to_pandas("referrals").empty


# --- property: any frame either validates or raises SchemaError, never anything else ----------------

NAMES = st.sampled_from(["account_id", "ts", "amount", "quantity", "product", "transaction_id"]) | st.text(
    max_size=6
)
OFFSETS = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5))])
SCALARS = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=OFFSETS),
    st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2100, 1, 1)).map(str),
    st.sampled_from(
        ["2024-01-05", "2024-01-05T10:00:00+01:00", "2024-01-05 10:00Z", "1.5", "inf", " 7 ", ""]
    ),
)


@st.composite
def columns(draw: st.DrawFn, n: int) -> list:
    kind = draw(st.sampled_from(["ints", "floats", "texts", "dates", "any"]))
    if kind == "ints":
        return draw(st.lists(st.integers(min_value=0, max_value=50), min_size=n, max_size=n))
    if kind == "floats":
        return draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
    if kind == "texts":
        return draw(st.lists(st.text(max_size=8), min_size=n, max_size=n))
    if kind == "dates":
        return draw(
            st.lists(st.dates(dt.date(2000, 1, 1), dt.date(2030, 1, 1)).map(str), min_size=n, max_size=n)
        )
    return draw(st.lists(SCALARS, min_size=n, max_size=n))


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=4))
    names = draw(st.lists(NAMES, min_size=0, max_size=4))
    if draw(st.booleans()):  # half the frames have the required columns, so their values get judged
        names = ["account_id", "ts", "amount", *names]
    data = {}
    for i, _name in enumerate(names):
        values = draw(columns(n))
        data[i] = pd.Series(values, dtype=object if draw(st.booleans()) else None)
    frame = pd.DataFrame(data, index=range(n)) if data else pd.DataFrame(index=range(n))
    frame.columns = names[: frame.shape[1]]
    return frame


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames())
@example(  # found by hypothesis in CI: DuckDB parses "INF" as an infinite timestamp
    frame=pd.DataFrame({"account_id": ["0", "0", "0"], "ts": ["", "", "INF"], "amount": ["0", "0", "0"]})
)
@example(frame=pd.DataFrame({"account_id": [1, 2], "ts": ["9999-01-01", "2024-01-01"], "amount": [1.0, 2.0]}))
def test_any_frame_validates_or_raises_schema_error(backend, frame):
    try:
        report = validate({"transactions": frame}, backend=backend)
    except SchemaError as exc:
        problems = exc.problems
    else:
        assert isinstance(report, QualityReport)
        assert report.tables["transactions"].rows == len(frame)
        return
    assert problems
    assert all(p.table == "transactions" for p in problems)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(
        st.one_of(st.integers(0, 5), st.sampled_from(["1", "2", " 3", "x"])), min_size=1, max_size=6
    ),
    amounts=st.lists(st.floats(-1e6, 1e6) | st.sampled_from(["1.5", "-2"]), min_size=6, max_size=6),
)
def test_valid_rows_always_give_the_contract_types(backend, ids, amounts):
    n = len(ids)
    frame = pd.DataFrame({"account_id": ids, "ts": ["2024-01-01"] * n, "amount": amounts[:n]})
    data = load_data({"transactions": frame}, backend=backend)
    schema = data.transactions.schema()
    assert schema["account_id"].is_integer() or schema["account_id"].is_string()
    assert schema["ts"].is_timestamp()
    assert schema["amount"].is_float64()
    assert len(data.to_pandas("transactions")) == n


def test_values_each_with_their_own_offset_are_converted_to_utc(backend):
    """A Europe/Berlin export (+01:00 in winter, +02:00 in summer) was refused as mixed time zones."""
    frame = pd.DataFrame(
        {
            "account_id": [1, 2, 3],
            "ts": ["2024-01-05T10:00:00+01:00", "2024-07-05T10:00:00+02:00", "2024-07-06T10:00:00-05:00"],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    data = load_data({"transactions": frame}, backend=backend)
    got = data.to_pandas("transactions").sort_values("account_id")["ts"].tolist()
    assert got == [
        pd.Timestamp("2024-01-05 09:00"),
        pd.Timestamp("2024-07-05 08:00"),
        pd.Timestamp("2024-07-06 15:00"),
    ]
    assert data.quality.count("3 different UTC offsets") == 3


def test_a_column_without_offsets_beside_one_with_them_gets_a_note(backend):
    """transactions.ts at +02:00 (converted to UTC) beside accounts.created_at without offsets (taken as
    UTC) shifted one table against the other without a word; a mix within one column is an error."""
    tx = pd.DataFrame(
        {
            "account_id": [1, 2],
            "ts": ["2024-01-05T10:00:00+02:00", "2024-02-05T10:00:00+02:00"],
            "amount": [1.0, 2.0],
        }
    )
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": ["2023-06-01 09:00", "2023-07-01 09:00"]})
    data = load_data({"transactions": tx, "accounts": accounts}, backend=backend)
    (note,) = [n for n in data.quality.notes if n.column == "created_at"]
    assert note.table == "accounts"
    assert note.rule.startswith("no UTC offset (taken as UTC), while transactions.ts has one on every value")
    assert note.n_rows == 2
    same = load_data(
        {"transactions": tx.assign(ts=["2024-01-05", "2024-02-05"]), "accounts": accounts}, backend=backend
    )
    assert not [n for n in same.quality.notes if "UTC offset" in n.rule]


@pytest.mark.parametrize("unit", ["ns", "us"])
@pytest.mark.parametrize("zone", ["UTC", "+02:00", "Europe/Berlin"])
def test_a_naive_parquet_date_beside_a_zoned_one_gets_the_note_text_gets(backend, tmp_path, zone, unit):
    """A time-zone-aware Parquet `ts` (converted to UTC) beside naive dates (taken as UTC) got no note,
    where the same as text (`+02:00` beside no offset) got one: the naive column may be local times."""
    local = pd.to_datetime(["2024-01-05 10:00", "2024-02-05 10:00"]).as_unit(unit)
    tx = pd.DataFrame({"account_id": [1, 2], "ts": local.tz_localize(zone), "amount": [1.0, 2.0]})
    created = pd.to_datetime(["2023-06-01 09:00", "2023-07-01 09:00"]).as_unit(unit)
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": created})
    tx.to_parquet(tmp_path / "transactions.parquet")
    accounts.to_parquet(tmp_path / "accounts.parquet")
    data = load_data(tmp_path, backend=backend)
    (note,) = [n for n in data.quality.notes if "UTC offset" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("accounts", "created_at", 2)
    assert note.rule.startswith("no UTC offset (taken as UTC), while transactions.ts has one on every value")
    assert note.examples == ("2023-06-01 09:00:00", "2023-07-01 09:00:00")
    # converted as CSV's offsets are: the instants, as naive UTC
    want = local.tz_localize(zone).tz_convert("UTC").tz_localize(None).as_unit("ns")
    assert data.to_pandas("transactions").sort_values("account_id")["ts"].tolist() == want.tolist()
    # a date column is naive too; all naive, or all zoned, is no note
    accounts.assign(created_at=created.date).to_parquet(tmp_path / "accounts.parquet")
    (note,) = [n for n in load_data(tmp_path, backend=backend).quality.notes if "UTC offset" in n.rule]
    assert (note.column, note.examples) == ("created_at", ("2023-06-01 00:00:00", "2023-07-01 00:00:00"))
    accounts.assign(created_at=created.tz_localize(zone)).to_parquet(tmp_path / "accounts.parquet")
    assert not [n for n in load_data(tmp_path, backend=backend).quality.notes if "UTC offset" in n.rule]
    tx.assign(ts=local).to_parquet(tmp_path / "transactions.parquet")
    accounts.to_parquet(tmp_path / "accounts.parquet")
    assert not [n for n in load_data(tmp_path, backend=backend).quality.notes if "UTC offset" in n.rule]


@pytest.mark.parametrize("zone", ["UTC", "+02:00", "Europe/Berlin"])
def test_a_naive_frame_date_beside_a_zoned_one_gets_the_note_parquet_gets(backend, zone):
    """DataFrames as their Parquet files: a tz-aware `ts` beside naive `created_at` got no note."""
    local = pd.to_datetime(["2024-01-05 10:00", "2024-02-05 10:00"])
    tx = pd.DataFrame({"account_id": [1, 2], "ts": local.tz_localize(zone), "amount": [1.0, 2.0]})
    created = pd.to_datetime(["2023-06-01 09:00", "2023-07-01 09:00"])
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": created})
    data = load_data({"transactions": tx, "accounts": accounts}, backend=backend)
    (note,) = [n for n in data.quality.notes if "UTC offset" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("accounts", "created_at", 2)
    assert note.rule.startswith("no UTC offset (taken as UTC), while transactions.ts has one on every value")
    assert note.examples == ("2023-06-01 09:00:00", "2023-07-01 09:00:00")
    arrow = tx.assign(ts=tx["ts"].astype(pd.ArrowDtype(pa.timestamp("us", tz="UTC"))))  # pyarrow-backed
    notes = load_data({"transactions": arrow, "accounts": accounts}, backend=backend).quality.notes
    assert [(n.table, n.column) for n in notes if "UTC offset" in n.rule] == [("accounts", "created_at")]
    for tables in (
        {"transactions": tx, "accounts": accounts.assign(created_at=created.tz_localize(zone))},
        {"transactions": tx.assign(ts=local), "accounts": accounts},
    ):  # all zoned, or all naive: no note
        assert not [n for n in load_data(tables, backend=backend).quality.notes if "UTC offset" in n.rule]


def test_a_zoned_parquet_date_beside_naive_text_gets_the_note(backend, tmp_path, write_csv):
    """Across formats too: a zoned Parquet `ts` beside a CSV's `created_at` without offsets."""
    local = pd.to_datetime(["2024-01-05 10:00", "2024-02-05 10:00"]).tz_localize("+02:00")
    tx = pd.DataFrame({"account_id": [1, 2], "ts": local, "amount": [1.0, 2.0]})
    tx.to_parquet(tmp_path / "transactions.parquet")
    write_csv("accounts.csv", "account_id,created_at\n1,2023-06-01 09:00\n2,2023-07-01 09:00\n")
    (note,) = [n for n in load_data(tmp_path, backend=backend).quality.notes if "UTC offset" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("accounts", "created_at", 2)
    assert note.examples == ("2023-06-01 09:00", "2023-07-01 09:00")


def test_a_mapped_column_the_table_lacks_is_an_error(backend, tx):
    """An optional column (or attribute) mapped to nothing was silently dropped; a raw column with
    kamml's own name then became a text attribute and crashed the features."""
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "created_at": ["soon", "later", "never"]})
    cfg = Config.from_dict({"data": {"columns": {"accounts": {"created_at": "signup", "segment": "tier"}}}})
    problems = _problems({"transactions": tx, "accounts": accounts}, cfg, backend=backend)
    (signup,) = problems["accounts", "signup"]
    assert signup.rule.startswith("column mapped in data.columns.accounts (as kamml's created_at) not found")
    assert "columns found: account_id, created_at" in signup.rule
    assert problems["accounts", "tier"][0].rule.startswith("column mapped in data.columns.accounts")
    with pytest.raises(SchemaError, match="signup"):
        load_data({"transactions": tx, "accounts": accounts}, cfg, backend=backend)


#: Date texts the engines' casts read apart (DuckDB only: slashes, 24:00, lower-case zone names; Spark
#: only: a year, a month, an hour without minutes, "UT", a one-digit offset): unparseable on both.
ENGINE_DEPENDENT_DATES = [
    "2024/01/05",
    "2024-01-05T24:00:00",
    "2024-01-05 10:00:00 utc",
    "2024-01-05 10:00:00 Europe/london",
    "2024-01",
    "2024",
    "2024-01-05T10",
    "2024-01-05 10:00:00 UT",
    "2024-01-05 10:00:00+1",
]


@pytest.mark.parametrize("text", ENGINE_DEPENDENT_DATES)
def test_dates_one_engine_alone_reads_are_unparseable(backend, tx, text):
    """2024/01/05 was a date on DuckDB and unparseable on Spark, 2024-01 the reverse: the same data
    loaded on one engine and was refused on the other."""
    dated = tx.assign(ts=tx["ts"].astype(str).where(tx.index != 1, text))
    (problem,) = _problems({"transactions": dated}, backend=backend)["transactions", "ts"]
    assert problem.rule.startswith("unparseable date")
    assert list(problem.examples) == [text]


def test_a_z_after_minutes_or_a_blank_is_utc(backend):
    """DuckDB read 10:00Z and refused 10:00:00 Z; Spark the reverse. Both are UTC on both now."""
    ts = ["2024-01-05T10:00Z", "2024-01-05 10:00:00 Z", "2024-01-05 10:30:00Z"]
    frame = pd.DataFrame({"account_id": [1, 2, 3], "ts": ts, "amount": 1.0})
    got = load_data({"transactions": frame}, backend=backend).to_pandas("transactions")
    assert (
        got.sort_values("account_id")["ts"].tolist()
        == pd.to_datetime(["2024-01-05 10:00", "2024-01-05 10:00", "2024-01-05 10:30"]).tolist()
    )


@pytest.mark.spark
def test_date_texts_read_alike_on_spark_and_duckdb(tmp_path):
    """Each text is the same date on both engines, or unparseable on both (each engine's own cast)."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    texts = [
        *ENGINE_DEPENDENT_DATES,
        "2024-1-5",
        "2024-01-05 13:00",
        "2024-01-05T10:00Z",
        "2024-01-05 10:00 Z",
    ]
    texts += ["2024-01-05 10:00:00 America/New_York", "2024-01-05 10:00:00 EST", "2024-01-05 1:5:00"]
    texts += ["2024-07-05 10:00:00 EDT", "2024-07-05 10:00:00 CEST"]
    texts += ["2024-01-05 10:00:00,5", "2024-01-05T10:00:00,25+01:00", "2024-01-05 10:00:00,5 +0100"]
    spark = connect(EngineConfig(name="spark"))
    for text in texts:
        frame = pd.DataFrame({"account_id": [1, 2], "ts": [text, text], "amount": 1.0})
        read = []
        for backend in (ibis.duckdb.connect(threads=1), spark):
            try:
                read.append(
                    load_data({"transactions": frame}, backend=backend).to_pandas("transactions")["ts"][0]
                )
            except SchemaError as exc:
                read.append([p.rule for p in exc.problems])
        assert read[0] == read[1], text


@pytest.mark.parametrize("word", ["epoch", "infinity", "-infinity", "today", "now", "allballs"])
def test_special_date_words_are_unparseable(backend, tx, word):
    """DuckDB reads "epoch" as 1970-01-01: a date must start with a digit."""
    text = tx.assign(ts=tx["ts"].astype(str).where(tx.index != 1, word))
    problems = _problems({"transactions": text}, backend=backend)
    (problem,) = problems["transactions", "ts"]
    assert problem.rule.startswith("unparseable date")
    assert list(problem.examples) == [word]


def test_nanosecond_end_of_day_stamps_stay_on_their_day(backend, tmp_path):
    """DuckDB's cast rounds 23:59:59.999999999 to the next midnight: a purchase crossed a cutoff into
    the label window and past the data end. Nanoseconds are floored to microseconds instead."""
    eod = pd.Timedelta(days=1) - pd.Timedelta(nanoseconds=1)
    days = pd.to_datetime(["2024-01-10", "2024-02-29", "2024-04-30", "1960-01-01"])
    tx = pd.DataFrame({"account_id": [1, 1, 2, 3], "ts": days + eod, "amount": [5.0, 7.0, 1.0, 2.0]})
    tx.to_parquet(tmp_path / "naive.parquet")
    tx.assign(ts=tx["ts"].dt.tz_localize("UTC")).to_parquet(tmp_path / "zoned.parquet")
    expected = (days + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).tolist()
    cfg = Config.from_dict({"data": {"end": "2024-04-30"}})
    for source in (tx, tmp_path / "naive.parquet", tmp_path / "zoned.parquet"):
        data = load_data({"transactions": source}, cfg, backend=backend)
        assert data.to_pandas("transactions")["ts"].tolist() == expected, source
        assert data.end == pd.Timestamp("2024-05-01")


def test_a_nan_in_a_parquet_float_column_is_refused(tmp_path):
    """DuckDB folds isnan() to false when Parquet's statistics leave the NaN out (pyarrow, polars and
    Spark write them so): a NaN amount, hours or float id passed validation and reached the tables."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    ts = pa.array([dt.datetime(2024, 1, 2)] * 3, pa.timestamp("us"))
    pq.write_table(
        pa.table({"account_id": [1.0, float("nan"), 3.0], "ts": ts, "amount": [1.0, float("nan"), 2.0]}),
        folder / "transactions.parquet",
    )
    pq.write_table(
        pa.table({"account_id": [1, 2, 3], "ts": ts, "hours": [1.0, float("nan"), 2.0]}),
        folder / "activities.parquet",
    )
    with pytest.raises(SchemaError) as info:
        load_data(folder)
    said = str(info.value)
    assert "transactions.amount: not a finite number (NaN or infinite) (1 row; e.g. 'NaN')" in said
    assert "activities.hours: not a finite number (NaN or infinite) (1 row" in said
    assert "transactions.account_id: null or empty id (1 row)" in said
    assert "not a whole number" not in said


def test_an_ibis_memtable_is_a_source():
    """Its table has no backend of its own: validation failed with Ibis's 'depends on no backends'."""
    import ibis

    frame = pd.DataFrame(
        {"account_id": [1, 2, 3], "ts": pd.to_datetime(["2024-01-02"] * 3), "amount": [1.0, 5.0, 2.0]}
    )
    data = load_data({"transactions": ibis.memtable(frame)})
    assert data.tables["transactions"].count().to_pandas() == 3


def test_a_null_marker_as_owner_is_noted():
    """Read as a rep named NULL, with a budget of its own: said, since "NULL" could be a name."""
    tx = pd.DataFrame({"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-02"] * 2), "amount": [1.0, 2.0]})
    accounts = pd.DataFrame({"account_id": [1, 2], "owner": ["NULL", "Bob"]})
    data = load_data({"transactions": tx, "accounts": accounts})
    notes = [p for p in data.quality.notes if p.table == "accounts" and p.column == "owner"]
    assert notes
    assert "a null marker as the owner" in notes[0].rule


@pytest.mark.parametrize(
    ("owners", "named"),
    [
        ([12345678.0, 1234567890123.0, np.nan, 101.5], ["12345678", "1234567890123", None, "101.5"]),
        ([True, False, None, True], ["True", "False", None, "True"]),
    ],
)
def test_float_and_yes_no_owners_are_named_as_python_names_them(owners, named):
    """Spark's cast wrote owner 12345678.0 as "1.2345678E7" and both engines True as "true": reps the
    capacity's "12345678" and "True" never met (a Spark audit of `kamml run`)."""
    tx = pd.DataFrame({"account_id": [1, 2, 3, 4], "ts": pd.to_datetime(["2024-01-02"] * 4), "amount": 1.0})
    accounts = pd.DataFrame({"account_id": [1, 2, 3, 4], "owner": owners})
    data = load_data({"transactions": tx, "accounts": accounts})
    assert data.to_pandas("accounts").sort_values("account_id")["owner"].tolist() == named


def _binary_text_tables(tmp_path, owners, kinds):
    """Parquet tables whose owner, product and activity kind are binary (BYTE_ARRAY without UTF8)."""
    n = len(owners)
    pq.write_table(
        pa.table(
            {
                "account_id": pa.array(range(1, n + 1)),
                "ts": pa.array([dt.datetime(2024, 1, 2)] * n),
                "amount": pa.array([1.0] * n),
                "product": pa.array(kinds, pa.binary()),
            }
        ),
        tmp_path / "transactions.parquet",
    )
    accounts = {"account_id": pa.array(range(1, n + 1)), "owner": pa.array(owners, pa.binary())}
    pq.write_table(pa.table(accounts), tmp_path / "accounts.parquet")
    activities = {
        "account_id": pa.array(range(1, n + 1)),
        "ts": pa.array([dt.datetime(2024, 1, 2)] * n),
        "hours": pa.array([1.0] * n),
        "kind": pa.array(kinds, pa.binary()),
    }
    pq.write_table(pa.table(activities), tmp_path / "activities.parquet")


def test_binary_text_columns_are_read_as_their_utf8_text(tmp_path):
    """DuckDB cast a binary owner to text with escapes: rep 'zoë' read 'zo\\xC3\\xAB', no capacity's name."""
    _binary_text_tables(tmp_path, [b"zo\xc3\xab", b" bob ", None], [b"caf\xc3\xa9", b"call", None])
    data = load_data(tmp_path)
    assert data.to_pandas("accounts").sort_values("account_id")["owner"].tolist() == ["zoë", "bob", None]
    for table, column in (("transactions", "product"), ("activities", "kind")):
        got = data.to_pandas(table).sort_values("account_id")[column].tolist()
        assert got == ["café", "call", None], table


def test_binary_text_that_is_not_utf8_is_refused_by_name(tmp_path):
    """Bytes that are no UTF-8 text (Latin-1's 'zoë') read as escaped text, a rep of a name no one wrote."""
    _binary_text_tables(tmp_path, [b"zo\xeb", b"bob", b"ann"], [b"caf\xe9", b"call", b"visit"])
    found = _problems(tmp_path)
    (owner,) = found[("accounts", "owner")]
    assert owner.rule.startswith("binary that is not UTF-8 text (an owner is a rep's name)")
    assert owner.n_rows == 1
    assert list(owner.examples) == [b"zo\xeb"]
    for table, column in (("transactions", "product"), ("activities", "kind")):
        (problem,) = found[(table, column)]
        assert problem.rule.startswith(f"binary that is not UTF-8 text; write the {column} as UTF-8 text")


def test_parquet_text_that_is_not_utf8_names_the_column_on_duckdb(tmp_path):
    """A text column (Parquet's UTF8 mark) of Latin-1 bytes: DuckDB's "Invalid string encoding found in
    Parquet file" named the file and a value, not the column, nor what to do. Now both, in a part too."""

    def latin(values):  # text unchecked: Arrow's own constructor refuses such bytes
        return pa.array(values, pa.binary()).view(pa.string())

    _binary_text_tables(tmp_path, [b"zo", b"bob", b"ann"], [b"call", b"visit", b"x"])
    accounts = {"account_id": pa.array([1, 2, 3]), "owner": latin([b"zo\xeb", b"bob", b"ann"])}
    (tmp_path / "accounts.parquet").unlink()
    (tmp_path / "accounts").mkdir()
    pq.write_table(pa.table(accounts), tmp_path / "accounts" / "part-1.parquet")
    rule = r"^accounts: cannot read .*part-1\.parquet.*; column owner holds text that is not UTF-8"
    with pytest.raises(DataError, match=rf"{rule} \(1 value, e\.g\. b'zo\\xeb'") as info:
        load_data(tmp_path)
    assert "save it as UTF-8" in str(info.value)
    (tmp_path / "accounts" / "part-1.parquet").unlink()
    (tmp_path / "accounts").rmdir()
    pq.write_table(
        pa.table({**accounts, "owner": pa.array(["zoë", "bob", "ann"])}), tmp_path / "accounts.parquet"
    )
    transactions = pq.read_table(tmp_path / "transactions.parquet")
    note = latin([b"caf\xe9", b"ok", b"\xe9t\xe9"])  # a column kamml does not use: read all the same
    pq.write_table(transactions.append_column("note", note), tmp_path / "transactions.parquet")
    with pytest.raises(
        DataError, match=r"column note holds text that is not UTF-8 \(2 values, e\.g\. b'caf\\xe9'"
    ):
        load_data(tmp_path)


@pytest.mark.spark
def test_binary_text_reads_alike_on_spark(tmp_path):
    """Spark's cast reads UTF-8 bytes as their text already; bytes that are not UTF-8 are refused too."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark = connect(EngineConfig(name="spark"))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    _binary_text_tables(good, [b"zo\xc3\xab", b"bob", None], [b"call", b"visit", None])
    data = load_data(good, backend=spark)
    assert data.to_pandas("accounts").sort_values("account_id")["owner"].tolist() == ["zoë", "bob", None]
    _binary_text_tables(bad, [b"zo\xeb", b"bob", b"ann"], [b"call", b"visit", b"x"])
    (owner,) = _problems(bad, backend=spark)[("accounts", "owner")]
    assert owner.rule.startswith("binary that is not UTF-8 text (an owner is a rep's name)")
    assert list(owner.examples) == [b"zo\xeb"]


@pytest.mark.spark
def test_parquet_text_that_is_not_utf8_is_refused_on_spark_too(tmp_path):
    """DuckDB stops at Parquet text of Latin-1 bytes (named above); Spark read it without a word, an id
    '2\ufffd' and a rep 'zo\ufffd' no capacity names. Now refused by name, ids and text columns alike."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    def latin(values):  # text unchecked: Arrow's own constructor refuses such bytes
        return pa.array(values, pa.binary()).view(pa.string())

    _binary_text_tables(tmp_path, [b"zo", b"bob", b"ann"], [b"call", b"visit", b"x"])
    pq.write_table(
        pa.table({"account_id": latin([b"1", b"2\xeb", b"3"]), "owner": latin([b"zo\xeb", b"bob", b"ann"])}),
        tmp_path / "accounts.parquet",
    )
    found = _problems(tmp_path, backend=connect(EngineConfig(name="spark")))
    for column in ("account_id", "owner"):
        (problem,) = [p for p in found[("accounts", column)] if "UTF-8" in p.rule]
        assert problem.rule.startswith("text that is not UTF-8; save it as UTF-8"), column
        assert problem.n_rows == 1, column


def test_the_delimiter_hint_is_written_as_yaml_reads_it(tmp_path):
    """'\\t' (Python's repr) is two characters in YAML single quotes: following the hint crashed."""
    (tmp_path / "transactions.csv").write_text("account_id\tts\tamount\n1\t2024-01-02\t3\n")
    with pytest.raises(SchemaError, match=r'csv_delimiter: "\\t"'):
        load_data(tmp_path)


def test_a_semicolon_header_split_at_a_comma_in_a_name_gets_the_delimiter_hint(tmp_path):
    """A semicolon export with a comma in one column name splits into two fields at it: only three
    "missing required column" problems were raised, none naming the delimiter."""
    (tmp_path / "transactions.csv").write_text('account_id;ts;amount;"net, EUR"\n1;2024-01-02;3;4\n')
    with pytest.raises(SchemaError) as raised:
        load_data(tmp_path)
    hints = [p for p in raised.value.problems if "delimiter looks wrong" in p.rule]
    assert [(p.table, p.column) for p in hints] == [("transactions", 'account_id;ts;amount;"net')]
    assert 'csv_delimiter: ";"' in hints[0].rule
    fine = tmp_path / "fine"
    fine.mkdir()  # a column name holding a semicolon beside the contract's columns is no problem
    (fine / "transactions.csv").write_text("account_id,ts,amount,note;x\n1,2024-01-02,3,4\n")
    assert load_data(fine).to_pandas("transactions")["amount"].tolist() == [3.0]


def test_a_yes_no_transaction_id_with_missing_ones_is_a_wrong_type():
    """Hypothesis' example: the check of rows without an id looked up a key the wrong type never made
    (a KeyError, exit 1)."""
    tx = pd.DataFrame(
        {
            "account_id": [0, 0, 0],
            "ts": pd.to_datetime(["2024-01-02"] * 3),
            "amount": 0.0,
            "transaction_id": [None, None, False],
        }
    )
    with pytest.raises(SchemaError, match=r"transactions\.transaction_id: wrong type: expected whole"):
        load_data({"transactions": tx})


def test_an_all_null_optional_parquet_column_loads_as_from_a_frame(tmp_path):
    """pyarrow writes an all-None column with Parquet's null type: optional quantity, transaction_id and
    created_at were refused as of the wrong type, while the same frame or CSV loaded (a feature audit)."""
    from kamml.features import build_features

    tx = pd.DataFrame(
        {
            "account_id": [1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "amount": [1.0, -2.0],
            "quantity": [None, None],
            "transaction_id": [None, None],
        }
    )
    accounts = pd.DataFrame({"account_id": [1, 2], "created_at": [None, None]})
    tx.to_parquet(tmp_path / "transactions.parquet", index=False)
    accounts.to_parquet(tmp_path / "accounts.parquet", index=False)
    frames = build_features(load_data({"transactions": tx, "accounts": accounts}), "2024-02-02")
    pd.testing.assert_frame_equal(build_features(load_data(tmp_path), "2024-02-02"), frames)
    tx.drop(columns=["quantity", "transaction_id"]).assign(amount=None).to_parquet(
        tmp_path / "transactions.parquet", index=False
    )
    with pytest.raises(
        SchemaError, match=r"transactions\.amount: required column is empty: it holds only nulls"
    ):  # a required column is no less
        load_data(tmp_path)


@pytest.mark.parametrize("column", ["account_id", "ts", "amount"])
def test_a_required_parquet_column_of_only_untyped_nulls_is_said_to_be_empty(tmp_path, backend, tx, column):
    """pyarrow writes a column of only nulls with Parquet's null type: a required one was a 'wrong type
    ... got unknown(... NULL)', which did not say the column holds no values (an audit)."""
    table = pa.Table.from_pandas(tx, preserve_index=False)
    table = table.set_column(table.schema.get_field_index(column), column, pa.nulls(len(tx)))
    pq.write_table(table, tmp_path / "transactions.parquet")
    problems = _problems(tmp_path, backend=backend)
    assert list(problems) == [("transactions", column)]
    [problem] = problems["transactions", column]
    assert problem.rule.startswith("required column is empty: it holds only nulls"), problem.rule
    assert "unknown" not in problem.rule


def test_account_attributes_do_not_depend_on_the_file_format(tmp_path):
    """From CSV, booleans were the categories 'True'/'False' and a date column a category feature, while
    Parquet and frames gave 1.0/0.0 and skipped dates; typed text kept ' gold' and '' (a feature audit)."""
    from kamml.features import build_features

    tx = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-02-01"]), "amount": [1.0, 2.0]}
    )
    accounts = pd.DataFrame(
        {
            "account_id": [1, 2],
            "partner": [True, False],
            "tier": [" gold", ""],
            "renewed_on": pd.to_datetime(["2024-01-05", "2024-01-06"]),
        }
    )
    for kind in ("parquet", "csv"):
        (tmp_path / kind).mkdir()
        for name, frame in (("transactions", tx), ("accounts", accounts)):
            getattr(frame, f"to_{kind}")(tmp_path / kind / f"{name}.{kind}", index=False)
    sources = {
        "frames": {"transactions": tx, "accounts": accounts},
        **{k: tmp_path / k for k in ("parquet", "csv")},
    }
    built = {k: build_features(load_data(s), "2024-02-02").filter(like="attr_") for k, s in sources.items()}
    assert sorted(built["frames"].columns) == ["attr_partner", "attr_tier"]
    assert built["frames"]["attr_tier"].iloc[0] == "gold"
    assert pd.isna(built["frames"]["attr_tier"].iloc[1])
    for kind in ("parquet", "csv"):
        pd.testing.assert_frame_equal(built[kind], built["frames"])


def test_an_offset_with_seconds_is_an_offset(backend):
    """ "+01:00:00" was counted as no offset: beside naive text it was not mixed time zones, and beside
    "+01:00" it was a second time zone."""
    ts = ["2024-01-05T10:00:00+01:00:00", "2024-01-05T10:00:00+01:00", "2024-01-05 10:00:00+0100"]
    frame = pd.DataFrame({"account_id": [1, 2, 3], "ts": ts, "amount": 1.0})
    data = load_data({"transactions": frame}, backend=backend)
    assert data.to_pandas("transactions")["ts"].tolist() == [pd.Timestamp("2024-01-05 09:00")] * 3
    assert not [n.rule for n in data.quality.notes if "UTC offset" in n.rule]
    odd = frame.assign(ts=[ts[0], "2024-01-05T10:00:00+01:00:30", ts[1]])
    notes = load_data({"transactions": odd}, backend=backend).quality.notes
    assert [n.rule for n in notes if "UTC offset" in n.rule] == [
        "2 different UTC offsets (+01:00, +01:00:30): each value converted to UTC by its own offset"
    ]
    naive = frame.assign(ts=[ts[0], "2024-01-05T10:00:00", "2024-01-06T10:00:00"])
    problems = _problems({"transactions": naive}, backend=backend)
    assert problems["transactions", "ts"][0].rule.startswith(
        "mixed time zones: 1 value has a UTC offset or a named time zone and 2 have none;"
    )


def test_epoch_numbers_as_dates_are_refused_with_the_unit_they_look_like(backend, write_csv):
    """Text like 1704067200 was "unparseable date" with no hint; kamml still does not guess the unit."""
    path = write_csv(
        "transactions.csv",
        "account_id,ts,amount\n1,1704067200,1.0\n2,1704153600.5,2.0\n3,1704067200000,1.0\n4,12345,1.0\n"
        "5,2024-01-05,1.0\n",
    )
    problems = sorted(_problems(path, backend=backend)["transactions", "ts"], key=lambda p: p.rule)
    assert [(p.n_rows, tuple(p.examples)) for p in problems] == [
        (1, ("12345",)),
        (1, ("1704067200000",)),
        (2, ("1704067200", "1704153600.5")),
    ]
    assert problems[0].rule.startswith("unparseable date (or outside")
    assert "epoch" not in problems[0].rule
    assert 'pd.to_datetime(x, unit="ms")' in problems[1].rule
    assert "Unix epoch milliseconds" in problems[1].rule
    assert 'pd.to_datetime(x, unit="s")' in problems[2].rule


@pytest.mark.parametrize(
    ("values", "unit"),
    [([1704067200, 1717200000], "s"), ([1704067200000, 1717200000000], "ms"), ([1, 1704067200], None)],
)
def test_epoch_numbers_in_a_typed_date_column_are_named(backend, values, unit):
    """An integer ts column was "wrong type" with no hint that it looks like epoch seconds or milliseconds."""
    frame = pd.DataFrame({"account_id": [1, 2], "ts": values, "amount": 1.0})
    (problem,) = _problems({"transactions": frame}, backend=backend)["transactions", "ts"]
    assert problem.rule.startswith("wrong type: expected dates")
    if unit is None:
        assert "epoch" not in problem.rule
    else:
        assert f'pd.to_datetime(x, unit="{unit}")' in problem.rule


@pytest.mark.parametrize("mark", ["\ufeff", "\u200b", "\xa0"])
def test_invisible_marks_around_a_file_column_name_are_ignored_as_in_a_frame(backend, tx, tmp_path, mark):
    """A BOM or zero-width space kept in a Parquet column's name matches as a frame's name does.

    pandas reading a UTF-8 CSV with a BOM (``encoding="utf-8"``) keeps ``\\ufeff`` in the first name,
    and saved as Parquet the file failed with "missing required column account_id; columns found:
    account_id, ..." (the mark invisible), where the same frame given directly was accepted.
    """
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "segment": ["a", "b", "a"]})
    tx.rename(columns={"account_id": f"{mark}account_id"}).to_parquet(tmp_path / "transactions.parquet")
    accounts.rename(columns={"segment": f"segment{mark}"}).to_parquet(tmp_path / "accounts.parquet")
    data = load_data(tmp_path, backend=backend)
    assert list(data.to_pandas("transactions").columns[:3]) == ["account_id", "ts", "amount"]
    assert "segment" in data.to_pandas("accounts").columns


@pytest.mark.parametrize("end", ["9999-12-31", dt.date(9999, 12, 31)])
def test_an_open_ended_contract_sentinel_says_to_leave_the_date_empty(backend, tx, end):
    """CRMs write 9999-12-31 for "no end"; the refusal named only the range, not what to write instead."""
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "contract_end": [end, None, None]})
    problems = _problems({"transactions": tx, "accounts": accounts}, backend=backend)
    (problem,) = problems[("accounts", "contract_end")]
    assert "outside 1677-09-22 to 2262-04-11" in problem.rule
    assert "open-ended contract), leave it empty, not a date such as 9999-12-31" in problem.rule


@pytest.mark.parametrize("header", ["Account ID", "AccountId", "account-id", "ACCOUNT_ID "])
def test_a_header_spelling_the_id_otherwise_is_named_with_the_mapping_to_set(backend, write_csv, header):
    """A CRM's "Account ID" was a bare "missing required column": the message now names the column and
    the data.columns mapping that reads it."""
    csv = write_csv("tx.csv", f"{header},ts,amount\n1,2024-01-01,1\n")
    if header.strip().lower() == "account_id":
        assert len(load_data({"transactions": csv}, backend=backend).to_pandas("transactions")) == 1
        return
    (problem,) = _problems({"transactions": csv}, backend=backend)[("transactions", "account_id")]
    assert f"'{header}' looks like it" in problem.rule
    assert f'data.columns: {{transactions: {{account_id: "{header}"}}}}' in problem.rule


def test_a_required_column_under_another_name_says_how_to_map_it(backend, write_csv):
    """A CDNOW-style header (customer_id, date, dollar_value) got a bare "missing required column" with
    the columns found: nothing said that data.columns reads a column of another name."""
    csv = write_csv("tx.csv", "customer_id,date,dollar_value\n1,2024-01-01,1\n")
    problems = _problems({"transactions": csv}, backend=backend)
    for name in ("account_id", "ts", "amount"):
        (problem,) = problems[("transactions", name)]
        mapping = f'data.columns: {{transactions: {{{name}: "<column>"}}}}'
        assert f"name a column {name}, or map yours: {mapping}" in problem.rule


def test_a_header_of_names_aligned_by_blanks_says_the_file_is_not_delimited(backend, write_csv):
    """Text aligned with blanks, as CDNOW's own file, read as one column: three "missing required column"
    problems listed "columns found: customer_id  date number_of_cds  dollar_value", four names to a
    reader, with nothing saying the file is not comma-separated."""
    text = " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n"
    for name in ("tx.csv", "tx.tsv"):  # a .tsv is read at tabs: no tab in the header either
        problems = _problems({"transactions": write_csv(name, text)}, backend=backend)
        hints = [p for found in problems.values() for p in found if "separated by blanks" in p.rule]
        header = "customer_id  date number_of_cds  dollar_value"
        assert [(p.table, p.column) for p in hints] == [("transactions", header)]
        assert 'pandas.read_csv(path, sep=r"\\s+").to_csv' in hints[0].rule


def test_two_headers_spelling_a_required_column_otherwise_are_both_named(backend, write_csv):
    """With "Account ID" and "accountId" both in the header, the hint named the first only, a guess
    between them; both are named now, each with the mapping that reads it."""
    csv = write_csv("tx.csv", "Account ID,accountId,ts,amount\n1,1,2024-01-01,1\n")
    (problem,) = _problems({"transactions": csv}, backend=backend)[("transactions", "account_id")]
    assert "'Account ID' and 'accountId' both look like it" in problem.rule
    for header in ("Account ID", "accountId"):
        assert f'data.columns: {{transactions: {{account_id: "{header}"}}}}' in problem.rule


@pytest.mark.parametrize("how", ["csv_index", "reread_frame"])
def test_a_column_without_a_name_is_no_attribute(backend, tx, tmp_path, how):
    """pandas' ``to_csv()`` writes the row numbers under an empty header (read back as "Unnamed: 0"):
    they became an attribute, so the models learned from each account's row in the export."""
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "segment": ["a", "b", "a"]})
    if how == "csv_index":
        accounts.to_csv(tmp_path / "accounts.csv")  # header ",account_id,segment"
        source = tmp_path / "accounts.csv"
    else:
        source = accounts.reset_index().rename(columns={"index": "Unnamed: 0"})
    data = load_data({"transactions": tx, "accounts": source}, backend=backend)
    assert list(data.to_pandas("accounts").columns) == ["account_id", "segment"]
    (note,) = [n for n in data.quality.notes if n.table == "accounts"]
    assert "a column without a name" in note.rule
    assert note.n_rows == 3


def test_a_date_in_another_format_says_which_to_write(backend, tx):
    """05/12/2026 or 05-Dec-2026: the refusal named the range, not the form kamml reads."""
    frame = tx.assign(ts=tx["ts"].dt.strftime("%d/%m/%Y"))
    (problem,) = _problems({"transactions": frame}, backend=backend)["transactions", "ts"]
    assert "write dates as ISO 8601" in problem.rule
    assert "2024-01-31" in problem.rule


def test_ids_written_two_ways_for_some_accounts_are_named(backend, tx):
    """Accounts zero-padded ("001") beside transactions' "1": ids from 100 on met, the others split into
    two accounts each (one with the attributes, one with the purchases) under two generic notes."""
    frame = pd.concat([tx, tx.head(1).assign(account_id=100)]).assign(
        account_id=lambda d: d["account_id"].astype(str)
    )
    accounts = pd.DataFrame({"account_id": ["001", "002", "3.0", "100"], "segment": ["a", "b", "a", "b"]})
    data = load_data({"transactions": frame, "accounts": accounts}, backend=backend)
    (note,) = [n for n in data.quality.notes if "written two ways" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("accounts", "account_id", 2)  # 3.0 reads as 3
    assert sorted(note.examples) == ["001", "002"]
    assert "leading zeros" in note.rule


# --- property: all four tables, typed columns of every kind, as frames, Parquet and CSV -------------

#: Per table, each contract column's kind (ids, dates, numbers, text), plus an accounts attribute.
TABLE_KINDS = {
    "transactions": {"account_id": "id", "ts": "ts", "amount": "num", "quantity": "num", "product": "text"},
    "accounts": {
        "account_id": "id",
        "created_at": "ts",
        "owner": "text",
        "contract_end": "ts",
        "size": "num",
    },
    "referrals": {"referrer_id": "id", "referred_id": "id", "ts": "ts"},
    "activities": {"account_id": "id", "ts": "ts", "hours": "num", "kind": "text"},
}
#: Arrow columns of n rows: the right type per kind, and every wrong one Parquet can hold.
ARROW_COLUMNS = {
    "id_int": lambda n: pa.array([1 + i % 2 for i in range(n)], pa.int64()),
    "id_text": lambda n: pa.array([f"a{1 + i % 2}" for i in range(n)]),
    "ts": lambda n: pa.array([dt.datetime(2024, 1, 1 + i) for i in range(n)], pa.timestamp("us")),
    "num": lambda n: pa.array([1.0 + i for i in range(n)]),
    "text": lambda n: pa.array([f"s{i}" for i in range(n)]),
    "bool": lambda n: pa.array([i % 2 == 0 for i in range(n)]),
    "date": lambda n: pa.array([dt.date(2024, 1, 1 + i) for i in range(n)]),
    "tstz": lambda n: pa.array(
        [dt.datetime(2024, 1, 1 + i, tzinfo=dt.UTC) for i in range(n)], pa.timestamp("ns", tz="UTC")
    ),
    "int": lambda n: pa.array(list(range(n)), pa.int32()),
    "float": lambda n: pa.array([i + 0.5 for i in range(n)]),
    "bytes": lambda n: pa.array([b"ab"] * n),
    "list": lambda n: pa.array([[1, 2]] * n),
    "struct": lambda n: pa.array([{"a": 1}] * n),
    "null": lambda n: pa.nulls(n),
}
WRONG_KINDS = ["bool", "date", "tstz", "int", "float", "text", "bytes", "list", "struct", "null"]


@st.composite
def arrow_tables(draw: st.DrawFn) -> dict[str, pa.Table]:
    names = ["transactions", *draw(st.sets(st.sampled_from(["accounts", "referrals", "activities"])))]
    tables = {}
    for name in names:
        n = draw(st.sampled_from([0, 1, 3]))
        ids = draw(st.sampled_from(["id_int", "id_text"]))  # per table: int ids in one, text in another
        columns = {}
        for column, kind in TABLE_KINDS[name].items():
            how = draw(st.sampled_from(["right", "right", "right", "wrong", "missing"]))
            if how == "missing":
                continue
            right = ids if kind == "id" else kind
            columns[column] = ARROW_COLUMNS[right if how == "right" else draw(st.sampled_from(WRONG_KINDS))](
                n
            )
        if columns and draw(st.booleans()):  # an extra column, or one repeated in another case of letters
            first = next(iter(columns))
            columns[draw(st.sampled_from(["extra", first.upper()]))] = ARROW_COLUMNS["text"](n)
        tables[name] = pa.table(columns) if columns else pa.table({"x": pa.nulls(n)}).drop(["x"])
    return tables


def _sources(tables: dict[str, pa.Table], form: str, folder) -> dict:
    """The tables as pandas frames, Parquet files or CSV files (as pandas writes them)."""
    if form == "frame":
        return {name: table.to_pandas() for name, table in tables.items()}
    sources = {}
    for name, table in tables.items():
        path = folder / f"{name}.{form}"
        if form == "parquet":
            pq.write_table(table, path)
        else:
            table.to_pandas().to_csv(path, index=False)
        sources[name] = path
    return sources


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tables=arrow_tables(), form=st.sampled_from(["frame", "parquet", "csv"]))
def test_any_four_tables_load_or_raise_a_kamml_error_naming_a_table(backend, tmp_path_factory, tables, form):
    """docs/data.md: any input validates or raises a kamml error naming its table, never another error."""
    from kamml.features import build_features

    folder = tmp_path_factory.mktemp("tables")
    try:
        data = load_data(_sources(tables, form, folder), backend=backend)
    except KammlError as exc:
        message = str(exc)
    else:
        with contextlib.suppress(KammlError):  # a loaded dataset's features build, or a kamml error says why
            build_features(data, data.end)
        return
    assert any(name in message for name in TABLE_KINDS), message


@pytest.mark.parametrize(
    ("table", "header", "column"),
    [
        ("transactions", "Transaction ID", "transaction_id"),
        ("transactions", "transactionId", "transaction_id"),
        ("transactions", "Product", None),  # the same name in another case is read: no note
        ("accounts", "Created At", "created_at"),
        ("accounts", "contractEnd", "contract_end"),
        ("activities", "KIND", None),
        ("activities", "Kind ", None),
    ],
)
def test_an_optional_column_spelled_otherwise_is_noted_with_the_mapping_to_set(
    backend, write_csv, table, header, column
):
    """A CRM's "Transaction ID" or "Created At" was silently not read (no dedup, no account age), while a
    required column spelled so got a hint: a note now names the column and the data.columns mapping."""
    value = {"Transaction ID": "t1", "transactionId": "t1", "Created At": "2023-01-01"}.get(header, "x")
    files = {"transactions": write_csv("tx.csv", "account_id,ts,amount\n1,2024-01-01,1\n")}
    extra = {
        "transactions": ("account_id,ts,amount", "1,2024-01-02,2"),
        "accounts": ("account_id", "1"),
        "activities": ("account_id,ts,hours", "1,2024-01-01,1"),
    }[table]
    if header == "contractEnd":
        value = "2025-01-01"
    files[table] = write_csv(f"{table}.csv", f"{extra[0]},{header}\n{extra[1]},{value}\n")
    notes = [n for n in load_data(files, backend=backend).quality.notes if "looks like" in n.rule]
    if column is None:
        assert notes == []
        return
    (note,) = notes
    assert (note.table, note.column) == (table, header)
    assert f"kamml's optional column {column}" in note.rule
    assert f'data.columns: {{{table}: {{{column}: "{header}"}}}}' in note.rule


def test_a_referrals_header_spelled_otherwise_is_named_and_two_candidates_are_not_guessed(backend, write_csv):
    """Referrals have no optional column, but their required ones get the hint; where two columns squeeze
    to one contract name ("Transaction ID" and "transaction-id"), neither is named: no guessing."""
    tx = write_csv("tx.csv", "account_id,ts,amount\n1,2024-01-01,1\n2,2024-01-01,1\n")
    refs = write_csv("referrals.csv", "Referrer ID,referred_id,ts\n1,2,2024-01-01\n")
    (problem,) = _problems({"transactions": tx, "referrals": refs}, backend=backend)[
        ("referrals", "referrer_id")
    ]
    assert "'Referrer ID' looks like it" in problem.rule
    both = write_csv("tx2.csv", "account_id,ts,amount,Transaction ID,transaction-id\n1,2024-01-01,1,a,b\n")
    notes = load_data({"transactions": both}, backend=backend).quality.notes
    assert not [n for n in notes if "looks like" in n.rule]


def _amounts_csv(write_csv, name: str, sep: str, amounts: list[str], hours: list[str] | None = None):
    rows = [sep.join(["1", f"2024-01-{i % 28 + 1:02d}", a]) for i, a in enumerate(amounts)]
    return write_csv(name, sep.join(["account_id", "ts", "amount"]) + "\n" + "\n".join(rows) + "\n")


def test_whole_amounts_with_dot_thousands_in_a_semicolon_file_are_noted(backend, write_csv):
    """A European export writes 1.017 for 1,017: read as 1.017 without a word. A note now says so."""
    amounts = [f"{i}.{(i * 37) % 1000:03d}" for i in range(1, 25)] + ["950", "12"]
    data = load_data(
        {"transactions": _amounts_csv(write_csv, "tx.csv", ";", amounts)},
        DataConfig(csv_delimiter=";"),
        backend=backend,
    )
    (note,) = [n for n in data.quality.notes if "thousands" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("transactions", "amount", 24)
    assert "1.037" in note.examples
    assert "decimal point" in note.rule
    hours = [f"{i}.{(i * 37) % 1000:03d}" for i in range(1, 25)]
    rows = "".join(f"1;2024-01-{i % 28 + 1:02d};{h}\n" for i, h in enumerate(hours))
    acts = write_csv("activities.csv", "account_id;ts;hours\n" + rows)
    files = {"transactions": _amounts_csv(write_csv, "tx2.csv", ";", ["5"]), "activities": acts}
    data = load_data(files, DataConfig(csv_delimiter=";"), backend=backend)
    (note,) = [n for n in data.quality.notes if "thousands" in n.rule]
    assert (note.table, note.column) == ("activities", "hours")


@pytest.mark.parametrize(
    ("sep", "amounts"),
    [
        (";", [f"{i}.99" for i in range(1, 30)]),  # prices
        (";", [f"{i}.5" for i in range(1, 30)]),
        (";", [f"{i}.{i:03d}" for i in range(1, 10)] + ["3.5"] * 20),  # few of three decimals
        (";", [f"{i}.{i:03d}" for i in range(1, 12)]),  # too few values to tell
        (",", [f"{i}.{(i * 37) % 1000:03d}" for i in range(1, 30)]),  # three real decimals, comma file
        (";", [f"{i}123.456" for i in range(1, 30)]),  # four digits before the point: not grouping
    ],
)
def test_ordinary_decimals_give_no_thousands_note(backend, write_csv, sep, amounts):
    """Prices, halves, a few three-decimal values or a comma-delimited file are not taken for thousands."""
    data = load_data(
        {"transactions": _amounts_csv(write_csv, "tx.csv", sep, amounts)},
        DataConfig(csv_delimiter=sep),
        backend=backend,
    )
    assert not [n for n in data.quality.notes if "thousands" in n.rule]


def test_an_accounts_number_with_dot_thousands_in_a_semicolon_file_is_noted(backend, write_csv):
    """A European export's employees 1.200 (1,200) were read as 1.2 without a word; amounts had a note."""
    sizes = [f"{i}.{(i * 37) % 1000:03d}" for i in range(1, 25)] + ["950", "12"]
    accounts = write_csv(
        "acc.csv", "account_id;employees\n" + "".join(f"{i};{s}\n" for i, s in enumerate(sizes))
    )
    files = {"transactions": _amounts_csv(write_csv, "tx.csv", ";", ["5"]), "accounts": accounts}
    data = load_data(files, DataConfig(csv_delimiter=";"), backend=backend)
    (note,) = [n for n in data.quality.notes if "thousands" in n.rule]
    assert (note.table, note.column, note.n_rows) == ("accounts", "employees", 24)
    assert "1.037" in note.examples
    assert data.accounts.execute()["employees"].dtype == "float64"  # read as before: a note, not a change


def test_an_accounts_text_column_with_dotted_values_gives_no_thousands_note(backend, write_csv):
    """Values read as text (a version '1.200' beside 'n/a') are a category, not decimals: no note."""
    values = [f"{i}.{(i * 37) % 1000:03d}" for i in range(1, 25)] + ["n/a"]
    accounts = write_csv(
        "acc.csv", "account_id;version\n" + "".join(f"{i};{s}\n" for i, s in enumerate(values))
    )
    files = {"transactions": _amounts_csv(write_csv, "tx.csv", ";", ["5"]), "accounts": accounts}
    data = load_data(files, DataConfig(csv_delimiter=";"), backend=backend)
    assert not [n for n in data.quality.notes if "thousands" in n.rule]


def test_a_header_line_repeated_in_the_accounts_file_is_refused(backend, write_csv):
    """Two exports joined: the accounts' second header was read as an account 'account_id' of segment
    'segment', and made every id text, without a word (the transactions' was refused by its ts)."""
    files = {
        "transactions": write_csv("tx.csv", "account_id,ts,amount\n1,2024-01-05,10\n2,2024-02-05,5\n"),
        "accounts": write_csv("acc.csv", "Customer,segment\n1,smb\nCustomer,segment\n2,ent\n"),
    }
    with pytest.raises(SchemaError) as caught:
        load_data(files, DataConfig(columns={"accounts": {"account_id": "Customer"}}), backend=backend)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("accounts", "Customer", 1)
    assert "header line repeated" in problem.rule
    assert problem.rule.count("header line") == 1
    assert problem.examples == ("Customer",)


def test_spreadsheet_serial_days_as_dates_are_named_with_the_fix(backend, write_csv):
    """Excel's 45123 for 2023-07-16 was only an 'unparseable date': the error now says what it is."""
    path = write_csv("tx.csv", "account_id,ts,amount\n1,45123,10\n2,45124.5,5\n")
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": path}, backend=backend)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("transactions", "ts", 2)
    assert "serial days" in problem.rule
    assert 'origin="1899-12-30"' in problem.rule


@pytest.mark.parametrize("amount", ["12.50-", "(12.50)"])
def test_a_refund_written_with_a_trailing_minus_or_in_parentheses_is_named_with_the_fix(
    backend, write_csv, amount
):
    """Accounting exports write -12.50 as 12.50- or (12.50): refused, and now told to write -12.50."""
    path = write_csv("tx.csv", f'account_id,ts,amount\n1,2024-01-05,10\n2,2024-02-05,"{amount}"\n')
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": path}, backend=backend)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("transactions", "amount", 1)
    assert "leading minus (-12.50)" in problem.rule


def test_other_unparseable_values_get_no_refund_or_serial_day_hint(backend, write_csv):
    """Words and ISO-like dates that do not parse are not taken for refunds or serial days."""
    path = write_csv("tx.csv", "account_id,ts,amount\n1,2024-02-30,n/a\n2,123,5\n")
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": path}, backend=backend)
    rules = " ".join(p.rule for p in caught.value.problems)
    assert "serial days" not in rules
    assert "leading minus" not in rules
