"""The CDNOW benchmark's arguments: each refused date names its option and the rule it breaks."""

from __future__ import annotations

import pandas as pd
import pytest

from kamml.config import load_config
from kamml.errors import ConfigError
from kamml.evaluation.benchmark import (
    ACQUISITION_END,
    EARLIEST_SNAPSHOT,
    benchmark_cdnow,
    benchmark_config,
    honest_train_horizon,
)


@pytest.mark.parametrize(
    ("calibration_end", "holdout_end", "reason"),
    [
        # the message gave the whole chain of rules and both dates, not which of them was broken
        ("1997-03-01", "1998-06-30", r"\(--calibration-end\) 1997-03-01 is not after 1997-04-01"),
        ("1997-04-01", "1998-06-30", r"\(--calibration-end\) 1997-04-01 is not after 1997-04-01"),
        ("1998-01-01", "1997-12-01", r"holdout end \(--holdout-end\) 1997-12-01 is not after the calib"),
        ("1997-10-01", "1997-10-01", r"holdout end \(--holdout-end\) 1997-10-01 is not after the calib"),
        ("1997-09-30", "1999-01-01", r"\(--holdout-end\) 1999-01-01 is after 1998-06-30, the last"),
    ],
)
def test_each_out_of_range_date_is_named_with_its_rule(calibration_end, holdout_end, reason):
    with pytest.raises(ConfigError, match=reason):
        benchmark_cdnow(calibration_end, holdout_end, sample=True)


@pytest.mark.parametrize("calibration_end", ["1998-06-30", "1998-07-01", "1999-01-01"])
def test_a_calibration_end_at_or_after_the_data_end_is_named_as_the_one_to_move(calibration_end):
    """`--calibration-end 1998-07-01` alone blamed --holdout-end, already at the data's last day."""
    message = (
        rf"calibration end \(--calibration-end\) {calibration_end} is not before 1998-06-30, the last day of "
        r"the CDNOW data \(1997-01-01 to 1998-06-30\).*on or before 1998-06-02"
    )
    with pytest.raises(ConfigError, match=message):
        benchmark_cdnow(calibration_end, sample=True)


def test_a_calibration_end_before_the_cohort_is_complete_says_the_data_range():
    """A calibration end before the data's first day said when customers arrive, not when the data run."""
    message = r"1996-12-31 is not after 1997-04-01.*\(1997-01-01 to 1998-06-30\)"
    with pytest.raises(ConfigError, match=message):
        benchmark_cdnow("1996-12-31", sample=True)


def test_a_holdout_shorter_than_a_training_window_is_named_in_days_and_ends():
    """A one-day holdout read "a holdout of 1 days" and advised a later holdout end past the data's last."""
    message = r"a holdout of 1 day is shorter .*holdout end \(up to 1998-06-30\)"
    with pytest.raises(ConfigError, match=message):
        benchmark_cdnow("1998-06-29", "1998-06-30")


@pytest.mark.parametrize(
    ("calibration_end", "holdout_end"), [("1997-09-30", "1997-10-20"), ("1998-06-29", "1998-06-30")]
)
def test_a_holdout_shorter_than_a_training_window_names_both_options(calibration_end, holdout_end):
    """The reason read "a holdout of 20 days is shorter ...": neither --calibration-end nor --holdout-end."""
    message = rf"\(--holdout-end\) {holdout_end} .*\(--calibration-end\) {calibration_end}"
    with pytest.raises(ConfigError, match=message):
        benchmark_cdnow(calibration_end, holdout_end, sample=True)


def test_the_cdnow_config_trains_as_the_benchmark_does():
    # `kamml backtest --config cdnow` is the benchmark's classic split run as a user runs it: with other
    # feature windows ([28, 91, 182]) it read Gini 0.7204 and decile MAPE 0.155 against the README's
    # 0.7223 and 0.130, with nothing to say why
    shipped, bench = load_config("cdnow"), benchmark_config()
    assert shipped.features == bench.features
    assert shipped.models.model_dump(exclude={"threads"}) == bench.models.model_dump(exclude={"threads"})
    assert (shipped.time.snapshots, shipped.time.step_days) == (bench.time.snapshots, bench.time.step_days)
    cutoff = pd.Timestamp(shipped.time.cutoff)
    assert cutoff == pd.Timestamp("1997-10-01")
    h, k = honest_train_horizon(
        ACQUISITION_END,
        cutoff,
        shipped.time.horizon_days,
        bench.time.snapshots,
        bench.time.step_days,
        EARLIEST_SNAPSHOT,
    )
    assert (shipped.time.train_horizon_days, shipped.time.snapshots) == (h, k)


def test_a_config_file_sets_the_features_and_models_and_keeps_the_benchmark_s_own_elsewhere(tmp_path):
    """`kamml benchmark cdnow` had no --config (DESIGN §10): a data scientist could not compare settings."""
    path = tmp_path / "mine.yaml"
    path.write_text(
        "data:\n  path: /nowhere\n  columns:\n    transactions: {amount: revenue}\n"
        "time:\n  snapshots: 2\n  horizon_days: 30\n  unit: days\n"
        "features:\n  windows: [28, 91]\n"
        "models:\n  seed: 7\n"
    )
    cfg = benchmark_config(path)
    assert cfg.features.windows == [28, 91]
    assert (cfg.models.seed, cfg.models.threads) == (7, 1)  # the benchmark's one thread where not set
    assert (cfg.time.snapshots, cfg.time.step_days) == (2, 28)  # step_days not set: the benchmark's
    assert cfg.data.path is None
    assert cfg.time.horizon_days == benchmark_config().time.horizon_days
    path.write_text("models:\n  threads: 2\n")
    assert benchmark_config(path).models.threads == 2
    assert benchmark_config(path).features == benchmark_config().features
    with pytest.raises(ConfigError, match="config file not found"):
        benchmark_config(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_a_config_mapping_the_user_s_columns_still_reads_cdnow(tmp_path):
    """The CDNOW log has kamml's own column names: a config mapping the user's ones is not applied to it."""
    path = tmp_path / "mine.yaml"
    path.write_text(
        "data:\n  columns:\n    transactions: {amount: revenue}\nmodels:\n  clv: {n_estimators: 20}\n"
    )
    result = benchmark_cdnow("1997-09-30", "1997-12-31", sample=True, config=benchmark_config(path))
    assert result.protocol["dataset"] == "cdnow_sample"
    assert 0.5 < result.to_dict()["value"]["kamml"]["gini"] <= 1


def test_a_config_s_own_time_window_is_said_to_be_unused(tmp_path, caplog):
    """`--config` with time.horizon_days 90 ran the 273-day holdout and said nothing of the 90 days."""
    from kamml.evaluation.benchmark import warn_unused_window

    path = tmp_path / "h90.yaml"
    path.write_text("time:\n  horizon_days: 90\n  cutoff: 1997-06-01\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="kamml.evaluation.benchmark"):
        warn_unused_window(path, "1997-09-30", "1998-06-30")
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "time.cutoff 1997-06-01 and time.horizon_days 90" in said
    assert "--calibration-end 1997-09-30 and --holdout-end 1998-06-30 (cutoff 1997-10-01, 273 days)" in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="kamml.evaluation.benchmark"):
        warn_unused_window("cdnow", "1997-09-30", "1998-06-30")  # the classic split's own window
        warn_unused_window(None, "1997-09-30", "1998-06-30")
    assert not caplog.records
