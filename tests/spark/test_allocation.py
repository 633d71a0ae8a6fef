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


def _duration_ids(path):
    """Scores whose account_id is an Arrow duration (a pandas timedelta), written to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = pd.to_timedelta([1, 2], unit="s")
    pd.DataFrame({"account_id": ids, "clv": [1.0, 2.0], "p_churn": 0.2}).to_parquet(path)


@pytest.mark.parametrize(
    "hidden", ["_temporary/0/part-0.parquet", ".staging/part-0.parquet", "_part-0.parquet", ".part-0.parquet"]
)
def test_the_duration_footer_check_reads_no_part_spark_skips(tmp_path, hidden):
    """The footer check of duration ids reads a visible part, by the readers' rule of what is hidden.

    A failed job's leftover under ``_temporary/`` (it sorts before ``part-0``) must not stand for the
    table's ids: Spark skips it, and reads the visible part's whole-number ids.
    """
    from kamml.spark.allocation import _footer_id_kind

    folder = tmp_path / "scores.parquet"
    _duration_ids(folder / hidden)
    pd.DataFrame({"account_id": [1, 2], "clv": [1.0, 2.0], "p_churn": 0.2}).to_parquet(
        folder / "part-0.parquet"
    )
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_bytes(b"crc")
    assert _footer_id_kind(folder) is None


@pytest.mark.parametrize("part", ["part-0.parquet", "_y=1/part-0.parquet", "part-0.pq", "part-0.PARQUET"])
def test_the_duration_footer_check_reads_every_part_spark_reads(tmp_path, part):
    """A part Spark reads is checked: in a ``_y=1`` partition folder, or named ``.pq`` or ``.PARQUET``.

    A folder of ``.pq`` parts holding duration ids was read by Spark as longs and planned on, where
    pandas (which reads every visible file of a folder) read timedeltas and refused them.
    """
    from kamml.spark.allocation import _footer_id_kind

    folder = tmp_path / "scores.parquet"
    _duration_ids(folder / part)
    (folder / "_SUCCESS").write_text("")
    assert _footer_id_kind(folder) == "duration values"


def test_the_footer_check_names_period_ids_registered_or_not(tmp_path):
    """A pandas period account_id is an Arrow extension over int64 that Spark reads as its ordinals (2024-01
    as 648); the footer names it whether pyarrow knows pandas' type (pandas imported) or only its name."""
    import pyarrow as pa

    from kamml.spark.allocation import _extension_name, _footer_id_kind

    path = tmp_path / "scores.parquet"
    ids = pd.period_range("2024-01", periods=2, freq="M")
    pd.DataFrame({"account_id": ids, "clv": [1.0, 2.0], "p_churn": 0.2}).to_parquet(path)
    assert _footer_id_kind(path) == "period values"
    bare = pa.field("account_id", pa.int64(), metadata={b"ARROW:extension:name": b"pandas.period"})
    assert _extension_name(bare) == "pandas.period"
    assert _extension_name(pa.field("account_id", pa.int64())) is None
    pd.DataFrame({"account_id": [648, 649], "clv": [1.0, 2.0], "p_churn": 0.2}).to_parquet(path)
    assert _footer_id_kind(path) is None
