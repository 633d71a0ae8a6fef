"""The validation fuzz's kinds of input on Spark: read or refused as on DuckDB, with the same notes.

Hand-chosen cases of the hypothesis strategies in tests/data/test_validation.py (text in number columns,
numbers in date columns, mixed id types, wrong Parquet types, empty tables, nulls), each as a frame, a
Parquet file or a CSV file, loaded on DuckDB and on one shared local[2] Spark session.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.data import load_data
from kamml.errors import KammlError, SchemaError

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _tx(**columns: Any) -> pd.DataFrame:
    base: dict[str, Any] = {"account_id": [1, 2, 1], "ts": ["2024-01-01", "2024-01-02", "2024-01-03"]}
    base["amount"] = [1.0, 2.0, 3.0]
    base.update(columns)
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in base.items()})


def _arrow_tx(**columns: pa.Array) -> pa.Table:
    base = {
        "account_id": pa.array([1, 2, 1], pa.int64()),
        "ts": pa.array([dt.datetime(2024, 1, 1 + i) for i in range(3)], pa.timestamp("us")),
        "amount": pa.array([1.0, 2.0, 3.0]),
    }
    return pa.table({**base, **columns})


def _activities(**columns: pa.Array) -> pa.Table:
    base = {
        "account_id": pa.array([1, 2], pa.int64()),
        "ts": pa.array([dt.datetime(2024, 1, 1)] * 2, pa.timestamp("us")),
        "hours": pa.array([1.0, 0.5]),
    }
    return pa.table({**base, **columns})


CASES: dict[str, dict[str, pd.DataFrame | pa.Table]] = {
    "valid": {"transactions": _tx()},
    "text amounts": {"transactions": _tx(amount=["12.50 EUR", "1_000", "3"])},
    "inf, padded and empty amounts": {"transactions": _tx(amount=["inf", " 7 ", ""])},
    "epoch seconds as dates": {"transactions": _tx(ts=[1704067200, 1704153600, 1704240000])},
    "mixed id types": {"transactions": _tx(account_id=[1, "2", " 3"])},
    "text ids and a null marker": {"transactions": _tx(account_id=["x", "2", "NULL"])},
    "nulls": {"transactions": _tx(account_id=[None, 2, 1], ts=[None, "2024-01-01", "2024-01-02"])},
    "yes/no amounts": {"transactions": _tx(amount=[True, False, True])},
    "ids beyond int64": {"transactions": _tx(account_id=[2**70, 1, 2])},
    "aware and naive dates": {
        "transactions": _tx(ts=[dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "2024-01-02", "2024-01-03"])
    },
    "offsets": {"transactions": _tx(ts=["2024-01-05T10:00:00+01:00", "2024-01-05 10:00Z", "2024-01-06Z"])},
    "dates as days": {"transactions": _arrow_tx(ts=pa.array([dt.date(2024, 1, 1 + i) for i in range(3)]))},
    "int32 amounts, null quantities": {
        "transactions": _arrow_tx(amount=pa.array([1, 2, 3], pa.int32()), quantity=pa.array([1.5, None, 2.0]))
    },
    "bytes and lists": {
        "transactions": _arrow_tx(product=pa.array([b"ab"] * 3), quantity=pa.array([[1, 2]] * 3))
    },
    "untyped null dates": {"transactions": _arrow_tx(ts=pa.nulls(3))},
    "a column twice in two cases": {"transactions": _arrow_tx(AMOUNT=pa.array(["s0", "s1", "s2"]))},
    "four tables, text and whole ids": {
        "transactions": _arrow_tx(),
        "accounts": pa.table({"account_id": ["a1", "a2"], "owner": ["o", None], "size": [1.0, 2.0]}),
        "referrals": pa.table(
            {
                "referrer_id": pa.array([1], pa.int64()),
                "referred_id": pa.array([2], pa.int64()),
                "ts": pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us")),
            }
        ),
        "activities": _activities(kind=pa.array(["call", "mail"])),
    },
    "four tables of wrong types": {
        "transactions": _arrow_tx(),
        "accounts": pa.table({"account_id": [1, 2], "created_at": [True, False], "size": [[1], [2]]}),
        "referrals": pa.table({"referrer_id": ["a1"], "referred_id": [2.5], "ts": [dt.date(2024, 1, 2)]}),
        "activities": _activities(ts=pa.array(["2024-01-01", "x"]), hours=pa.array(["1", "-2"])),
    },
    "four tables, three empty": {
        "transactions": _arrow_tx(),
        "accounts": pa.table({"account_id": pa.array([], pa.int64()), "size": pa.array([], pa.float64())}),
        "referrals": pa.table({"referrer_id": pa.nulls(0), "referred_id": pa.nulls(0), "ts": pa.nulls(0)}),
        "activities": _activities().slice(0, 0),
    },
    # the hour a DST change repeats: DuckDB reads the later instant (standard time), Spark read the earlier
    "local times a DST change repeats": {
        "transactions": _arrow_tx(
            ts=pa.array(
                [
                    "2025-10-26 02:30:00 Europe/Berlin",
                    "2024-11-03 01:30:00.5 America/New_York",
                    "2025-10-26 01:30:00 Antarctica/Troll",
                ]
            )
        )
    },
    "optional columns of only nulls": {
        "transactions": _arrow_tx(product=pa.nulls(3)),
        "accounts": pa.table(
            {
                "account_id": [1, 2],
                "created_at": pa.nulls(2),
                "contract_end": pa.nulls(2),
                "owner": pa.nulls(2),
            }
        ),
        "activities": _activities(kind=pa.nulls(2)),
    },
    "a referral of an account that bought before it": {
        "transactions": _arrow_tx(),
        "referrals": pa.table(
            {
                "referrer_id": pa.array([1], pa.int64()),
                "referred_id": pa.array([2], pa.int64()),
                "ts": pa.array([dt.datetime(2024, 1, 3)], pa.timestamp("us")),
            }
        ),
    },
    "a referral made before its referrer was an account": {
        "transactions": _arrow_tx(),
        # 1 was created before its referral: an account whose purchases came later, not noted
        "accounts": pa.table(
            {
                "account_id": pa.array([1, 2], pa.int64()),
                "created_at": pa.array([dt.datetime(2023, 11, 1), None], pa.timestamp("us")),
            }
        ),
        "referrals": pa.table(
            {
                "referrer_id": pa.array([2, 2, 1], pa.int64()),
                "referred_id": pa.array([1, 1, 2], pa.int64()),
                "ts": pa.array(
                    [dt.datetime(2024, 1, 1, 12), dt.datetime(2023, 12, 1), dt.datetime(2023, 12, 1)],
                    pa.timestamp("us"),
                ),
            }
        ),
    },
    "referrals naming no known account": {
        "transactions": _arrow_tx(),
        "referrals": pa.table(
            {
                "referrer_id": pa.array([7], pa.int64()),
                "referred_id": pa.array([8], pa.int64()),
                "ts": pa.array([dt.datetime(2024, 1, 2)], pa.timestamp("us")),
            }
        ),
    },
}

RUNS = [
    *((case, "frame") for case in list(CASES)[:11]),
    *((case, "parquet") for case in list(CASES)[11:]),
    *(
        (case, "csv")
        for case in ["valid", "mixed id types", "four tables of wrong types", "a column twice in two cases"]
    ),
    ("optional columns of only nulls", "frame"),
]


def _sources(case: dict[str, pd.DataFrame | pa.Table], form: str, folder: Path) -> dict[str, Any]:
    """The tables as frames, Parquet files (microsecond times, which Spark reads) or CSV files."""
    out: dict[str, Any] = {}
    for name, table in case.items():
        frame = table.to_pandas() if isinstance(table, pa.Table) else table
        if form == "frame":
            out[name] = frame
            continue
        path = folder / f"{name}.{form}"
        if form == "parquet":
            assert isinstance(table, pa.Table)
            pq.write_table(table, path)
        else:
            frame.to_csv(path, index=False)
        out[name] = path
    return out


def _outcome(source: dict[str, Any], backend: ibis.BaseBackend) -> tuple:
    """What a load gives, comparable across engines: the typed tables and notes, or what is refused."""
    try:
        data = load_data(source, backend=backend)
    except SchemaError as exc:
        return "refused", sorted({(p.table, p.column) for p in exc.problems})
    except KammlError as exc:
        return "refused", type(exc).__name__, [name for name in CASES_TABLES if name in str(exc)]
    tables = {}
    for name in CASES_TABLES:
        table = getattr(data, name)
        if table is not None:
            types = {c: "timestamp" if t.is_timestamp() else str(t) for c, t in table.schema().items()}
            rows = table.execute().astype(str)
            tables[name] = types, sorted(map(tuple, rows.to_numpy().tolist()))
    notes = sorted((n.table, n.column, n.rule, n.n_rows) for n in data.quality.notes)
    return "read", tables, notes, data.end


CASES_TABLES = ("transactions", "accounts", "referrals", "activities")


@pytest.mark.parametrize(("case", "form"), RUNS, ids=[f"{c} [{f}]" for c, f in RUNS])
def test_spark_reads_or_refuses_as_duckdb(engines, tmp_path, case, form):
    """Same outcome on both engines: the same typed rows and notes, or refusals naming the same columns."""
    source = _sources(CASES[case], form, tmp_path)
    duck, spark = (_outcome(source, backend) for backend in engines)
    assert spark == duck


def test_required_columns_of_only_untyped_nulls_are_said_to_be_empty_on_both_engines(engines, tmp_path):
    """A required column pyarrow wrote with Parquet's null type (only nulls) was a 'wrong type' on both
    engines, 'got unknown(... NULL)' on DuckDB and 'got null' on Spark: neither said it holds no values."""
    pq.write_table(_arrow_tx(ts=pa.nulls(3), amount=pa.nulls(3)), tmp_path / "transactions.parquet")
    for backend in engines:
        with pytest.raises(SchemaError) as caught:
            load_data(tmp_path, backend=backend)
        rules = {(p.table, p.column): p.rule for p in caught.value.problems}
        assert set(rules) == {("transactions", "ts"), ("transactions", "amount")}, backend.name
        for rule in rules.values():
            assert rule.startswith("required column is empty: it holds only nulls"), (backend.name, rule)


def test_a_csv_column_twice_in_two_cases_is_one_problem_on_both_engines(engines, tmp_path):
    """Spark's CSV reader renames duplicated names (amount2, AMOUNT3): beside the duplicated column name
    it gave a 'missing required column; columns found: account_id, ts, amount2, AMOUNT3' DuckDB did not."""
    path = tmp_path / "transactions.csv"
    path.write_text("account_id,ts,amount,AMOUNT\n1,2024-01-01,1.0,x\n2,2024-01-02,2.0,y\n")
    messages = []
    for backend in engines:
        with pytest.raises(SchemaError) as caught:
            load_data({"transactions": path}, backend=backend)
        messages.append([str(p) for p in caught.value.problems])
    duck, spark = messages
    assert len(duck) == 1, duck
    assert "duplicated column name" in duck[0]
    assert spark == duck


def test_a_csv_column_without_a_name_is_no_attribute_on_spark_as_on_duckdb(engines, tmp_path):
    """Spark named an empty header field _c2: an accounts attribute (attr__c2) without the note DuckDB's
    unnamed_3 gets, so a spreadsheet's trailing column was a feature on Spark only."""
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-01,1.0\n2,2024-01-02,2.0\n")
    (tmp_path / "accounts.csv").write_text("account_id,size,\n1,3,9\n2,4,\n")
    seen = []
    for backend in engines:
        data = load_data(tmp_path, backend=backend)
        notes = sorted((n.table, n.column) for n in data.quality.notes)
        seen.append((list(data.accounts.columns), notes))
    duck, spark = seen
    assert duck == (["account_id", "size"], [("accounts", "unnamed_3")])
    assert spark == duck


def test_example_ids_and_refunds_come_in_one_order_on_both_engines(engines, tmp_path):
    """Examples are sorted by number in the query (ids of digits, refunds), so both engines show the
    same five: a CSV's text sorted "10" and "100" before "9"."""
    ids = ["10", "9", "100", "2", "30", "7"]
    rows = "".join(f"1,2024-01-0{i + 1},-{t},{t}\n" * 2 for i, t in enumerate(ids))
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount,transaction_id\n" + rows)
    (tmp_path / "accounts.csv").write_text("account_id,segment\n" + "".join(f"{a},x\n" * 2 for a in ids))
    for backend in engines:
        with pytest.raises(SchemaError) as info:
            load_data(tmp_path, backend=backend)
        (problem,) = [p for p in info.value.problems if p.rule.startswith("duplicate account ids")]
        assert problem.examples == ("2", "7", "9", "10", "30")
    (tmp_path / "accounts.csv").unlink()
    for backend in engines:
        notes = {
            n.rule.split(" (")[0]: n.examples for n in load_data(tmp_path, backend=backend).quality.notes
        }
        assert notes["duplicate transaction ids"] == ("2", "7", "9", "10", "30")
        assert notes["refunds or credits"] == ("-100", "-30", "-10", "-9", "-7")


def test_frame_uint64_ids_beyond_int64_are_refused_alike_on_both_engines(engines):
    """A frame's uint64 account_id above 2**63 - 1 was read as text codes on both engines, where a
    Parquet file of it is refused: now refused in one wording on both (an ids audit)."""
    import numpy as np

    from kamml.io import OUTSIDE_INT64_RULE

    frame = pd.DataFrame(
        {
            "account_id": np.array([1, 2**63, 2**64 - 1], dtype=np.uint64),
            "ts": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    for backend in engines:
        with pytest.raises(SchemaError) as caught:
            load_data({"transactions": frame}, backend=backend)
        (problem,) = caught.value.problems
        assert (problem.column, problem.rule, problem.n_rows) == ("account_id", OUTSIDE_INT64_RULE, 2)
        assert [str(e) for e in problem.examples] == [str(2**63), str(2**64 - 1)]
