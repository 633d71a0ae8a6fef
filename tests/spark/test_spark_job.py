"""The whole job on Spark local[2] (features -> score -> allocate) equals the DuckDB path on the same data.

Scores to 1e-9 relative, hours to 1e-6 absolute (in practice both agree to rounding), ranks, tiers and
reasons exactly; the allocation alone is also checked on random score tables under every kind of limit.
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamml.allocation import allocate, budget_curve
from kamml.allocation.allocate import PERCENT_HINT, WRONG_ID_TYPE_RULE
from kamml.allocation.optimizer import rep_names
from kamml.allocation.scores_file import OUTSIDE_INT64_RULE
from kamml.allocation.summary import amount
from kamml.config import AllocationConfig, Config
from kamml.data import load_data
from kamml.data.validation import NUMBER_HINT
from kamml.errors import ConfigError, DataError, FeatureMismatchError, InfeasibleError, SchemaError
from kamml.features import build_features, write_features
from kamml.jobs.score import SCORE_COLUMNS, score

pytestmark = [pytest.mark.spark]

SPARK = {
    "name": "spark",
    "spark": {
        "master": "local[2]",
        "driver_memory": "1g",
        "conf": {"spark.sql.shuffle.partitions": "4", "spark.ui.showConsoleProgress": "false"},
    },
}


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from kamml.engine import java_available
    from kamml.spark import spark_session

    if not java_available():
        pytest.fail("the Spark tests need Java 17 (it is on every CI machine)")
    return spark_session(Config.from_dict({"engine": SPARK}))


def spark_config(config: Config) -> Config:
    cfg = config.model_copy(deep=True)
    cfg.engine = Config.from_dict({"engine": SPARK}).engine
    return cfg


def read_parts(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def assert_scores_equal(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(SCORE_COLUMNS)
    a = duck.set_index("account_id").sort_index()
    b = spark.set_index("account_id").sort_index()
    pd.testing.assert_index_equal(a.index, b.index, exact=False)
    for col in ("clv", "p_churn", "referral_value", "p_alive", "expected_purchases", "effort_scale"):
        pd.testing.assert_series_equal(a[col], b[col], rtol=1e-9, atol=0, check_dtype=False, obj=col)
    assert (pd.to_datetime(a["cutoff"]) == pd.to_datetime(b["cutoff"])).all()
    assert (a["model_uri"] == b["model_uri"]).all()
    assert b["horizon_days"].dtype == np.int64
    assert (a["horizon_days"] == b["horizon_days"]).all()
    assert list(a["owner"]) == list(b["owner"])
    drivers = a["drivers"].map(lambda d: "; ".join(d) if isinstance(d, list | np.ndarray) else d)
    assert list(drivers) == list(b["drivers"])


def assert_allocation_equal(mem: pd.DataFrame, out: pd.DataFrame, summary: dict, hours_atol=1e-6) -> None:
    assert list(out.columns) == list(mem.columns)
    assert list(out["rank"]) == list(range(1, len(out) + 1))  # parts are written in rank order
    a = mem.set_index("account_id").sort_index()
    b = out.set_index("account_id").sort_index()
    pd.testing.assert_index_equal(a.index, b.index, exact=False)
    np.testing.assert_allclose(b["recommended_hours"], a["recommended_hours"], rtol=0, atol=hours_atol)
    for col in ("stake", "stake_retention", "stake_growth", "stake_referral", "effort_scale"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-12, atol=0, err_msg=col)
    for col in ("expected_gain", "marginal_gain_per_hour"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-7, atol=1e-9, err_msg=col)
    assert list(b["rank"]) == list(a["rank"])
    assert list(b["tier"]) == list(a["tier"])
    assert list(b["reasons"]) == list(a["reasons"])
    assert list(b["owner"]) == list(a["owner"])
    assert b["horizon_days"].astype("Int64").tolist() == a["horizon_days"].tolist()
    # the scoring each row comes from (null for scores without one), typed alike on both engines
    assert pd.api.types.is_datetime64_any_dtype(b["cutoff"])
    assert b["cutoff"].tolist() == a["cutoff"].tolist()
    assert b["model_uri"].astype(object).where(b["model_uri"].notna(), None).tolist() == (
        a["model_uri"].astype(object).where(a["model_uri"].notna(), None).tolist()
    )
    expected = mem.attrs["allocation"]
    assert set(summary) == set(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert summary[key] == pytest.approx(value, rel=1e-7)
        elif isinstance(value, list):  # the tiers' names
            assert summary[key] == value, key
        elif value is None:  # the horizon, cutoff or model of scores without one
            assert summary[key] is None, key
        elif isinstance(value, str):  # the scores' one cutoff and model_uri
            assert summary[key] == value, key
        elif value == 0:  # a price of 0 (hours to spare) is exactly 0, not a tiny positive one
            assert summary[key] == 0, key
        else:
            assert summary[key] == pytest.approx(value, rel=1e-7, abs=1e-7), key


def assert_curve_equal(mem: pd.DataFrame, out: pd.DataFrame | None) -> None:
    """The Spark budget curve against `budget_curve`'s: same budgets and feasibility, figures to 1e-7."""
    assert out is not None
    assert list(out.columns) == list(mem.columns)
    assert out["feasible"].tolist() == mem["feasible"].tolist()
    np.testing.assert_array_equal(out[["fraction", "hours"]], mem[["fraction", "hours"]])
    for col in ("total_gain", "team_price", "hours_used"):
        np.testing.assert_allclose(out[col], mem[col], rtol=1e-7, atol=1e-9, err_msg=col)
    assert ((out["team_price"] == 0) == (mem["team_price"] == 0)).all()  # hours to spare: exactly 0
    # a difference of two gains: to 1e-7 of the gain
    np.testing.assert_allclose(out["floor_cost"], mem["floor_cost"], atol=1e-7 * mem["total_gain"].max())


def test_features_frame_numbers_are_doubles(spark, world_path):
    """Spark reads the literal 1.0 as DECIMAL(2,1): counts summed from it must still arrive as doubles."""
    from pyspark.sql import types as T  # noqa: N812

    from kamml.spark.session import features_frame

    cfg = spark_config(Config())
    data = load_data(world_path, cfg)
    frame = features_frame(data, data.end, cfg)
    types = {f.name: f.dataType for f in frame.schema.fields}
    assert not [name for name, t in types.items() if isinstance(t, T.DecimalType)]
    assert isinstance(types["frequency"], T.DoubleType)
    assert isinstance(types["orders_30d"], T.DoubleType)
    rows = frame.limit(5).toPandas()
    assert rows["frequency"].dtype == np.float64
    assert rows["cutoff_month"].dtype == np.float64


def test_static_columns_without_an_accounts_table_are_noted_on_spark(spark, world_path, tmp_path, caplog):
    """build_features warned that features.static_columns had no accounts table to apply to; the Spark
    features (features_frame, and so score_spark on a Dataset) ignored the setting without a word."""
    from kamml.spark.session import features_frame

    (tmp_path / "tx").mkdir()
    tx = pd.read_parquet(world_path / "transactions.parquet")
    tx.to_parquet(tmp_path / "tx" / "transactions.parquet", coerce_timestamps="us")
    chosen = {"features": {"static_columns": ["segment"]}}
    cfg = spark_config(Config.from_dict(chosen))
    data = load_data(tmp_path / "tx", cfg)
    with caplog.at_level(logging.WARNING, logger="kamml.features"):
        frame = features_frame(data, data.end, cfg)
    assert not any(c.startswith("attr_") for c in frame.columns)
    assert "features.static_columns (segment) is set but the data has no accounts table" in caplog.text


def test_data_quality_notes_equal_duckdb(spark, tmp_path):
    """The notes read the same on Spark as on DuckDB (the extreme amounts' bar is approximate on Spark)."""
    rng = np.random.default_rng(1)
    tx = pd.DataFrame(
        {
            "account_id": np.arange(500) % 50,
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(500) % 100, unit="D"),
            "amount": rng.lognormal(3.0, 1.0, 500),
        }
    )
    tx.loc[3, "amount"] = 5e7
    tx["quantity"] = 1.0
    tx.loc[[5, 9], "quantity"] = -2.0  # purchases with a negative quantity: a note on both engines
    tx.to_parquet(tmp_path / "transactions.parquet", coerce_timestamps="us")
    duck = load_data(tmp_path, Config()).quality.notes
    on_spark = load_data(tmp_path, spark_config(Config())).quality.notes

    def same(note):
        return note.table, note.column, note.rule.split(" (")[0], note.n_rows, tuple(note.examples)

    assert [same(n) for n in on_spark] == [same(n) for n in duck]
    assert any("extreme amounts" in n.rule for n in duck)
    assert any(n.rule.startswith("negative quantity on a purchase") and n.n_rows == 2 for n in duck)


def test_ids_written_two_ways_are_noted_on_spark_as_on_duckdb(spark, tmp_path):
    """Zero-padded account ids beside the transactions' bare ones: the same note on both engines."""
    tx = pd.DataFrame(
        {
            "account_id": ["1", "2", "100", "100"],
            "ts": pd.to_datetime(["2024-01-02", "2024-01-05", "2024-02-01", "2024-03-01"]),
            "amount": [10.0, 20.0, 30.0, 40.0],
        }
    )
    tx.to_parquet(tmp_path / "transactions.parquet", coerce_timestamps="us")
    pd.DataFrame({"account_id": ["001", "002", "100"], "segment": ["a", "b", "a"]}).to_parquet(
        tmp_path / "accounts.parquet"
    )

    def two_ways(config):
        return [
            (n.n_rows, tuple(n.examples))
            for n in load_data(tmp_path, config).quality.notes
            if "written two ways" in n.rule
        ]

    assert two_ways(spark_config(Config())) == two_ways(Config()) == [(2, ("001", "002"))]


def test_parquet_parts_with_differing_schemas(spark, tmp_path):
    """A part with a column the others lack is merged by name as on DuckDB (Spark took one part's schema
    and dropped the column); number types Spark cannot merge itself are read in DuckDB's common type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = pa.array([1704067200000000, 1704153600000000], type=pa.timestamp("us"))
    merged = tmp_path / "merged"
    merged.mkdir()
    pq.write_table(pa.table({"account_id": [1, 2], "ts": ts, "amount": [1.0, 2.0]}), merged / "a.parquet")
    later = pa.table({"account_id": [3, 4], "ts": ts, "amount": [1.0, 2.0], "product": ["x", "y"]})
    pq.write_table(later, merged / "b.parquet")
    duck = load_data({"transactions": merged}, Config()).to_pandas("transactions")
    on_spark = load_data({"transactions": merged}, spark_config(Config())).to_pandas("transactions")
    assert on_spark.sort_values("account_id")["product"].tolist() == [None, None, "x", "y"]
    pd.testing.assert_frame_equal(
        on_spark.sort_values("account_id").reset_index(drop=True),
        duck.sort_values("account_id").reset_index(drop=True),
        check_dtype=False,  # ts: Spark's frame holds microseconds, DuckDB's nanoseconds
    )
    widened = tmp_path / "widened"
    widened.mkdir()
    narrow = pa.table({"account_id": pa.array([1, 2], pa.int32()), "ts": ts, "amount": [1.0, 2.0]})
    pq.write_table(narrow, widened / "a.parquet")
    pq.write_table(later.drop_columns("product"), widened / "b.parquet")
    # int32 beside int64 ids: Spark cannot merge them itself (it refused them), so kamml reads the parts
    # apart and casts them to DuckDB's common type, bigint
    duck_widened = load_data({"transactions": widened}, Config()).to_pandas("transactions")
    spark_widened = load_data({"transactions": widened}, spark_config(Config())).to_pandas("transactions")
    assert sorted(spark_widened["account_id"]) == sorted(duck_widened["account_id"]) == [1, 2, 3, 4]
    # dictionary-encoded and large text are text to Spark: they merge
    encoded = tmp_path / "encoded"
    encoded.mkdir()
    pq.write_table(
        later.set_column(3, "product", pa.array(["a", "b"]).dictionary_encode()), encoded / "a.parquet"
    )
    pq.write_table(
        later.set_column(3, "product", pa.array(["c", "d"], pa.large_string())), encoded / "b.parquet"
    )
    read = load_data({"transactions": encoded}, spark_config(Config())).to_pandas("transactions")
    assert sorted(read["product"]) == ["a", "b", "c", "d"]


def test_messy_csv_reads_and_fails_as_on_duckdb(spark, tmp_path):
    """Doubled quotes and backslashes read as text; a short row is a DataError; inf is not a finite
    number (Ibis compiled isinf() to false on Spark); examples are the same (ordered before the limit)."""

    def load_both(text: str) -> list:
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "transactions.csv").write_text(text)
        out = []
        for cfg in (Config(), spark_config(Config())):
            try:
                out.append(load_data(folder, cfg))
            except (DataError, SchemaError) as exc:
                out.append(exc)
        return out

    duck, on_spark = load_both(
        'account_id,ts,amount,product\n1,2024-01-05,10,"24"" monitor, black"\n2,2024-01-06,5,"C:\\dir\\"\n'
    )
    assert on_spark.to_pandas("transactions")["product"].tolist() == ['24" monitor, black', "C:\\dir\\"]
    assert duck.to_pandas("transactions")["product"].tolist() == ['24" monitor, black', "C:\\dir\\"]
    assert on_spark.to_pandas("transactions")["quantity"].dtype == np.float64  # was Decimal objects
    duck, on_spark = load_both("account_id,ts,amount,product\n1,2024-01-05,10\n")
    assert isinstance(duck, DataError)
    assert isinstance(on_spark, DataError)
    assert "Malformed CSV record" in str(on_spark)
    duck, on_spark = load_both("account_id,ts,amount\n1,2024-01-05,10\n2,2024-01-06,inf\n")
    assert [str(p) for p in on_spark.problems] == [str(p) for p in duck.problems]
    assert "not a finite number" in str(on_spark)
    # DuckDB's cast read "1_000" and Spark's (Java's) "1d" and "0x1p3": the same number text on both now
    numbers = "".join(f"{i},2024-01-0{i},{v}\n" for i, v in enumerate(["1_000", "1d", "0x1p3", "+.5E1"], 1))
    duck, on_spark = load_both("account_id,ts,amount\n" + numbers)
    assert [str(p) for p in on_spark.problems] == [str(p) for p in duck.problems]
    assert f"unparseable number{NUMBER_HINT} (3 rows" in str(on_spark)
    refunds = "".join(f"{i},2024-01-{i:02d},-{i}\n" for i in range(1, 10))
    duck, on_spark = load_both("account_id,ts,amount\n" + refunds + "1,2024-02-01,50\n")
    assert [str(n) for n in on_spark.quality.notes] == [str(n) for n in duck.quality.notes]


def test_rows_of_another_width_beside_a_column_the_checks_skip_are_refused_on_spark(spark, tmp_path):
    """A row with too few or too many fields is a DataError on both engines when the CSV has a column the
    checks never read (product): Spark's column pruning padded or cut the row to the columns a query read,
    so a short row read as null id, date and amount (a SchemaError) and a long one passed the checks."""
    header = "transaction_id,account_id,ts,amount,product\n"
    good = "1,1,2024-01-05,10,a\n3,3,2024-01-07,5,a\n"
    for bad in ("2\n", "2,2,2024-01-06,5,a,extra\n"):
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "transactions.csv").write_text(header + good + bad)
        for cfg in (Config(), spark_config(Config())):
            with pytest.raises(DataError, match=r"transactions: cannot read .*transactions\.csv"):
                load_data(folder, cfg)


def refused_on_both_engines(folder: Path) -> list[list[str]]:
    """The problems `load_data` refuses `folder` with on DuckDB, then on Spark, as text."""
    refused = []
    for cfg in (Config(), spark_config(Config())):
        with pytest.raises(SchemaError) as caught:
            load_data(folder, cfg)
        refused.append([str(p) for p in caught.value.problems])
    return refused


def test_nan_text_is_no_unparseable_number_on_spark(spark, tmp_path):
    """A CSV's "nan" amount is "not a finite number" on both engines, not also "unparseable number" on
    Spark (Ibis on Spark counts the cast's NaN as null); a "nan" attribute reads alike too."""
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-05,nan\n2,2024-01-06,5\n")
    (tmp_path / "accounts.csv").write_text("account_id,size\n1,nan\n2,3\n")
    refused = refused_on_both_engines(tmp_path)
    assert refused[1] == refused[0]
    assert not any("unparseable" in p for p in refused[0])
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n1,2024-01-05,3\n2,2024-01-06,5\n")
    read = []
    for cfg in (Config(), spark_config(Config())):
        try:
            data = load_data(tmp_path, cfg)
            read.append(([str(n) for n in data.quality.notes], data.to_pandas("accounts")["size"].dtype.kind))
        except SchemaError as exc:
            read.append([str(p) for p in exc.problems])
    assert read[1] == read[0]


def test_infinite_attributes_and_repeats_without_ids_read_as_on_duckdb(spark, tmp_path):
    """An inf attribute is refused, and rows repeated with an empty transaction id noted, on both engines."""
    rows = "1,2024-01-05,10,\n2,2024-01-06,5,\n"
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount,transaction_id\n" + rows + rows)
    (tmp_path / "accounts.csv").write_text("account_id,size,brand\n1,inf,inf\n2,3,acme\n")
    refused = refused_on_both_engines(tmp_path)
    assert refused[0] == refused[1]
    assert any("size" in p and "not a finite number" in p for p in refused[0])
    (tmp_path / "accounts.csv").write_text("account_id,size,brand\n1,1.5,inf\n2,3,acme\n")
    duck, on_spark = (load_data(tmp_path, cfg) for cfg in (Config(), spark_config(Config())))
    assert [str(n) for n in on_spark.quality.notes] == [str(n) for n in duck.quality.notes]
    assert duck.quality.count("rows without a transaction id") == 2


def test_the_spark_writers_refuse_to_write_over_their_inputs(spark, tmp_path):
    """The CLI checked this; the Python API wrote scores into the activities' folder, and the allocation
    over the scores it had read."""
    from kamml.spark import allocate_spark, score_spark

    scores = tmp_path / "scores.parquet"
    random_scores(50, seed=2).to_parquet(scores)
    with pytest.raises(DataError, match="scores"):
        allocate_spark(scores, 10, AllocationConfig(), scores, session=spark)
    assert len(pd.read_parquet(scores)) == 50
    world = tmp_path / "world"
    world.mkdir()
    (world / "activities").mkdir()
    random_scores(5, seed=1)[["account_id"]].assign(
        ts=pd.Timestamp("2024-01-01"), hours=1.0, amount=1.0
    ).to_parquet(world / "activities" / "part-0.parquet", coerce_timestamps="us")
    random_scores(5, seed=1)[["account_id"]].assign(ts=pd.Timestamp("2024-01-01"), amount=1.0).to_parquet(
        world / "transactions.parquet", coerce_timestamps="us"
    )
    data = load_data(world, spark_config(Config()))
    with pytest.raises(DataError, match="activities"):
        score_spark("models:/nothing@none", data, data.end, world / "activities" / "scores.parquet")


@pytest.mark.slow
def test_whole_job_on_spark_equals_duckdb(spark, trained, world_path, tmp_path):
    from kamml.spark import allocate_spark, score_spark

    config, data, result = trained
    cutoff = result.scoring_cutoff
    reps = sorted(data.to_pandas("accounts")["owner"].dropna().unique())
    alloc_cfg = AllocationConfig(
        hours=600.0, floor_hours=0.25, cap_hours=20.0, capacity={reps[0]: 40.0, reps[1]: 1e6}
    )

    duck_scores = score(result.model_uri, data, cutoff, config)
    duck_alloc = allocate(duck_scores, None, alloc_cfg)

    cfg = spark_config(config)
    data_spark = load_data(world_path, cfg)
    assert data_spark.backend.name == "pyspark"
    scores_dir = score_spark(result.model_uri, data_spark, cutoff, tmp_path / "scores", cfg)
    spark_scores = read_parts(scores_dir)
    assert len(list(Path(scores_dir).glob("part-*.parquet"))) >= 1
    assert_scores_equal(duck_scores, spark_scores)

    out = allocate_spark(scores_dir, None, alloc_cfg, tmp_path / "allocation")
    assert_allocation_equal(duck_alloc, read_parts(out.path), out.summary)
    assert out.summary["rep_price"][reps[0]] > out.summary["team_price"]  # the small capacity binds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["allocation", "scores"]  # no temp folders left
    first = pd.Timestamp(data_spark.quality.tables["transactions"].first).normalize()
    with pytest.raises(ConfigError, match="on or before the first transaction"):  # as in memory
        score_spark(result.model_uri, data_spark, first - pd.Timedelta(days=30), tmp_path / "early", cfg)


@pytest.mark.slow
def test_an_attribute_emptied_since_training_is_warned_about_on_spark(
    spark, trained, world_path, tmp_path, caplog
):
    """As in memory (`warn_lost_features`), from the accounts table at the cutoff: the features are lazy."""
    import shutil

    from kamml.spark.score import warn_lost_attributes

    config, _, result = trained
    cfg = spark_config(config)
    cut = result.scoring_cutoff
    assert warn_lost_attributes(load_data(world_path, cfg), result.bundle, [], cut, cfg) == []
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    accounts["size"] = np.nan  # written as nulls
    accounts.loc[accounts.index[:3], "size"] = 5.0  # 3 of 400: under a quarter of the training share
    accounts["region"] = np.where(accounts.index % 2 == 0, accounts["region"], None)  # half: kept
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    emptied = load_data(tmp_path / "world", cfg)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        assert warn_lost_attributes(emptied, result.bundle, [], cut, cfg) == ["attr_size"]
    assert f"feature attr_size has a value on 0.8 % of the {len(accounts):,} accounts scored" in caplog.text
    assert "check accounts.size" in caplog.text
    assert warn_lost_attributes(emptied, result.bundle, ["attr_size"], cut, cfg) == []  # told already
    in_memory = load_data(tmp_path / "world", config)
    assert warn_lost_attributes(in_memory, result.bundle, [], cut, config) == ["attr_size"]  # any engine


@pytest.mark.slow
def test_attribute_shares_are_of_the_accounts_scored_on_spark_as_in_memory(
    spark, trained, world_path, tmp_path, caplog
):
    """Spark took the shares over the accounts table's rows: 2,000 undated prospects without a size (not
    scored, no purchase) read as attr_size lost, while in memory, over the accounts scored, it was not."""
    import shutil

    from kamml.jobs.score import warn_lost_features
    from kamml.spark.score import warn_lost_attributes

    config, _, result = trained
    cfg = spark_config(config)
    cut = result.scoring_cutoff
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    start = int(accounts["account_id"].max()) + 1
    prospects = pd.DataFrame({"account_id": range(start, start + 2000), "segment": "SMB"})
    accounts = pd.concat([accounts, prospects], ignore_index=True)  # no created_at, size or transactions
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet", coerce_timestamps="us")
    in_memory = load_data(tmp_path / "world", config)
    features = build_features(in_memory, cut, result.bundle.scoring_config(config))
    assert warn_lost_features(result.bundle, features) == []
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        assert warn_lost_attributes(load_data(tmp_path / "world", cfg), result.bundle, [], cut, cfg) == []
    assert "attr_size" not in caplog.text


@pytest.mark.slow
def test_category_levels_the_models_never_saw_are_noted_on_spark(
    spark, trained, world_path, tmp_path, caplog
):
    """As in memory (`note_unseen_levels`), counted on the accounts table: the Spark features are lazy."""
    import shutil

    from kamml.spark.score import note_unseen_levels_spark

    config, _, result = trained
    cfg = spark_config(config)
    cut = result.scoring_cutoff
    assert note_unseen_levels_spark(load_data(world_path, cfg), result.bundle, cut, cfg) == []
    ids = result.features.index[result.features["attr_segment"].notna()][:9]
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    new = {account: "government" for account in ids[:6]} | {account: "public sector" for account in ids[6:]}
    accounts["segment"] = accounts["account_id"].map(new).fillna(accounts["segment"])
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    data = load_data(tmp_path / "world", cfg)
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        notes = note_unseen_levels_spark(data, result.bundle, cut, cfg)
    in_memory = load_data(tmp_path / "world", config)
    score(result.bundle, in_memory, cut, config, explain_top=0)
    expected = [n for n in in_memory.quality.notes if "never saw in training" in n.rule]
    assert notes == expected  # table, column, rule, 9 rows, the most frequent first
    assert [n for n in data.quality.notes if "never saw in training" in n.rule] == notes
    assert f"accounts.segment: 9 of {len(accounts):,} accounts scored hold" in caplog.text


@pytest.mark.slow
def test_unseen_levels_count_the_accounts_scored_on_spark_as_in_memory(
    spark, trained, world_path, tmp_path, caplog
):
    """Spark counted the accounts table's rows: undated rows without a purchase before the cutoff (not
    scored, in memory or on Spark) were counted among the accounts holding a new level."""
    import shutil

    from kamml.spark.score import note_unseen_levels_spark

    config, _, result = trained
    cfg = spark_config(config)
    cut = result.scoring_cutoff
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    ids = result.features.index[result.features["attr_segment"].notna()][:2]
    accounts.loc[accounts["account_id"].isin(ids), "segment"] = "government"
    start = int(accounts["account_id"].max()) + 1
    prospects = pd.DataFrame({"account_id": range(start, start + 5), "segment": "government"})
    accounts = pd.concat([accounts, prospects], ignore_index=True)  # no created_at, no transactions
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet", coerce_timestamps="us")
    in_memory = load_data(tmp_path / "world", config)
    scored = score(result.bundle, in_memory, cut, config, explain_top=0)
    expected = [n for n in in_memory.quality.notes if "never saw in training" in n.rule]
    assert [n.n_rows for n in expected] == [2]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        notes = note_unseen_levels_spark(load_data(tmp_path / "world", cfg), result.bundle, cut, cfg)
    assert notes == expected
    assert f"accounts.segment: 2 of {len(scored):,} accounts scored hold" in caplog.text


@pytest.mark.slow
def test_scoring_on_spark_reads_the_attributes_of_the_accounts_scored_once(
    spark, trained, world_path, tmp_path, caplog, monkeypatch
):
    """The lost-attribute warning and the unseen-level note each joined the accounts table onto the
    accounts scored: two scans of the transactions before the cutoff; now one, cached, for both."""
    import shutil

    import kamml.spark.score as spark_score

    config, _, result = trained
    cfg = spark_config(config)
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    accounts["size"] = np.nan  # lost since training
    ids = result.features.index[result.features["attr_segment"].notna()][:4]
    accounts.loc[accounts["account_id"].isin(ids), "segment"] = "government"  # never seen in training
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    built = []
    account_base = spark_score.account_base
    monkeypatch.setattr(spark_score, "account_base", lambda ctx: built.append(ctx) or account_base(ctx))
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        spark_score.score_frame_spark(
            result.bundle, load_data(tmp_path / "world", cfg), result.scoring_cutoff, cfg, explain_top=0
        )
    assert "feature attr_size has a value on 0.0 % of the" in caplog.text
    assert "accounts.segment: 4 of" in caplog.text
    assert len(built) == 1


@pytest.mark.slow
def test_a_model_of_another_churn_label_is_warned_about_on_spark(spark, trained, world_path, caplog):
    """`kamml score` on Spark scored with the champion's churn definition without the in-memory warning."""
    from kamml.spark.score import score_frame_spark

    config, _, result = trained
    cfg = spark_config(config)
    data = load_data(world_path, cfg)
    other = cfg.model_copy(deep=True)
    other.models.churn_label = "no_purchase_or_nonrenewal"
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score_frame_spark(result.bundle, data, result.scoring_cutoff, cfg, top_drivers=0)
        assert "churn_label" not in caplog.text
        score_frame_spark(result.bundle, data, result.scoring_cutoff, other, top_drivers=0)
    assert (
        "the model was trained with models.churn_label no_purchase, but the config says "
        "no_purchase_or_nonrenewal" in caplog.text
    )


@pytest.mark.slow
def test_amounts_in_another_unit_than_at_training_are_warned_about_on_spark(
    spark, trained, world_path, tmp_path, caplog
):
    """As in memory (`warn_money_unit`): a Spark job scoring amounts in cents for a model trained in
    dollars said nothing. The accounts' median positive `monetary` is taken on Spark, from a Dataset's
    transactions or from the feature rows given."""
    import shutil

    from kamml.jobs.score import warn_money_unit
    from kamml.spark.score import score_frame_spark

    config, data, result = trained
    cfg = spark_config(config)
    cut = result.scoring_cutoff
    features = tmp_path / "features.parquet"
    write_features(data, cut, features, result.bundle.scoring_config(config))
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score_frame_spark(result.bundle, load_data(world_path, cfg), cut, cfg, explain_top=0)
        score_frame_spark(result.bundle, spark.read.parquet(str(features)), cut, cfg, explain_top=0)
    assert "another unit" not in caplog.text  # the same unit as at training

    shutil.copytree(world_path, tmp_path / "world")
    tx = pd.read_parquet(world_path / "transactions.parquet")
    tx["amount"] *= 100  # a CRM export switched to cents
    tx.to_parquet(tmp_path / "world" / "transactions.parquet", coerce_timestamps="us")
    cents = build_features(load_data(tmp_path / "world", config), cut, result.bundle.scoring_config(config))
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        ratio = warn_money_unit(result.bundle, cents)  # in memory
    assert ratio is not None
    assert ratio > 10
    expected = caplog.text.strip().splitlines()[-1]
    assert f"{ratio:.3g} times the" in expected
    message = expected[expected.index("transactions.amount") :]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score_frame_spark(result.bundle, load_data(tmp_path / "world", cfg), cut, cfg, explain_top=0)
    assert caplog.text.count("another unit") == 1
    assert message in caplog.text  # the in-memory rule and words, the same median here
    caplog.clear()
    given = spark.read.parquet(str(features))
    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score_frame_spark(result.bundle, given.withColumn("monetary", given["monetary"] * 100), cut, cfg)
    assert message in caplog.text  # feature rows given: their own column


@pytest.mark.slow
def test_text_in_an_attribute_the_model_read_as_numbers_names_the_accounts_column_on_spark(
    spark, trained, world_path, tmp_path
):
    """As in memory: the executors stopped with the model's error inside a Spark traceback (exit 1)."""
    import shutil

    from kamml.errors import SchemaError
    from kamml.spark import score_spark

    config, _, result = trained
    cfg = spark_config(config)
    shutil.copytree(world_path, tmp_path / "world")
    accounts = pd.read_parquet(world_path / "accounts.parquet")
    accounts["size"] = accounts["size"].astype(str)
    accounts.loc[accounts.index[:3], "size"] = "n/a"
    accounts.loc[accounts.index[3], "size"] = "1d"  # Java's cast reads it; the model's does not
    accounts.loc[accounts.index[4], "size"] = " 12.5e0 "  # a number, as pandas reads it
    accounts.loc[accounts.index[5], "size"] = "nan"  # pandas' text of a missing number: refused in memory
    accounts.to_parquet(tmp_path / "world" / "accounts.parquet")
    data = load_data(tmp_path / "world", cfg)
    with pytest.raises(SchemaError) as info:
        score_spark(result.bundle, data, result.scoring_cutoff, tmp_path / "scores", cfg)
    (problem,) = info.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("accounts", "size", 4)
    assert sorted(problem.examples) == ["1d", "n/a"]
    assert problem.rule.startswith("not a number")
    assert not (tmp_path / "scores").exists()
    in_memory = load_data(tmp_path / "world", config)
    with pytest.raises(SchemaError) as same:
        score(result.bundle, in_memory, result.scoring_cutoff, config)
    assert same.value.problems[0].n_rows == 4


@pytest.mark.slow
def test_score_from_features_parquet_and_refusal(spark, trained, tmp_path):
    from kamml.spark import score_spark

    config, data, result = trained
    cutoff = result.scoring_cutoff
    features = tmp_path / "features.parquet"
    write_features(data, cutoff, features, result.bundle.scoring_config(config))
    # the config names the store the model is in: without it the URI was looked up in whichever store
    # an earlier test had left MLflow on (this test failed when run alone)
    folder = score_spark(result.model_uri, features, cutoff, tmp_path / "scores", config)
    duck = score(result.model_uri, data, cutoff, config)
    duck["owner"] = None  # a features file carries no owner
    assert_scores_equal(duck, read_parts(folder))

    # a plain bundle folder works too, and a second run replaces the folder in place
    bundle = tmp_path / "bundle"
    result.bundle.save(bundle)
    again = read_parts(score_spark(str(bundle), features, cutoff, tmp_path / "scores"))
    assert (again["model_uri"] == str(bundle)).all()
    assert_scores_equal(duck.assign(model_uri=str(bundle)), again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "features.parquet", "scores"]

    # drivers only for the 50 accounts with the most value at stake, as the in-memory path names them
    top = read_parts(score_spark(str(bundle), features, cutoff, tmp_path / "scores", explain_top=50))
    duck_top = score(str(bundle), data, cutoff, config, explain_top=50).assign(owner=None)
    assert_scores_equal(duck_top, top)
    assert (top["drivers"] != "").sum() == 50

    short = spark.read.parquet(str(features)).drop("spend_90d")
    with pytest.raises(FeatureMismatchError, match="spend_90d"):
        score_spark(result.model_uri, short, cutoff, tmp_path / "never", config)
    assert not (tmp_path / "never").exists()


def random_scores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clv = np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(5, 1.5, n))
    return pd.DataFrame(
        {
            "account_id": rng.permutation(n) * 7 + 3,
            "clv": clv,
            "p_churn": rng.random(n),
            "referral_value": np.where(rng.random(n) < 0.8, 0.0, rng.lognormal(3, 1, n)),
            "p_alive": rng.random(n),
            "owner": rng.choice(np.array(["ann", "bob", "cy", None], dtype=object), n),
        }
    )


CASES = {
    "team only": {"hours": 1600.0, "_scoring": True},
    "reps bind": {"hours": 1600.0, "capacity": {"ann": 400.0, "bob": 600.0}},
    "no cap, one rep unlimited": {
        "hours": 10_000.0,
        "capacity": {"ann": 400.0, "bob": float("inf")},
        "cap_hours": None,
    },
    "reps bind, team has hours to spare": {
        "hours": 5000.0,
        "capacity": {"ann": 400.0, "bob": 600.0, "cy": 500.0},
        "cap_hours": 5.0,
    },
    "no floors": {"hours": 600.0, "floor_hours": 0.0},
    "hours to spare": {"hours": 1e6, "cap_hours": 5.0},
    "fitted effort scales in the scores": {"hours": 1200.0, "_fitted_k": True},
    "fixed effort scale, custom tiers": {
        "hours": 900.0,
        "effort_scale": 2.0,
        "effort_exponent": 0.3,
        "tiers": {"a": 0.1, "b": 1.0},
    },
    "tiers by stake, high churn risk from 0.3": {"hours": 1600.0, "tier_by": "stake", "high_churn_p": 0.3},
    "reasons of at most 60 characters": {"hours": 1600.0, "reasons_max_chars": 60},
    # parts weighted 0 are named by no flag ("influencer", "high churn risk"), on Spark as in memory
    "retention and referral switched off": {
        "hours": 1600.0,
        "weights": {"retention": 0.0, "growth": 0.3, "referral": 0.0},
    },
    # an account whose hours swing by 1e12 per unit of log-price: the sorted sums of the team's demand
    # are too coarse there (a review's find) and the search must sum those prices account by account
    "an account of effort scale 1e12": {"hours": 1200.0, "_huge_k": 1e12},
    "reps bind, an account of effort scale 1e11": {
        "hours": 1600.0,
        "capacity": {"ann": 400.0, "bob": 600.0},
        "floor_hours": 0.0,
        "_huge_k": 1e11,
    },
    # hours / scale overflows: the price that gives it its room is below every float (ended in an error)
    "an account of subnormal effort scale": {"hours": 1200.0, "floor_hours": 0.0, "_huge_k": 5e-324},
    "an account of subnormal effort scale, with floors": {"hours": 1200.0, "_huge_k": 5e-324},
    "reps bind, an account of subnormal effort scale": {
        "hours": 1600.0,
        "capacity": {"ann": 400.0, "bob": 600.0},
        "_huge_k": 5e-324,
    },
    # every scale 1e11-1e12 times the usual: the last bit of the team's price is worth more than its hours,
    # its bracket closes short of them and the hours are interpolated between its ends, as in memory (Spark
    # allocated none of 0.001 hours here, and 1.95 of 3 hours with floors)
    "effort scales of 1e12 hours, a thousandth of an hour to share": {
        "hours": 0.001,
        "floor_hours": 0.0,
        "_k_times": 1e12,
    },
    "effort scales of 1e12 hours, with floors": {"hours": 3.0, "floor_hours": 1e-4, "_k_times": 1e12},
    "reps bind, effort scales of 1e11 hours": {
        "hours": 0.05,
        "capacity": {"ann": 0.01, "bob": 0.02},
        "floor_hours": 0.0,
        "_k_times": 1e11,
    },
    # most accounts get no hours: they are in the last tier, not "key" by their stake (the CDNOW config)
    "scarce hours without floors": {"hours": 20.0, "floor_hours": 0.0},
    "tiers by clv, reps bind": {"hours": 1600.0, "tier_by": "clv", "capacity": {"ann": 400.0, "bob": 600.0}},
    "tiers by marginal gain": {"hours": 1600.0, "tier_by": "marginal_gain_per_hour", "cap_hours": 3.0},
    "ties at the edge of the top 10 %": {"hours": 1600.0, "_ties": True},
    "identical accounts across tier edges": {"hours": 1600.0, "_identical": True},
    "identical accounts across tier edges, tiers by clv": {
        "hours": 1600.0,
        "_identical": True,
        "tier_by": "clv",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_allocation_equals_in_memory(spark, tmp_path, case, caplog):
    from kamml.spark import allocate_spark

    scores = random_scores(2000, seed=len(case))
    scores["drivers"] = np.where(np.arange(2000) % 3 == 0, "spend is high; orders fell; new; x", None)
    settings = dict(CASES[case])
    fitted_k = settings.pop("_fitted_k", False)
    if fitted_k:  # per-account k from a fitted response, some missing
        scores["effort_scale"] = np.where(np.arange(2000) % 10 == 0, np.nan, 1.0 + (scores["clv"] ** 0.2))
        scores["effort_uplift"] = np.where(np.arange(2000) % 10 == 0, np.nan, 0.45)  # growth "auto"
        scores["model_uri"] = np.where(np.arange(2000) < 3, "models:/kamml/1", "models:/kamml/2")  # joined
    if settings.pop("_scoring", False):  # scores of one scoring: its cutoff and model on every row
        scores["cutoff"] = pd.Timestamp("2024-06-30")
        scores["model_uri"] = "models:/kamml/3"
    huge = settings.pop("_huge_k", None)
    if huge is not None:
        scores["effort_scale"] = 1.0 + scores["clv"] ** 0.2
        scores["effort_uplift"] = 0.45
        scores.loc[0, ["clv", "effort_scale"]] = [50.0, huge]
    times = settings.pop("_k_times", None)
    if times is not None:
        scores["effort_scale"] = times * (1.0 + scores["clv"] ** 0.2)
        scores["effort_uplift"] = 0.45
    if settings.pop("_ties", False):  # 286 accounts share the top clv (none is top-decile); 200 referrers
        i = np.arange(2000)
        scores["clv"] = np.where(i % 7 == 0, 5000.0, scores["clv"])
        scores["referral_value"] = np.where(i % 20 == 0, 900.0, np.where(i % 20 == 1, 400.0, 0.0))
    identical = settings.pop("_identical", False)
    if identical:  # two blocks of identical accounts, each across a tier's edge (as accounts without history)
        top = scores.index[:150]  # ranks 1-150 by gain: across the top 5 % (100)
        scores.loc[top, ["clv", "p_churn", "p_alive", "referral_value"]] = [9e4, 0.4, 0.9, 0.0]
        scores.loc[scores.index[150:500], ["clv", "p_churn", "p_alive", "referral_value"]] = [
            150.0,
            0.3,
            0.8,
            0.0,
        ]
        scores.loc[scores.index[:500], ["owner", "drivers"]] = ["ann", None]
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    cfg = AllocationConfig(**settings)
    mem = allocate(scores, None, cfg)
    # budgets from none (and next to none) to twice the hours, some below the floors (1600 h: 0.05 is 80 h)
    fractions = (0.0, 1e-11, 0.05, 0.1, 0.3, 0.6, 1.0, 1.4, 2.0)
    with caplog.at_level(logging.WARNING, logger="kamml.allocation.allocate"):
        out = allocate_spark(path, None, cfg, tmp_path / "alloc", session=spark, curve=fractions)
    table = read_parts(out.path)
    assert_allocation_equal(mem, table, out.summary, hours_atol=1e-9)
    assert_curve_equal(budget_curve(scores, None, cfg, fractions=fractions), out.curve)
    if "cutoff" in scores:
        assert (out.summary["cutoff"], out.summary["model_uri"]) == ("2024-06-30", "models:/kamml/3")
        assert set(table["cutoff"]) == {pd.Timestamp("2024-06-30")}
    # the accounts without a fitted k are said on Spark as in memory, and only then
    assert ("scores.effort_scale: 200 of 2,000 accounts have none" in caplog.text) == fitted_k
    mixed = "scores.model_uri: the rows hold 2 values, models:/kamml/2 on most; 3 rows have another"
    assert (mixed in caplog.text) == fitted_k
    if identical:  # each block is one tie with one tier; by gain, the top one straddles the top 5 %
        clv = scores.set_index("account_id").loc[table["account_id"], "clv"].to_numpy()
        for value in (9e4, 150.0):
            assert table.loc[clv == value, "tier"].nunique() == 1
        top = table.loc[clv == 9e4, "rank"]
        assert "tier_by" in settings or top.min() <= 100 < top.max()
    if "high_churn_p" in settings:  # the config's threshold, not the default 0.5, on Spark too
        p_churn = scores.set_index("account_id").loc[table["account_id"], "p_churn"].to_numpy()
        flagged = table["reasons"].str.contains("high churn risk").to_numpy()
        np.testing.assert_array_equal(flagged, p_churn >= settings["high_churn_p"])
    if "reasons_max_chars" in settings:  # whole phrases within the limit on Spark too
        assert table["reasons"].str.len().max() <= settings["reasons_max_chars"]
        unlimited = allocate(scores, None, AllocationConfig(hours=settings["hours"]))
        full, short = unlimited["reasons"], mem["reasons"]
        assert (full.str.len() > settings["reasons_max_chars"]).any()
        assert all(f.startswith(t) for f, t in zip(full, short, strict=True))  # whole phrases, in order


def test_scores_ids_are_read_alike_in_memory_and_on_spark(spark, tmp_path):
    """Text ids " 10" and "10.0" are account 10, " ann" is ann and "NULL" no owner on both engines (Spark
    read a Parquet file's ids as given: other accounts and reps than the in-memory plan's)."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    scores = random_scores(300, seed=5)
    ids, i = scores["account_id"].astype(str), np.arange(300)
    scores["account_id"] = np.where(i % 3 == 0, " " + ids, np.where(i % 3 == 1, ids + ".0", ids))
    owners = scores["owner"].astype(object)
    scores["owner"] = np.where(owners.isna(), "NULL", np.where(i % 2 == 0, " " + owners.astype(str), owners))
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    cfg = AllocationConfig(hours=100.0, capacity={"ann": 30.0, "bob": 40.0})
    mem = allocate(read_scores(path), None, cfg)
    out = allocate_spark(path, None, cfg, tmp_path / "alloc", session=spark)
    table = read_parts(out.path)
    assert table["account_id"].dtype == np.int64
    assert set(table["owner"].dropna()) == {"ann", "bob", "cy"}
    assert_allocation_equal(mem, table, out.summary, hours_atol=1e-9)
    twins = scores.assign(account_id=scores["account_id"].where(i != 1, " " + ids[0]))
    twins.loc[2, "account_id"] = ""
    twins.to_parquet(path)
    with pytest.raises(SchemaError) as err:
        allocate_spark(path, None, cfg, tmp_path / "no", session=spark)
    assert {p.rule for p in err.value.problems} == {"null id", "duplicated id"}


def test_text_ids_of_a_spark_frame_are_read_as_in_memory(spark, tmp_path):
    """A parity audit: a frame given in memory reads text ids as a scores file's (" b " is b, "" and
    "NULL" no id); a Spark frame kept them as given, planning " a" beside "a" as two accounts and ""
    as one, and writing " b " with its spaces."""
    from kamml.spark import allocate_spark

    scores = random_scores(40, seed=8)
    ids = [f"acct{i}" for i in range(40)]
    ids[:4] = [" b ", "007", "3.0", "x\u00a0"]
    scores["account_id"] = ids
    cfg = AllocationConfig(hours=30.0)
    mem = allocate(scores, None, cfg)
    out = allocate_spark(spark.createDataFrame(scores), None, cfg, tmp_path / "alloc", session=spark)
    table = read_parts(out.path)
    assert {"b", "007", "3", "x"} <= set(table["account_id"])
    assert_allocation_equal(mem, table, out.summary, hours_atol=1e-9)
    for i, (text, rule) in enumerate(
        [(" acct5", "duplicated id (2 rows"), ("", "null id (1 row"), (" NULL ", "null id (1 row")]
    ):
        broken = scores.assign(account_id=[text, *ids[1:]])
        with pytest.raises(SchemaError, match=rf"scores\.account_id: {re.escape(rule)}"):
            allocate(broken, None, cfg)
        with pytest.raises(SchemaError, match=rf"scores\.account_id: {re.escape(rule)}"):
            allocate_spark(spark.createDataFrame(broken), None, cfg, tmp_path / f"no{i}", session=spark)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alloc"]


def test_scores_column_names_match_alike_in_memory_and_on_spark(spark, tmp_path):
    """' clv', 'P_Churn' and a BOM before account_id name the scores columns on both engines, as in the
    input tables (an allocation audit: both refused them as missing columns)."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    scores = random_scores(60, seed=6)
    scores = scores.rename(columns={"account_id": "\ufeffaccount_id", "clv": " clv", "p_churn": "P_Churn"})
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    cfg = AllocationConfig(hours=30.0)
    mem = allocate(read_scores(path), None, cfg)
    out = allocate_spark(path, None, cfg, tmp_path / "alloc", session=spark)
    assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)


def test_scores_columns_named_alike_are_refused_alike_in_memory_and_on_spark(spark, tmp_path):
    """An allocation audit: 'clv' beside 'CLV' was planned on 'clv' in memory and refused by Spark (its
    names ignore case) in its raw COLUMN_ALREADY_EXISTS, as was 'clv' twice and 'notes' beside 'Notes',
    a column the allocation does not read. Now both engines word one rule alike, and read the latter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    scores = random_scores(30, seed=7)
    cfg = AllocationConfig(hours=20.0)
    extra = {
        "clv, CLV": ("CLV", scores["clv"] * 100),
        "clv twice": ("clv", scores["clv"] * 100),
        "account_id, Account_ID": ("Account_ID", scores["account_id"]),
        "notes, Notes": ("Notes", pd.Series("b", index=scores.index)),
    }
    for case, (name, values) in extra.items():
        frame = scores.assign(notes="a") if name == "Notes" else scores
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.append_column(name, pa.array(values))
        path = tmp_path / f"{len(case)}-{case.split(',')[0]}.parquet"
        pq.write_table(table, path)
        if name == "Notes":
            mem = allocate(read_scores(path), None, cfg)
            out = allocate_spark(path, None, cfg, tmp_path / "alloc", session=spark)
            assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)
            continue
        with pytest.raises(SchemaError) as in_memory:
            read_scores(path)
        with pytest.raises(SchemaError) as on_spark:
            allocate_spark(path, None, cfg, tmp_path / "no", session=spark)
        assert on_spark.value.problems == in_memory.value.problems, case
        with pytest.raises(SchemaError) as given:  # a Spark frame of such names (a session reading them so)
            allocate_spark(
                spark.createDataFrame(table.to_pandas()), None, cfg, tmp_path / "no", session=spark
            )
        assert given.value.problems == in_memory.value.problems, case


def test_the_fixed_effort_rule_follows_the_horizon_on_spark(spark, tmp_path):
    """Scores without effort scales: 'auto' takes 4 h x horizon / 180 on Spark as in memory."""
    from kamml.spark import allocate_spark

    rng = np.random.default_rng(5)
    scores = pd.DataFrame(
        {
            "account_id": np.arange(1, 41),
            "clv": rng.lognormal(6, 1, 40),
            "p_churn": rng.beta(2, 5, 40),
            "owner": "ann",
        }
    )
    scores.loc[0, "clv"] = 0.0  # gets the clip's low: 0.25 x the scale
    scores.to_parquet(tmp_path / "scores.parquet")
    month = Config.from_dict({"time": {"horizon_days": 30}, "allocation": {"hours": 20.0}})
    mem = allocate(scores, None, month)
    out = allocate_spark(tmp_path / "scores.parquet", None, month, tmp_path / "alloc", session=spark)
    assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)
    assert mem["effort_scale"].min() == pytest.approx(0.25 * 4.0 * 30 / 180)  # a scale of 0.667 h
    told = allocate_spark(
        tmp_path / "scores.parquet", None, month.allocation, tmp_path / "told", session=spark, horizon_days=30
    )
    assert_allocation_equal(mem, read_parts(told.path), told.summary, hours_atol=1e-9)
    # scores that carry their horizon need no config to say it, and refuse one that contradicts them
    scores.assign(horizon_days=30).to_parquet(tmp_path / "month.parquet")
    own = allocate_spark(tmp_path / "month.parquet", 20.0, None, tmp_path / "own", session=spark)
    assert_allocation_equal(mem, read_parts(own.path), own.summary, hours_atol=1e-9)
    with pytest.raises(
        ConfigError, match=r"horizon_days \(--horizon-days\) is 90 days but the scores are over 30"
    ):
        allocate_spark(
            tmp_path / "month.parquet", 20.0, None, tmp_path / "no", session=spark, horizon_days=90
        )
    mixed = scores.assign(horizon_days=np.where(np.arange(40) < 3, 90, 30))
    mixed.to_parquet(tmp_path / "mixed.parquet")
    with pytest.raises(SchemaError, match="one horizon per table") as err:
        allocate_spark(tmp_path / "mixed.parquet", 20.0, None, tmp_path / "no", session=spark)
    (problem,) = err.value.problems
    assert (problem.column, problem.n_rows, list(problem.examples)) == ("horizon_days", 3, [30, 90])
    scores.assign(horizon_days=30.5).to_parquet(tmp_path / "part.parquet")  # one horizon, not whole days
    with pytest.raises(SchemaError, match="not a whole number of days") as err:
        allocate_spark(tmp_path / "part.parquet", 20.0, None, tmp_path / "no", session=spark)
    (problem,) = err.value.problems
    assert (problem.column, problem.n_rows, list(problem.examples)) == ("horizon_days", 40, [30.5] * 5)


@pytest.mark.slow
def test_a_rep_full_at_its_floors_does_not_set_the_teams_price_on_spark(spark, tmp_path):
    """Floors fill the team's hours and ann's capacity: the team's price is bob's account's margin."""
    from kamml.spark import allocate_spark

    scores = pd.DataFrame(
        {"account_id": [1, 2], "clv": [1e4, 100.0], "p_churn": 0.5, "p_alive": 0.9, "owner": ["ann", "bob"]}
    )
    scores.to_parquet(tmp_path / "scores.parquet")
    cfg = AllocationConfig(hours=1.0, floor_hours=0.5, capacity={"ann": 0.5}, effort_scale=4.0)
    mem = allocate(scores, None, cfg)
    out = allocate_spark(tmp_path / "scores.parquet", None, cfg, tmp_path / "alloc", session=spark)
    assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)
    assert out.summary["team_price"] < out.summary["rep_price"]["ann"] / 20


def test_cli_allocate_on_spark_writes_only_to_a_parquet_name(spark, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from kamml.cli import app

    scores = tmp_path / "scores.parquet"
    random_scores(300, seed=4).to_parquet(scores)
    config = tmp_path / "spark.yaml"
    config.write_text(yaml.safe_dump({"engine": SPARK, "allocation": {"hours": 200.0}}))
    runner = CliRunner()
    base = ["allocate", "-s", str(scores), "-c", str(config), "-o"]
    bad = runner.invoke(app, [*base, str(tmp_path / "a_spark.csv")])
    assert bad.exit_code == 3, bad.output  # was exit 0 and a folder of Parquet parts named a_spark.csv/
    assert "on Spark the allocation is a folder of Parquet parts (name it *.parquet)" in bad.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet", "spark.yaml"]
    (tmp_path / "afile").write_text("")  # a file where the output's folder should be
    unwritable = runner.invoke(app, [*base, str(tmp_path / "afile" / "a_spark.parquet")])
    assert unwritable.exit_code == 3, unwritable.output  # was a Java traceback and exit 1 after the job
    assert "it is a file, not a folder" in unwritable.output
    done = runner.invoke(app, [*base, str(tmp_path / "a_spark.parquet")])
    assert done.exit_code == 0, done.output
    assert len(read_parts(tmp_path / "a_spark.parquet")) == 300
    # --curve on Spark: the table and its PNG, as `kamml allocate --curve` draws them in memory
    curve = tmp_path / "curve.csv"
    drawn = runner.invoke(app, [*base, str(tmp_path / "b.parquet"), "--curve", str(curve)])
    assert drawn.exit_code == 0, drawn.output
    assert curve.with_suffix(".png").stat().st_size > 0
    expected = budget_curve(pd.read_parquet(scores), 200.0, AllocationConfig(hours=200.0))
    assert_curve_equal(expected, pd.read_csv(curve))


def test_cli_allocate_on_spark_draws_the_curve_before_writing(spark, tmp_path, monkeypatch):
    """The allocation was written before the chart was drawn: its failure left a new plan beside the
    old curve (an allocation audit; in memory the chart was drawn first already)."""
    import yaml
    from typer.testing import CliRunner

    from kamml.cli import app
    from kamml.errors import DataError
    from kamml.report import plots

    scores = tmp_path / "scores.parquet"
    random_scores(100, seed=5).to_parquet(scores)
    config = tmp_path / "spark.yaml"
    config.write_text(yaml.safe_dump({"engine": SPARK, "allocation": {"hours": 50.0}}))

    def fail(*_: object, **__: object) -> None:
        raise DataError("budget curve has no feasible budget to plot")

    monkeypatch.setattr(plots, "budget_curve_figure", fail)
    out = tmp_path / "alloc.parquet"
    args = [
        "allocate",
        "-s",
        str(scores),
        "-c",
        str(config),
        "-o",
        str(out),
        "--curve",
        str(tmp_path / "c.csv"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet", "spark.yaml"]


def test_cli_allocate_on_spark_names_a_missing_or_csv_scores_file(spark, tmp_path):
    """Both gave a Java traceback and exit 1 on Spark, where DuckDB names the file with exit 3."""
    import yaml
    from typer.testing import CliRunner

    from kamml.cli import app
    from kamml.spark import allocate_spark

    config = tmp_path / "spark.yaml"
    config.write_text(yaml.safe_dump({"engine": SPARK, "allocation": {"hours": 200.0}}))
    csv = tmp_path / "scores.csv"
    random_scores(50, seed=5).to_csv(csv, index=False)
    runner = CliRunner()
    out = str(tmp_path / "a.parquet")
    missing = runner.invoke(
        app, ["allocate", "-s", str(tmp_path / "nope.parquet"), "-c", str(config), "-o", out]
    )
    assert missing.exit_code == 3, missing.output
    assert "scores file not found" in missing.output
    assert "nope.parquet" in missing.output
    text = runner.invoke(app, ["allocate", "-s", str(csv), "-c", str(config), "-o", out])
    assert text.exit_code == 3, text.output
    assert "scores must be Parquet" in text.output
    not_parquet = tmp_path / "bad.parquet"
    not_parquet.write_text("account_id,clv\n1,2\n")
    with pytest.raises(DataError, match=r"cannot read the scores .*bad\.parquet on Spark"):
        allocate_spark(str(not_parquet), 10.0, AllocationConfig(), tmp_path / "x.parquet", session=spark)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "scores.csv", "spark.yaml"]


def slow_rows(spark, n: int, partitions: int, *, seconds: float):
    """A frame of `n` ids whose every batch takes `seconds`: a write or a query that is still running."""

    def slow(batches):
        import time

        for batch in batches:
            time.sleep(seconds)
            yield batch

    return spark.range(0, n, 1, numPartitions=partitions).mapInPandas(slow, "id long")


def test_a_write_stopped_midway_leaves_no_hidden_folder(spark, tmp_path):
    """A SIGTERM reached Python while the JVM wrote: the tasks then wrote into the removed folder again."""
    import signal
    import time

    from kamml.spark import write_atomic

    frame = slow_rows(spark, 8, 4, seconds=3)

    def stop(signum, frame_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_atomic(frame, tmp_path / "out.parquet")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(8)  # time enough for uncancelled tasks to finish and commit their parts
    assert sorted(p.name for p in tmp_path.iterdir()) == []


_SLOW_WRITER = """
import sys, time
from kamml.config import Config
from kamml.spark import spark_session, write_atomic

spark = spark_session(Config.from_dict({"engine": {"name": "spark", "spark": {"master": "local[1]"}}}))

def slow(batches):
    for batch in batches:
        time.sleep(600)
        yield batch

write_atomic(spark.range(0, 4, 1, numPartitions=1).mapInPandas(slow, "id long"), sys.argv[1])
"""


@pytest.mark.slow
def test_hidden_folders_of_a_killed_writer_are_removed_by_the_next_write(spark, tmp_path):
    """A job killed (SIGKILL, an OOM kill) while writing left `.scores.parquet.tmp-…` for good: the next
    write now removes it, and that of a job still writing, or any other folder, is left alone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from kamml.spark import allocate_spark, write_atomic

    target = tmp_path / "scores.parquet"
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)],
        start_new_session=True,  # its JVM and Python workers in one group, killed together below
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".scores.parquet.tmp-")]:
            assert writer.poll() is None, "the slow writer stopped"
            assert time.monotonic() < deadline, "the slow writer did not start"
            time.sleep(0.5)
        (live,) = [p.name for p in tmp_path.iterdir()]
        foreign = [".scores.parquet.tmp-0123456789ab", ".scores.parquet.tmp-mine", ".scores.parquet.keep"]
        for name in foreign:
            (tmp_path / name).mkdir()
        write_atomic(spark.range(3), target)  # while the other job writes: its folder stays
        assert (tmp_path / live).is_dir()
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    named = live.split("-")  # .scores.parquet.tmp-<random>-<pid>-<start>-<host>: the writer's JVM
    jvm = int(named[2]) if len(named) > 2 else None
    deadline = time.monotonic() + 60
    while jvm is not None and time.monotonic() < deadline:  # gone once reaped
        try:
            os.kill(jvm, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    dead = tmp_path / f".allocation.parquet.staging-{live.split('-', 1)[1]}"
    dead.mkdir()  # as allocate_spark's prepared rows of the killed job would be named
    write_atomic(spark.range(5), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*foreign, dead.name, "scores.parquet"])
    assert len(read_parts(target)) == 5
    refused = random_scores(50, seed=1).assign(p_churn=2.0)  # refused at once, after the cleanup
    with pytest.raises(SchemaError, match="p_churn"):
        allocate_spark(
            spark.createDataFrame(refused), 20.0, AllocationConfig(), tmp_path / "allocation.parquet"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*foreign, "scores.parquet"])


def test_the_old_output_moved_aside_by_a_killed_writer_is_put_back(spark, tmp_path):
    """Killed between the swap's two renames, a writer left no output and the last one hidden in `.old-…`."""
    import re
    import socket
    import subprocess

    from kamml.spark.session import remove_stale_siblings

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has any more
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:60]
    old = tmp_path / f".out.parquet.old-0123456789ab-{gone.pid}-0-{host}"
    old.mkdir()
    (old / "part-0.parquet").write_bytes(b"old")
    remove_stale_siblings(spark, str(tmp_path / "out.parquet"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]
    assert (tmp_path / "out.parquet" / "part-0.parquet").read_bytes() == b"old"
    old.mkdir()  # the output is there: an old one beside it is only left over
    remove_stale_siblings(spark, str(tmp_path / "out.parquet"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_write_goes_on_when_the_leftovers_cannot_be_looked_for(spark, tmp_path, monkeypatch, caplog):
    """The look for a killed job's folders is best effort: a file system that cannot list must not stop it."""
    from kamml.spark import session as spark_session_module
    from kamml.spark import write_atomic

    def broken(*args):
        raise RuntimeError("Permission denied: cannot list")

    monkeypatch.setattr(spark_session_module, "_remove_stale_siblings", broken)
    monkeypatch.setattr(spark_session_module, "_writer", broken)
    with caplog.at_level(logging.WARNING, logger="kamml.spark.session"):
        write_atomic(spark.range(2), tmp_path / "out.parquet")
    assert len(read_parts(tmp_path / "out.parquet")) == 2
    assert "could not look for hidden folders left beside" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_cleanup_call_that_fails_once_is_retried_and_never_hides_the_error(spark, tmp_path, monkeypatch):
    """An interrupt inside a Py4J call broke that connection: the cleanup's next call failed once with
    'Answer from Java side is empty', which replaced the interrupt and left the hidden folder."""
    from py4j.protocol import Py4JNetworkError
    from pyspark import SparkContext

    from kamml.spark import session
    from kamml.spark.session import abandon_path

    real = SparkContext.cancelJobGroup
    calls = []

    def flaky(self, group):
        calls.append(group)
        if len(calls) == 1:
            raise Py4JNetworkError("Answer from Java side is empty")
        return real(self, group)

    monkeypatch.setattr(SparkContext, "cancelJobGroup", flaky)
    monkeypatch.setattr(session, "_WRITE_GROUPS", {"kamml-write-stopped"})  # a write the stop reached
    hidden = tmp_path / ".out.tmp-1"
    hidden.mkdir()
    (hidden / "part-0.parquet").write_bytes(b"")
    abandon_path(
        spark, str(hidden), wait_s=0.5
    )  # returns: the error that stopped the write stays the caller's
    assert calls == ["kamml-write-stopped"] * 2
    assert not hidden.exists()


def test_a_cleanup_leaves_the_sessions_other_jobs_alone(spark, tmp_path):
    """The cleanup cancelled every job of the session: a notebook's own query on a shared cluster too."""
    import threading
    import time

    from kamml.spark.session import abandon_path

    theirs = slow_rows(spark, 4, 2, seconds=2)
    got: dict[str, object] = {}

    def run() -> None:
        try:
            got["count"] = theirs.count()
        except Exception as exc:  # a cancelled job
            got["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not spark.sparkContext.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.1)
    hidden = tmp_path / ".out.tmp-2"
    hidden.mkdir()
    abandon_path(spark, str(hidden))
    thread.join(120)
    assert got == {"count": 4}
    assert not hidden.exists()


def test_infeasible_and_bad_scores(spark, tmp_path):
    from kamml.spark import allocate_spark

    scores = random_scores(300, seed=3)
    cfg = AllocationConfig(hours=10.0, floor_hours=0.5)
    with pytest.raises(InfeasibleError) as expected:
        allocate(scores, None, cfg)
    frame = spark.createDataFrame(scores)
    with pytest.raises(InfeasibleError) as got:
        allocate_spark(frame, None, cfg, tmp_path / "a")
    assert str(got.value) == str(expected.value)
    per_rep = AllocationConfig(hours=500.0, floor_hours=0.5, capacity={"ann": 1.0})
    with pytest.raises(InfeasibleError) as expected:
        allocate(scores, None, per_rep)
    with pytest.raises(InfeasibleError) as got:
        allocate_spark(frame, None, per_rep, tmp_path / "r")
    assert str(got.value) == str(expected.value)  # both count the rep's own accounts
    above = AllocationConfig(hours=500.0).model_copy(update={"floor_hours": 3.0, "cap_hours": 2.0})
    with pytest.raises(ConfigError, match=r"'allocation\.floor_hours' 3 is above 'allocation\.cap_hours' 2"):
        allocate_spark(frame, None, above, tmp_path / "c")  # checked again where it is used

    bad = scores.copy()
    bad.loc[[0, 1], "p_churn"] = 1.5
    bad.loc[2, "account_id"] = bad.loc[3, "account_id"]
    with pytest.raises(SchemaError) as err:
        allocate_spark(spark.createDataFrame(bad), 100.0, cfg, tmp_path / "b")
    text = str(err.value)
    assert "scores.p_churn: must be in [0, 1] (2 rows" in text  # a stray 1.5 is no percentage, as in memory
    assert "duplicated id" in text
    # examples are the smallest ids and values, whatever the partitions: the same message run after run
    rows = [40, 7, 33, 2, 19, 28, 11]
    twice = pd.concat([scores, scores.iloc[rows]], ignore_index=True)
    twice.loc[rows, "clv"] = -np.arange(1.0, 8.0)
    with pytest.raises(SchemaError) as err:
        allocate_spark(spark.createDataFrame(twice).repartition(4), 100.0, cfg, tmp_path / "e")
    ids = ", ".join(str(int(i)) for i in sorted(scores["account_id"].iloc[rows])[:5])
    assert f"duplicated id ({len(rows) * 2} rows; e.g. {ids})" in str(err.value)
    assert "(7 rows; e.g. -7.0, -6.0, -5.0, -4.0, -3.0)" in str(err.value)
    with pytest.raises(SchemaError, match="owner"):
        allocate_spark(frame.drop("owner"), 100.0, AllocationConfig(capacity={"ann": 5.0}), tmp_path / "c")
    with pytest.raises(ConfigError, match="hours"):
        allocate_spark(frame, -1.0, cfg, tmp_path / "d")
    assert not any(tmp_path.iterdir())


def test_owners_and_stakes_are_checked_as_in_memory(spark, tmp_path):
    """Owner ids that arrive as floats with gaps meet rep "1"; a rep without accounts and a stake that
    overflows stop Spark as they stop `kamml.allocate`."""
    from kamml.spark import allocate_spark

    scores = random_scores(300, seed=5)
    scores["owner"] = scores["owner"].map({"ann": 1.0, "bob": 2.0, "cy": 3.0})  # None -> NaN
    frame = spark.createDataFrame(scores)
    cfg = AllocationConfig(hours=200.0, floor_hours=0.0, capacity={"1": 10.0, "2": 20.0})
    mem = allocate(scores, None, cfg)
    out = allocate_spark(frame, None, cfg, tmp_path / "a")
    expected = mem.copy()
    expected["owner"] = rep_names(mem["owner"])  # Spark writes owners as text: "1", not 1.0
    table = read_parts(out.path)
    assert_allocation_equal(expected, table, out.summary)
    used = table.groupby("owner")["recommended_hours"].sum()
    assert used["1"] == pytest.approx(10.0, rel=1e-6)
    assert used["2"] == pytest.approx(20.0, rel=1e-6)

    typo = AllocationConfig(hours=200.0, capacity={"1": 10.0, "9": 20.0})
    with pytest.raises(ConfigError, match="'9'"):
        allocate(scores, None, typo)
    with pytest.raises(
        ConfigError, match=r"1 rep that owns no account in the scores' owner column: '9'; owners there: '\d'"
    ):
        allocate_spark(frame, None, typo, tmp_path / "b")
    huge = scores.assign(effort_uplift=np.where(np.arange(300) == scores["clv"].argmax(), 1e308, 0.4))
    with pytest.raises(SchemaError) as expected_error:
        allocate(huge, None, cfg)
    with pytest.raises(SchemaError) as got:
        allocate_spark(spark.createDataFrame(huge), None, cfg, tmp_path / "c")
    assert str(got.value) == str(expected_error.value)
    with pytest.raises(DataError, match="no accounts in the scores"):
        allocate(scores.iloc[:0], None, cfg)
    with pytest.raises(DataError, match="no accounts in the scores"):
        allocate_spark(spark.createDataFrame(scores.iloc[:0], schema=frame.schema), None, cfg, tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_whole_decimal_ids_are_read_as_integers_on_spark_as_in_memory(spark, tmp_path):
    """An ids audit: a Parquet decimal account_id (Snowflake's NUMBER(38, 0), or uint64 ids, which Spark
    reads as decimal(20, 0)) was planned as decimals on Spark and as Decimal objects in memory (2 beside
    2.0 two accounts there); both now read whole ones within int64 as the integers they are."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    scores = random_scores(40, seed=6)
    path = tmp_path / "scores.parquet"
    cfg = AllocationConfig(hours=20.0)
    for ids in ([Decimal(f"{i}.0") for i in scores["account_id"]], scores["account_id"].astype("uint64")):
        scores.assign(account_id=ids).to_parquet(path)
        mem = allocate(read_scores(path), None, cfg)
        out = allocate_spark(path, None, cfg, tmp_path / "a", session=spark)
        table = read_parts(out.path)
        assert table["account_id"].dtype == np.int64
        assert_allocation_equal(mem, table, out.summary, hours_atol=1e-9)


def test_whole_float_ids_of_a_spark_frame_are_written_as_integers_as_in_memory(spark, tmp_path):
    """A Spark frame's double account ids (ids with gaps) were written 450.0 where `kamml.allocate` of the
    same pandas frame writes 450, an id a CRM import matches (an allocation audit)."""
    from kamml.spark import allocate_spark

    scores = random_scores(60, seed=5)
    scores["account_id"] = scores["account_id"].astype(float)
    cfg = AllocationConfig(hours=30.0)
    mem = allocate(scores, None, cfg)
    assert mem["account_id"].dtype == np.int64
    out = allocate_spark(spark.createDataFrame(scores), None, cfg, tmp_path / "a")
    table = read_parts(out.path)
    assert table["account_id"].dtype == np.int64
    assert_allocation_equal(mem, table, out.summary, hours_atol=1e-9)
    # text ids are read as a file's, as in memory: " 7" beside "7" is one id, repeated
    texts = scores.assign(account_id=scores["account_id"].astype(int).astype(str))
    texts.loc[0, "account_id"] = " " + texts.loc[1, "account_id"]
    with pytest.raises(SchemaError) as mem_err:
        allocate(texts, None, cfg)
    with pytest.raises(SchemaError) as got:
        allocate_spark(spark.createDataFrame(texts), None, cfg, tmp_path / "b")
    for err in (mem_err, got):  # examples differ: pandas names the id once per row, Spark once
        assert f"scores.account_id: duplicated id (2 rows; e.g. {texts.loc[1, 'account_id']}" in str(
            err.value
        )


def test_stakes_that_add_up_past_the_largest_float_stop_spark_as_in_memory(spark, tmp_path):
    """Each stake finite, their sum not: `kamml.allocate` refuses the scores, Spark wrote a plan whose
    gain and prices were near the largest float (an allocation audit)."""
    from kamml.spark import allocate_spark

    scores = random_scores(50, seed=5)
    scores.loc[:2, "clv"] = [1e308, 1.7e308, 1e308]
    with pytest.raises(SchemaError) as expected:
        allocate(scores, 10.0, AllocationConfig())
    with pytest.raises(SchemaError) as got:
        allocate_spark(spark.createDataFrame(scores), 10.0, AllocationConfig(), tmp_path / "a")
    assert str(got.value) == str(expected.value)
    assert "add up past the largest float" in str(got.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_score_and_allocate_on_spark(spark, trained, world_path, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from kamml.cli import app

    config, data, result = trained
    tree = spark_config(config).model_dump(mode="json")
    tree["data"]["path"] = str(world_path)
    tree["allocation"].update({"hours": 300.0, "floor_hours": 0.1})
    path = tmp_path / "spark.yaml"
    path.write_text(yaml.safe_dump(tree))
    runner = CliRunner()
    scores = tmp_path / "scores.parquet"
    done = runner.invoke(app, ["score", "-m", result.model_uri, "-c", str(path), "-o", str(scores)])
    assert done.exit_code == 0, done.output
    assert scores.is_dir()
    written = read_parts(scores)  # the totals of the parts written, as the in-memory job prints them
    assert (
        f"{len(written):,} accounts scored at {result.scoring_cutoff.date()} on Spark with "
        f"{result.model_uri}: total clv {amount(written['clv'].sum())}, mean p_churn "
        f"{written['p_churn'].mean():.3f} -> {scores} (Parquet parts)"
    ) in " ".join(done.output.split())
    plan = tmp_path / "allocation.parquet"
    done = runner.invoke(app, ["allocate", "-s", str(scores), "-c", str(path), "-o", str(plan)])
    assert done.exit_code == 0, done.output
    mem = allocate(score(result.model_uri, data, result.scoring_cutoff, config), None, Config.from_dict(tree))
    np.testing.assert_allclose(
        read_parts(plan).set_index("account_id").sort_index()["recommended_hours"],
        mem.set_index("account_id").sort_index()["recommended_hours"],
        atol=1e-6,
    )
    bad = runner.invoke(
        app, ["score", "-m", result.model_uri, "-c", str(path), "-o", str(tmp_path / "s.csv")]
    )
    assert bad.exit_code == 3
    assert "folder of Parquet parts" in bad.output


@pytest.mark.slow
def test_kamml_run_on_spark_writes_parts_and_a_report(spark, tracked_config, world_path, tmp_path, caplog):
    """`kamml run` with engine spark: scores and allocation as Parquet folders equal to the DuckDB job's."""
    import html as markup

    from kamml.jobs.run import run

    cfg = spark_config(tracked_config(experiment="kamml-run-spark", model_name="kamml-run-spark"))
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    cfg.output.dir.mkdir()
    for stale in ("allocation.csv", "budget_curve.csv"):  # an earlier in-memory run's plan
        (cfg.output.dir / stale).write_text("account_id\n1\n")
    lines: list[str] = []
    with caplog.at_level(logging.WARNING, logger="kamml"):
        result = run(cfg, world_path, echo=lines.append)
    out = cfg.output.dir
    assert sorted(p.name for p in out.iterdir()) == [  # no stale plan left beside the new one
        ".kamml.lock",
        "allocation.parquet",
        "backtest.json",
        "budget_curve.csv",
        "budget_curve.png",
        "manifest.json",
        "report.html",
        "scores.parquet",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "spark"
    parts = [p for p in (out / "scores.parquet").iterdir() if p.suffix == ".parquet"]
    assert manifest["files"]["scores.parquet"]["files"] == len(parts) >= 1  # not Hadoop's .crc files
    assert (out / "scores.parquet").is_dir()
    assert (out / "allocation.parquet").is_dir()
    scores = read_parts(out / "scores.parquet")
    allocation = read_parts(out / "allocation.parquet")
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert allocation["recommended_hours"].sum() == pytest.approx(300, rel=1e-6)

    # the same registered model scored and allocated in memory gives the same plan
    duck_cfg = cfg.model_copy(deep=True)
    duck_cfg.engine = Config().engine
    uri = str(scores["model_uri"].iat[0])
    duck = score(uri, load_data(world_path, duck_cfg), result.training.scoring_cutoff, duck_cfg)
    assert_scores_equal(duck, scores)
    expected = allocate(duck, 300, duck_cfg)
    assert_allocation_equal(expected, allocation, result.allocation.attrs["allocation"])

    html = (out / "report.html").read_text()
    top = allocation.sort_values("rank").head(5)
    assert all(f">{a}<" in html for a in top["account_id"].astype(str))
    assert "not drawn on Spark" not in html
    assert "value of one more hour at each budget" in html  # the curve's chart, as in memory
    # the warnings the job logged (its driver's kamml loggers), once each, as in memory (the report had none)
    section = re.search(r"<h2>Warnings this run logged</h2>(.*?)</section>", html, flags=re.S)
    assert section, "no section of the warnings in the report"
    logged = {r.getMessage() for r in caplog.records if r.name.startswith("kamml.")}
    shown = {markup.unescape(item) for item in re.findall(r"<li><bdi>(.*?)</bdi>[^<]*</li>", section[1])}
    assert shown == logged
    # the budget curve, from the same passes, equals the in-memory one of the same scores
    assert_curve_equal(budget_curve(duck, 300, duck_cfg), pd.read_csv(out / "budget_curve.csv"))
    assert_curve_equal(result.curve, pd.read_csv(out / "budget_curve.csv"))  # what the job returns
    assert "[4/5] allocate" in "\n".join(lines)
    assert len(result.allocation) == 25


@pytest.mark.slow
def test_a_spark_run_stopped_at_publish_leaves_the_last_set_and_its_manifest(
    spark, tracked_config, world_path, tmp_path
):
    """Inputs changed while a Spark run wrote its report: the job stopped before publishing, but the earlier
    set's manifest and allocation.csv (a file Spark runs do not write) were already removed."""
    import os
    import shutil

    from kamml.jobs.outputs import OutputSet
    from kamml.jobs.run import run

    world = tmp_path / "world"
    shutil.copytree(world_path, world)
    cfg = spark_config(tracked_config(experiment="kamml-run-spark-stop", model_name="kamml-run-spark-stop"))
    cfg.output.dir = tmp_path / "out"
    with OutputSet(cfg.output.dir) as outputs:  # an earlier in-memory run's set
        outputs.stage("allocation.csv").write_text("account_id\n1\n")
        outputs.publish({"run_id": "earlier"})

    def export_lands_at_the_report(line: str) -> None:
        if line.startswith("[5/5] report"):
            tx = pd.read_parquet(world / "transactions.parquet")
            tx.iloc[::2].to_parquet(world / "new.parquet")
            os.replace(world / "new.parquet", world / "transactions.parquet")  # atomic, as an export

    with pytest.raises(DataError, match="input files changed while the job ran"):
        run(cfg, world, echo=export_lands_at_the_report)
    assert (cfg.output.dir / "allocation.csv").read_text() == "account_id\n1\n"
    assert json.loads((cfg.output.dir / "manifest.json").read_text())["run_id"] == "earlier"


@pytest.mark.slow
def test_example_job_runs_under_spark_submit(trained, world_path, tmp_path):
    """examples/spark/score_job.py, the job docs/spark.md submits to a cluster, run by spark-submit."""
    import json
    import os
    import subprocess
    import sys

    config, data, result = trained
    bundle = tmp_path / "bundle"
    result.bundle.save(bundle)
    cfg_file = tmp_path / "kamml.yaml"
    cfg_file.write_text(
        "time: {horizon_days: 90}\nallocation: {floor_hours: 0.25, cap_hours: 20}\n"
        "engine: {name: spark, spark: {master: 'local[1]'}}\n"  # ignored: spark-submit's session wins
    )
    script = Path(__file__).parents[2] / "examples" / "spark" / "score_job.py"
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cutoff = str(result.scoring_cutoff.date())
    # --data as a folder URI, as hdfs:///crm/kamml on a cluster: Spark reads it (kamml.spark.remote_tables)
    args = ["--config", cfg_file, "--model", bundle, "--data", world_path.as_uri(), "--cutoff", cutoff]
    proc = subprocess.run(
        [submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", script, *args,
         "--out", tmp_path / "out", "--hours", "300"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # kamml's own log reaches the job's output: its NullHandler hid every warning of a submitted job.
    # spark-submit merges its Python driver's stderr into stdout, so the lines come before the summary.
    assert re.search(r" INFO kamml\.spark\.allocation: allocated 300 of 300 hours to ", proc.stdout)
    summary = json.loads(proc.stdout[re.search(r"^\{$", proc.stdout, flags=re.M).start() :])
    assert summary["hours_used"] == pytest.approx(300, rel=1e-6)
    assert summary["master"] == "local[2]"  # spark-submit's session, not the config's engine.spark
    scores = read_parts(tmp_path / "out" / "scores")
    duck = score(str(bundle), data, result.scoring_cutoff, config)
    assert_scores_equal(duck, scores)
    alloc_cfg = AllocationConfig(hours=300.0, floor_hours=0.25, cap_hours=20.0)
    expected = allocate(duck, None, alloc_cfg)
    plan = {k: v for k, v in summary.items() if k not in ("master", "scores", "allocation")}
    assert_allocation_equal(expected, read_parts(tmp_path / "out" / "allocation"), plan)


def test_floors_that_fill_the_hours_to_rounding_allocate_as_in_memory(spark, tmp_path):
    """1,000 floors of 0.1 h sum to 100.00000000000001: Spark's search divided by zero."""
    from kamml.spark import allocate_spark

    rng = np.random.default_rng(0)
    n = 1000
    scores = pd.DataFrame(
        {
            "account_id": np.arange(1, n + 1),
            "clv": rng.lognormal(6, 1.5, n),
            "p_churn": rng.uniform(0, 1, n),
            "referral_value": rng.exponential(100, n),
            "p_alive": 0.9,
            "owner": rng.choice(["ann", "bob"], n),
        }
    )
    folder = tmp_path / "scores.parquet"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(n), 4)):
        scores.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)
    cfg = AllocationConfig(hours=100.0, floor_hours=0.1, cap_hours=40.0)
    mem = allocate(scores, None, cfg)
    out = allocate_spark(folder, None, cfg, tmp_path / "alloc", session=spark)
    assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)


def test_empty_tables_on_spark_train_as_on_duckdb(spark, tmp_path):
    """A sum over no rows is NaN on Spark (None on DuckDB): int(NaN) failed the fingerprint and the
    effort fit of every job whose activities or referrals table was empty."""
    from kamml.data.fingerprint import fingerprint
    from kamml.models.effort import fit_effort_response_from_data

    rows = "".join(f"{i % 5 + 1},2024-0{1 + i % 6}-1{i % 9}T12:00:00Z,{10 + i}\n" for i in range(60))
    (tmp_path / "transactions.csv").write_text("account_id,ts,amount\n" + rows)
    (tmp_path / "activities.csv").write_text("account_id,ts,hours\n")
    (tmp_path / "referrals.csv").write_text("referrer_id,referred_id,ts\n")
    results = {}
    for name, cfg in (("duckdb", Config()), ("spark", Config.from_dict({"engine": SPARK}))):
        data = load_data(tmp_path, cfg)
        printed = fingerprint(data)
        response = fit_effort_response_from_data(data, None, cfg)
        results[name] = (printed["tables"], response.source)
    assert results["spark"][1] == results["duckdb"][1] == "fixed"
    assert results["spark"][0]["activities"]["rows"] == 0
    assert results["spark"][0]["activities"]["hash"] == results["duckdb"][0]["activities"]["hash"]


@pytest.mark.parametrize("text", ["abc", "1d", "0x1p-3", "1_0"])
def test_text_that_is_no_number_in_spark_scores_is_a_schema_error(spark, tmp_path, text):
    """Spark 4's ANSI cast threw NumberFormatException where the in-memory check names the column; Java's
    cast read "1d" and "0x1p-3" as numbers, which the in-memory check refuses."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    scores = random_scores(3, seed=1).assign(p_churn=["0.1", text, " .3e0 "])
    scores.to_parquet(tmp_path / "scores.parquet")
    cfg = AllocationConfig(hours=10.0)
    with pytest.raises(SchemaError, match=r"scores\.p_churn: not a number \(1 row"):
        allocate(read_scores(tmp_path / "scores.parquet"), None, cfg)
    with pytest.raises(SchemaError, match=r"scores\.p_churn: not a number \(1 row"):
        allocate_spark(tmp_path / "scores.parquet", None, cfg, tmp_path / "a", session=spark)


def _clv_dates(scores):
    return scores.assign(clv=pd.Timestamp("2024-01-01").as_unit("us"))


def _horizon_dates(scores):
    return scores.assign(horizon_days=pd.Timestamp("2024-01-01").as_unit("ms"))


def _clv_days(scores):
    return scores.assign(clv=[pd.Timestamp("2024-01-01").date()] * len(scores))


def _churn_yes_no(scores):
    return scores.assign(p_churn=np.arange(len(scores)) % 2 == 0)


def _alive_yes_no(scores):
    return scores.assign(p_alive=True)


def _fractional_id(scores):
    ids = scores["account_id"].astype(float)
    ids.iloc[1] = 3.5
    return scores.assign(account_id=ids)


def _fractional_decimal_id(scores):
    ids = [Decimal(int(i)) for i in scores["account_id"]]
    ids[1] = Decimal("3.5")  # a Parquet decimal(p, 1): pandas reads Decimal objects, Spark a decimal
    return scores.assign(account_id=ids)


def _decimal_id_beyond_int64(scores):
    ids = [Decimal(int(i)) for i in scores["account_id"]]
    ids[1] = Decimal(2**70)  # Snowflake's NUMBER(38, 0)
    return scores.assign(account_id=ids)


def _unsigned_ids_beyond_int64(scores):
    ids = scores["account_id"].astype("uint64")
    ids.iloc[1] = 2**63 + 1  # Spark reads a uint64 as decimal(20, 0)
    return scores.assign(account_id=ids)


def _ids_of_durations(scores):
    return scores.assign(account_id=pd.to_timedelta(range(len(scores)), unit="s"))


def _ids_of_periods(scores):
    return scores.assign(account_id=pd.period_range("2024-01", periods=len(scores), freq="M"))


def _listed_ids(scores):
    return scores.assign(account_id=[[int(i)] for i in scores["account_id"]])


def _listed_owners(scores):
    return scores.assign(owner=[["ann", "bob"]] * len(scores))


def _ids_of_dates(scores):
    return scores.assign(account_id=[d.date() for d in pd.date_range("2024-01-01", periods=len(scores))])


def _ids_of_timestamps(scores):
    return scores.assign(account_id=pd.date_range("2024-01-01", periods=len(scores)).as_unit("us"))


def _ids_of_zoned_timestamps(scores):
    zoned = pd.date_range("2024-01-01", periods=len(scores), tz="UTC").as_unit("us")  # Spark reads no ns
    return scores.assign(account_id=zoned)


def _ids_of_yes_no(scores):
    return scores.assign(account_id=np.arange(len(scores)) % 2 == 0)


def _ids_of_yes_no_and_a_null(scores):
    return scores.assign(account_id=[None] + [bool(i % 2) for i in range(1, len(scores))])


def _churn_in_percent(scores):
    return scores.assign(p_churn=scores["p_churn"] * 100)


def _alive_in_percent_as_text(scores):
    return scores.assign(p_alive=(scores["p_alive"] * 100).map(str).where(scores.index != 0, None))


def _churn_off_the_range_past_a_percent(scores):
    return scores.assign(p_churn=(scores["p_churn"] * 100).where(scores.index != 3, 150.0))


#: The wrong-type rule of account_id before and after what the column holds (each engine's words).
_ID_TYPE_RULE = tuple(part.format() for part in WRONG_ID_TYPE_RULE.split("{got}"))  # "{{" as said: "{"


def _no_break_spaced_ids(scores):
    ids = scores["account_id"].astype(str)
    ids.iloc[1] = ids.iloc[0] + "\u00a0"  # the same id, with a no-break space: str.strip drops it
    return scores.assign(account_id=ids)


@pytest.mark.parametrize(
    ("broken", "rule"),
    [
        (_clv_dates, "scores.clv: not a number"),
        (_horizon_dates, "scores.horizon_days: not a number"),
        (_clv_days, "scores.clv: not a number"),
        (_churn_yes_no, "scores.p_churn: not a number (yes/no values)"),
        (_alive_yes_no, "scores.p_alive: not a number (yes/no values)"),
        (_fractional_id, "scores.account_id: not a whole number (an id is a whole number or a text) (1 row"),
        (
            _fractional_decimal_id,
            "scores.account_id: not a whole number (an id is a whole number or a text) (1 row; e.g. 3.5)",
        ),
        (_decimal_id_beyond_int64, f"scores.account_id: {OUTSIDE_INT64_RULE} (1 row; e.g. {2**70})"),
        (_unsigned_ids_beyond_int64, f"scores.account_id: {OUTSIDE_INT64_RULE} (1 row; e.g. {2**63 + 1})"),
        (_ids_of_durations, (f"scores.account_id: {_ID_TYPE_RULE[0]}", f"{_ID_TYPE_RULE[1]} (20 rows")),
        (_ids_of_periods, (f"scores.account_id: {_ID_TYPE_RULE[0]}", f"{_ID_TYPE_RULE[1]} (20 rows")),
        (_listed_ids, "scores.account_id: not one value (a list or a mapping)"),
        (_listed_owners, "scores.owner: not one value (a list or a mapping)"),
        (_no_break_spaced_ids, "scores.account_id: duplicated id (2 rows"),
        (_ids_of_dates, f"scores.account_id: {WRONG_ID_TYPE_RULE.format(got='date values')} (20 rows"),
        (_ids_of_timestamps, (f"scores.account_id: {_ID_TYPE_RULE[0]}", f"{_ID_TYPE_RULE[1]} (20 rows")),
        (
            _ids_of_zoned_timestamps,
            (f"scores.account_id: {_ID_TYPE_RULE[0]}", f"{_ID_TYPE_RULE[1]} (20 rows"),
        ),
        (_ids_of_yes_no, f"scores.account_id: {WRONG_ID_TYPE_RULE.format(got='bool')} (20 rows"),
        (
            _ids_of_yes_no_and_a_null,
            f"scores.account_id: {WRONG_ID_TYPE_RULE.format(got='yes/no values')} (19 rows",
        ),
        (_churn_in_percent, f"scores.p_churn: must be in [0, 1]{PERCENT_HINT} ("),
        (_alive_in_percent_as_text, f"scores.p_alive: must be in [0, 1]{PERCENT_HINT} ("),
        (_churn_off_the_range_past_a_percent, "scores.p_churn: must be in [0, 1] ("),  # no percentages
    ],
)
def test_scores_refused_in_memory_are_refused_on_spark(spark, tmp_path, broken, rule):
    """A parity audit: Spark planned yes/no churn as 0 and 1, ids 3.5 and lists, and "2" beside "2\u00a0"
    as two accounts (exit 0), and stopped on a date's cast in a Java traceback (exit 1). Then: Spark
    planned ids of dates, timestamps, months (a pandas period: Spark reads its int64 ordinals) and yes/no
    values (refused in memory as a wrong type), and did not say that a p_churn or p_alive off [0, 1]
    looks like percentages. A rule given in parts is said in both, around what each engine names the
    column's type (pandas' datetime64[us])."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark

    broken(random_scores(20, seed=2)).to_parquet(tmp_path / "scores.parquet")
    cfg = AllocationConfig(hours=10.0)
    parts = (rule,) if isinstance(rule, str) else rule
    with pytest.raises(SchemaError) as mem:
        allocate(read_scores(tmp_path / "scores.parquet"), None, cfg)
    assert all(part in str(mem.value) for part in parts), str(mem.value)
    with pytest.raises(SchemaError) as got:
        allocate_spark(tmp_path / "scores.parquet", None, cfg, tmp_path / "a", session=spark)
    assert all(part in str(got.value) for part in parts), str(got.value)
    assert len(got.value.problems) == len(mem.value.problems)  # a wrong type: no null or repeated id
    assert not (tmp_path / "a").exists()


def test_account_ids_of_durations_in_a_spark_frame_are_refused_as_in_memory(spark, tmp_path):
    """A parity audit: a Spark frame of duration ids (pandas' timedelta, Spark's interval) was planned
    and written as numbers of microseconds; in memory it is refused as a wrong type."""
    from kamml.spark import allocate_spark

    scores = random_scores(6, seed=4).assign(account_id=pd.to_timedelta(range(6), unit="D"))
    cfg = AllocationConfig(hours=10.0)
    with pytest.raises(SchemaError, match=re.escape(_ID_TYPE_RULE[0] + "timedelta64[ns]" + _ID_TYPE_RULE[1])):
        allocate(scores, None, cfg)
    with pytest.raises(SchemaError) as got:
        allocate_spark(spark.createDataFrame(scores), None, cfg, tmp_path / "a", session=spark)
    (problem,) = got.value.problems
    assert (problem.column, problem.n_rows) == ("account_id", 6)
    assert problem.rule == WRONG_ID_TYPE_RULE.format(got="duration values")
    assert not (tmp_path / "a").exists()


def test_binary_ids_and_owners_are_read_on_spark_as_in_memory(spark, tmp_path):
    """A Spark audit: a binary account_id was planned and written b'3' (in memory: a wrong type, by name);
    binary owners were not read as text owners (" ann" and "NULL" reps), and one that is not UTF-8 stopped
    a Python worker in Arrow's traceback (in memory: refused by name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.allocation import read_scores
    from kamml.allocation.allocate import BINARY_ID_RULE, BINARY_OWNER_RULE
    from kamml.spark import allocate_spark

    scores = pa.Table.from_pandas(random_scores(20, seed=3), preserve_index=False)
    path = tmp_path / "scores.parquet"

    def run(engine: str, cfg: AllocationConfig) -> tuple[pd.DataFrame, dict]:
        if engine == "memory":
            plan = allocate(read_scores(path), None, cfg)
            return plan, plan.attrs["allocation"]
        done = allocate_spark(path, None, cfg, tmp_path / "a", session=spark)
        return read_parts(done.path), done.summary

    ids = pa.array([str(i).encode() for i in scores["account_id"].to_pylist()], pa.binary())
    pq.write_table(scores.set_column(0, "account_id", ids), path)
    for engine in ("memory", "spark"):
        with pytest.raises(SchemaError, match=rf"scores\.account_id: {re.escape(BINARY_ID_RULE)} \(20 rows"):
            run(engine, AllocationConfig(hours=10.0))
    owners = [" ann", "bob", "NULL", "", None] * 4
    binary = pa.array([None if o is None else o.encode() for o in owners], pa.binary())
    pq.write_table(scores.set_column(5, "owner", binary), path)
    cfg = AllocationConfig(hours=10.0, capacity={"ann": 3.0, "bob": 4.0})
    mem, table, summary = run("memory", cfg)[0], *run("spark", cfg)
    assert set(table["owner"].dropna()) == {"ann", "bob"}
    assert_allocation_equal(mem, table, summary, hours_atol=1e-9)
    latin = pa.array([b"b\xf6b" if o == "bob" else None if o is None else o.encode() for o in owners])
    pq.write_table(scores.set_column(5, "owner", latin), path)
    for engine in ("memory", "spark"):
        with pytest.raises(SchemaError) as err:
            run(engine, cfg)
        assert f"scores.owner: {BINARY_OWNER_RULE} (4 rows; e.g. b'b\\xf6b', " in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "scores.parquet"]


def test_text_ids_and_owners_that_are_not_utf8_are_refused_on_spark(spark, tmp_path):
    """A Spark audit: a text account_id of Latin-1 bytes was planned as '2\ufffd' without a word (in memory
    a DataError naming the column). Now refused by name, ids and owners, examples as bytes; none written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.spark import allocate_spark

    scores = pa.Table.from_pandas(random_scores(6, seed=3), preserve_index=False)
    latin = pa.array([b"1", b"2\xeb", b"3", b"4", b"5", b"6"], pa.binary()).view(pa.string())
    owners = pa.array([b"ann", b"b\xf6b", b"b\xf6b", None, b"ann", b"ann"], pa.binary()).view(pa.string())
    path = tmp_path / "scores.parquet"
    pq.write_table(scores.set_column(0, "account_id", latin).set_column(5, "owner", owners), path)
    with pytest.raises(SchemaError) as err:
        allocate_spark(path, None, AllocationConfig(hours=10.0), tmp_path / "a", session=spark)
    assert "scores.account_id: text that is not UTF-8; save it as UTF-8" in str(err.value)
    assert "(1 row; e.g. b'2\\xeb')" in str(err.value)
    assert "scores.owner: text that is not UTF-8; save it as UTF-8" in str(err.value)
    assert "(2 rows; e.g. b'b\\xf6b', b'b\\xf6b')" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def test_yes_no_and_large_whole_float_owners_are_named_as_in_memory_on_spark(spark, tmp_path):
    """Java wrote owner 12345678.0 as "1.2345678E7" and True as "true": reps the capacity never named."""
    from kamml.allocation import read_scores
    from kamml.spark import allocate_spark
    from kamml.spark.session import owner_text

    owners = pd.DataFrame({"owner": [12345678.0, 2.0e7, np.nan, 3.5, 1e20]})
    frame = spark.createDataFrame(owners)
    written = [r[0] for r in frame.select(owner_text(frame)).collect()]
    assert written[:4] == ["12345678", "20000000", None, "3.5"]
    yes_no = spark.createDataFrame(pd.DataFrame({"owner": [True, False, None]}, dtype=object))
    assert [r[0] for r in yes_no.select(owner_text(yes_no)).collect()] == ["True", "False", None]

    scores = random_scores(40, seed=4).assign(owner=np.arange(40) % 2 == 0)
    scores.to_parquet(tmp_path / "scores.parquet")
    cfg = AllocationConfig(hours=30.0, capacity={"True": 10.0, "False": 20.0})
    mem = allocate(read_scores(tmp_path / "scores.parquet"), None, cfg)
    out = allocate_spark(tmp_path / "scores.parquet", None, cfg, tmp_path / "a", session=spark)
    assert out.summary["rep_price"].keys() == {"True", "False"}  # the capacity's reps: Java said "true"
    assert out.summary["rep_capacity"] == mem.attrs["allocation"]["rep_capacity"] == cfg.capacity  # report
    mem["owner"] = mem["owner"].map(str)  # written as given in memory, as its rep's name on Spark
    assert_allocation_equal(mem, read_parts(out.path), out.summary, hours_atol=1e-9)


def test_float_and_yes_no_owners_of_the_accounts_table_are_named_alike_on_spark(spark, tmp_path):
    """`kamml run` on Spark stopped at validation: capacity "12345678" met no owner, Java's text being
    "1.2345678E7" (a Spark audit of the whole job)."""
    tx = pd.DataFrame(
        {"account_id": [1, 2, 3, 4], "ts": pd.to_datetime(["2024-01-02"] * 4).as_unit("us"), "amount": 1.0}
    )
    for owners in ([12345678.0, 1234567890123.0, np.nan, 101.5], [True, False, None, True]):
        folder = tmp_path / str(type(owners[0]).__name__)
        folder.mkdir()
        tx.to_parquet(folder / "transactions.parquet")
        pd.DataFrame({"account_id": [1, 2, 3, 4], "owner": owners}).to_parquet(folder / "accounts.parquet")
        got = {}
        for name, cfg in (("duckdb", Config()), ("spark", Config.from_dict({"engine": SPARK}))):
            frame = load_data(folder, cfg).to_pandas("accounts").sort_values("account_id")
            got[name] = frame["owner"].tolist()
        assert got["spark"] == got["duckdb"]
        assert got["duckdb"][0] in ("12345678", "True")


def test_nanosecond_parquet_times_are_named_on_spark(spark, tmp_path):
    """Spark cannot read them; its own error named no column."""
    frame = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-02", "2024-01-03"]), "amount": 1.0}
    )
    frame["ts"] = frame["ts"].astype("datetime64[ns]")
    frame.to_parquet(tmp_path / "transactions.parquet")
    with pytest.raises(DataError, match=r"stores ts as nanosecond timestamps, which Spark cannot read"):
        load_data(tmp_path, Config.from_dict({"engine": SPARK}))


def test_int96_parquet_times_are_read_on_spark(spark, tmp_path):
    """INT96, the timestamps Spark itself writes by default, read as nanoseconds in pyarrow's schema: a Spark
    table's own Parquet was refused as "nanosecond timestamps, which Spark cannot read"."""
    ts = pd.to_datetime(["2024-01-02 10:00:00.123456", "2024-03-10 23:30:00"], format="ISO8601").as_unit("ns")
    frame = pd.DataFrame({"account_id": [1, 2], "ts": ts, "amount": 1.0})
    frame.to_parquet(tmp_path / "transactions.parquet", use_deprecated_int96_timestamps=True)
    got = {}
    for name, cfg in (("duckdb", Config()), ("spark", Config.from_dict({"engine": SPARK}))):
        read = load_data(tmp_path, cfg).to_pandas("transactions")
        got[name] = read.sort_values("account_id")["ts"].tolist()
    assert got["spark"] == got["duckdb"] == ts.tolist()


def test_nanosecond_times_are_read_without_touching_the_sessions_settings(spark, tmp_path):
    """An ids audit: reading a Parquet file with nanosecond times set the session's
    spark.sql.legacy.parquet.nanosAsLong for a moment, so a read of another thread on the same session
    then got int64 where it asked for timestamps. The setting is now made in a session of its own."""
    import threading

    frame = pd.DataFrame(
        {"account_id": [1, 2], "ts": pd.to_datetime(["2024-01-02", "2024-01-03"]), "amount": 1.0}
    )
    frame["stamp"] = frame["ts"].astype("datetime64[ns]")  # a column kamml does not read: read on Spark
    frame["ts"] = frame["ts"].astype("datetime64[us]")
    frame.to_parquet(tmp_path / "transactions.parquet", coerce_timestamps=None)
    import pyarrow.parquet as pq

    pq_types = {f.name: str(f.type) for f in pq.read_schema(tmp_path / "transactions.parquet")}
    assert pq_types["stamp"] == "timestamp[ns]"
    seen: set[str | None] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(spark.conf.get("spark.sql.legacy.parquet.nanosAsLong", None))

    from kamml.data.readers import read_table
    from kamml.engine import connect

    backend = connect(Config.from_dict({"engine": SPARK}).engine)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            table = read_table(tmp_path / "transactions.parquet", "transactions", backend)
            stamps = table.to_pandas()["stamp"]
    finally:
        done.set()
        watcher.join()
    assert "true" not in seen, seen
    assert stamps.tolist() == frame["stamp"].tolist()  # read as timestamps, as before


@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_at_session_store")
def test_a_spark_job_logs_its_set_before_publishing_it(
    spark, tracked_config, world_path, tmp_path, monkeypatch
):
    """On Spark as in memory: the set was published before it was logged, so a job whose MLflow logging
    failed (an artifact store full or unreachable) left its whole set, manifest included, for a CRM to
    read as the result of a run marked failed."""
    from urllib.parse import urlparse

    import mlflow
    from mlflow.tracking import MlflowClient

    from kamml.jobs import run as run_module

    name = f"kamml-spark-unlogged-{tmp_path.name}"
    cfg = spark_config(tracked_config(experiment=name, model_name=name))
    cfg.output.dir = tmp_path / "out"
    cfg.allocation.hours = 300
    first = run_module.run(cfg, world_path, echo=lambda _: None)
    logged = mlflow.artifacts.download_artifacts(
        run_id=first.training.run_id, artifact_path="outputs/manifest.json", dst_path=str(tmp_path)
    )
    assert Path(logged).read_bytes() == (cfg.output.dir / "manifest.json").read_bytes()
    assert first.outputs["allocation"] == cfg.output.dir / "allocation.parquet"
    last = {p.relative_to(cfg.output.dir): p.read_bytes() for p in cfg.output.dir.rglob("*") if p.is_file()}
    real_report = run_module._write_backtest_and_report

    def written_then_the_artifact_store_fails(folder, allocation, curve, training, *args, **kwargs):
        staged = real_report(folder, allocation, curve, training, *args, **kwargs)
        artifacts = Path(urlparse(MlflowClient().get_run(training.run_id).info.artifact_uri).path)
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "outputs").write_text(
            "a file where the run's outputs folder goes\n"
        )  # cannot be written
        return staged

    monkeypatch.setattr(run_module, "_write_backtest_and_report", written_then_the_artifact_store_fails)
    with pytest.raises(OSError, match=r"artifacts/outputs"):  # the file in the way
        run_module.run(cfg, world_path, echo=lambda _: None)
    now = {p.relative_to(cfg.output.dir): p.read_bytes() for p in cfg.output.dir.rglob("*") if p.is_file()}
    assert now == last
    second = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(name).experiment_id], order_by=["attributes.start_time DESC"]
    )[0]
    assert (second.info.status, second.data.tags["kamml.job.status"]) == ("FAILED", "failed")
