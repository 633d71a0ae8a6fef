"""Numbers near the ends of the float range in valid scores plan alike in memory and on Spark.

An effort scale of 1e308 (finite, so allowed) made the sorted sums of the team's demand on Spark overflow
(``k * (a - t)`` is -inf, and -inf less -inf NaN): the price search read NaN as demand that fits, closed its
bracket far below the price and the shrink-to-fit split the hours evenly (2.16 and 7.59 hours in memory,
4.875 and 4.875 on Spark). A float account_id of 1e308 is a whole number in memory and was "not a whole
number" on Spark, where ``floor`` of it is a long that saturates.

Special numbers in the scores' number columns are checked alike too: each value of `FLOATS` and `TEXTS` is
written in the first row of every number column of `SCORE_BOUNDS`, as a Parquet double and, for texts, as
a Parquet text column. A text "NaN" was a missing value on Spark (accepted where NaN is, and then a raw
Python worker error) and no number in memory; a text "1e309" was "must be finite" on Spark and no number
in memory. A horizon outside [1, 36525] (1e308, 0.5) was also "not a whole number of days" on Spark; in
memory that rule is told only of horizons in range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kamml.allocation import allocate, read_scores
from kamml.allocation.allocate import SCORE_BOUNDS, check_scores
from kamml.config import AllocationConfig, Config
from kamml.errors import SchemaError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

BIG = float(np.finfo(np.float64).max)


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from kamml.engine import java_available
    from kamml.spark import spark_session

    if not java_available():
        pytest.fail("the Spark tests need Java 17 (it is on every CI machine)")
    engine = {
        "name": "spark",
        "spark": {
            "master": "local[2]",
            "driver_memory": "1g",
            "conf": {"spark.sql.shuffle.partitions": "4", "spark.ui.showConsoleProgress": "false"},
        },
    }
    return spark_session(Config.from_dict({"engine": engine}))


def _scores(path: Path, ids: Any = None, owner: bool = False, **first: list[float]) -> None:
    """Four valid accounts of different stakes; `first` sets the leading values of a number column."""
    columns = {
        "clv": [100.0, 100.0, 300.0, 50.0],
        "p_churn": [0.2, 0.2, 0.2, 0.6],
        "referral_value": [1.0, 1.0, 1.0, 0.0],
        "p_alive": [0.9, 0.9, 0.9, 0.8],
        "effort_scale": [5.0, 5.0, 5.0, 3.0],
        "effort_uplift": [0.1, 0.1, 0.1, 0.1],
        "horizon_days": [180.0] * 4,
    }
    for column, values in first.items():
        columns[column] = [*values, *columns[column][len(values) :]]
    table = {"account_id": pa.array([1, 2, 3, 4], pa.int64()) if ids is None else ids}
    table |= {c: pa.array(v, pa.float64()) for c, v in columns.items()}
    if owner:
        table["owner"] = pa.array(["ann", "bob", "ann", "bob"])
    pq.write_table(pa.table(table), path)


CASES: dict[str, dict[str, Any]] = {
    "an effort scale of 1e308": {"effort_scale": [1e308]},
    "an effort scale of the largest float": {"effort_scale": [BIG]},
    "two effort scales of the largest float": {"effort_scale": [BIG, 5.0, 5.0, BIG]},
    "an effort scale of 1e308, reps bind": {"effort_scale": [1e308], "_capacity": {"ann": 4.0, "bob": 3.0}},
    "an effort scale of 1e-300": {"effort_scale": [1e-300]},
    "a clv of 1e308": {"clv": [1e308]},
    "a clv and an effort scale of 1e308": {"clv": [1e308], "effort_scale": [1e308]},
}


@pytest.mark.parametrize("case", list(CASES))
def test_extreme_numbers_allocate_as_in_memory(spark, tmp_path, case):
    from kamml.spark import allocate_spark

    first = dict(CASES[case])
    capacity = first.pop("_capacity", None)
    path = tmp_path / "scores.parquet"
    _scores(path, owner=capacity is not None, **first)
    cfg = AllocationConfig(hours=10, capacity=capacity)
    mem = allocate(read_scores(path), None, cfg).set_index("account_id").sort_index()
    out = allocate_spark(path, None, cfg, tmp_path / "alloc", session=spark)
    got = pd.read_parquet(out.path).set_index("account_id").sort_index()
    assert list(got.index) == list(mem.index)
    np.testing.assert_allclose(got["recommended_hours"], mem["recommended_hours"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["expected_gain"], mem["expected_gain"], rtol=1e-9, atol=1e-12)
    assert list(got["tier"]) == list(mem["tier"])


def _outcome(check: Any) -> Any:
    try:
        check()
    except SchemaError as exc:
        return sorted((p.column, p.rule, p.n_rows, tuple(map(repr, p.examples))) for p in exc.problems)
    return "accepted"


@pytest.mark.parametrize(
    "ids",
    [[1e308, 2.0, 3.0, 4.0], [-BIG, 2.0, 3.0, 4.0], [1e300, 2.5, 3.0, 4.0], [np.inf, 2.0, 3.0, 4.0]],
    ids=repr,
)
def test_float_ids_near_the_largest_float_are_checked_as_in_memory(spark, tmp_path, ids):
    from kamml.spark.allocation import _check_scores, read_scores_spark

    path = tmp_path / "scores.parquet"
    _scores(path, ids=pa.array(ids, pa.float64()))
    mem = _outcome(lambda: check_scores(read_scores(path)))
    on_spark = _outcome(lambda: _check_scores(read_scores_spark(spark, path), need_owner=False))
    assert on_spark == mem


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


def _one_value_scores(path: Path, value: Any) -> None:
    """Three accounts, `value` in the first row of every number column (text columns for a text value)."""
    text = isinstance(value, str) or value is None
    columns = {"account_id": pa.array([1, 2, 3], pa.int64())}
    for column in SCORE_BOUNDS:
        ok = VALID[column]
        values = [value, *([str(ok)] * 2 if text else [ok] * 2)]
        columns[column] = pa.array(values, pa.string() if text else pa.float64())
    pq.write_table(pa.table(columns), path)


def test_special_numbers_in_the_scores_are_checked_alike_in_memory_and_on_spark(spark, tmp_path):
    from kamml.spark.allocation import _check_scores, read_scores_spark

    differ = {}
    for i, value in enumerate([*FLOATS, *TEXTS]):
        path = tmp_path / f"scores{i}.parquet"
        _one_value_scores(path, value)
        mem = _outcome(lambda: check_scores(read_scores(path)))  # noqa: B023
        on_spark = _outcome(lambda: _check_scores(read_scores_spark(spark, path), need_owner=False))  # noqa: B023
        if mem != on_spark:
            differ[repr(value)] = {"memory": mem, "spark": on_spark}
    assert not differ, "\n".join(f"{value}: {both}" for value, both in differ.items())
