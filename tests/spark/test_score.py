"""kamml.spark.score: a Spark job failing before the scores are written is named (the parity tests:
test_spark_job.py)."""

from __future__ import annotations

import re

import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic
from kamml.errors import EngineError
from kamml.features import build_features, build_training_frame, training_cutoffs
from kamml.models import ModelBundle

pytestmark = [pytest.mark.spark]

FAST = {"n_estimators": 20, "early_stopping_rounds": 5}


def test_a_features_part_deleted_after_reading_is_an_engine_error_naming_the_step(spark, tmp_path):
    """The checks before the scores are written (amounts in another unit, the accounts to explain) run
    Spark jobs: a features part deleted after Spark read the folder was a raw Py4JJavaError there."""
    from kamml.spark import score_spark

    world = synthetic.generate(200, seed=4, years=2.0)
    world.write(tmp_path / "world")
    data = load_data(tmp_path / "world")
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )
    end = data.end.normalize()
    bundle = ModelBundle.fit(build_training_frame(data, training_cutoffs(end, 90, 2, 60), cfg), cfg)
    features = build_features(data, end, cfg).reset_index()
    folder = tmp_path / "features.parquet"
    folder.mkdir()
    half = len(features) // 2
    features.iloc[:half].to_parquet(folder / "part-0.parquet")
    features.iloc[half:].to_parquet(folder / "part-1.parquet")
    rows = spark.read.parquet(str(folder))
    (folder / "part-1.parquet").unlink()
    out = tmp_path / "scores.parquet"
    with pytest.raises(EngineError) as caught:
        score_spark(bundle, rows, end, out, explain_top=10)
    said = str(caught.value)
    assert re.match(
        rf"Spark failed while checking the features at {end.date()}: \[FAILED_READ_FILE\.FILE_NOT_EXIST\] "
        r"Encountered error while reading file \S*part-1\.parquet",
        said,
    ), said
    assert "\n" not in said
    assert not out.exists()


def test_a_damaged_scores_part_is_an_engine_error_when_the_totals_are_read(spark, tmp_path):
    """`kamml score` on Spark reads the scores back for its line (`scores_totals`): a part damaged or
    replaced under it failed that job with a raw Py4JJavaError, a traceback after the scores were written."""
    import pandas as pd

    from kamml.spark.score import scores_totals

    folder = tmp_path / "scores.parquet"
    folder.mkdir()
    pd.DataFrame({"clv": [1.0, 2.0], "p_churn": 0.5, "model_uri": "m"}).to_parquet(folder / "part-0.parquet")
    assert scores_totals(folder) == (2, 3.0, 0.5, "m")
    (folder / "part-1.parquet").write_bytes(b"not parquet")
    with pytest.raises(EngineError) as caught:
        scores_totals(folder)
    said = str(caught.value)
    assert said.startswith(f"Spark failed while reading the totals of the scores {folder}: "), said
    assert "part-1.parquet" in said
    assert "\n" not in said
