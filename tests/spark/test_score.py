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

from .conftest import LOCAL1

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
        assert said.startswith(f"cannot read the features table {source} on Spark: not Parquet; "), said
    else:
        assert said.startswith(
            f"Spark failed while reading the features table {source}: [UNABLE_TO_INFER_SCHEMA] "
        ), said
    assert said.endswith(
        "score_spark reads a features Parquet file or folder, as kamml.features.write_features writes"
    )
    assert "An error occurred while calling" not in said
    assert "\n" not in said
    assert not out.exists()


def _features_on_spark(spark, features, tmp_path):
    """The fixture's feature rows read by Spark from one Parquet file (one partition, rows in order)."""
    path = tmp_path / "features.parquet"
    features.to_parquet(path)
    return spark.read.parquet(str(path))


#: What the local scorer says of an id that is a date, a duration or bytes.
NOT_AN_ID = (
    "not an id (an id is a whole number or a text, as the input tables and the scores read an account_id; "
    "dates, times, durations, bytes and complex numbers are refused there too)"
)

#: Feature columns Spark holds with a type no model reads, the local scorer's rule for them (its
#: `ModelInputError` or `ModelError`), and the Spark type the message names.
WRONG_TYPES = {
    "a list of numbers": ("recency", "array", "must be numeric as it was in fit, got array<double>"),
    "a timestamp": (
        "recency",
        "timestamp",
        "must be numeric as it was in fit, got timestamp: dates and durations are not numbers (send the "
        "number of days, as the features do)",
    ),
    "a date": (
        "days_since_last",
        "date",
        "must be numeric as it was in fit, got date: dates and durations are not numbers (send the "
        "number of days, as the features do)",
    ),
    "lists of ids": (
        "account_id",
        "array",
        "must be one id (a number or text) per row, got array<bigint>: a list or an object",
    ),
    "lists of categories": (
        "attr_segment",
        "array",
        "must hold one category (text) per row as it was in fit, got array<string>",
    ),
    "bytes": ("recency", "binary", "must be numeric as it was in fit, got binary"),
    # the local scorer's words (kamml.tracking.pyfunc._check_id_kinds); the worker named rows of a batch
    "timestamp ids": ("account_id", "timestamp", f"{NOT_AN_ID}, got timestamp"),
    "date ids": ("account_id", "date", f"{NOT_AN_ID}, got date"),
    "bytes as ids": ("account_id", "binary", f"{NOT_AN_ID}, got binary"),
}


@pytest.mark.parametrize("kind", list(WRONG_TYPES))
def test_a_feature_column_of_a_wrong_type_is_a_schema_error_naming_it(spark, fitted, tmp_path, kind):
    """A feature column holding lists or timestamps (or account_id holding lists) reached the user as a
    raw PythonException with the worker's traceback, raised when the scores were written; kamml's own
    error sat inside it. The Spark schema says it before any row is scored."""
    from pyspark.sql import functions as F  # noqa: N812

    from kamml.errors import SchemaError
    from kamml.spark import score_spark

    bundle, features, end = fitted
    column, to, rule = WRONG_TYPES[kind]
    rows = _features_on_spark(spark, features, tmp_path)
    value = F.col(column).cast("string") if column == "attr_segment" else F.col(column)
    if to == "array":
        changed = F.array(value)
    elif to == "timestamp":
        changed = F.lit("2024-01-01 00:00:00").cast("timestamp")
    elif to == "binary":
        changed = F.col(column).cast("string").cast("binary")
    else:
        changed = F.lit("2024-01-01").cast("date")
    out = tmp_path / "scores.parquet"
    with pytest.raises(SchemaError) as caught:
        score_spark(bundle, rows.withColumn(column, changed), end, out)
    assert [(p.table, p.column, p.rule) for p in caught.value.problems] == [("features", column, rule)]
    assert not out.exists()


@pytest.mark.parametrize("text", ["n/a", "inf"])
def test_text_no_model_reads_as_a_number_is_the_local_scorers_error(spark, fitted, tmp_path, text):
    """Text in a numeric feature ('n/a', 'inf') stops the scoring in the worker, with the error the local
    scorer raises for the same rows; it came out as a raw PythonException holding it in a worker traceback."""
    from kamml.errors import KammlError
    from kamml.spark import score_spark
    from kamml.tracking.pyfunc import score_frame

    bundle, features, end = fitted
    given = features.astype({"recency": str})
    given.loc[0, "recency"] = text
    with pytest.raises(KammlError) as local:
        score_frame(bundle, given)
    rows = _features_on_spark(spark, given, tmp_path)
    out = tmp_path / "scores.parquet"
    with pytest.raises(KammlError) as caught:
        score_spark(bundle, rows, end, out, explain_top=None)
    assert type(caught.value) is type(local.value)
    assert str(caught.value) == str(local.value)
    assert not out.exists()
    with pytest.raises(type(local.value)) as explaining:  # the first pass, to find the accounts to explain
        score_spark(bundle, rows, end, out, explain_top=10)
    assert str(explaining.value) == str(local.value)


def test_number_text_in_a_feature_scores_as_the_local_scorer(spark, fitted, tmp_path):
    """A numeric feature given as text ('12', ' 7.5 ') is read as its number on both paths: same scores."""
    import pandas as pd

    from kamml.spark import score_spark
    from kamml.tracking.pyfunc import score_frame

    bundle, features, end = fitted
    given = features.astype({"recency": str, "spend_total": str})
    given.loc[0, "spend_total"] = " 7.5 "
    local = score_frame(bundle, given, top_drivers=0)
    out = tmp_path / "scores.parquet"
    score_spark(bundle, _features_on_spark(spark, given, tmp_path), end, out, top_drivers=0)
    spark_rows = pd.read_parquet(out).sort_values("account_id").reset_index(drop=True)
    local = local.sort_values("account_id").reset_index(drop=True)
    for column in ("clv", "p_churn", "referral_value"):
        assert spark_rows[column].to_numpy() == pytest.approx(local[column].to_numpy(), rel=1e-9)


@pytest.mark.parametrize("names", [("account_id", "account_id"), ("account_id", "ACCOUNT_ID")])
def test_a_repeated_id_column_is_a_schema_error_naming_it(spark, fitted, tmp_path, names):
    """Two account_id columns (or account_id and ACCOUNT_ID: Spark's names ignore case) were a raw
    AnalysisException [AMBIGUOUS_REFERENCE] from selecting the rows to score."""
    from kamml.errors import SchemaError
    from kamml.spark import score_spark

    bundle, features, end = fitted
    rows = _features_on_spark(spark, features, tmp_path)
    rows = rows.select("account_id", *rows.columns).toDF(names[0], names[1], *rows.columns[1:])
    out = tmp_path / "scores.parquet"
    with pytest.raises(SchemaError) as caught:
        score_spark(bundle, rows, end, out)
    (problem,) = caught.value.problems
    assert (problem.table, problem.column) == ("features", "account_id")
    assert problem.rule.startswith("duplicated column name (2 columns")
    assert problem.rule.endswith("; keep one")
    assert not out.exists()


@pytest.mark.parametrize("run", ["collect", "toPandas", "write"])
def test_a_kamml_error_in_a_worker_is_itself_when_the_caller_runs_the_frame(spark, fitted, tmp_path, run):
    """`score_frame_spark` is lazy: a caller running it (collect, toPandas, a write of their own) got a raw
    PythonException whose last line was kamml's error as JSON. Inside `kamml.engine.engine_errors` it is
    the local scorer's error; outside, `kamml.spark.worker_error` reads it from Spark's."""
    from kamml.engine import engine_errors
    from kamml.errors import KammlError
    from kamml.spark import score_frame_spark, worker_error
    from kamml.tracking.pyfunc import score_frame

    bundle, features, end = fitted
    given = features.astype({"recency": str})
    given.loc[0, "recency"] = "n/a"
    with pytest.raises(KammlError) as local:
        score_frame(bundle, given)
    frame = score_frame_spark(bundle, _features_on_spark(spark, given, tmp_path), end, explain_top=None)

    def running() -> None:
        if run == "write":  # Spark leaves a failed write's folder behind: a new path each time
            frame.write.parquet(str(tmp_path / f"mine-{len(list(tmp_path.iterdir()))}.parquet"))
        else:
            getattr(frame, run)()

    with pytest.raises(KammlError) as caught, engine_errors("writing my scores"):
        running()
    assert type(caught.value) is type(local.value)
    assert str(caught.value) == str(local.value)
    with pytest.raises(Exception, match="KammlWorkerError") as raw:
        running()
    assert not isinstance(raw.value, KammlError)  # Spark's own, as it comes
    told = worker_error(raw.value)
    assert type(told) is type(local.value)
    assert str(told) == str(local.value)


def test_worker_error_is_none_for_other_errors(spark):
    """Anything but a kamml error sent by a worker: None (the caller raises theirs as it is)."""
    from pyspark.errors import AnalysisException

    from kamml.spark import worker_error

    with pytest.raises(AnalysisException) as caught:
        spark.range(1).select("nothing").collect()
    assert worker_error(caught.value) is None
    assert worker_error(ValueError("KammlWorkerError: {}")) is None


@pytest.mark.parametrize("to", ["timestamp", "date", "binary"])
def test_dates_or_bytes_in_a_category_feature_are_refused_as_the_local_scorer_refuses_them(
    spark, fitted, tmp_path, to
):
    """Fit refuses a date column and bytes levels; both engines scored each such value as a missing
    value (an unseen level), with a warning. The local scorer refuses them now, and the Spark schema
    says so on the driver with the same rule, before any row is scored."""
    import datetime as dt

    import pandas as pd
    from pyspark.sql import functions as F  # noqa: N812

    from kamml.errors import SchemaError
    from kamml.models._lgbm import ModelInputError
    from kamml.spark import score_spark
    from kamml.tracking.pyfunc import score_frame

    bundle, features, end = fitted
    sent = {"timestamp": pd.Timestamp("2024-01-01"), "date": dt.date(2024, 1, 1), "binary": b"retail"}
    with pytest.raises(ModelInputError) as local:
        score_frame(bundle, features.assign(attr_segment=[sent[to]] * len(features)), top_drivers=0)
    reason = str(local.value).rsplit(")", 1)[1]  # after "got <type> value(s) in row(s) ... (n rows)"
    assert reason.endswith("send the category as text"), str(local.value)
    rows = _features_on_spark(spark, features, tmp_path)
    value = F.lit("2024-01-01 00:00:00").cast("timestamp")
    if to != "timestamp":
        value = F.lit("2024-01-01").cast(to)
    out = tmp_path / "scores.parquet"
    with pytest.raises(SchemaError) as caught:
        score_spark(bundle, rows.withColumn("attr_segment", value), end, out, top_drivers=0)
    rule = f"must hold one category (text) per row as it was in fit, got {to}{reason}"
    assert [(p.table, p.column, p.rule) for p in caught.value.problems] == [
        ("features", "attr_segment", rule)
    ]
    assert not out.exists()


def test_numbers_in_a_category_attribute_the_models_never_saw_are_noted_as_in_memory(spark, tmp_path):
    """A region the model fitted as the texts "1", "2", "3" and read as numbers at scoring: in memory the
    numbers 7 and 8 were noted as levels never seen in training; Spark noted text columns only."""
    import pandas as pd

    from kamml.jobs.score import unseen_level_notes
    from kamml.spark.score import note_unseen_levels_spark

    world = synthetic.generate(200, seed=4, years=2.0)
    world.accounts["region"] = world.accounts["region"].map({"EMEA": "1", "NA": "2", "APAC": "3"})
    world.write(tmp_path / "fit")
    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
        }
    )
    data = load_data(tmp_path / "fit")
    end = data.end.normalize()
    bundle = ModelBundle.fit(build_training_frame(data, training_cutoffs(end, 90, 2, 60), cfg), cfg)
    assert bundle.clv.categories_["attr_region"] == ["1", "2", "3"]
    accounts = pd.read_parquet(tmp_path / "fit" / "accounts.parquet")
    region = accounts["region"].astype("Int64")  # the same codes, now numbers (a few missing)
    region[:5], region[5:7] = 7, 8
    accounts["region"] = region
    (tmp_path / "fit").rename(tmp_path / "score")
    accounts.to_parquet(tmp_path / "score" / "accounts.parquet")
    local = load_data(tmp_path / "score")
    expected = unseen_level_notes(bundle, build_features(local, end, bundle.scoring_config(cfg)))
    assert [(n.table, n.column, n.n_rows, n.examples) for n in expected] == [
        ("accounts", "region", 7, (7.0, 8.0))  # floats: the column has missing values
    ]
    on_spark = load_data(tmp_path / "score", Config.from_dict({"engine": LOCAL1}))
    notes = note_unseen_levels_spark(on_spark, bundle, end, None)
    assert [repr(n) for n in notes] == [repr(n) for n in expected]  # 7.0, not 7: the same words


@pytest.mark.parametrize("given", ["frame", "path"])
def test_unseen_levels_of_features_given_to_spark_are_noted_as_in_memory(spark, tmp_path, caplog, given):
    """Features given to Spark scoring as a DataFrame or a Parquet path got no note of category levels
    never seen in training (only a Dataset's ``attr_*`` columns were checked); the local scorer given
    the same rows notes every category feature, an attribute or not. Both now say the same words."""
    import logging

    import pandas as pd

    from kamml.jobs.score import score
    from kamml.spark.score import score_frame_spark

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
    channels = ["web", "shop", "phone"]
    train = build_training_frame(data, training_cutoffs(end, 90, 2, 60), cfg)
    train["channel"] = pd.Categorical([channels[i % 3] for i in range(len(train))])  # no attribute
    bundle = ModelBundle.fit(train, cfg)
    assert {"channel", "attr_segment"} <= set(bundle.clv.categories_)
    features = build_features(data, end, cfg).reset_index()
    features["channel"] = [channels[i % 3] for i in range(len(features))]
    features.loc[:6, "channel"] = "kiosk"  # 7 rows of a channel never seen
    features.loc[:2, "channel"] = "app"
    features["attr_segment"] = features["attr_segment"].astype(object)
    features.loc[10:14, "attr_segment"] = "partner"  # and 5 of a segment never seen
    features["channel"] = features["channel"].astype("category")
    features["attr_segment"] = features["attr_segment"].astype("category")

    def notes() -> list[str]:
        said = [r.getMessage() for r in caplog.records if "never saw in training" in r.getMessage()]
        caplog.clear()
        return said

    with caplog.at_level(logging.WARNING, logger="kamml.jobs.score"):
        score(bundle, data, end, features=features, top_drivers=0)
        local = notes()
        path = tmp_path / "features.parquet"
        features.to_parquet(path)
        rows = spark.read.parquet(str(path)) if given == "frame" else str(path)
        score_frame_spark(bundle, rows, end, top_drivers=0)
        on_spark = notes()
    assert sorted(line.split(":", 1)[0] for line in local) == ["accounts.segment", "features.channel"]
    assert any("7 of 200 accounts scored" in line and "(e.g. 'kiosk', 'app')" in line for line in local)
    assert on_spark == local


#: Category values never seen in training, with ties in count (`test_unseen_level_examples_...`).
UNSEEN_TIES = {
    # a pandas nullable int column with a missing value: its values read as floats, as from the tables
    "Int64": ([10, 10, 9, 9, 7, 7, 7, None], "Int64", (7.0, 10.0, 9.0)),
    "text": (["zeta", "zeta", "alpha", "alpha", "mid", "mid", "mid", None], object, ("mid", "alpha", "zeta")),
}


@pytest.mark.parametrize("kind", list(UNSEEN_TIES))
def test_unseen_level_examples_read_alike_in_memory_and_on_spark(spark, fitted, tmp_path, kind):
    """One Parquet file of features: in memory an Int64 column's example was 7 where Spark showed 7.0, and
    values of one count came in the order of appearance in memory, in Spark's value order on Spark. Both
    now show the values most frequent first, ties by their text, as the in-memory features hold them."""
    import pandas as pd

    from kamml.jobs.score import unseen_level_notes
    from kamml.spark.score import note_unseen_features_spark

    bundle, features, _ = fitted
    values, dtype, shown = UNSEEN_TIES[kind]
    column = pd.Series([None] * len(features), dtype=object)
    column[: len(values)] = values
    features = features.assign(attr_segment=column.astype(dtype))
    path = tmp_path / "features.parquet"
    features.to_parquet(path)
    local = unseen_level_notes(bundle, pd.read_parquet(path))
    assert [(n.column, n.n_rows, repr(n.examples)) for n in local] == [
        ("segment", 7, repr(shown))
    ]  # 7.0, not 7
    on_spark = note_unseen_features_spark(spark.read.parquet(str(path)), bundle)
    assert [repr(n) for n in on_spark] == [repr(n) for n in local]
