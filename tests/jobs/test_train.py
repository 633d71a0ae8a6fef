from __future__ import annotations

from types import MappingProxyType

import pandas as pd
import pytest

from kamml.config import Config
from kamml.errors import ConfigError
from kamml.jobs.train import check_promote_metric, cutoffs


class _Data:
    end = pd.Timestamp("2026-01-01")


def test_scoring_at_the_data_end_backtests_one_horizon_earlier():
    cfg = Config.from_dict({"time": {"horizon_days": 180}})
    assert cutoffs(_Data(), cfg) == (pd.Timestamp("2026-01-01"), pd.Timestamp("2025-07-05"))


def test_a_cutoff_with_a_whole_horizon_after_it_is_both_cutoffs():
    cfg = Config.from_dict({"time": {"horizon_days": 90, "cutoff": "2025-06-01"}})
    assert cutoffs(_Data(), cfg) == (pd.Timestamp("2025-06-01"), pd.Timestamp("2025-06-01"))


def test_a_cutoff_past_the_data_end_is_refused_not_clipped():
    cfg = Config.from_dict({"time": {"horizon_days": 90, "cutoff": "2027-01-01"}})
    with pytest.raises(ConfigError, match=r"cutoff 2027-01-01 is after the data end 2026-01-01"):
        cutoffs(_Data(), cfg)


def test_a_cutoff_at_the_data_end_is_the_latest_observed_one():
    cfg = Config.from_dict({"time": {"horizon_days": 90, "cutoff": "2026-01-01"}})
    scoring, test = cutoffs(_Data(), cfg)
    assert scoring == pd.Timestamp("2026-01-01")
    assert test < scoring


@pytest.mark.slow
def test_training_job_result(trained):
    _, data, result = trained
    assert result.scoring_cutoff == data.end.normalize()
    assert pd.Timestamp(result.backtest.protocol["cutoff"]) < result.scoring_cutoff
    # the deployed bundle learned on snapshots up to the scoring cutoff, after the backtest's
    assert max(result.bundle.meta["snapshots"]) > max(result.backtest.bundle.meta["snapshots"])
    assert result.model_uri.startswith("models:/")
    assert "registered as" in result.summary()


class _NoReferrals:
    end = pd.Timestamp("2026-01-01")
    tables = frozenset({"transactions", "accounts"})  # names are all the check reads
    inputs = MappingProxyType({})  # given in memory (`recorded_source` reads where tables came from)
    remote = MappingProxyType({})  # read from no URI


def test_a_referral_promotion_metric_without_referrals_fails_before_training():
    """No referrals table, no referral metric: no version after the first could ever be promoted."""
    from kamml.jobs.train import train

    cfg = Config.from_dict({"tracking": {"promote_metric": "referral.gini"}})
    with pytest.raises(
        ConfigError,
        match=r"^'tracking\.promote_metric' names 'referral\.gini', which needs .* no referrals table",
    ):
        train(_NoReferrals(), cfg)  # type: ignore[arg-type]
    cfg = Config.from_dict({"tracking": {"promote_metric": "value.gini"}})
    check_promote_metric(cfg, _NoReferrals())  # type: ignore[arg-type]


def test_a_referral_promotion_metric_with_an_empty_referrals_table_fails_before_training(
    world_path, tmp_path
):
    """A header-only referrals export passed the check: no version after the first was ever promoted."""
    import shutil

    from kamml.data import load_data

    shutil.copytree(world_path, tmp_path / "world")
    referrals = pd.read_parquet(world_path / "referrals.parquet")
    referrals.iloc[:0].to_parquet(tmp_path / "world" / "referrals.parquet")
    cfg = Config.from_dict({"tracking": {"promote_metric": "referral.gini"}})
    with pytest.raises(
        ConfigError,
        match=r"^'tracking\.promote_metric' names 'referral\.gini', which needs .* an empty referrals table",
    ):
        check_promote_metric(cfg, load_data(tmp_path / "world"))
    check_promote_metric(cfg, load_data(world_path))


def test_influence_features_are_not_checked_early_on_an_empty_referrals_table(world_path, tmp_path):
    """The early check judged the influence model's named features whenever a referrals table was given,
    but a header-only one gives no referral value, so training fits no influence model (its settings
    unused, `_referrals_to_learn`): a job that trains was refused. The rule of `check_promote_metric`."""
    import shutil

    from kamml.data import load_data
    from kamml.jobs.train import check_model_features

    shutil.copytree(world_path, tmp_path / "world")
    referrals = pd.read_parquet(world_path / "referrals.parquet")
    referrals.iloc[:0].to_parquet(tmp_path / "world" / "referrals.parquet")
    cfg = Config.from_dict({"models": {"influence": {"monotone": {"referrals_made_typo": 1}}}})
    empty = load_data(tmp_path / "world")
    assert "referrals" in empty.tables
    check_model_features(empty, cfg)
    says = r"'models\.influence\.monotone' names features the training frame does not have: \['referrals_"
    with pytest.raises(ConfigError, match=says):
        check_model_features(load_data(world_path), cfg)
    cfg.models.churn = {"monotone": {"recency_typo": 1}}  # the other models are judged as before
    with pytest.raises(ConfigError, match=r"'models\.churn\.monotone' names .*\['recency_typo'\]"):
        check_model_features(empty, cfg)


def test_a_deleted_experiment_fails_before_training(tracked_config, world_path, monkeypatch):
    """The store is first touched after training: a deleted experiment died there with MLflow's traceback."""
    import mlflow

    from kamml.data import load_data
    from kamml.jobs import train as train_module
    from kamml.tracking import use_tracking

    cfg = tracked_config(experiment="kamml-deleted-test")
    data = load_data(world_path, cfg)
    use_tracking(cfg.tracking)  # the session's store is MLflow's current one
    client = mlflow.tracking.MlflowClient()
    found = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    exp = found.experiment_id if found else mlflow.create_experiment(cfg.tracking.experiment)
    if found is None or found.lifecycle_stage != "deleted":
        client.delete_experiment(exp)

    def no_backtest(*args, **kwargs):
        raise AssertionError("trained before checking the experiment")

    monkeypatch.setattr(train_module, "backtest", no_backtest)
    pattern = (
        rf"MLflow experiment 'kamml-deleted-test' \(id {exp}\) at sqlite:///.* is deleted: restore it "
        rf"\(MLFLOW_TRACKING_URI=sqlite:///\S+ mlflow experiments restore --experiment-id {exp}\) or set "
        "tracking.experiment to another name"
    )
    with pytest.raises(ConfigError, match=pattern):
        train_module.train(data, cfg)


def test_a_job_failing_while_it_trains_leaves_a_failed_run(tracked_config, world_path, monkeypatch):
    """The run opened only once training was done: a job failing or stopped in the backtest left no run,
    though docs/tracking.md tells users to find such jobs by ``kamml.job.status`` (an audit)."""
    import mlflow

    from kamml.data import load_data
    from kamml.jobs import train as train_module
    from kamml.tracking import JOB_STATUS_TAG
    from kamml.tracking.store import tracking_scope

    cfg = tracked_config(experiment="kamml-fails-in-training")
    data = load_data(world_path, cfg)

    def failing_backtest(*args, **kwargs):
        raise RuntimeError("the backtest broke")

    monkeypatch.setattr(train_module, "backtest", failing_backtest)
    with pytest.raises(RuntimeError, match="the backtest broke"):
        train_module.train(data, cfg)
    with tracking_scope(cfg.tracking):
        (run,) = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags[JOB_STATUS_TAG] == "failed"
    assert run.data.tags["kamml.job.failed_stage"] == "train"
    assert run.data.tags["kamml.job.error"] == "the backtest broke"
    assert run.data.params["time.horizon_days"] == str(cfg.time.horizon_days)  # its config is logged


def test_the_run_records_the_folder_the_data_was_read_from(world_path, tmp_path, caplog):
    """train(load_data(other), config) logged the config's data.path as its data: a rebuild from the
    run's config would train on other data (a data-science audit)."""
    from kamml import load_data
    from kamml.jobs.train import recorded_source

    data = load_data(world_path)
    elsewhere = Config.from_dict({"data": {"path": str(tmp_path)}})
    with caplog.at_level("WARNING", logger="kamml.jobs.train"):
        recorded = recorded_source(elsewhere, data)
    assert recorded.data.path == world_path.resolve()
    assert (
        f"not read from the tables the config names (data.path {tmp_path}) but {world_path.resolve()}"
        in caplog.text
    )
    assert elsewhere.data.path == tmp_path  # the caller's config is left as it was
    here = Config.from_dict({"data": {"path": str(world_path)}})
    assert recorded_source(here, data) is here
    in_memory = load_data({"transactions": data.to_pandas("transactions")})
    assert recorded_source(elsewhere, in_memory).data.path is None
    assert recorded_source(Config(), in_memory).data.path is None
    caplog.clear()
    with caplog.at_level(
        "WARNING", logger="kamml.jobs.train"
    ):  # the quickstart's train(load_data(f), Config())
        assert recorded_source(Config(), data).data.path == world_path.resolve()
    assert caplog.text == ""


def test_a_table_named_outside_the_data_folder_is_recorded_as_configured(world_path, tmp_path, caplog):
    """data.transactions outside data.path was recorded as the two's common folder: the logged config
    rebuilt on transactions alone, without accounts, referrals or activities (a tracking audit)."""
    import shutil

    from kamml import load_data
    from kamml.data.dataset import input_paths
    from kamml.jobs.train import recorded_source
    from kamml.tracking.runs import data_folder

    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(world_path / "transactions.parquet", other / "tx.parquet")
    split = Config.from_dict({"data": {"path": str(world_path), "transactions": str(other / "tx.parquet")}})
    data = load_data(None, split)
    with caplog.at_level("WARNING", logger="kamml.jobs.train"):
        assert recorded_source(split, data) is split
    assert "not read from" not in caplog.text
    # read from elsewhere than such a config names: each table by its own path, which rebuilds the same
    moved = tmp_path / "moved"
    shutil.copytree(world_path, moved)
    (moved / "transactions.parquet").rename(moved / "tx.parquet")
    moved_data = load_data(
        None, Config.from_dict({"data": {"path": str(moved), "transactions": str(moved / "tx.parquet")}})
    )
    recorded = recorded_source(split, moved_data)
    assert recorded.data.path is None
    assert input_paths(None, recorded) == {k: p.resolve() for k, p in moved_data.inputs.items()}
    assert data_folder(recorded) == moved.resolve()  # the MLflow dataset's source, not "in memory"
    only_tables = Config.from_dict({"data": {"transactions": str(other / "tx.parquet")}})
    assert data_folder(only_tables) == other.resolve()


@pytest.mark.slow
def test_a_new_effort_setting_takes_effect_at_the_next_training(tracked_config, world_path):
    """Only the effort fit reads allocation.effort_clip: the new version tied on every figure, and the
    plan kept the champion's old response (a config audit)."""
    from kamml.data import load_data
    from kamml.jobs.train import train

    name = "kamml-effort-settings"
    cfg = tracked_config(experiment=name, model_name=name)
    data = load_data(world_path, cfg)
    first = train(data, cfg)
    assert first.promotion.promoted
    assert first.bundle.effort is not None
    again = train(data, cfg)
    assert not again.promotion.promoted  # the same settings: figures compared (a tie)
    clipped = cfg.model_copy(deep=True)
    clipped.allocation.effort_clip = (0.5, 2.0)
    changed = train(data, clipped)
    assert changed.promotion.promoted
    said = "fitted its effort response under other settings (allocation.effort_clip"
    assert said in changed.promotion.reason


@pytest.mark.parametrize(
    ("time", "says"),
    [
        ({"snapshots": 20}, r"of 20 training snapshots hold no purchase history before their cutoffs"),
        ({"cutoff": "2023-01-01"}, r"test cutoff 2023-01-01 is on or before the day of the first purchase"),
        ({"horizon_days": 800}, r"it is the data end minus time\.horizon_days \(800 days\)"),
        ({"cutoff": "2025-06-01"}, r"cutoff 2025-06-01 is after the data end 2025-01-01"),
    ],
)
def test_a_time_window_the_data_cannot_hold_fails_before_the_tracking_store_is_touched(
    world_path, tmp_path, time, says
):
    """The window's checks ran in the backtest, after the run was opened (~15 s): each such config error
    left a FAILED run in the experiment, and created the store where there was none (a user walkthrough)."""
    from kamml.data import load_data
    from kamml.jobs.train import train

    cfg = Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60, **time},
            "tracking": {
                "uri": f"sqlite:///{tmp_path / 'mlruns.db'}",
                "artifact_location": str(tmp_path / "mlartifacts"),
                "experiment": "kamml-window-test",
            },
        }
    )
    data = load_data(world_path, cfg)
    with pytest.raises(ConfigError, match=says):
        train(data, cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, so no run in it


def test_the_end_of_the_backtest_is_logged_before_the_model_for_scoring(world_path, monkeypatch, caplog):
    """The two trainings log the same lines: at 100,000 accounts (23 min) nothing said which one ran."""
    from kamml.data import load_data
    from kamml.jobs import train as train_module

    cfg = Config()
    data = load_data(world_path, cfg)
    scoring, _ = cutoffs(data, cfg)

    def no_second_training(*args, **kwargs):
        raise RuntimeError("stopped before the model for scoring")

    monkeypatch.setattr(train_module, "backtest", lambda *args, **kwargs: object())
    monkeypatch.setattr(train_module, "train_bundle", no_second_training)
    with caplog.at_level("INFO", logger="kamml.jobs.train"), pytest.raises(RuntimeError, match="stopped"):
        train_module._fit(data, cfg, None)
    assert f"backtest done in 0 s: training the model for scoring at {scoring.date()}" in caplog.text


def test_backtest_plots_are_said_to_be_in_the_run_not_in_a_temporary_folder(monkeypatch, caplog):
    """A 100k-account run's log read "wrote 5 backtest plots to /tmp/kamml-plots-..." (a folder gone when
    the job ends); the plots are in the run's artifacts under plots/."""
    from pathlib import Path

    import kamml.report.plots as plots
    from kamml.jobs import train as job

    def drawn(result, out, errors=None):
        out.mkdir(parents=True, exist_ok=True)
        for name in ("gains", "churn_calibration"):
            (out / f"{name}.png").write_bytes(b"png")
        return {name: out / f"{name}.png" for name in ("gains", "churn_calibration")}

    logged = []

    class Run:
        def log_artifacts(self, folder, path=None):
            logged.append((sorted(p.name for p in Path(folder).iterdir()), path))

    monkeypatch.setattr(plots, "backtest_plots", drawn)
    with caplog.at_level("INFO", logger="kamml"):
        job._log_plots(Run(), result=None)
    assert logged == [(["churn_calibration.png", "gains.png"], "plots")]
    assert "logged 2 backtest plots to the run's artifacts (plots/)" in caplog.text
    assert "kamml-plots-" not in caplog.text


@pytest.mark.slow
def test_the_features_known_before_training_are_those_the_bundle_fits_on(trained):
    """The monotone names are checked before any snapshot is built, on the feature expression's schema:
    its list (and which are categories) must be the fitted bundle's, or the early check would judge
    other features than the fit."""
    from kamml.features.build import features_expr
    from kamml.models.bundle import training_features

    cfg, data, result = trained
    schema = features_expr(data, result.scoring_cutoff, cfg).schema()
    assert training_features(list(schema.names)) == list(result.bundle.features)
    unordered = {name for name, kind in schema.items() if not kind.is_floating()} - {"account_id"}
    assert unordered == set(result.bundle.clv.categories_)
    assert unordered  # the world's accounts have text attributes: the categorical rule is exercised


def test_a_monotone_name_the_features_lack_is_refused_before_training_opens_a_run(tracked_config, world_path):
    """Checked only as each model was fitted: after the backtest's snapshots were built (minutes on a
    large book), with a run opened and marked failed for a mistyped setting."""
    import mlflow

    from kamml.data import load_data
    from kamml.jobs.train import train
    from kamml.tracking.store import tracking_scope

    cfg = tracked_config(experiment="kamml-monotone-typo")
    cfg.models.churn = {"monotone": {"recency_days_typo": 1}}
    data = load_data(world_path, cfg)
    says = (
        r"'models\.churn\.monotone' names features the training frame does not have: \['recency_days_typo'\]"
    )
    with pytest.raises(ConfigError, match=says):
        train(data, cfg)
    with tracking_scope(cfg.tracking):
        experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
        assert experiment is None or not mlflow.search_runs([experiment.experiment_id], output_format="list")
