"""Every reader (frame, CSV, Parquet file, Parquet folder, glob, Ibis table) and frame normalisation."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import re
import shutil

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.data import load_data, read_table
from kamml.data.readers import find_table_source, frame_to_arrow
from kamml.errors import DataError, SchemaError


def _rows(table: ibis.Table) -> list[tuple]:
    frame = table.to_pyarrow().to_pandas()
    return sorted(map(tuple, frame.astype(str).to_numpy().tolist()))


def test_frame_is_registered_on_the_backend(backend, tx):
    table = read_table(tx, "transactions", backend)
    assert table.get_backend() is backend
    assert table.count().execute() == len(tx)
    assert list(table.columns) == list(tx.columns)


def test_csv_is_read_as_text(backend, write_csv):
    path = write_csv("t.csv", "account_id,ts,amount\n1,2024-01-05,10.5\n2,2024-01-06,abc\n")
    table = read_table(path, "transactions", backend)
    assert all(table.schema()[c].is_string() for c in table.columns)
    assert _rows(table) == [("1", "2024-01-05", "10.5"), ("2", "2024-01-06", "abc")]


def test_csv_delimiter_and_bom(backend, write_csv):
    path = write_csv("t.csv", "\ufeffaccount_id;ts;amount\n1;2024-01-05;3\n")
    table = read_table(path, "transactions", backend, delimiter=";")
    assert list(table.columns) == ["account_id", "ts", "amount"]


def test_gzipped_csv(backend, tmp_path):
    import gzip

    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("account_id,ts,amount\n1,2024-01-05,3\n")
    assert read_table(path, "transactions", backend).count().execute() == 1


def test_parquet_keeps_its_types(backend, tmp_path, tx):
    path = tmp_path / "t.parquet"
    tx.to_parquet(path)
    table = read_table(path, "transactions", backend)
    schema = table.schema()
    assert schema["account_id"].is_integer()
    assert schema["ts"].is_timestamp()
    assert schema["amount"].is_floating()


def test_parquet_of_time_zone_aware_nanoseconds_is_read_as_utc(backend, tmp_path, tx):
    """pandas writes a tz-aware column as timestamp[ns, tz]: DuckDB's TIMESTAMPTZ_NS, unknown to Ibis."""
    zoned = tx.assign(ts=tx["ts"].dt.tz_localize("Europe/Berlin"))
    assert str(zoned["ts"].dtype) == "datetime64[ns, Europe/Berlin]"
    zoned.to_parquet(tmp_path / "transactions.parquet")
    got = load_data(tmp_path, backend=backend).to_pandas("transactions")
    expected = zoned["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert got["ts"].tolist() == expected.tolist()  # 2024-01-05 00:00 in Berlin is 01-04 23:00 UTC


def test_parquet_folder_and_glob_read_every_part(backend, tmp_path, tx):
    folder = tmp_path / "transactions"
    (folder / "year=2023").mkdir(parents=True)
    (folder / "year=2024").mkdir(parents=True)
    tx.iloc[:2].to_parquet(folder / "year=2023" / "part-0.parquet")
    tx.iloc[2:].to_parquet(folder / "year=2024" / "part-1.parquet")
    for source in (folder, str(folder / "*"), str(folder / "year=*" / "*.parquet")):
        table = read_table(source, "transactions", backend)
        assert table.count().execute() == len(tx)
        assert list(table.columns) == [*tx.columns, "year"]
    flat = tmp_path / "flat"
    flat.mkdir()
    tx.iloc[:2].to_parquet(flat / "a.parquet")
    tx.iloc[2:].to_parquet(flat / "b.parquet")
    assert read_table(str(flat / "*.parquet"), "transactions", backend).count().execute() == len(tx)


def test_csv_glob_needs_one_header(backend, write_csv):
    write_csv("p/a.csv", "account_id,ts,amount\n1,2024-01-05,3\n")
    b = write_csv("p/b.csv", "account_id,ts,amount\n2,2024-01-06,4\n")
    assert read_table(str(b.parent / "*.csv"), "transactions", backend).count().execute() == 2
    write_csv("p/c.csv", "account_id,amount,ts\n2,4,2024-01-06\n")
    with pytest.raises(DataError, match="different headers"):
        read_table(str(b.parent / "*.csv"), "transactions", backend)


def test_ibis_table_on_the_same_backend_is_used_as_is(backend, tx):
    table = backend.create_table("user_tx", tx, overwrite=True)
    assert read_table(table, "transactions", backend) is table


def test_ibis_table_on_another_backend_is_copied(backend, tx):
    other = ibis.duckdb.connect()
    table = other.create_table("user_tx", tx)
    copied = read_table(table, "transactions", backend)
    assert copied.get_backend() is backend
    assert copied.count().execute() == len(tx)
    memtable = read_table(ibis.memtable(tx), "transactions", backend)
    assert memtable.get_backend() is backend


def test_load_data_uses_the_backend_of_an_ibis_table(tx):
    con = ibis.duckdb.connect()
    data = load_data({"transactions": con.create_table("t", tx)})
    assert data.backend is con


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("missing.csv", "file not found"),
        ("nothing-*.parquet", "no file matches"),
        ("t.json", "not a format kamml reads"),
    ],
)
def test_unreadable_sources_are_data_errors(backend, tmp_path, source, match):
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(DataError, match=match):
        read_table(
            tmp_path / source if "*" not in source else str(tmp_path / source), "transactions", backend
        )


def test_unsupported_object_is_a_data_error(backend):
    with pytest.raises(DataError, match="cannot read a list"):
        read_table([1, 2], "transactions", backend)


def test_empty_folder_and_mixed_formats(backend, tmp_path, tx):
    folder = tmp_path / "parts"
    folder.mkdir()
    with pytest.raises(DataError, match=r"holds no table files \(\.parquet, "):
        read_table(folder, "transactions", backend)
    tx.to_parquet(tmp_path / "a.parquet")
    tx.to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match="mixes Parquet and CSV"):
        read_table(str(tmp_path / "a.*"), "transactions", backend)
    tx.to_parquet(folder / "a.parquet")
    tx.to_csv(folder / "b.csv", index=False)  # the CSV part was dropped without a word
    with pytest.raises(DataError, match=r"both Parquet \(a\.parquet, \.\.\.\) and CSV \(b\.csv"):
        read_table(folder, "transactions", backend)


def test_tab_and_comma_parts_of_one_table_are_refused_by_name(backend, write_csv):
    """A .tsv part beside a .csv part was read at commas and refused as "different headers" (tabs unseen)."""
    write_csv("tx/part-0.csv", "account_id,ts,amount\n1,2024-01-05,3\n")
    tsv = write_csv("tx/part-1.tsv", "account_id\tts\tamount\n2\t2024-01-06\t4\n")
    for source in (tsv.parent, str(tsv.parent / "part-*")):
        with pytest.raises(DataError) as caught:
            read_table(source, "transactions", backend)
        assert str(caught.value) == (
            f"transactions: {source} mixes tab-separated (part-1.tsv) and comma-separated (part-0.csv) "
            "files: a table's files must be of one kind, read at one delimiter; export them all as .tsv or "
            "all as .csv"
        )
    write_csv("tx/part-0.csv", "account_id;ts;amount\n1;2024-01-05;3\n")  # data.csv_delimiter: for any ending
    write_csv("tx/part-1.tsv", "account_id;ts;amount\n2;2024-01-06;4\n")
    assert read_table(tsv.parent, "transactions", backend, delimiter=";").count().execute() == 2


def test_duplicated_frame_columns_are_a_schema_error(backend):
    frame = pd.DataFrame([[1, 2, 3]], columns=["account_id", "Account_ID", "ts"])
    with pytest.raises(SchemaError, match="duplicated column name") as caught:
        read_table(frame, "transactions", backend)
    assert caught.value.problems[0].column == "account_id"


def test_find_table_source(tmp_path):
    assert find_table_source(tmp_path, "transactions") is None
    (tmp_path / "accounts.csv").write_text("account_id\n1\n")
    assert find_table_source(tmp_path, "accounts") == tmp_path / "accounts.csv"
    (tmp_path / "accounts").mkdir()
    with pytest.raises(DataError, match="more than one source"):
        find_table_source(tmp_path, "accounts")


# --- frame normalisation: pyarrow must never fail, odd values become text the validator can judge ------


def test_frame_to_arrow_normalises_odd_columns():
    frame = pd.DataFrame(
        {
            "mixed": [1, "a", None],
            "aware": pd.to_datetime(["2024-01-01 10:00"] * 3).tz_localize("Europe/Berlin"),
            "mixed_tz": [
                pd.Timestamp("2024-01-01 10:00", tz="Europe/Berlin"),
                pd.Timestamp("2024-01-01 10:00", tz="America/New_York"),
                None,
            ],
            "naive_and_aware": [pd.Timestamp("2024-01-01 10:00", tz="UTC"), pd.Timestamp("2024-01-01"), None],
            "category": pd.Categorical(["x", "y", "x"]),
            "empty": [None, None, None],
            "half": np.array([1, 2, 3], dtype=np.float16),
            "huge": np.array([1, 2, 2**64 - 1], dtype=np.uint64),
            "complex": [1 + 2j, 0j, 1j],
            "delta": pd.to_timedelta([1, 2, 3], unit="D"),
            "decimal": [decimal.Decimal("1.5"), None, decimal.Decimal("2")],
            "dates": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None],
            "lists": [[1], [2, 3], None],
        }
    )
    frame.index.name = "account_id"
    arrow, problems = frame_to_arrow(frame)
    assert problems == []
    types = dict(zip(arrow.schema.names, arrow.schema.types, strict=True))
    assert arrow.schema.names[0] == "account_id"  # a named index becomes a column
    assert types["mixed"] == pa.string()
    assert arrow.column("mixed").to_pylist() == ["1", "a", None]
    assert types["aware"] == pa.timestamp("ns")
    assert arrow.column("aware").to_pylist()[0] == dt.datetime(2024, 1, 1, 9, 0)
    assert types["mixed_tz"] == pa.timestamp("ns")
    assert arrow.column("mixed_tz").to_pylist()[:2] == [
        dt.datetime(2024, 1, 1, 9),
        dt.datetime(2024, 1, 1, 15),
    ]
    assert types["naive_and_aware"] == pa.string()  # left for the validator to report as mixed time zones
    assert types["category"] == pa.string()
    assert types["empty"] == pa.string()
    assert types["half"] == pa.float64()
    assert types["huge"] == pa.string()
    for name in ("complex", "delta", "lists"):
        assert types[name] == pa.string()
    assert pa.types.is_decimal(types["decimal"])
    assert types["dates"] == pa.timestamp("ns")


def test_frame_to_arrow_names():
    frame = pd.DataFrame([[1, 2, 3, 4]], columns=[0, " amount ", "", ("a", "b")])
    arrow, _ = frame_to_arrow(frame)
    assert arrow.schema.names == ["0", "amount", "unnamed_2", "a b"]


def test_nan_in_a_float_frame_is_null_and_inf_stays(backend):
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf]})
    table = read_table(frame, "transactions", backend)
    assert table.x.isnull().sum().execute() == 1
    assert table.x.isinf().sum().execute() == 1


def test_parquet_with_duplicated_field_names_is_a_schema_error(backend, tmp_path):
    arrays = [pa.array([1]), pa.array(["2024-01-01"]), pa.array([1.0]), pa.array([2.0])]
    pq.write_table(
        pa.Table.from_arrays(arrays, names=["account_id", "ts", "amount", "amount"]), tmp_path / "t.parquet"
    )
    with pytest.raises(SchemaError, match="duplicated column name"):
        read_table(tmp_path / "t.parquet", "transactions", backend)


def test_parquet_parts_naming_a_column_with_other_spaces_are_a_schema_error(backend, tmp_path):
    """One part's "quantity " beside another's "quantity" were two columns, each null in the other's rows:
    one was read, the other dropped, so a purchase's 5 units became 1 with no word."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    base = {"account_id": [1], "ts": ["2024-01-02"], "amount": [10.0]}
    pq.write_table(pa.table({**base, "quantity": [5.0]}), folder / "part-0.parquet")
    pq.write_table(pa.table({**base, "quantity ": [7.0]}), folder / "part-1.parquet")
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": folder}, backend=backend)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column) == ("transactions", "quantity")
    assert problem.rule.startswith("duplicated column name")
    assert "parts spell it differently" in problem.rule
    # the same in an Ibis table: one of the two columns was read, the other dropped
    backend.raw_sql(
        "CREATE TEMP TABLE spaced AS SELECT 1 AS account_id, DATE '2024-01-02' AS ts, 10.0 AS amount, "
        '5.0 AS quantity, 7.0 AS "Quantity "'
    )
    with pytest.raises(SchemaError, match="duplicated column name"):
        load_data({"transactions": backend.table("spaced")}, backend=backend)


def _zone_parts(folder, *types: pa.DataType) -> None:
    """Write one transactions part per Arrow type of ts (a date type as the day; the rest 10:00 of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, kind in enumerate(types):
        moment = pd.Timestamp("2024-01-02 10:00", tz=getattr(kind, "tz", None))
        ts = pa.array([moment.date() if pa.types.is_date(kind) else moment], kind)
        pq.write_table(
            pa.table({"account_id": [i + 1], "ts": ts, "amount": [10.0]}), folder / f"part-{i}.parquet"
        )


@pytest.mark.parametrize("zone", ["UTC", "+02:00"])
@pytest.mark.parametrize("naive", [pa.timestamp("us"), pa.date32()])
def test_parquet_parts_disagreeing_on_a_columns_time_zone_are_a_schema_error(backend, tmp_path, zone, naive):
    """Two exports of one table from systems set up differently: DuckDB read a zoned part's 10:00+02:00 as
    08:00 UTC and a naive part's 10:00 (or a date's midnight) as UTC, without a word, as a text column
    mixing offsets and none is refused; the naive part's times may be local ones."""
    folder = tmp_path / "transactions"
    _zone_parts(folder, pa.timestamp("us", tz=zone), naive, pa.timestamp("us", tz=zone))
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": folder}, backend=backend)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column) == ("transactions", "ts")
    assert f"the Parquet parts of {folder} disagree on its time zone" in problem.rule
    assert f"2 time-zone-aware (part-0.parquet, part-2.parquet: timestamp[us, tz={zone}])" in problem.rule
    assert f"1 without a zone (part-1.parquet: {naive})" in problem.rule
    assert "all time-zone-aware or all naive" in problem.rule
    # a glob of the same parts is the same table
    with pytest.raises(SchemaError, match="disagree on its time zone"):
        load_data({"transactions": str(folder / "*.parquet")}, backend=backend)


@pytest.mark.spark
def test_parquet_parts_disagreeing_on_a_columns_time_zone_are_the_same_schema_error_on_spark(tmp_path):
    """Spark refused the parts as a type it cannot merge, pointing to DuckDB, which read them silently."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    _zone_parts(folder, pa.timestamp("us", tz="UTC"), pa.timestamp("us"))
    with pytest.raises(
        SchemaError, match=r"transactions\.ts: the Parquet parts of .* disagree on its time zone"
    ):
        load_data({"transactions": folder}, backend=connect(EngineConfig(name="spark")))


@pytest.mark.spark
def test_parquet_parts_zoned_in_different_zones_are_read_alike_on_spark(tmp_path):
    """Spark reads both as instants, but kamml refused them as types Spark cannot merge (UTC, +02:00)."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    _zone_parts(folder, pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="+02:00"))
    expected = [pd.Timestamp("2024-01-02 10:00"), pd.Timestamp("2024-01-02 08:00")]
    for engine in (connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)):
        read = load_data({"transactions": folder}, backend=engine).transactions.order_by("account_id")
        assert read.execute()["ts"].tolist() == expected


def _unread_zone_parts(folder, *types: pa.DataType, name: str = "exported_at", ts: str = "ts") -> None:
    """Write one transactions part per Arrow type of column `name`, which kamml does not read (10:00 UTC)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, kind in enumerate(types):
        moment = pd.Timestamp("2024-01-02 10:00", tz=getattr(kind, "tz", None))
        stamp = pa.array([moment.date() if pa.types.is_date(kind) else moment], kind)
        columns = {"account_id": [i + 1], ts: [dt.datetime(2024, 1, 3, 9)], "amount": [10.0], name: stamp}
        pq.write_table(pa.table(columns), folder / f"part-{i}.parquet")


@pytest.mark.parametrize("naive", [pa.timestamp("us"), pa.date32()])
def test_parquet_parts_disagreeing_on_an_unread_columns_time_zone_are_read(backend, tmp_path, naive):
    """A column the contract does not use (an export's stamp) stopped the run as a broken contract,
    though kamml never reads its values; a contract column still is a SchemaError."""
    folder = tmp_path / "transactions"
    _unread_zone_parts(folder, pa.timestamp("us", tz="UTC"), naive)
    read = load_data({"transactions": folder}, backend=backend).transactions.order_by("account_id")
    assert read.execute()["account_id"].tolist() == [1, 2]
    assert read.execute()["ts"].tolist() == [pd.Timestamp("2024-01-03 09:00")] * 2


def test_parquet_parts_disagreeing_on_a_mapped_columns_time_zone_follow_the_mapping(backend, tmp_path):
    """The columns kamml reads are the mapped ones: event_time read as ts is checked, a column named ts
    that the mapping leaves unread is not."""
    from kamml.config import Config

    folder = tmp_path / "transactions"
    _unread_zone_parts(folder, pa.timestamp("us", tz="UTC"), pa.timestamp("us"), name="ts", ts="event_time")
    mapped = Config.from_dict({"data": {"columns": {"transactions": {"ts": "event_time"}}}})
    read = load_data({"transactions": folder}, mapped, backend=backend).transactions
    assert read.count().execute() == 2
    plain = tmp_path / "plain"
    _unread_zone_parts(plain, pa.timestamp("us", tz="UTC"), pa.timestamp("us"), name="event_time")
    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": plain}, mapped, backend=backend)
    problems = [p for p in caught.value.problems if "disagree on its time zone" in p.rule]
    assert [(p.table, p.column) for p in problems] == [("transactions", "event_time")]


@pytest.mark.spark
def test_parquet_parts_disagreeing_on_an_unread_columns_time_zone_are_read_on_spark(tmp_path):
    """Spark cannot merge a zoned and a naive column, so kamml refused the parts over a column it does
    not read; it reads them as DuckDB does (the unread column's naive values taken as UTC)."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    # the last part adds a column, so Spark merges the parts' schemas
    _unread_zone_parts(folder, pa.timestamp("us", tz="UTC"), pa.timestamp("us"), pa.date32())
    pq.write_table(
        pa.table({"account_id": [4], "ts": [dt.datetime(2024, 1, 3, 9)], "amount": [10.0], "product": ["p"]}),
        folder / "part-3.parquet",
    )
    expected = [pd.Timestamp("2024-01-02 10:00")] * 2 + [pd.Timestamp("2024-01-02"), None]
    for engine in (connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)):
        raw = read_table(folder, "transactions", engine).order_by("account_id").to_pandas()
        assert raw["account_id"].tolist() == [1, 2, 3, 4]
        assert [None if pd.isna(v) else pd.Timestamp(v).tz_localize(None) for v in raw["exported_at"]] == (
            expected
        )
        read = load_data({"transactions": folder}, backend=engine).transactions.order_by("account_id")
        assert read.execute()["product"].tolist() == [None, None, None, "p"]


@pytest.mark.spark
@pytest.mark.parametrize("zone", ["UTC", None])
def test_parquet_parts_storing_a_timestamp_at_other_units_are_read_on_spark(tmp_path, zone):
    """Spark reads milliseconds and microseconds as one timestamp type (merged or not), but kamml refused
    the parts as types it cannot merge."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    moment = pd.Timestamp("2024-01-02 10:00:00.123", tz=zone)
    for merged in (False, True):  # a part adding a column makes Spark merge the parts' schemas
        folder = tmp_path / f"merged-{merged}"
        folder.mkdir()
        for i, unit in enumerate(["ms", "us", "ms"]):
            columns = {"account_id": [i + 1], "ts": pa.array([moment], pa.timestamp(unit, tz=zone))}
            columns |= {"amount": [10.0]} | ({"product": ["p"]} if merged and i == 2 else {})
            pq.write_table(pa.table(columns), folder / f"part-{i}.parquet")
        for engine in (connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)):
            read = load_data({"transactions": folder}, backend=engine).transactions.order_by("account_id")
            assert read.execute()["ts"].tolist() == [moment.tz_localize(None)] * 3


@pytest.mark.parametrize(
    ("types", "hours"),
    [
        ((pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="+02:00")), [10, 8]),  # instants, each in UTC
        ((pa.timestamp("us"), pa.timestamp("ms")), [10, 10]),
        ((pa.timestamp("us"), pa.date32()), [10, 0]),
    ],
    ids=["zoned", "naive", "naive-and-date"],
)
def test_parquet_parts_agreeing_on_a_columns_time_zone_are_read(backend, tmp_path, types, hours):
    folder = tmp_path / "transactions"
    _zone_parts(folder, *types)
    read = load_data({"transactions": folder}, backend=backend).transactions.order_by("account_id")
    assert read.execute()["ts"].tolist() == [
        pd.Timestamp("2024-01-02") + pd.Timedelta(hours=h) for h in hours
    ]


@pytest.mark.spark
def test_parquet_parts_storing_ts_as_dates_beside_naive_timestamps_are_read_alike_on_spark(tmp_path):
    """ts as a date in one part and a naive timestamp (us or ms) in others: DuckDB reads a timestamp (the
    date at midnight), while Spark cannot merge them and kamml refused the parts; a date beside a number in
    a column kamml reads stays refused."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    _zone_parts(folder, pa.timestamp("us"), pa.date32(), pa.timestamp("ms"))
    expected = [pd.Timestamp("2024-01-02") + pd.Timedelta(hours=h) for h in (10, 0, 10)]
    for engine in (connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)):
        read = load_data({"transactions": folder}, backend=engine).transactions.order_by("account_id")
        assert read.execute()["ts"].tolist() == expected, engine.name
    apart = tmp_path / "apart"
    _extra_parts(apart, pa.array([dt.date(2024, 1, 2)]), pa.array([1.5]), name="amount")
    with pytest.raises(DataError, match=r"disagree on column amount's type: .*part-0\.parquet has date32"):
        read_table(apart, "transactions", connect(EngineConfig(name="spark")))


def test_folder_skips_hidden_and_underscore_parts_as_spark_does(backend, tmp_path, tx):
    folder = tmp_path / "transactions"
    (folder / "_temporary" / "0").mkdir(parents=True)
    (folder / ".staging").mkdir()
    tx.to_parquet(folder / "part-0.parquet")
    tx.to_parquet(folder / "_temporary" / "0" / "part-0.parquet")  # a failed job's leftover
    tx.to_parquet(folder / ".staging" / "part-0.parquet")
    tx.to_parquet(folder / ".part-1.parquet")
    tx.to_parquet(folder / "_part-2.parquet")
    (folder / "_SUCCESS").write_text("")
    assert read_table(folder, "transactions", backend).count().execute() == len(tx)


def test_a_glob_skips_hidden_and_underscore_parts_as_a_folder_does(backend, tmp_path, tx):
    """``data/tx/*`` matched Spark's _SUCCESS and failed "neither Parquet nor CSV"; a folder it matches
    was dropped, where Spark reads its parts."""
    folder = tmp_path / "tx"
    (folder / "_temporary" / "0").mkdir(parents=True)
    (folder / "day=1").mkdir()
    (folder / "day=2").mkdir()
    tx.iloc[:2].to_parquet(folder / "day=1" / "part-0.parquet")
    tx.iloc[2:].to_parquet(folder / "day=2" / "part-1.parquet")
    tx.to_parquet(folder / "day=2" / "_part-9.parquet")
    tx.to_parquet(folder / "_temporary" / "0" / "part-0.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_bytes(b"crc")
    for pattern in ("*", "**", "**/*"):
        table = read_table(str(folder / pattern), "transactions", backend)
        assert table.count().execute() == len(tx), pattern
    with pytest.raises(DataError, match=r"no file matches .*_\*: names starting with _ or \. are not data"):
        read_table(str(folder / "_*"), "transactions", backend)


RULE = "a table's parts are either all in key=value folders (of the same keys) or none"


def test_parts_beside_partition_folders_are_refused(backend, tmp_path, tx):
    """part-0.parquet beside y=1/part-0.parquet: DuckDB read every row, Spark handed the folder only the
    partition's (and a y column), so rows were lost on Spark without a word; now both refuse."""
    folder = tmp_path / "transactions"
    (folder / "y=1").mkdir(parents=True)
    tx.iloc[:2].to_parquet(folder / "part-0.parquet")
    tx.iloc[2:].to_parquet(folder / "y=1" / "part-0.parquet")
    for source in (folder, str(folder / "*"), str(folder / "**" / "*.parquet")):
        with pytest.raises(DataError) as caught:
            read_table(source, "transactions", backend)
        message = str(caught.value)
        assert message.startswith("transactions: ")
        assert str(folder) in message
        assert "part-0.parquet and y=1/part-0.parquet" in message
        assert RULE in message


def test_partition_folders_of_other_keys_are_refused(backend, tmp_path, tx):
    """y=1/ beside m=2/, or y=1/ beside y=2/m=3/: DuckDB read the rows without either column, Spark refused
    ("conflicting partition column names"); both refuse alike, naming two folders and the rule."""
    folder = tmp_path / "transactions"
    for other in ("m=2", "y=2/m=3"):
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "y=1").mkdir(parents=True)
        (folder / other).mkdir(parents=True)
        tx.iloc[:2].to_parquet(folder / "y=1" / "part-0.parquet")
        tx.iloc[2:].to_parquet(folder / other / "part-0.parquet")
        with pytest.raises(DataError) as caught:
            read_table(folder, "transactions", backend)
        message = str(caught.value)
        assert "y=1/part-0.parquet" in message
        assert f"{other}/part-0.parquet" in message
        assert RULE in message
    shutil.rmtree(folder / "y=1")
    (folder / "y=2").rename(folder / "plain")  # plain/m=3/: below a plain folder, in neither layout
    with pytest.raises(DataError, match=rf"holds plain/m=3/part-0\.parquet: {re.escape(RULE)}"):
        read_table(folder, "transactions", backend)


def test_underscore_partition_folders_are_read_as_spark_reads_them(backend, tmp_path, tx):
    """Spark hides _x but keeps _x=v (a partitionBy("_y") table); kamml hid _y=1/ as a marker, so the two
    engines read different rows. A _y=1/ beside y=2/ is a partition folder of another key: refused."""
    folder = tmp_path / "transactions"
    (folder / "_y=1").mkdir(parents=True)
    (folder / "_y=2").mkdir()
    tx.iloc[:2].to_parquet(folder / "_y=1" / "part-0.parquet")
    tx.iloc[2:].to_parquet(folder / "_y=2" / "part-0.parquet")
    (folder / "_SUCCESS").write_text("")
    for source in (folder, str(folder / "*")):
        table = read_table(source, "transactions", backend)
        assert table.count().execute() == len(tx)
        assert list(table.columns) == [*tx.columns, "_y"]
    (folder / "_y=2").rename(folder / "y=2")
    with pytest.raises(DataError, match=rf"_y=1/part-0\.parquet and y=2/part-0\.parquet: {re.escape(RULE)}"):
        read_table(folder, "transactions", backend)


def test_partition_columns_come_only_from_folders_below_the_table(backend, tmp_path, tx):
    """DuckDB took every key=value folder of a path as a column (data/run=3/transactions/ gained a run
    column, y=1/part-0.parquet given directly a y), where Spark takes only those below the folder read."""
    folder = tmp_path / "run=3" / "transactions"
    (folder / "y=1").mkdir(parents=True)
    tx.to_parquet(folder / "y=1" / "part-0.parquet")
    for source, columns in (
        (folder, [*tx.columns, "y"]),
        (str(folder / "*"), [*tx.columns, "y"]),
        (folder / "y=1", list(tx.columns)),
        (folder / "y=1" / "part-0.parquet", list(tx.columns)),
        (str(folder / "y=1" / "*.parquet"), list(tx.columns)),
    ):
        assert list(read_table(source, "transactions", backend).columns) == columns, source


KEY_RULE = "a column is either a partition folder's key or a column inside the files, not both"


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("key", ["region", "Region", " REGION"])
def test_a_partition_key_that_is_also_a_file_column_is_refused(backend, tmp_path, tx, kind, key):
    """Files holding region in region=EU/: DuckDB (and Spark) put the folder's EU in every row, the
    files' own US lost without a word; Region=EU/ beside region failed in a raw IbisTypeError."""
    folder = tmp_path / "transactions"
    (folder / f"{key}=EU").mkdir(parents=True)
    (folder / "y=1" / "m=2").mkdir(parents=True)
    part = folder / f"{key}=EU" / f"part-0.{kind}"
    frame = tx.assign(region=["US", "US", "EU", "EU", "US"])
    frame.to_parquet(part) if kind == "parquet" else frame.to_csv(part, index=False)
    for source in (folder, str(folder / "*")):
        with pytest.raises(DataError) as caught:
            read_table(source, "transactions", backend)
        message = str(caught.value)
        assert message.startswith("transactions: ")
        assert f"{key}=EU/part-0.{kind}" in message
        assert "column region" in message
        assert KEY_RULE in message
    shutil.rmtree(folder / f"{key}=EU")  # the files' column beside a key of another name is read
    frame.to_parquet(folder / "y=1" / "m=2" / "part-0.parquet")
    table = read_table(folder, "transactions", backend)
    assert list(table.columns) == [*frame.columns, "y", "m"]
    assert sorted(table.region.execute()) == sorted(frame.region)


@pytest.mark.parametrize(("folders", "key"), [("y=1/y=2", "y"), ("y=1/Y=2", "y"), ("Y=1/Y=2", "Y")])
def test_a_partition_key_twice_in_a_path_is_refused(backend, tmp_path, tx, folders, key):
    """y=1/y=2/ or y=1/Y=2/: DuckDB failed in a raw Ibis error ("Duplicate column name 'y'"). The key is
    named as the path writes it (Y=1/Y=2/ was said to name key y twice)."""
    folder = tmp_path / "transactions"
    (folder / folders).mkdir(parents=True)
    tx.to_parquet(folder / folders / "part-0.parquet")
    with pytest.raises(
        DataError, match=rf"^transactions: .* {folders}/part-0\.parquet, whose path names key {key} twice"
    ):
        read_table(folder, "transactions", backend)


ABOVE_RULE = "a key=value folder above a table's folder names no column of the table"


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize(
    ("above", "column"),
    [("region=EU", "region"), ("Region=EU", "region"), ("y=0", "y"), ("Y=0", "y")],
    ids=["file-column", "file-column-case", "partition-key", "partition-key-case"],
)
def test_a_folder_above_the_table_naming_its_column_is_refused(backend, tmp_path, tx, kind, above, column):
    """data/region=EU/tx/y=1/ with files holding region (US) read EU in every row on DuckDB, and
    data/y=0/tx/y=1/ read y = 0: DuckDB takes the value of every key=value folder of a path, Spark only
    those below its basePath. Both refuse alike, naming the folder above, the column and the rule."""
    folder = tmp_path / above / "transactions"
    (folder / "y=1").mkdir(parents=True)
    part = folder / "y=1" / f"part-0.{kind}"
    frame = tx.assign(region="US")
    frame.to_parquet(part) if kind == "parquet" else frame.to_csv(part, index=False)
    for source in (folder, str(folder / "*"), str(folder / "y=*" / f"*.{kind}")):
        with pytest.raises(DataError) as caught:
            read_table(source, "transactions", backend)
        message = str(caught.value)
        assert message.startswith("transactions: "), message
        assert f"{above}/ in {folder}" in message
        assert f"column {column}" in message
        assert ABOVE_RULE in message
    # a folder above naming no column of the table is no column (docs/data.md), nor given alone
    (tmp_path / above).rename(tmp_path / "run=3")
    table = read_table(tmp_path / "run=3" / "transactions", "transactions", backend)
    assert list(table.columns) == [*frame.columns, "y"]
    assert set(table.region.execute()) == {"US"}
    assert set(table.y.execute().astype(str)) == {"1"}
    # without partition folders below, DuckDB reads no folder's value: the files' own region is read
    (tmp_path / "run=3").rename(tmp_path / above)
    part.rename(folder / part.name)
    (folder / "y=1").rmdir()
    table = read_table(folder, "transactions", backend)
    assert set(table.region.execute()) == {"US"}


def test_parquet_parts_with_a_boolean_and_a_number_column_are_refused(backend, tmp_path, tx):
    """quantity true/false in one part and 3 in another read as 1/0 on DuckDB, while one boolean file is
    refused (wrong type) and Spark refuses the parts; int32 beside int64 still reads in a common type."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.iloc[:2].assign(quantity=[True, False]).to_parquet(folder / "part-0.parquet")
    tx.iloc[2:].assign(quantity=[3, 1, 2]).to_parquet(folder / "part-1.parquet")
    with pytest.raises(DataError, match=r"disagree on column quantity's type: .*part-0\.parquet has bool"):
        read_table(folder, "transactions", backend)
    tx.iloc[:2].assign(quantity=np.array([1, 2], dtype="int32")).to_parquet(folder / "part-0.parquet")
    assert read_table(folder, "transactions", backend).count().execute() == len(tx)
    nulls = pa.Table.from_pandas(tx.iloc[2:].drop(columns="quantity")).append_column("quantity", pa.nulls(3))
    pq.write_table(nulls, folder / "part-1.parquet")  # no quantities, written without a type: no conflict
    tx.iloc[:2].assign(quantity=[True, False]).to_parquet(folder / "part-0.parquet")
    assert read_table(folder, "transactions", backend).count().execute() == len(tx)


@pytest.mark.spark
def test_parquet_parts_at_nanoseconds_beside_microseconds_say_how_to_write_them_on_spark(tmp_path):
    """pandas' nanoseconds in one part and microseconds in another were refused as types Spark cannot merge,
    with "rewrite the parts with one schema", not as nanoseconds, which Spark cannot read at all."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    folder.mkdir()
    for i, unit in enumerate(["ns", "us"]):
        ts = pa.array([dt.datetime(2024, 1, 2, 10)], pa.timestamp(unit))
        pq.write_table(
            pa.table({"account_id": [i + 1], "ts": ts, "amount": [10.0]}), folder / f"part-{i}.parquet"
        )
    with pytest.raises(DataError, match=r"part-0\.parquet stores ts as nanosecond timestamps.*microseconds"):
        read_table(folder, "transactions", connect(EngineConfig(name="spark")))


def _cells(table: ibis.Table) -> list[tuple]:
    """`_values` with each column as text on its own: pandas writes a frame's timestamp columns of one unit
    (Spark's microseconds) at the finest precision any of them needs, a column of whole seconds too."""
    frame = table.to_pyarrow().to_pandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return sorted(zip(*(frame[column].astype(str) for column in frame.columns), strict=True))


_NANOS = pa.array([dt.datetime(2024, 1, 2, 10, 0, 0, 123456)], pa.timestamp("ns"))
_NANOS_BESIDE = {
    "naive": (_NANOS, _NANOS),
    "beside-micros": (_NANOS, pa.array([dt.datetime(2024, 1, 2, 11)], pa.timestamp("us"))),
    "zoned": (_NANOS.cast(pa.timestamp("ns", tz="UTC")), _NANOS.cast(pa.timestamp("ns", tz="+02:00"))),
    "zoned-beside-naive": (_NANOS.cast(pa.timestamp("ns", tz="UTC")), _NANOS),
    "beside-nulls": (_NANOS, pa.nulls(1)),
}


@pytest.mark.spark
def test_parquet_nanoseconds_in_a_column_kamml_does_not_read_are_read_alike_on_spark(tmp_path):
    """pandas' nanosecond timestamps in an export's column kamml never reads stopped the run on Spark,
    which cannot read them, while DuckDB read the table; both now read it (Spark floored to microseconds),
    in transactions, beside parts of other types, and in accounts, where a date is no attribute. A column
    kamml reads (here ts mapped from event_time) keeps the message saying how to write it."""
    from kamml.config import Config, EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    for case, values in _NANOS_BESIDE.items():
        folder = tmp_path / case
        _extra_parts(folder, *values)
        _part_adding_a_column(folder)
        on_spark, on_duck = (
            read_table(folder, "transactions", spark),
            read_table(folder, "transactions", duck),
        )
        assert _cells(on_spark) == _cells(on_duck), case
        read = [
            load_data({"transactions": folder}, backend=e).to_pandas("transactions").sort_values("account_id")
            for e in (spark, duck)
        ]
        assert read[0].astype(str).to_numpy().tolist() == read[1].astype(str).to_numpy().tolist(), case
    floored = tmp_path / "floored"
    _extra_parts(floored, pa.array([pd.Timestamp("2024-01-02 23:59:59.999999999")], pa.timestamp("ns")))
    raw = read_table(floored, "transactions", spark).to_pandas()
    assert raw["extra"].tolist() == [pd.Timestamp("2024-01-02 23:59:59.999999")]  # its own day
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    for i in range(2):
        columns = {"account_id": [i + 1], "last_login": _NANOS, "segment": ["a"]}
        pq.write_table(pa.table(columns), accounts / f"part-{i}.parquet")
    on_spark, on_duck = read_table(accounts, "accounts", spark), read_table(accounts, "accounts", duck)
    assert _cells(on_spark) == _cells(on_duck)
    mapped = Config.from_dict({"data": {"columns": {"transactions": {"ts": "event_time"}}}})
    folder = tmp_path / "mapped"
    folder.mkdir()
    columns = {"account_id": [1], "ts": _NANOS, "amount": [10.0], "event_time": [dt.datetime(2024, 1, 3, 9)]}
    pq.write_table(pa.table(columns), folder / "part-0.parquet")  # ts is not read: the mapping says so
    assert load_data({"transactions": folder}, mapped, backend=spark).transactions.count().execute() == 1
    _extra_parts(tmp_path / "read", _NANOS, name="event_time")
    with pytest.raises(DataError, match=r"part-0\.parquet stores event_time as nanosecond timestamps"):
        load_data({"transactions": tmp_path / "read"}, mapped, backend=spark)


_YES_NO_BESIDE = {
    "number": (pa.array([True]), pa.array([3])),
    "text": (pa.array([True]), pa.array(["a"])),
}


@pytest.mark.parametrize("other", sorted(_YES_NO_BESIDE))
def test_parquet_parts_with_a_boolean_column_kamml_does_not_read_are_read(backend, tmp_path, other):
    """An export's column, yes/no in one part and a number or text in another, stopped the run, though
    kamml never reads it; an accounts column, an attribute, is still refused."""
    folder = tmp_path / "transactions"
    _extra_parts(folder, *_YES_NO_BESIDE[other])
    read = load_data({"transactions": folder}, backend=backend).transactions.order_by("account_id")
    assert read.execute()["account_id"].tolist() == [1, 2]
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    for i, value in enumerate(_YES_NO_BESIDE[other]):
        pq.write_table(pa.table({"account_id": [i + 1], "extra": value}), accounts / f"part-{i}.parquet")
    with pytest.raises(DataError, match=r"disagree on column extra's type: .*part-0\.parquet has bool"):
        load_data({"transactions": folder, "accounts": accounts}, backend=backend)


@pytest.mark.spark
def test_parquet_parts_with_a_boolean_column_kamml_does_not_read_are_read_alike_on_spark(tmp_path):
    """Both engines read the unread column in one type: true as 1 beside a number, as "true" beside text."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    for other, values in _YES_NO_BESIDE.items():
        folder = tmp_path / other
        _extra_parts(folder, *values)
        on_spark = read_table(folder, "transactions", spark)
        assert _rows(on_spark) == _rows(read_table(folder, "transactions", duck)), other
        assert [row[-1] for row in _rows(on_spark)] == (["1", "3"] if other == "number" else ["true", "a"])


def test_data_folder_finds_a_tsv_table(backend, tmp_path, tx):
    tx.to_csv(tmp_path / "transactions.tsv", sep="\t", index=False)
    source = find_table_source(tmp_path, "transactions")
    assert source == tmp_path / "transactions.tsv"
    assert read_table(source, "transactions", backend).count().execute() == len(tx)


#: Every table file kamml reads, in the order each message lists them.
KINDS = ".parquet, .pq, .csv, .csv.gz, .tsv, .tsv.gz, .txt, .txt.gz"


@pytest.mark.parametrize(
    "name",
    [
        "transactions.txt",
        "transactions.txt.gz",
        "transactions.tsv.gz",
        "Transactions.TSV.GZ",
        "transactions.TSV",
        "TRANSACTIONS.CSV",
        "transactions.pq",
    ],
)
def test_a_table_file_is_read_alike_in_a_data_folder_and_given_directly(backend, tmp_path, tx, name):
    """transactions.txt given as the file was read as CSV, but in a data folder skipped with a warning
    ("not a format kamml reads"); a .tsv.gz was read nowhere, though a .csv.gz and a .tsv were."""
    path = tmp_path / name
    lower = name.lower()
    if lower.endswith(".pq"):
        tx.to_parquet(path)
    else:
        text = tx.to_csv(sep="\t" if ".tsv" in lower else ",", index=False)
        path.write_bytes(gzip.compress(text.encode()) if lower.endswith(".gz") else text.encode())
    assert find_table_source(tmp_path, "transactions") == path
    assert read_table(path, "transactions", backend).count().execute() == len(tx)
    assert len(load_data(tmp_path).to_pandas("transactions")) == len(tx)
    parts = tmp_path / "parts"  # and as the part of a folder
    parts.mkdir()
    path.rename(parts / f"part-0{name[len('transactions') :]}")
    assert list(read_table(parts, "transactions", backend).columns) == list(tx.columns)


def test_every_message_on_a_file_kind_lists_the_kinds_read(backend, tmp_path, caplog):
    """The folder's warning listed .parquet, .pq, .csv, .csv.gz and .tsv; a file given directly "neither
    Parquet (.parquet, .pq) nor CSV (.csv, .csv.gz)"; an empty folder of parts "no .parquet (or .csv)"."""
    (tmp_path / "transactions.xlsx").write_bytes(b"PK")
    with caplog.at_level("WARNING", logger="kamml.data.readers"):
        assert find_table_source(tmp_path, "transactions") is None
    assert f"is not a format kamml reads ({KINDS}, or a folder of parts)" in caplog.records[0].getMessage()
    with pytest.raises(DataError) as direct:
        read_table(tmp_path / "transactions.xlsx", "transactions", backend)
    assert f"is not a format kamml reads ({KINDS})" in str(direct.value)
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "part-0.json").write_text("{}")
    with pytest.raises(DataError) as parts:
        read_table(tmp_path / "parts", "transactions", backend)
    assert (
        f"holds part-0.json, which kamml does not read: a table's parts are each one of these kinds ({KINDS})"
        in str(parts.value)
    )
    with pytest.raises(DataError) as other:
        read_table([1], "transactions", backend)
    assert f"the path of a table file ({KINDS})" in str(other.value)


def test_hidden_table_files_in_a_data_folder_are_not_tables(tmp_path, tx):
    """A dot file (``.transactions.csv``, macOS's ``._transactions.csv``) is hidden, as among parts."""
    tx.to_csv(tmp_path / ".transactions.csv", index=False)
    tx.to_csv(tmp_path / "._transactions.csv", index=False)
    assert find_table_source(tmp_path, "transactions") is None
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    assert find_table_source(tmp_path, "transactions") == tmp_path / "transactions.csv"


def test_two_files_of_one_table_are_refused_by_name(tmp_path, tx):
    """transactions.csv beside transactions.parquet (or a .txt export beside them): which one is meant?"""
    tx.to_csv(tmp_path / "transactions.csv", index=False)
    tx.to_parquet(tmp_path / "transactions.parquet")
    tx.to_csv(tmp_path / "transactions.txt", index=False)
    with pytest.raises(
        DataError,
        match=r"more than one source in .* \(transactions\.csv, transactions\.parquet, "
        r"transactions\.txt\); keep one",
    ):
        find_table_source(tmp_path, "transactions")


@pytest.mark.parametrize(
    ("first", "hint"), [("sep=;", 'csv_delimiter: ";"'), ("sep=\t", 'csv_delimiter: "\\t"'), ("SEP=,", None)]
)
def test_a_spreadsheets_sep_line_before_the_header_is_named(backend, write_csv, first, hint):
    """Excel's "sep=;" line: the hint said to set the delimiter, and then the header read "sep=" and an
    unnamed column (the real header became a row), so following the advice led nowhere."""
    path = write_csv("transactions.csv", f"{first}\naccount_id,ts,amount\n1,2024-01-02,3\n")
    with pytest.raises(DataError, match="before its header row: remove it") as raised:
        read_table(path, "transactions", backend)
    message = str(raised.value)
    assert (hint in message) if hint else "csv_delimiter" not in message


def test_csv_header_with_an_empty_field_reads(backend, write_csv):
    """A trailing delimiter on the header (an empty column name) was DuckDB's raw binder error."""
    path = write_csv("t.csv", "account_id,ts,amount,\n1,2024-01-05,3,\n")
    table = read_table(path, "accounts", backend)
    assert list(table.columns) == ["account_id", "ts", "amount", "unnamed_4"]


def test_csv_header_with_several_empty_fields_reads(backend, write_csv):
    """A spreadsheet's trailing empty columns (",,,") were a "duplicated column name" naming no column,
    where one trailing delimiter read fine."""
    path = write_csv("t.csv", "account_id,ts,amount,,,\n1,2024-01-05,3,,,\n")
    table = read_table(path, "transactions", backend)
    assert list(table.columns) == ["account_id", "ts", "amount", "unnamed_4", "unnamed_5", "unnamed_6"]


def test_utf16_csv_is_named_as_not_utf8(backend, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("account_id,ts,amount\n1,2024-01-05,3\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"t\.csv is not UTF-8 \(UTF-16\?\): save it as UTF-8"):
        read_table(path, "transactions", backend)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_gzipped_utf16_csv_is_named_as_not_utf8(backend, tmp_path, encoding):
    """A .csv.gz holding UTF-16 text was 'gzip-compressed, not CSV text: rename it', the wrong fix."""
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("account_id,ts,amount\n1,2024-01-05,3\n".encode(encoding)))
    with pytest.raises(DataError, match=r"t\.csv\.gz is not UTF-8 \(UTF-16\?\): save it as UTF-8"):
        read_table(path, "transactions", backend)


def test_a_too_long_csv_line_keeps_its_reason_and_not_the_line(backend, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("account_id,ts,amount\n1,2024-01-05,3\n2,2024-01-06," + "9" * 2_100_000 + "\n")
    with pytest.raises(DataError) as caught:
        load_data({"transactions": path}, backend=backend)
    message = str(caught.value)
    assert "Maximum line size" in message
    assert len(message) < 1_000


def test_a_zero_byte_csv_part_is_skipped(backend, tmp_path, tx):
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.to_csv(folder / "part-0.csv", index=False)
    (folder / "part-1.csv").write_bytes(b"")  # an empty partition's file
    assert read_table(folder, "transactions", backend).count().execute() == len(tx)


def test_a_copied_part_is_refused(backend, tmp_path):
    """A part file copied into its folder doubled every account's spend without a word."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    (folder / "part-0.csv").write_text("account_id,ts,amount\n1,2024-01-02,3\n")
    (folder / "part-1.csv").write_text("account_id,ts,amount\n2,2024-01-02,3\n")  # same size, other bytes
    assert read_table(folder, "transactions", backend).count().execute() == 2
    for i in (2, 3):  # empty partitions: a header alone, the same bytes in each, and no rows to count
        (folder / f"part-{i}.csv").write_text("account_id,ts,amount\n")
    assert read_table(folder, "transactions", backend).count().execute() == 2
    (folder / "part-0 (1).csv").write_bytes((folder / "part-0.csv").read_bytes())
    with pytest.raises(DataError, match="hold the same bytes"):
        read_table(folder, "transactions", backend)


def test_empty_parquet_parts_alike_are_not_copies(backend, tmp_path, tx):
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.to_parquet(folder / "part-0.parquet")
    tx.head(0).to_parquet(folder / "part-1.parquet")
    tx.head(0).to_parquet(folder / "part-2.parquet")
    assert read_table(folder, "transactions", backend).count().execute() == len(tx)


@pytest.mark.parametrize(
    ("write", "says"),
    [
        (lambda p: pd.DataFrame({"a": [1]}).to_parquet(p), "is a Parquet file, not CSV text"),
        (lambda p: __import__("zipfile").ZipFile(p, "w").writestr("x", "\x00" * 9), "a zip file"),
    ],
)
def test_a_binary_file_named_csv_says_what_it_is(tmp_path, write, says):
    """It was "not UTF-8 (UTF-16?)", which sent the user looking for an encoding."""
    path = tmp_path / "transactions.csv"
    write(path)
    with pytest.raises(DataError, match=says):
        load_data(tmp_path)


def test_a_table_in_a_format_kamml_does_not_read_is_named(tmp_path, caplog):
    """accounts.xlsx (or .csv.zip) beside the transactions was taken as no accounts table, without a word."""
    (tmp_path / "accounts.xlsx").write_bytes(b"PK")
    (tmp_path / "accounts_old.csv").write_text("account_id\n1\n")  # another table's name: not this one
    with caplog.at_level("WARNING", logger="kamml.data.readers"):
        assert find_table_source(tmp_path, "accounts") is None
        assert find_table_source(tmp_path, "accounts") is None  # said once
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1
    assert said[0].startswith("accounts: accounts.xlsx in ")
    assert f"is not a format kamml reads ({KINDS}, or a folder of parts)" in said[0]


def test_parquet_duration_columns_are_refused_not_read_as_ticks(backend, tmp_path, tx):
    """A pandas timedelta column in Parquet is int64 ticks to DuckDB and Spark: amounts of 1 s read as
    1,000,000,000 without a word (a frame's durations are text, an unparseable number)."""
    path = tmp_path / "transactions.parquet"
    tx.assign(amount=pd.to_timedelta(tx["amount"].abs(), unit="s")).to_parquet(path)
    with pytest.raises(DataError, match=r"transactions: .*transactions\.parquet stores amount as a duration"):
        read_table(path, "transactions", backend)
    accounts = tmp_path / "accounts.parquet"  # an accounts attribute: a number feature of its ticks
    pd.DataFrame({"account_id": [1, 2], "gap": pd.to_timedelta([1, 2], unit="D")}).to_parquet(accounts)
    with pytest.raises(DataError, match=r"stores gap as a duration \(duration\[ns\]\).*total_seconds"):
        load_data({"transactions": tx, "accounts": accounts}, backend=backend)


@pytest.mark.parametrize(
    "ids",
    [
        pd.to_timedelta([1, 2, 1, 3, 3], unit="s"),
        pd.array([dt.timedelta(seconds=i) for i in (1, 2, 1, 3, 3)], dtype=pd.ArrowDtype(pa.duration("us"))),
        pd.Series([dt.timedelta(seconds=i) for i in (1, 2, 1, 3, 3)], dtype=object),
    ],
    ids=["timedelta64", "arrow duration", "timedelta objects"],
)
def test_frame_duration_ids_are_refused_as_in_parquet(backend, tx, ids):
    """A frame's timedelta account_id was read as text codes ('0 days 00:00:01'), where the same column
    in a Parquet file is refused: both are refused now, naming the table, the column and the fix."""
    with pytest.raises(
        DataError, match=r"transactions: the DataFrame stores account_id as a duration.*ticks"
    ):
        load_data({"transactions": tx.assign(account_id=ids)}, backend=backend)
    referrals = pd.DataFrame(
        {"referrer_id": [1], "referred_id": pd.to_timedelta([2], unit="s"), "ts": ["2024-01-02"]}
    )
    with pytest.raises(DataError, match=r"referrals: the DataFrame stores referred_id as a duration"):
        load_data({"transactions": tx, "referrals": referrals}, backend=backend)


def test_frame_duration_attribute_is_still_text(backend, tx):
    """Only id columns follow the file rule: an accounts attribute of timedeltas stays its text, a category
    (refusing it would change which features a frame's accounts give)."""
    accounts = pd.DataFrame({"account_id": [1, 2, 3], "gap": pd.to_timedelta([1, 2, 3], unit="D")})
    data = load_data({"transactions": tx, "accounts": accounts}, backend=backend)
    assert data.to_pandas("accounts").sort_values("account_id")["gap"].tolist()[0] == "1 days 00:00:00"


def _extra_parts(folder, *values: pa.Array, name: str = "extra") -> None:
    """Write one transactions part per array, as column `name`, which kamml does not read."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(values):
        columns = {"account_id": [i + 1], "ts": [dt.datetime(2024, 1, 3, 9)], "amount": [10.0], name: value}
        pq.write_table(pa.table(columns), folder / f"part-{i}.parquet")


_DURATIONS = (
    pa.array([dt.timedelta(seconds=1)], pa.duration("ns")),
    pa.array([dt.timedelta(seconds=2)], pa.duration("s")),
)


def test_parquet_duration_column_kamml_does_not_read_is_read(backend, tmp_path):
    """An export's column of durations that the contract does not use stopped the run, though kamml never
    reads its values (the engines read its ticks alike); a mapped one is still refused."""
    from kamml.config import Config

    folder = tmp_path / "transactions"
    _extra_parts(folder, *_DURATIONS)
    read = load_data({"transactions": folder}, backend=backend).transactions.order_by("account_id")
    assert read.execute()["account_id"].tolist() == [1, 2]
    mapped = Config.from_dict({"data": {"columns": {"transactions": {"amount": "extra"}}}})
    with pytest.raises(DataError, match=r"part-0\.parquet stores extra as a duration"):
        load_data({"transactions": folder}, mapped, backend=backend)


@pytest.mark.spark
def test_parquet_duration_column_kamml_does_not_read_is_read_alike_on_spark(tmp_path):
    """Spark, as DuckDB, reads an unread column of durations as its int64 ticks, at each part's unit."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    _extra_parts(folder, *_DURATIONS)
    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    assert _rows(read_table(folder, "transactions", spark)) == _rows(read_table(folder, "transactions", duck))
    assert [row[-1] for row in _rows(read_table(folder, "transactions", spark))] == ["1000000000", "2"]
    read = load_data({"transactions": folder}, backend=spark).transactions.order_by("account_id")
    assert read.execute()["account_id"].tolist() == [1, 2]


@pytest.mark.spark
def test_parquet_parts_disagreeing_on_an_unread_columns_type_are_read_alike_on_spark(tmp_path):
    """Spark 4 cannot merge int32 and int64 (nor read them unmerged), so kamml refused the parts over a
    column it does not read; it reads them in the type DuckDB merges them to. A column of a date in one part
    and a number in another, which DuckDB cannot merge either, stays refused."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    cases = {
        "int64": (pa.array([1], pa.int32()), pa.array([2**40], pa.int64()), pa.array([3], pa.int16())),
        "float64": (pa.array([1], pa.int64()), pa.array([2.5], pa.float32()), pa.array([3.5], pa.float64())),
        "string": (pa.array([1], pa.int64()), pa.array(["a"], pa.large_string()), pa.array([2.5])),
        "timestamp": (
            pa.array([dt.date(2024, 1, 2)]),
            pa.array([dt.datetime(2024, 1, 2, 10)], pa.timestamp("ms")),
        ),
    }
    for case, values in cases.items():
        folder = tmp_path / case
        _extra_parts(folder, *values)
        pq.write_table(  # a part adding a column: Spark merges the parts' schemas
            pa.table(
                {"account_id": [9], "ts": [dt.datetime(2024, 1, 3, 9)], "amount": [1.0], "product": ["p"]}
            ),
            folder / "part-9.parquet",
        )
        on_spark = read_table(folder, "transactions", spark)
        assert _rows(on_spark) == _rows(read_table(folder, "transactions", duck)), case
        assert type(on_spark.schema()["extra"]).__name__.lower() == case, case
        read = load_data({"transactions": folder}, backend=spark).transactions
        assert read.count().execute() == len(values) + 1
    _extra_parts(tmp_path / "apart", pa.array([dt.date(2024, 1, 2)]), pa.array([1]))
    with pytest.raises(DataError, match=r"disagree on column extra's type: .*part-0\.parquet has date32"):
        read_table(tmp_path / "apart", "transactions", spark)


def _values(table: ibis.Table) -> list[tuple]:
    """A table's rows as text, ordered, zoned timestamps as naive UTC (Ibis types Spark's instants naive)."""
    frame = table.to_pyarrow().to_pandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return sorted(map(tuple, frame.astype(str).to_numpy().tolist()))


def _part_adding_a_column(folder, **more: pa.Array) -> None:
    """A transactions part with a product column the others lack: Spark merges the parts' schemas."""
    columns = {"account_id": [9], "ts": [dt.datetime(2024, 1, 3, 9)], "amount": [1.0], "product": ["p"]}
    pq.write_table(pa.table(columns | more), folder / "part-9.parquet")


_UNTYPED_BESIDE = {
    "int64": pa.array([3], pa.int64()),
    "float64": pa.array([2.5]),
    "string": pa.array(["a"]),
    "boolean": pa.array([True]),
    "date": pa.array([dt.date(2024, 1, 2)]),
    "timestamp": pa.array([dt.datetime(2024, 1, 2, 10)], pa.timestamp("ms", tz="UTC")),
}


@pytest.mark.spark
def test_parquet_parts_of_untyped_nulls_beside_a_typed_column_are_read_alike_on_spark(tmp_path):
    """A part writing a column as only nulls (pyarrow's null type: an optional column empty in one month's
    export) beside parts where it is typed: DuckDB reads the nulls in the typed parts' type, while Spark
    reads the null type as int32 and cannot merge it (merging schemas or not), and kamml refused the parts.
    Spark now reads them as DuckDB does, in a column kamml does not read and in one it reads."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    for case, typed in _UNTYPED_BESIDE.items():
        folder = tmp_path / case
        _extra_parts(folder, pa.nulls(1), typed, pa.nulls(1))
        _part_adding_a_column(folder, extra=pa.nulls(1))  # merged with the other parts of nulls
        on_spark, on_duck = (
            read_table(folder, "transactions", spark),
            read_table(folder, "transactions", duck),
        )
        assert _values(on_spark) == _values(on_duck), case
        assert type(on_spark.schema()["extra"]) is type(on_duck.schema()["extra"]), case
    for column, typed in {"quantity": pa.array([3], pa.int64()), "product": pa.array(["a"])}.items():
        folder = tmp_path / column
        _extra_parts(folder, pa.nulls(1), typed, name=column)
        read = [
            load_data({"transactions": folder}, backend=e).to_pandas("transactions").sort_values("account_id")
            for e in (spark, duck)
        ]
        assert read[0].astype(str).to_numpy().tolist() == read[1].astype(str).to_numpy().tolist(), column
        assert read[0][column].tolist()[1] == typed[0].as_py(), column


_NUMBERS_OF_TWO_TOOLS = {
    "amount": (pa.array([12], pa.int64()), pa.array([2.5])),
    "quantity": (pa.array([3], pa.int32()), pa.array([2], pa.int64()), pa.array([1], pa.int16())),
    "amount-decimal": (pa.array([12], pa.int64()), pa.array([decimal.Decimal("2.25")], pa.decimal128(10, 2))),
    "amount-float32": (pa.array([16777217], pa.int64()), pa.array([0.1], pa.float32())),
    "account_id": (pa.array([2**60 + 1], pa.int64()), pa.array([2**60 + 3], pa.decimal128(38, 0))),
}


@pytest.mark.spark
def test_parquet_parts_storing_a_read_column_in_other_number_types_are_read_alike_on_spark(tmp_path):
    """Two export tools: amount int64 in one part and double in another, quantity int32 and int64, an id
    int64 and decimal(38,0). DuckDB reads them in its common type and validation checks a number; Spark
    cannot merge them and kamml refused the parts. Spark now reads them in DuckDB's type, an id exactly.
    Yes/no beside a number in a column kamml reads is refused on both engines alike."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    for case, values in _NUMBERS_OF_TWO_TOOLS.items():
        column = case.split("-")[0]
        folder = tmp_path / case
        _extra_parts(folder, *values, name=column)
        _part_adding_a_column(folder)
        on_spark, on_duck = (
            read_table(folder, "transactions", spark),
            read_table(folder, "transactions", duck),
        )
        assert _values(on_spark) == _values(on_duck), case
        assert on_spark.schema()[column].copy(nullable=True) == on_duck.schema()[column].copy(nullable=True)
        read = [
            load_data({"transactions": folder}, backend=e).to_pandas("transactions").sort_values("account_id")
            for e in (spark, duck)
        ]
        assert read[0].astype(str).to_numpy().tolist() == read[1].astype(str).to_numpy().tolist(), case
    assert sorted(read[0]["account_id"]) == [9, 2**60 + 1, 2**60 + 3]  # exactly, not through a double
    folder = tmp_path / "yes-no"
    _extra_parts(folder, pa.array([True]), pa.array([3]), name="quantity")
    for engine in (spark, duck):
        with pytest.raises(
            DataError, match=r"disagree on column quantity's type: .*part-0\.parquet has bool"
        ):
            read_table(folder, "transactions", engine)


def _column_parts(folder, *values: pa.Array, name: str) -> None:
    """Write one transactions part per array, as column `name` of its rows (account ids 1, 2, ...)."""
    folder.mkdir(parents=True)
    first = 1
    for i, value in enumerate(values):
        n = len(value)
        columns = {"account_id": list(range(first, first + n)), "ts": [dt.datetime(2024, 1, 3, 9)] * n}
        columns |= {"amount": [10.0] * n, name: value}
        pq.write_table(pa.table(columns), folder / f"part-{i}.parquet")
        first += n


_TEXT_BESIDE_NUMBERS = {
    "amount": (pa.array(["12.5", " 7 "]), pa.array([0.1, 1e20, 1e-7, -0.0]), pa.array(["1E+3"])),
    "quantity": (pa.array(["3"]), pa.array([2, 2**53 + 1], pa.int64()), pa.array([1], pa.int32())),
    "amount-decimal": (
        pa.array(["1.5"], pa.large_string()),
        pa.array([decimal.Decimal("12.5"), decimal.Decimal("1e-18")], pa.decimal128(38, 18)),
    ),
    "amount-float32": (pa.array(["1.5"]).dictionary_encode(), pa.array([0.1, 3e38], pa.float32())),
}


@pytest.mark.spark
def test_parquet_parts_of_text_beside_numbers_in_a_read_column_are_read_alike_on_spark(tmp_path):
    """One export tool writes amount as text, another as double: DuckDB reads the parts as text (the
    numbers as its text of them) and validation parses every value, while Spark, which cannot merge them,
    refused the parts. Spark now reads them as text too: the same rows and values, and text that is no
    number is the same problem on both engines."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    spark, duck = connect(EngineConfig(name="spark")), ibis.duckdb.connect(threads=1)
    for case, values in _TEXT_BESIDE_NUMBERS.items():
        column = case.split("-")[0]
        folder = tmp_path / case
        _column_parts(folder, *values, name=column)
        _part_adding_a_column(folder)
        read = [
            load_data({"transactions": folder}, backend=e).to_pandas("transactions").sort_values("account_id")
            for e in (spark, duck)
        ]
        assert read[0].to_numpy().tolist() == read[1].to_numpy().tolist(), case
        # each number as written: a float32 as its shortest text (0.1, not 0.10000000149011612)
        expected = [
            float(str(np.float32(v)) if part.type == pa.float32() else v)
            for part in values
            for v in part.to_pylist()
        ]
        assert read[0][column].tolist()[:-1] == expected, case
    folder = tmp_path / "no-number"
    _column_parts(folder, pa.array(["12,50", "abc"]), pa.array([2.5]), name="amount")
    problems = []
    for engine in (spark, duck):
        with pytest.raises(SchemaError) as caught:
            load_data({"transactions": folder}, backend=engine)
        problems.append(
            [(p.table, p.column, p.rule, p.n_rows, list(p.examples)) for p in caught.value.problems]
        )
    assert problems[0] == problems[1]
    assert [p[:2] for p in problems[0]] == [("transactions", "amount")]


@pytest.mark.parametrize(("name", "delimiter"), [("transactions.csv", ";"), ("transactions.tsv", None)])
def test_a_comma_file_read_with_another_delimiter_gets_the_delimiter_hint(tmp_path, name, delimiter):
    """A comma CSV beside a config's ``csv_delimiter: ";"`` (it applies to every table), or a ``.tsv``
    holding commas, read as one column: three "missing required column" problems said nothing of it."""
    from kamml.config import DataConfig

    (tmp_path / name).write_text("account_id,ts,amount\n1,2024-01-02,3\n")
    with pytest.raises(SchemaError) as raised:
        load_data(tmp_path, DataConfig(csv_delimiter=delimiter))
    problems = raised.value.problems
    assert [(p.table, p.column) for p in problems] == [("transactions", "account_id,ts,amount")]
    assert "delimiter looks wrong" in problems[0].rule
    assert 'csv_delimiter: ","' in problems[0].rule


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("first", [b"\r\n", b"\n"])
def test_mixed_line_endings_are_named_with_the_file(backend, tmp_path, first, gz):
    """DuckDB's "CSV Parser state machine reached an invalid state" said nothing of a file whose lines
    end in CRLF and LF both (rows appended by another tool): the error names the file and the cause."""
    other = b"\n" if first == b"\r\n" else b"\r\n"
    text = b"account_id,ts,amount" + first + b"1,2024-01-01,5" + other + b"2,2024-01-02,6" + first
    name = "t.csv.gz" if gz else "t.csv"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if gz else text)
    with pytest.raises(DataError) as caught:
        load_data({"transactions": path}, backend=backend)
    message = str(caught.value)
    assert f"{name} mixes Windows (CRLF) and Unix (LF) line endings" in message
    assert message.startswith("transactions: ")


def test_quoted_line_breaks_of_another_kind_are_read(backend, tmp_path):
    """A spreadsheet writes CRLF rows with LF line breaks inside quoted cells: read, not refused."""
    path = tmp_path / "t.csv"
    path.write_bytes(b'account_id,ts,amount,product\r\n1,2024-01-01,5,"a\nb"\r\n2,2024-01-02,6,c\r\n')
    data = load_data({"transactions": path}, backend=backend)
    assert sorted(data.to_pandas("transactions")["product"]) == ["a\nb", "c"]


@pytest.mark.parametrize("end", [b"\r\n\x1a", b"\n\x1a", b"\x1a", b"\r\n\x1a\r\n"])
def test_a_trailing_ctrl_z_is_named_with_the_file(backend, tmp_path, end):
    """Old DOS and Windows tools end a text file with Ctrl-Z (0x1A): DuckDB read it as a row of one field
    ("Expected Number of Columns: 3 Found: 1"), or as part of the last value ('6\\x1a', an unparseable
    number, or a product name with an invisible byte). The error now names the file and the byte."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"account_id,ts,amount,product\n1,2024-01-01,5,a\n2,2024-01-02,6,b" + end)
    with pytest.raises(DataError, match=r"t\.csv ends with a Ctrl-Z byte \(0x1A\)"):
        load_data({"transactions": path}, backend=backend)


@pytest.mark.parametrize("other", ["part-3.json", "part-2.csv.bz2", "part-1.xlsx", "sub/part-4.avro"])
def test_a_part_of_another_kind_is_refused_by_name_in_a_folder_and_a_glob(backend, write_csv, other):
    """A folder of CSV parts dropped its part-3.json or part-2.csv.bz2 without a word (a glob named one
    file, not the rule): the table lost those rows."""
    write_csv("tx/part-0.csv", "account_id,ts,amount\n1,2024-01-05,3\n")
    write_csv("tx/part-1.csv", "account_id,ts,amount\n2,2024-01-06,4\n")
    odd = write_csv(f"tx/{other}", "x")
    folder = odd.parent if other.count("/") == 0 else odd.parent.parent
    for source, where in ((folder, f"folder {folder} holds"), (str(folder / "*"), f"{folder / '*'} matches")):
        with pytest.raises(DataError) as caught:
            read_table(source, "transactions", backend)
        message = str(caught.value)
        assert message.startswith(f"transactions: {where} {other}, which kamml does not read")
        assert f"a table's parts are each one of these kinds ({KINDS})" in message


def test_parts_of_other_kinds_are_all_named_at_once(backend, tmp_path, tx):
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.to_parquet(folder / "part-0.parquet")
    for i in range(7):
        (folder / f"part-{i}.json").write_text("{}")
    with pytest.raises(DataError, match=r"holds part-0\.json, part-1\.json, .*part-4\.json and 2 more, "):
        read_table(folder, "transactions", backend)


def test_spark_and_hadoop_markers_among_parts_stay_unsaid(backend, tmp_path, tx, caplog):
    """Markers Spark and Hadoop write beside the parts are skipped, in a folder and a glob, without a word;
    a file Hadoop is still copying (``part-1.parquet._COPYING_``, which Spark skips) too."""
    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.to_parquet(folder / "part-0.parquet")
    for marker in ("_SUCCESS", ".part-0.parquet.crc", "_committed_123", "_started_123", "._SUCCESS.crc"):
        (folder / marker).write_bytes(b"")
    tx.head(2).to_parquet(folder / "part-1.parquet._COPYING_")  # half copied
    with caplog.at_level("WARNING"):
        for source in (folder, str(folder / "*")):
            assert read_table(source, "transactions", backend).count().execute() == len(tx)
    assert not caplog.records


@pytest.mark.spark
def test_a_part_of_another_kind_in_a_parquet_folder_is_refused_alike_on_spark(tmp_path, tx):
    """Spark, handed the folder, read part-3.json as Parquet and failed with a Java stack trace while
    DuckDB dropped it: the engines must read (or refuse) the same files."""
    from kamml.config import EngineConfig
    from kamml.engine import connect

    folder = tmp_path / "transactions"
    folder.mkdir()
    tx.iloc[:2].to_parquet(folder / "part-0.parquet", coerce_timestamps="us")
    tx.iloc[2:].to_parquet(folder / "part-1.parquet", coerce_timestamps="us")
    (folder / "part-3.json").write_text("{}")
    spark = connect(EngineConfig(name="spark"))
    for source in (folder, str(folder / "*")):
        for engine in (spark, ibis.duckdb.connect(threads=1)):
            with pytest.raises(DataError, match=r"(holds|matches) part-3\.json, "):
                read_table(source, "transactions", engine).count().execute()


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_folder_above_a_relative_table_path_naming_its_column_is_refused(
    backend, tmp_path, tx, kind, monkeypatch
):
    """DuckDB reads a relative path made absolute: from inside region=EU/, tx/y=1/ read EU over the
    files' US. The folders above are those of the absolute path, not of the path as written."""
    folder = tmp_path / "region=EU" / "transactions"
    (folder / "y=1").mkdir(parents=True)
    part = folder / "y=1" / f"part-0.{kind}"
    frame = tx.assign(region="US")
    frame.to_parquet(part) if kind == "parquet" else frame.to_csv(part, index=False)
    monkeypatch.chdir(tmp_path / "region=EU")
    for source in ("transactions", "transactions/*", f"y=*/*.{kind}"):
        if source.startswith("y=*"):
            monkeypatch.chdir(folder)
        with pytest.raises(DataError, match=r"region=EU/ in .*names the column region"):
            read_table(source, "transactions", backend)
