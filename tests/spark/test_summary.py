"""kamml.spark.summary: the report's small views of a Spark table; a wrong path or column is named."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark]


def _allocation(tmp_path):
    """A small allocation table written as Parquet: three accounts, two tiers, two owners."""
    path = tmp_path / "allocation.parquet"
    pd.DataFrame(
        {
            "account_id": [1, 2, 3],
            "tier": ["A", "A", "B"],
            "owner": ["ann", "bob", "ann"],
            "recommended_hours": [2.0, 0.0, 1.0],
            "expected_gain": [10.0, 0.0, 3.0],
            "rank": [1, 3, 2],
            "clv": [5.0, 7.0, 6.0],
        }
    ).to_parquet(path)
    return path


def test_top_rows_and_the_plan_of_a_table(spark, tmp_path):
    """The views themselves: the first rows by rank or by a column, the plan by tier and owner."""
    from kamml.spark import plan_by_tier_and_owner, top_rows

    path = _allocation(tmp_path)
    assert top_rows(path, 2)["account_id"].tolist() == [1, 3]
    assert top_rows(str(path), 2, by="clv")["account_id"].tolist() == [2, 3]
    plan = plan_by_tier_and_owner(path)
    assert plan[["tier", "owner", "accounts", "served"]].values.tolist() == [
        ["A", "ann", 1, 1],
        ["B", "ann", 1, 1],
        ["A", "bob", 1, 0],
    ]


@pytest.mark.parametrize("view", ["top_rows", "plan_by_tier_and_owner"])
def test_a_missing_table_is_a_data_error_naming_the_path(spark, tmp_path, view):
    """A path that does not exist was pyspark's raw AnalysisException [PATH_NOT_FOUND] (a Java stack)."""
    import kamml.spark
    from kamml.errors import DataError

    missing = tmp_path / "allocaton.parquet"
    call = getattr(kamml.spark, view)
    with pytest.raises(DataError) as caught:
        call(missing, 5) if view == "top_rows" else call(missing)
    said = str(caught.value)
    assert said.startswith(f"table not found: {missing}"), said
    assert "\n" not in said


def test_an_unknown_order_column_is_a_config_error_naming_it(spark, tmp_path):
    """top_rows(by=...) of a column the table lacks was a raw AnalysisException [UNRESOLVED_COLUMN]."""
    from kamml.errors import ConfigError
    from kamml.spark import top_rows

    path = _allocation(tmp_path)
    with pytest.raises(ConfigError) as caught:
        top_rows(path, 5, by="value")
    said = str(caught.value)
    assert said.startswith(f"top_rows: by='value' is not a column of {path}"), said
    assert "clv" in said  # the columns it has are listed


def test_a_table_without_the_plans_columns_is_a_schema_error_naming_them(spark, tmp_path):
    """An allocation table lacking tier or owner (scores given by mistake) was a raw AnalysisException."""
    from kamml.errors import SchemaError
    from kamml.spark import plan_by_tier_and_owner

    path = tmp_path / "scores.parquet"
    pd.DataFrame({"account_id": [1], "clv": [1.0], "rank": [1]}).to_parquet(path)
    with pytest.raises(SchemaError) as caught:
        plan_by_tier_and_owner(path)
    missing = [p.column for p in caught.value.problems]
    assert missing == ["tier", "owner", "recommended_hours", "expected_gain"]
    assert {p.table for p in caught.value.problems} == {"allocation"}


@pytest.mark.parametrize("n", [-1, 2.5, True, "2", None, 2**31])
def test_a_count_of_rows_that_is_no_whole_number_in_range_is_a_config_error_naming_it(spark, tmp_path, n):
    """n=-1 was a raw AnalysisException, 2.5 gave 2 rows and True 1, 10**10 a Py4JError (Spark's limit is
    a 32-bit int), None a TypeError."""
    from kamml.errors import ConfigError
    from kamml.spark import top_rows

    path = _allocation(tmp_path)
    with pytest.raises(ConfigError) as caught:
        top_rows(path, n)
    assert str(caught.value) == (
        f"top_rows: n must be a whole number from 0 to 2,147,483,647 (Spark's largest limit), got {n!r}"
    )


def test_a_count_of_rows_may_be_zero_or_a_numpy_integer(spark, tmp_path):
    """The bounds themselves, and numpy's integers, are counts."""
    import numpy as np

    from kamml.spark import top_rows

    path = _allocation(tmp_path)
    assert top_rows(path, 0).empty
    assert top_rows(path, np.int64(2))["account_id"].tolist() == [1, 3]
    assert top_rows(path, 2**31 - 1)["account_id"].tolist() == [1, 3, 2]


@pytest.mark.parametrize("name", ["clv.2024", "clv`s"])
def test_top_rows_orders_by_a_column_whose_name_holds_a_dot_or_a_backtick(spark, tmp_path, name):
    """A `by` column named with a dot was read as a field of a struct (Spark's UNRESOLVED_COLUMN), one
    with a backtick as a broken quote: top_rows quotes the name as it is spelled (`spark_column`)."""
    from kamml.spark import top_rows

    path = tmp_path / "named.parquet"
    pd.DataFrame({"account_id": [1, 2, 3], name: [5.0, 7.0, 6.0]}).to_parquet(path)
    top = top_rows(path, 2, by=name)
    assert top["account_id"].tolist() == [2, 3]
    assert top[name].tolist() == [7.0, 6.0]
