"""load_data: sources (folder, dict, single file, config paths), the data end and the Dataset API."""

from __future__ import annotations

import datetime as dt
import logging

import ibis
import numpy as np
import pandas as pd
import pytest

from kamml.config import Config, DataConfig, EngineConfig
from kamml.data import Dataset, load_data
from kamml.data.dataset import input_paths
from kamml.errors import ConfigError, DataError


@pytest.fixture
def folder(tmp_path, tx):
    tx.to_parquet(tmp_path / "transactions.parquet")
    (tmp_path / "accounts.csv").write_text("account_id,segment\n1,smb\n2,ent\n3,smb\n")
    acts = tmp_path / "activities"
    acts.mkdir()
    pd.DataFrame({"account_id": [1], "ts": pd.to_datetime(["2024-01-02"]), "hours": [1.5]}).to_parquet(
        acts / "part-0.parquet"
    )
    return tmp_path


def test_folder_source(backend, folder):
    data = load_data(folder, backend=backend)
    assert isinstance(data, Dataset)
    assert set(data.tables) == {"transactions", "accounts", "activities"}
    assert data.referrals is None
    assert data.quality.tables["accounts"].origin == str(folder / "accounts.csv")
    assert data.quality.tables["activities"].origin == str(folder / "activities")
    assert data.accounts.schema()["account_id"].is_integer()
    assert repr(data) == "Dataset(end=Timestamp('2024-04-01 00:00:00'))"


def test_the_validated_line_counts_its_notes_in_words(backend, tx, caplog):
    """It read "2 data-quality note(s)"."""
    with caplog.at_level(logging.INFO, logger="kamml.data.dataset"):
        data = load_data(tx, backend=backend)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validated ")]
    assert line.endswith(f"(exclusive), {len(data.quality.notes)} data-quality notes")
    assert len(data.quality.notes) != 1  # the one note that would read without an s


def test_a_configured_table_that_passes_over_the_folders_own_is_warned(
    backend, folder, tx, tmp_path_factory, caplog
):
    """`--data NEW` with data.transactions: OLD/... in the config read OLD without a word."""
    old = tmp_path_factory.mktemp("old") / "transactions.parquet"
    tx.head(3).to_parquet(old)
    cfg = Config.from_dict({"data": {"transactions": str(old)}})
    with caplog.at_level(logging.WARNING, logger="kamml.data.dataset"):
        assert input_paths(folder, cfg)["transactions"] == old  # a job's look-up before any work ...
        data = load_data(folder, cfg, backend=backend)
    assert data.transactions.count().execute() == 3
    told = [r.getMessage() for r in caplog.records]  # ... said nothing: the read says it, once
    assert told == [
        f"transactions: data.transactions in the config ({old}) is read, not "
        f"{folder / 'transactions.parquet'} in the data folder {folder}"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.data.dataset"):
        load_data(
            folder, Config.from_dict({"data": {"transactions": "transactions.parquet"}}), backend=backend
        )
    assert "is read, not" not in caplog.text  # the config names the folder's own table


def test_config_paths_and_data_path(backend, folder, tmp_path):
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "refs.csv").write_text("referrer_id,referred_id,ts\n1,2,2024-01-03\n")
    cfg = Config.from_dict({"data": {"path": str(folder), "referrals": "elsewhere/refs.csv"}})
    data = load_data(None, cfg, backend=backend)
    assert data.referrals is not None
    assert data.to_pandas("referrals")["referred_id"].tolist() == [2]


def test_single_file_is_the_transactions_table(backend, folder):
    data = load_data(folder / "transactions.parquet", backend=backend)
    assert set(data.tables) == {"transactions"}
    data = load_data(pd.read_parquet(folder / "transactions.parquet"), backend=backend)
    assert data.quality.tables["transactions"].rows == 5


def test_csv_delimiter_from_config(backend, tmp_path):
    (tmp_path / "transactions.csv").write_text("account_id;ts;amount\n1;2024-01-05;3\n")
    data = load_data(tmp_path, DataConfig(csv_delimiter=";"), backend=backend)
    assert data.to_pandas("transactions")["amount"].tolist() == [3.0]


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (None, "no data given"),
        ({"transaction": pd.DataFrame()}, "unknown table name 'transaction'"),
        ({"accounts": pd.DataFrame({"account_id": [1]})}, "no transactions table"),
        (42, "cannot read data from a int"),
    ],
)
def test_bad_sources(backend, source, match):
    with pytest.raises(DataError, match=match):
        load_data(source, backend=backend)


def test_end_from_config_or_data(backend, tx):
    data = load_data({"transactions": tx}, backend=backend)
    assert data.end == pd.Timestamp("2024-04-01")  # last ts 2024-03-31 -> the day after
    data = load_data({"transactions": tx}, DataConfig(end=dt.date(2024, 6, 30)), backend=backend)
    assert data.end == pd.Timestamp("2024-07-01")
    late = tx.assign(ts=tx["ts"] + pd.Timedelta(hours=13))  # 2024-03-31 13:00 -> still ends 04-01
    assert load_data({"transactions": late}, backend=backend).end == pd.Timestamp("2024-04-01")


def test_a_data_end_after_today_is_refused_and_today_is_not(backend, tx):
    """end: 2031-01-01 scored every account at 2031-01-02 with exit 0 and no warning."""
    today = pd.Timestamp.now(tz="UTC").date()
    tomorrow = today + dt.timedelta(days=1)
    with pytest.raises(ConfigError, match=rf"data.end {tomorrow} is after today \({today}\)"):
        load_data({"transactions": tx}, DataConfig(end=tomorrow), backend=backend)
    assert load_data({"transactions": tx}, DataConfig(end=today), backend=backend).end == pd.Timestamp(
        tomorrow
    )


def test_a_data_end_a_year_past_the_last_transaction_is_warned_about(backend, tx, caplog):
    caplog.set_level(logging.WARNING, logger="kamml.data.dataset")
    load_data({"transactions": tx}, DataConfig(end=dt.date(2025, 3, 31)), backend=backend)  # 365 days
    (record,) = caplog.records  # not the year's warning: the pause against the data's own pace
    assert "never paused more than 30 days" in record.getMessage()
    caplog.clear()
    load_data({"transactions": tx}, DataConfig(end=dt.date(2025, 4, 1)), backend=backend)
    (record,) = caplog.records  # one warning, the year's
    assert record.getMessage().startswith(
        "data.end 2025-04-01 is 366 days after the last transaction (2024-03-31): every account"
    )


def test_a_data_end_weeks_past_data_that_never_paused_so_long_is_warned_about(backend, tx, caplog):
    """A weekly job whose export stalled while data.end moved on read 90 days of silence as churn (total
    value -69 %) with no word below the year's warning. Now a pause of two weeks or more is measured
    against the longest pause of the year before the last transaction."""
    caplog.set_level(logging.WARNING, logger="kamml.data.dataset")
    days = pd.date_range("2024-01-01", "2024-03-31", freq="D")  # a transaction every day
    daily = pd.DataFrame({"account_id": np.arange(days.size) % 7, "ts": days, "amount": 10.0})
    load_data({"transactions": daily}, DataConfig(end=dt.date(2024, 4, 13)), backend=backend)  # 13 days
    assert not caplog.records
    load_data({"transactions": daily}, DataConfig(end=dt.date(2024, 4, 14)), backend=backend)  # 14 days
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "data.end 2024-04-14 is 14 days after the last transaction (2024-03-31), and in the year before it "
        "the transactions never paused more than 1 day: is the export complete?"
    )
    caplog.clear()
    # the fixture's longest pause is 30 days (2024-03-01 to 2024-03-31): twice that is warned of
    load_data({"transactions": tx}, DataConfig(end=dt.date(2024, 5, 29)), backend=backend)  # 59 days
    assert not caplog.records
    load_data({"transactions": tx}, DataConfig(end=dt.date(2024, 5, 30)), backend=backend)  # 60 days
    (record,) = caplog.records
    assert "is 60 days after the last transaction (2024-03-31)" in record.getMessage()
    assert "never paused more than 30 days" in record.getMessage()
    caplog.clear()
    one_day = tx.assign(ts=pd.Timestamp("2024-03-31"))  # no pause to measure: no pace to compare with
    load_data({"transactions": one_day}, DataConfig(end=dt.date(2024, 6, 30)), backend=backend)
    assert not caplog.records


def test_to_pandas_names_the_tables(backend, tx):
    data = load_data({"transactions": tx}, backend=backend)
    with pytest.raises(KeyError, match="unknown table"):
        data.to_pandas("orders")
    with pytest.raises(KeyError, match="no accounts table"):
        data.to_pandas("accounts")


def test_default_backend_comes_from_the_engine_config(tx):
    cfg = Config.from_dict({"engine": {"threads": 1}})
    data = load_data({"transactions": tx}, cfg)
    assert data.backend.name == "duckdb"
    assert data.backend.raw_sql("SELECT current_setting('threads')").fetchall()[0][0] == 1


def test_tables_stay_in_the_engine(backend, tx):
    data = load_data({"transactions": tx}, backend=backend)
    expr = data.transactions.group_by("account_id").aggregate(spend=data.transactions.amount.sum())
    assert isinstance(expr, ibis.Table)
    assert expr.get_backend() is backend
    assert dict(expr.to_pyarrow().to_pandas().sort_values("account_id").to_numpy().tolist()) == {
        1: 80.0,
        2: 50.0,
        3: 5.5,
    }


def test_csv_tables_are_parsed_once(backend, tmp_path):
    path = tmp_path / "transactions.csv"
    path.write_text(
        "account_id,ts,amount,transaction_id\n1,2024-01-05,3,a\n1,2024-01-05,3,a\n2,2024-01-06,4,b\n"
    )
    data = load_data(tmp_path, backend=backend)
    path.unlink()  # the validated table no longer depends on the file
    assert sorted(data.to_pandas("transactions")["amount"]) == [3.0, 4.0]


@pytest.mark.spark
def test_rows_repeated_without_ids_are_noted_on_spark(tmp_path, monkeypatch):
    """The bucket of accounts (Spark's hash, negative for some keys) and the count, as on DuckDB."""
    import kamml.data.validation as validation
    from kamml.engine import connect

    monkeypatch.setattr(validation, "EXACT_REPEAT_ROWS", 0)  # the sampled path, on a small file
    monkeypatch.setattr(validation, "REPEAT_SAMPLE", 1)
    (tmp_path / "transactions.csv").write_text(
        "account_id,ts,amount\nA7,2024-01-05,10\nA7,2024-01-05,10\nA7,2024-01-05,10\nB2,2024-02-01,4\n"
    )
    data = load_data(tmp_path, backend=connect(EngineConfig(name="spark")))
    note = next(n for n in data.quality.notes if n.rule.startswith("rows repeating another row"))
    assert (note.n_rows, list(note.examples)) == (2, ["A7"])
    assert len(data.to_pandas("transactions")) == 4


@pytest.mark.spark
def test_load_data_on_spark(tmp_path):
    from kamml.engine import connect

    con = connect(EngineConfig(name="spark"))
    (tmp_path / "transactions.csv").write_text(
        "account_id,ts,amount,transaction_id\n1,2024-01-05T10:00:00+01:00,10,a\n"
        "1,2024-02-05 10:00:00 +0100,-3,a\n"
        "2,2024-02-07 00:00+01:00,0,b\n"
    )
    accounts = pd.DataFrame({"account_id": [1, 3], "segment": ["x", "y"]})
    parts = tmp_path / "activities" / "kind=call"
    parts.mkdir(parents=True)
    acts = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-02", "2024-01-03"]), "hours": [1.0, 2.0]}
    )
    # Spark cannot read nanosecond Parquet timestamps (pandas' default), so write microseconds
    acts.iloc[:1].to_parquet(parts / "part-0.parquet", coerce_timestamps="us")
    acts.iloc[1:].to_parquet(parts / "part-1.parquet", coerce_timestamps="us")
    source = {
        "transactions": tmp_path / "transactions.csv",
        "accounts": accounts,
        "activities": tmp_path / "activities",
    }
    data = load_data(source, backend=con)
    assert data.backend is con
    assert data.to_pandas("activities")["kind"].tolist() == ["call", "call"]
    got = data.to_pandas("transactions").sort_values("ts")
    stamps = ["2024-01-05 09:00", "2024-02-05 09:00", "2024-02-06 23:00"]  # id a's refund kept
    assert got["ts"].tolist() == [pd.Timestamp(t) for t in stamps]
    assert got["account_id"].tolist() == [1, 1, 2]
    report = data.quality
    assert report.count("transaction ids shared by rows that differ") == 1
    assert report.count("accounts without transactions") == 1
    assert report.count("zero amounts") == 1
    assert data.end == pd.Timestamp("2024-02-07")
    bad = pd.DataFrame({"account_id": [1, None], "ts": ["2024-01-01", "x"], "amount": ["1", "y"]})
    from kamml.errors import SchemaError

    with pytest.raises(SchemaError) as caught:
        load_data({"transactions": bad}, backend=con)
    assert {p.column for p in caught.value.problems} == {"account_id", "ts", "amount"}


@pytest.mark.spark
def test_a_glob_skips_underscore_and_hidden_parts_on_spark_as_on_duckdb(tmp_path, tx):
    """Spark reads the files kamml lists for the glob: the same rows on both engines."""
    from kamml.engine import connect

    folder = tmp_path / "tx"
    (folder / "_temporary" / "0").mkdir(parents=True)
    tx.iloc[:2].to_parquet(folder / "part-0.parquet", coerce_timestamps="us")
    tx.iloc[2:].to_parquet(folder / "part-1.parquet", coerce_timestamps="us")
    tx.to_parquet(folder / "_temporary" / "0" / "part-0.parquet", coerce_timestamps="us")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_bytes(b"crc")
    source = {"transactions": str(folder / "*")}
    spark = load_data(source, backend=connect(EngineConfig(name="spark"))).to_pandas("transactions")
    duck = load_data(source).to_pandas("transactions")
    assert len(spark) == len(duck) == len(tx)


@pytest.mark.spark
def test_epoch_text_dates_are_named_on_spark(tmp_path):
    """Spark's cast must refuse text epoch seconds as DuckDB's does, so the epoch rule names them alike."""
    from kamml.engine import connect
    from kamml.errors import SchemaError

    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,1704067200,1\n2,2024-01-05,1\n")
    with pytest.raises(SchemaError, match=r"Unix epoch seconds.*unit=\"s\".*\(1 row; e\.g\. '1704067200'\)"):
        load_data(tmp_path, backend=connect(EngineConfig(name="spark")))


def test_accounts_and_transactions_sharing_no_id_is_an_error(backend):
    """000123 in one file and 123 in the other: each table is valid, but no account meets its orders."""
    from kamml.errors import DataError

    tx = pd.DataFrame(
        {"account_id": ["000123", "000124"], "ts": ["2024-01-01", "2024-02-01"], "amount": [1.0, 2.0]}
    )
    accounts = pd.DataFrame({"account_id": ["123", "124"], "segment": ["a", "b"]})
    with pytest.raises(DataError, match=r"share no id: none of the 2 accounts has a transaction.*'000123'"):
        load_data({"transactions": tx, "accounts": accounts}, backend=backend)
    some = accounts.assign(account_id=["000123", "9"])  # one meets: notes, no error
    data = load_data({"transactions": tx, "accounts": some}, backend=backend)
    assert data.quality.count("accounts without transactions") == 1


def test_referrals_sharing_no_id_with_the_book_is_an_error(backend):
    """A CRM export writing 00117 for billing's 117: every referral named unknown accounts, so every
    referral feature and label was 0, said only by two notes."""
    from kamml.errors import DataError

    tx = pd.DataFrame({"account_id": [117, 206], "ts": ["2024-01-01", "2024-02-01"], "amount": [1.0, 2.0]})
    refs = pd.DataFrame(
        {"referrer_id": ["00117", "00117"], "referred_id": ["00206", "00207"], "ts": ["2024-01-15"] * 2}
    )
    with pytest.raises(
        DataError,
        match=r"referrals.referrer_id and referred_id share no id with the transactions or the accounts "
        r"table: none of the 2 referrals names a known account \(referrers: '00117'; referred: '00206', "
        r"'00207'; transactions: '117', '206'\).*leading zeros.*0 for every account",
    ):
        load_data({"transactions": tx, "referrals": refs}, backend=backend)
    some = refs.assign(referred_id=["206", "00207"])  # one referred account is known: notes, no error
    data = load_data({"transactions": tx, "referrals": some}, backend=backend)
    assert data.quality.count("referrals from unknown accounts") == 2


def test_a_csv_that_is_not_utf8_is_a_data_error_in_validate_too(backend, tmp_path):
    """A Latin-1 byte in a column the row checks do not read passed validate, then crashed the job (the
    check for repeated rows reads every column, so it is now found there, naming the file)."""
    from kamml.data import validate
    from kamml.errors import DataError

    (tmp_path / "transactions.csv").write_bytes(
        b"account_id,ts,amount,product\n1,2024-01-01,10,Caf\xe9\n2,2024-02-01,5,Tea\n"
    )
    for read in (validate, load_data):
        with pytest.raises(
            DataError, match=r"transactions: cannot read .*transactions.csv.*not utf-8.*as UTF-8"
        ):
            read(tmp_path, backend=backend)


def test_a_zero_byte_optional_csv_is_an_empty_table_as_a_header_only_one(backend, tmp_path, tx):
    """An export with no rows may leave no header either: a note, as for a header-only file."""
    tx.to_parquet(tmp_path / "transactions.parquet")
    (tmp_path / "referrals.csv").write_bytes(b"")
    data = load_data(tmp_path, backend=backend)
    assert any(n.table == "referrals" and n.rule.startswith("empty table") for n in data.quality.notes)
    assert data.to_pandas("referrals").empty


def test_a_gzip_of_nothing_is_an_empty_table_as_a_zero_byte_file(backend, tmp_path, tx):
    """A gzipped empty export was refused ("empty file") where the same export unzipped was a note."""
    import gzip

    tx.to_parquet(tmp_path / "transactions.parquet")
    with gzip.open(tmp_path / "referrals.csv.gz", "wb"):
        pass
    data = load_data(tmp_path, backend=backend)
    assert any(n.table == "referrals" and n.rule.startswith("empty table") for n in data.quality.notes)
    assert data.to_pandas("referrals").empty


@pytest.mark.parametrize("body", [b"\xef\xbb\xbf", b"\n", b"\xef\xbb\xbf\r\n", b" \r\n\r\n"])
def test_a_csv_of_a_bom_or_blank_lines_alone_is_an_empty_table(backend, tmp_path, tx, body):
    """A BOM alone (a spreadsheet's "CSV UTF-8" of an empty sheet) or a lone line break was refused as
    an "empty file" (exit 3) where the 0-byte export of the same empty table was a note."""
    tx.to_parquet(tmp_path / "transactions.parquet")
    (tmp_path / "activities.csv").write_bytes(body)
    data = load_data(tmp_path, backend=backend)
    assert any(n.table == "activities" and n.rule.startswith("empty table") for n in data.quality.notes)
    assert data.to_pandas("activities").empty


def test_a_connection_in_another_time_zone_is_refused(tx):
    """Zoned times follow the session's zone: on New York's, a purchase at 01:00 UTC on a cutoff day
    moved to the evening before, into that cutoff's features."""
    from kamml.errors import EngineError

    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'America/New_York'")
    zoned = tx.assign(ts=tx["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with pytest.raises(EngineError, match=r"time zone is America/New_York: .*SET TimeZone = 'UTC'"):
        load_data({"transactions": zoned}, backend=con)
    con.raw_sql("SET TimeZone = 'UTC'")
    assert load_data({"transactions": zoned}, backend=con).to_pandas("transactions")["ts"].tolist() == list(
        tx["ts"]
    )


def test_tables_written_by_spark_as_folders_named_like_files_are_found(tmp_path, tx):
    """Spark's ``df.write.parquet("data/transactions.parquet")`` writes a folder of that name: the data
    folder had "no transactions table" beside it, and an accounts.parquet/ folder was passed over."""
    for name, frame in (
        ("transactions", tx),
        ("accounts", pd.DataFrame({"account_id": [1, 2], "size": [3, 4]})),
    ):
        folder = tmp_path / f"{name}.parquet"
        folder.mkdir()
        frame.to_parquet(folder / "part-00000-abc.snappy.parquet")
        (folder / "_SUCCESS").write_bytes(b"")
    data = load_data(tmp_path)
    assert len(data.to_pandas("transactions")) == len(tx)
    assert data.to_pandas("accounts")["size"].tolist() == [3, 4]
    assert data.inputs["accounts"] == tmp_path / "accounts.parquet"
    (tmp_path / "transactions").mkdir()  # a folder of parts beside it: which one is meant?
    with pytest.raises(DataError, match="more than one source"):
        load_data(tmp_path)


def test_no_transactions_table_lists_every_kind_read(tmp_path):
    """The folder's warning listed the kinds kamml reads, but the error after it only "transactions.parquet,
    transactions.csv or a folder transactions/ of Parquet parts", though .tsv, .pq and .csv.gz are read."""
    (tmp_path / "transactions.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError) as raised:
        load_data(tmp_path)
    assert (
        "expected a file transactions.parquet, transactions.csv or another of the kinds kamml reads "
        "(.parquet, .pq, .csv, .csv.gz, .tsv, .tsv.gz, .txt, .txt.gz), or a folder transactions/ of parts"
    ) in str(raised.value)


def test_tables_named_in_another_case_are_found(tmp_path):
    """Accounts.csv and activities.CSV were passed over without a word, as if not given."""
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-02,3\n")
    (tmp_path / "Accounts.csv").write_text("account_id,owner\n1,Bob\n")
    (tmp_path / "activities.CSV").write_text("account_id,ts,hours\n1,2024-01-02,1.5\n")
    data = load_data(tmp_path)
    assert {"transactions", "accounts", "activities"} <= set(data.tables)


def test_a_relative_glob_in_the_config_is_looked_up_in_the_data_folder(tmp_path, monkeypatch):
    """It was matched from the working directory: not found there, or other files matched."""
    folder = tmp_path / "data"
    (folder / "exports").mkdir(parents=True)
    (folder / "exports" / "tx_1.csv").write_text("account_id,ts,amount\n1,2024-01-02,3\n")
    monkeypatch.chdir(tmp_path)
    cfg = Config.from_dict({"data": {"path": str(folder), "transactions": "exports/tx_*.csv"}})
    data = load_data(folder, cfg)
    assert data.tables["transactions"].count().to_pandas() == 1


def test_input_stamps_name_the_files_replaced_added_or_removed(tmp_path):
    """A job compares them before it registers or publishes (Parquet inputs are read lazily)."""
    import os

    from kamml.data.dataset import changed_inputs, input_stamps

    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-05,10\n")
    parts = tmp_path / "activities"
    parts.mkdir()
    (parts / "part-0.csv").write_text("account_id,ts,hours\n1,2024-01-02,1\n")
    paths = {"transactions": tmp_path / "transactions.csv", "activities": parts}
    before = input_stamps(paths)
    assert changed_inputs(before, paths) == []
    (tmp_path / "new.csv").write_text("account_id,ts,amount\n2,2024-01-05,10\n")
    os.replace(tmp_path / "new.csv", tmp_path / "transactions.csv")  # same size: another file
    (parts / "part-1.csv").write_text("account_id,ts,hours\n")
    assert changed_inputs(before, paths) == [str(parts / "part-1.csv"), str(tmp_path / "transactions.csv")]
    (parts / "part-0.csv").unlink()
    assert str(parts / "part-0.csv") in changed_inputs(before, paths)


def test_a_relative_data_path_not_found_names_the_folder_it_was_looked_for_in(tmp_path, monkeypatch):
    """`data.path: d1` in a config run from another folder said only "data not found: d1": not where it
    looked, nor that a relative path is read from the folder the command runs in."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as raised:
        load_data("d1")
    message = str(raised.value)
    assert message.startswith("data not found: d1")
    assert str(tmp_path / "d1") in message
    assert "the folder the command runs in" in message


ABFS = "abfss://c@acct.dfs.core.windows.net/accounts.parquet"


@pytest.mark.parametrize(
    ("source", "data", "uri"),
    [
        ("hdfs:///crm/kamml", {}, "hdfs:///crm/kamml"),
        ("s3a://bucket/data", {}, "s3a://bucket/data"),
        ({"transactions": "s3a://bucket/tx.parquet"}, {}, "s3a://bucket/tx.parquet"),
        (None, {"transactions": "s3a://bucket/tx.parquet"}, "s3a://bucket/tx.parquet"),
        ("FOLDER", {"accounts": ABFS}, ABFS),  # a local folder, one table of the config a URI
    ],
)
def test_a_uri_input_is_named_as_given_and_refused_as_not_local(source, data, uri, tx, tmp_path):
    """The tables are read from local files (the readers list and check them on the driver): a URI came
    back through `Path` as 's3a:/bucket/data' in "data not found: s3a:/bucket/data (/cwd/s3a:/bucket/data:
    a relative path is read from the folder the command runs in)", neither what was written nor the cause."""
    if source == "FOLDER":
        tx.to_csv(tmp_path / "transactions.csv", index=False)
        source = tmp_path
    with pytest.raises(DataError) as raised:
        load_data(source, Config.from_dict({"data": data}))
    message = str(raised.value)
    assert uri in message, message
    assert "not from a URI" in message
    assert "engine name spark" in message  # a job reads it through Spark (kamml.spark.remote_tables)
    assert "a relative path" not in message
    assert input_paths(source, DataConfig(**data)) == {}  # nothing local to stamp or check outputs against
