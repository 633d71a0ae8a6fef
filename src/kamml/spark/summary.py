"""Small views of large Spark tables for the report: the top rows, and the plan grouped by tier and owner.

Both are bounded (a few dozen rows; tiers x reps groups), so the report of a Spark run is drawn on the
driver without collecting a row per account.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kamml.errors import ConfigError, Problem, SchemaError
from kamml.jobs.score import whole_count
from kamml.spark.session import case_sensitive, read_parquet, spark_column, spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["plan_by_tier_and_owner", "top_rows"]


#: What the views read from a path, as their errors say.
_TABLE_HINT = "a Parquet file or folder, as kamml writes them"


def _frame(table: DataFrame | str | Path) -> DataFrame:
    """`table` itself, or the Parquet file or folder at that path; a DataError for a path Spark cannot read.

    A path that does not exist was pyspark's raw AnalysisException [PATH_NOT_FOUND] with the Java stack.
    """
    from pyspark.sql import DataFrame

    if isinstance(table, DataFrame):
        return table
    return read_parquet(
        spark_session(), str(table), "table", "a Parquet file or folder, as kamml writes them"
    )


def _name(table: DataFrame | str | Path) -> str:
    """How messages name `table`: its path, or "the table given" for a DataFrame."""
    return str(table) if isinstance(table, str | Path) else "the table given"


def _missing(frame: DataFrame, names: list[str]) -> list[str]:
    """Those of `names` no column of `frame` names, as Spark resolves them (ignoring case by default)."""
    sensitive = case_sensitive(frame.sparkSession)
    have = set(frame.columns) if sensitive else {c.lower() for c in frame.columns}
    return [n for n in names if (n if sensitive else n.lower()) not in have]


#: The most rows Spark's ``limit`` takes (a Java int).
SPARK_LIMIT = 2**31 - 1


def _row_count(n: Any) -> int:
    """`n` as a count of rows for Spark's limit; a ConfigError naming n and the rule otherwise.

    -1 was a raw AnalysisException, 2.5 gave 2 rows and True 1, 10**10 a Py4JError.
    """
    try:
        count = whole_count(n, "n", 0)
    except ConfigError:
        count = -1
    if not 0 <= count <= SPARK_LIMIT:
        raise ConfigError(
            f"top_rows: n must be a whole number from 0 to {SPARK_LIMIT:,} (Spark's largest limit), got {n!r}"
        )
    return count


def top_rows(table: DataFrame | str | Path, n: int, by: str = "rank") -> pd.DataFrame:
    """The `n` first rows of a table by `by` (ascending for ``rank``, descending otherwise), in pandas.

    An `n` that is no whole number from 0 to `SPARK_LIMIT` is a ConfigError (`_row_count`). A `by` the
    table lacks is a ConfigError naming it and the table's columns (it was a raw AnalysisException); a
    table without account_id (the tie-break) is a SchemaError.
    """
    from pyspark.sql import functions as F  # noqa: N812

    count = _row_count(n)  # before the table is read
    frame = _frame(table)
    if _missing(frame, [by]):
        raise ConfigError(
            f"top_rows: by={by!r} is not a column of {_name(table)}; its columns: {', '.join(frame.columns)}"
        )
    if _missing(frame, ["account_id"]):
        rule = "missing: top_rows orders rows of equal value by account_id"
        raise SchemaError([Problem(_name(table), "account_id", rule)])
    # quoted as spelled: a user's column "gain.2024" was read as a struct field, "clv`s" as a broken quote
    order = spark_column(by).asc() if by == "rank" else spark_column(by).desc()
    return frame.orderBy(order, F.col("account_id").asc()).limit(count).toPandas()


#: The allocation table's columns `plan_by_tier_and_owner` reads.
PLAN_COLUMNS = ("tier", "owner", "recommended_hours", "expected_gain", "rank")


def plan_by_tier_and_owner(allocation: DataFrame | str | Path) -> pd.DataFrame:
    """The allocation grouped by tier and owner: accounts, recommended_hours, expected_gain, best rank.

    The columns are those of the allocation table that `kamml.report.html.render_report` reads, with
    ``accounts`` counting the accounts each row stands for and ``served`` those of them with hours.
    """
    from pyspark.sql import functions as F  # noqa: N812

    frame = _frame(allocation)
    missing = _missing(frame, list(PLAN_COLUMNS))
    if missing:  # scores given for an allocation: a raw AnalysisException [UNRESOLVED_COLUMN]
        rule = f"missing: {_name(allocation)} is not an allocation table (kamml allocate writes one)"
        raise SchemaError([Problem("allocation", name, rule) for name in missing])
    grouped = frame.groupBy("tier", "owner").agg(
        F.count(F.lit(1)).alias("accounts"),
        F.sum(F.when(F.col("recommended_hours") > 0, 1).otherwise(0)).alias("served"),
        F.sum("recommended_hours").alias("recommended_hours"),
        F.sum("expected_gain").alias("expected_gain"),
        F.min("rank").alias("rank"),
    )
    out = grouped.toPandas()
    out["account_id"] = None  # a group, not an account
    return out.sort_values("rank", kind="stable").reset_index(drop=True)
