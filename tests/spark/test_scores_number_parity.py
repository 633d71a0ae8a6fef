"""Special numbers in the scores' number columns are checked alike in memory and on Spark.

Each value below is written in the first row of every number column of `SCORE_BOUNDS` (clv, p_churn,
referral_value, p_alive, effort_scale, effort_uplift, horizon_days), as a Parquet double and, for texts,
as a Parquet text column; `check_scores` after `read_scores` and `_check_scores` after `read_scores_spark`
must accept the file alike or refuse it with the same rules, rows and examples. A text "NaN" was a missing
value on Spark (accepted where NaN is, and then a raw Python worker error) and no number in memory; a text
"1e309" was "must be finite" on Spark and no number in memory. A horizon outside [1, 36525] (1e308, 0.5)
was also "not a whole number of days" on Spark; in memory that rule is told only of horizons in range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.allocation import read_scores
from kamml.allocation.allocate import SCORE_BOUNDS, check_scores
from kamml.config import Config
from kamml.errors import SchemaError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: A valid value of each number column for the rows after the first.
VALID = {
    "clv": 100.0,
    "p_churn": 0.2,
    "referral_value": 1.0,
    "p_alive": 0.9,
    "effort_scale": 5.0,
    "effort_uplift": 0.1,
    "horizon_days": 180.0,
}
FLOATS = [float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 180.5, 0.5]
TEXTS = [
    "-nan",
    "+Nan",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    " 12 ",
    "1,200",
    "",
    "1e309",
    "-1e309",
    "-0",
    "1d",
    "\u00a012",
    None,
]


def _scores(path: Path, value: Any) -> None:
    """Three accounts, `value` in the first row of every number column (text columns for a text value)."""
    text = isinstance(value, str) or value is None
    columns = {"account_id": pa.array([1, 2, 3], pa.int64())}
    for column in SCORE_BOUNDS:
        ok = VALID[column]
        values = [value, *([str(ok)] * 2 if text else [ok] * 2)]
        columns[column] = pa.array(values, pa.string() if text else pa.float64())
    pq.write_table(pa.table(columns), path)


def _outcome(check: Any) -> Any:
    try:
        check()
    except SchemaError as exc:
        return sorted((p.column, p.rule, p.n_rows, tuple(map(repr, p.examples))) for p in exc.problems)
    return "accepted"


def test_special_numbers_in_the_scores_are_checked_alike_in_memory_and_on_spark(tmp_path):
    pytest.importorskip("pyspark")
    from kamml.engine import java_available
    from kamml.spark import spark_session
    from kamml.spark.allocation import _check_scores, read_scores_spark

    if not java_available():
        pytest.fail("the Spark tests need Java 17 (it is on every CI machine)")
    spark = spark_session(
        Config.from_dict(
            {"engine": {"name": "spark", "spark": {"master": "local[2]", "driver_memory": "1g"}}}
        )
    )
    differ = {}
    for i, value in enumerate([*FLOATS, *TEXTS]):
        path = tmp_path / f"scores{i}.parquet"
        _scores(path, value)
        mem = _outcome(lambda: check_scores(read_scores(path)))  # noqa: B023
        on_spark = _outcome(lambda: _check_scores(read_scores_spark(spark, path), need_owner=False))  # noqa: B023
        if mem != on_spark:
            differ[repr(value)] = {"memory": mem, "spark": on_spark}
    assert not differ, "\n".join(f"{value}: {both}" for value, both in differ.items())
