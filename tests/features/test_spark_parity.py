"""The same feature code on DuckDB and on PySpark local[2] gives the same frame (floats to 1e-9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import load_cdnow, synthetic
from kamml.features import build_features, build_labels
from kamml.features.referrals import referral_spend_by_age

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark_config():
    pytest.importorskip("pyspark")
    from kamml.engine import java_available

    if not java_available():
        pytest.fail("Spark parity needs Java 17 (it is on every CI machine)")
    return {
        "engine": {
            "name": "spark",
            "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "4"}},
        }
    }


def both(source, overrides, spark_config, cutoff, horizon):
    out = []
    for extra in ({}, spark_config):
        cfg = Config.from_dict({**overrides, **extra})
        data = load_data(source, cfg)
        out.append((build_features(data, cutoff, cfg), build_labels(data, cutoff, horizon)))
    return out


def assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(duck.columns) == list(spark.columns)
    pd.testing.assert_index_equal(duck.index, spark.index, exact=False)
    for col in duck.columns:
        a, b = duck[col], spark[col]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert list(a.astype(str)) == list(b.astype(str)), col
        else:
            pd.testing.assert_series_equal(a, b, rtol=1e-9, atol=0, check_dtype=False, obj=col)


def test_synthetic_world_features_identical(tmp_path, spark_config):
    world = synthetic.generate(400, seed=5)
    world.write(tmp_path)
    cutoff = (world.end - pd.Timedelta(days=180)).normalize()
    (fd, ld), (fs, ls) = both(tmp_path, {}, spark_config, cutoff, 180)
    assert {"referrals_made", "hours_90d", "attr_segment"} <= set(fd.columns)
    assert_same(fd, fs)
    assert_same(ld, ls)


def test_referred_accounts_spend_by_age_identical(tmp_path, spark_config):
    world = synthetic.generate(400, seed=5)
    world.write(tmp_path)
    cutoff = (world.end - pd.Timedelta(days=90)).normalize()
    got = []
    for extra in ({}, spark_config):
        cfg = Config.from_dict(extra)
        got.append(referral_spend_by_age(load_data(tmp_path, cfg), cutoff, 120))
    (spend_d, seen_d), (spend_s, seen_s) = got
    assert spend_d.sum() > 0
    assert seen_d[0] > 0
    np.testing.assert_allclose(spend_s, spend_d, rtol=1e-9)
    np.testing.assert_array_equal(seen_s, seen_d)


def test_cdnow_features_identical(spark_config):
    source = {"transactions": load_cdnow()}
    overrides = {"time": {"unit": "weeks", "horizon_days": 273}}
    (fd, ld), (fs, ls) = both(source, overrides, spark_config, "1997-10-01", 273)
    assert len(fd) == 23_570
    assert_same(fd, fs)
    assert_same(ld, ls)


def test_missing_quantities_are_filled_on_spark_as_on_duckdb(spark_config):
    """A frame's missing quantity reached Spark as NaN, which the fill (COALESCE) kept: the quantity
    windows and order_size_trend were NaN on Spark and numbers on DuckDB."""
    days = pd.to_datetime(["2023-09-01", "2024-03-01", "2024-03-05", "2023-09-01", "2024-05-01"])
    t = pd.DataFrame(
        {
            "account_id": [1, 1, 1, 2, 2],
            "ts": days,
            "amount": [10.0, 10.0, -4.0, 5.0, 6.0],
            "quantity": [2.0, float("nan"), float("nan"), 2.0, float("nan")],
        }
    )
    overrides = {"data": {"end": "2024-12-31"}}
    (fd, ld), (fs, ls) = both({"transactions": t}, overrides, spark_config, "2024-07-01", 30)
    assert fd["quantity_total"].tolist() == [3.0, 3.0]  # 1 for a purchase, 0 for a refund
    assert fd["order_size_trend"].tolist() == [0.5, 0.5]
    assert_same(fd, fs)
    assert_same(ld, ls)


def test_a_files_nan_is_refused_on_spark_as_on_duckdb(spark_config, tmp_path):
    """Ibis on Spark counts NaN as null: a Parquet file's NaN amount read "missing value" there, and a NaN
    quantity was filled with 1 unit where DuckDB refuses it; a frame's missing quantity is still filled."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kamml.errors import SchemaError

    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).astype("datetime64[us]")
    nan, inf = float("nan"), float("inf")
    table = pa.table(
        {
            "account_id": [1, 2, 3],
            "ts": pa.array(days),
            "amount": pa.array([1.0, nan, inf], from_pandas=False),  # from_pandas would make NaN null
            "quantity": pa.array([1.0, 2.0, nan], from_pandas=False),
        }
    )
    pq.write_table(table, tmp_path / "transactions.parquet")
    for extra in ({}, spark_config):
        with pytest.raises(SchemaError) as err:
            load_data(tmp_path, Config.from_dict(extra))
        text = str(err.value)
        assert "transactions.amount: not a finite number (NaN or infinite) (2 rows" in text
        assert "transactions.quantity: not a finite number (NaN or infinite) (1 row; e.g. 'NaN')" in text
        assert "missing value" not in text


def test_fractional_seconds_before_1970_fall_on_the_same_day_on_spark(spark_config):
    """Spark's UNIX_TIMESTAMP drops a timestamp's fraction toward zero: 1969-12-31 23:59:59.5 read as
    1970-01-01 there (day 0, one purchase day with the next row) and as day -1 on DuckDB (two)."""
    stamps = ["1969-12-31 23:59:59.5", "1970-01-01 00:00:00.5", "1969-06-30 12:00:00.25"]
    t = pd.DataFrame(
        {
            "account_id": [1, 1, 2],
            "ts": pd.to_datetime(stamps),
            "amount": [10.0, 5.0, 3.0],
        }
    )
    overrides = {"data": {"end": "1970-12-31"}}
    (fd, ld), (fs, ls) = both({"transactions": t}, overrides, spark_config, "1970-06-01", 30)
    assert fd.loc[1, "frequency"] == 1.0  # two purchase days, a day apart
    assert fd.loc[1, "days_since_first"] == 152.0
    assert_same(fd, fs)
    assert_same(ld, ls)


def test_a_frames_integers_with_missing_values_reach_spark(spark_config):
    """A frame's nullable integer column (pandas Int64 with a missing value) reached Spark through pandas
    as floats with NaN, which Spark read into its long column as nothing but nulls: every quantity was
    filled as missing and every attribute value lost, where DuckDB kept them."""
    t = pd.DataFrame(
        {
            "account_id": [1, 1, 2],
            "ts": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01"]),
            "amount": [10.0, 20.0, 5.0],
            "quantity": pd.array([3, None, 7], dtype="Int64"),
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": [1, 2],
            "size": pd.array([40, None], dtype="Int64"),
            "flag": pd.array([True, None], dtype="boolean"),
        }
    )
    overrides = {"data": {"end": "2024-12-31"}}
    (fd, ld), (fs, ls) = both(
        {"transactions": t, "accounts": accounts}, overrides, spark_config, "2024-07-01", 30
    )
    assert fd["quantity_total"].tolist() == [4.0, 7.0]  # a missing quantity is 1 unit
    assert fd["attr_size"].tolist()[0] == 40.0
    assert fd["attr_flag"].tolist()[0] == 1.0
    assert_same(fd, fs)
    assert_same(ld, ls)
