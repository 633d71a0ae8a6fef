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


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A small bundle fitted once for the module, the features it scores (account_id a column), their date."""
    world = synthetic.generate(200, seed=4, years=2.0)
    path = tmp_path_factory.mktemp("world")
    world.write(path)
    data = load_data(path)
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )
    end = data.end.normalize()
    bundle = ModelBundle.fit(build_training_frame(data, training_cutoffs(end, 90, 2, 60), cfg), cfg)
    return bundle, build_features(data, end, cfg).reset_index(), end


def test_a_features_part_deleted_after_reading_is_an_engine_error_naming_the_step(spark, fitted, tmp_path):
    """The checks before the scores are written (amounts in another unit, the accounts to explain) run
    Spark jobs: a features part deleted after Spark read the folder was a raw Py4JJavaError there."""
    from kamml.spark import score_spark

    bundle, features, end = fitted
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


def test_a_missing_features_path_is_a_data_error_naming_it(spark, fitted, tmp_path):
    """score_spark given a features path that does not exist raised pyspark's raw AnalysisException
    ([PATH_NOT_FOUND] with a Java stack), where the in-memory readers say "file not found"."""
    from kamml.errors import DataError
    from kamml.spark import score_spark

    bundle, _, end = fitted
    missing = tmp_path / "featurs.parquet"
    out = tmp_path / "scores.parquet"
    with pytest.raises(DataError) as caught:
        score_spark(bundle, missing, end, out)
    said = str(caught.value)
    assert said.startswith(f"features table not found: {missing}"), said
    assert "\n" not in said
    assert not out.exists()


@pytest.mark.parametrize("kind", ["an empty folder", "a folder of markers", "a CSV file"])
def test_features_spark_cannot_read_are_a_data_error_naming_them(spark, fitted, tmp_path, kind):
    """An empty folder, one holding only Spark's _SUCCESS, or a CSV file given as the features came out
    of Spark as a raw AnalysisException or Py4J error with the Java stack."""
    from kamml.errors import DataError
    from kamml.spark import score_spark

    bundle, features, end = fitted
    source = tmp_path / ("features.csv" if kind == "a CSV file" else "features.parquet")
    if kind == "a CSV file":
        features.to_csv(source, index=False)
    else:
        source.mkdir()
        if kind == "a folder of markers":
            (source / "_SUCCESS").write_text("")
    out = tmp_path / "scores.parquet"
    with pytest.raises(DataError) as caught:
        score_spark(bundle, source, end, out)
    said = str(caught.value)
    if kind == "a CSV file":  # checked before Spark reads it: its own words were "Job aborted ..."
        assert said.startswith(f"cannot read the features {source} on Spark: not Parquet; "), said
    else:
        assert said.startswith(
            f"Spark failed while reading the features {source}: [UNABLE_TO_INFER_SCHEMA] "
        ), said
    assert said.endswith(
        "score_spark reads a features Parquet file or folder, as kamml.features.write_features writes"
    )
    assert "An error occurred while calling" not in said
    assert "\n" not in said
    assert not out.exists()
