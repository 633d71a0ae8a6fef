"""Small views of large Spark tables for the report: the top rows, and the plan grouped by tier and owner.

Both are bounded (a few dozen rows; tiers x reps groups), so the report of a Spark run is drawn on the
driver without collecting a row per account.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kamml.spark.session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["plan_by_tier_and_owner", "top_rows"]


def _frame(table: DataFrame | str | Path) -> DataFrame:
    from pyspark.sql import DataFrame

    if isinstance(table, DataFrame):
        return table
    return spark_session().read.parquet(str(table))


def top_rows(table: DataFrame | str | Path, n: int, by: str = "rank") -> pd.DataFrame:
    """The `n` first rows of a table by `by` (ascending for ``rank``, descending otherwise), in pandas."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = _frame(table)
    order = F.col(by).asc() if by == "rank" else F.col(by).desc()
    return frame.orderBy(order, F.col("account_id").asc()).limit(int(n)).toPandas()


def plan_by_tier_and_owner(allocation: DataFrame | str | Path) -> pd.DataFrame:
    """The allocation grouped by tier and owner: accounts, recommended_hours, expected_gain, best rank.

    The columns are those of the allocation table that `kamml.report.html.render_report` reads, with
    ``accounts`` counting the accounts each row stands for and ``served`` those of them with hours.
    """
    from pyspark.sql import functions as F  # noqa: N812

    frame = _frame(allocation)
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
