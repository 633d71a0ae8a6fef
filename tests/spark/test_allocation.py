"""kamml.spark.allocation: a Spark job failing inside `allocate_spark` is named (the parity tests:
test_spark_job.py)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from kamml.errors import EngineError

pytestmark = [pytest.mark.spark]


def test_a_scores_part_deleted_after_reading_is_an_engine_error_naming_the_step(spark, tmp_path):
    """A scores Parquet part deleted (or replaced) after Spark read the folder failed the first job of the
    plan: a raw Py4JJavaError with the whole Java stack, a traceback out of `kamml allocate` on Spark."""
    from kamml.spark import allocate_spark

    folder = tmp_path / "scores.parquet"
    folder.mkdir()
    for part in range(2):
        ids = range(part * 5, part * 5 + 5)
        rows = pd.DataFrame({"account_id": list(ids), "clv": [10.0 + i for i in ids], "p_churn": 0.2})
        rows.to_parquet(folder / f"part-{part}.parquet")
    scores = spark.read.parquet(str(folder))
    (folder / "part-1.parquet").unlink()
    out = tmp_path / "allocation.parquet"
    with pytest.raises(EngineError) as caught:
        allocate_spark(scores, 20.0, out_dir=out, session=spark)
    said = str(caught.value)
    assert re.match(
        r"Spark failed while checking the scores: \[FAILED_READ_FILE\.FILE_NOT_EXIST\] "
        r"Encountered error while reading file \S*part-1\.parquet",
        said,
    ), said
    assert "\n" not in said
    assert "\tat " not in said
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no staging folder left
