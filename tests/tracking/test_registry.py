from __future__ import annotations

import functools
import logging
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from kamml.errors import ConfigError
from kamml.tracking import CHAMPION, metric_key, promote
from kamml.tracking.registry import _decide, _run_horizon, holdout_difference

#: MLflow's own API in these tests reads the session's store: kamml's calls leave MLflow as it was
pytestmark = pytest.mark.usefixtures("mlflow_at_session_store")


def test_metric_key_reads_task_metric_as_kammls_metric():
    assert metric_key("value.gini") == "value.kamml.gini"
    assert metric_key("churn.btyd.roc_auc") == "churn.btyd.roc_auc"
    with pytest.raises(ConfigError, match="promote_metric"):
        metric_key("gini")


@pytest.fixture
def gate(tracked_config):
    """The id of the session store's experiment for the gate's versions (MLflow on it: pytestmark)."""
    from kamml.tracking.store import experiment_id

    return experiment_id(tracked_config().tracking)


def _version_with_metrics(
    experiment: str, name: str, metrics: dict[str, float], source: str = "", params: dict | None = None
) -> str:
    """A new version of `name` whose run logged `metrics`, registered from `source`.

    The gate reads only the figures of a version's run, never its model: without a `source` the version
    points at the run's own artifact folder, which holds no model. Tests that load the champion give a
    real model's URI.
    """
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metrics(metrics)
        if params:
            mlflow.log_params(params)
    source = source or f"{run.info.artifact_uri}/model"
    created = client.create_model_version(name, source, run_id=run.info.run_id)
    return str(created.version)


def test_champion_moves_only_on_a_better_backtest(gate):
    name = "gate-test"
    client = MlflowClient()
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60, "churn.kamml.brier": 0.20})
    first = promote(name, v1, "value.gini", 0.60)
    assert first.promoted
    assert first.champion_version is None
    assert "first version" in first.reason
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.55})
    worse = promote(name, v2, "value.gini", 0.55)
    assert not worse.promoted
    assert (worse.value, worse.champion_value, worse.champion_version) == (0.55, 0.60, v1)
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.65})
    better = promote(name, v3, "value.gini", 0.65)
    assert better.promoted
    assert "beats" in better.reason
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v3


@pytest.mark.parametrize("metric", ["brier", "log_loss"])
def test_error_metrics_promote_the_smaller_value(gate, metric):
    name = f"gate-test-{metric}"
    key = f"churn.kamml.{metric}"
    v1 = _version_with_metrics(gate, name, {key: 0.20})
    assert promote(name, v1, f"churn.{metric}", 0.20).promoted
    v2 = _version_with_metrics(gate, name, {key: 0.25})
    assert not promote(name, v2, f"churn.{metric}", 0.25).promoted
    v3 = _version_with_metrics(gate, name, {key: 0.18})
    assert promote(name, v3, f"churn.{metric}", 0.18).promoted


@pytest.mark.slow
def test_training_job_logs_the_gate_decision(trained):
    _, _, result = trained
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["registry.promoted"] == "true"
    assert run.data.tags["registry.version"] == result.promotion.version
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="promotion.json")
    assert '"promoted": true' in Path(local).read_text(encoding="utf-8")


def test_a_nan_figure_never_wins_and_a_nan_champion_does_not_block(gate):
    name = "gate-test-nan"
    v1 = _version_with_metrics(gate, name, {"churn.kamml.roc_auc": float("nan")})
    assert promote(name, v1, "churn.roc_auc", float("nan")).promoted  # the first version
    v2 = _version_with_metrics(gate, name, {"churn.kamml.roc_auc": 0.70})
    second = promote(name, v2, "churn.roc_auc", 0.70)
    assert second.promoted, second.reason  # NaN > anything is false: the gate stayed shut for good
    assert "no usable metric" in second.reason
    v3 = _version_with_metrics(gate, name, {"churn.kamml.roc_auc": float("nan")})
    third = promote(name, v3, "churn.roc_auc", float("nan"))
    assert not third.promoted
    assert str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version) == v2


def test_a_champion_whose_run_was_deleted_for_good_does_not_block(gate):
    """After `mlflow gc` of the champion's run, every training job failed once it had registered."""
    import subprocess
    import sys

    name = "gate-test-gc"
    client = MlflowClient()
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.90})
    assert promote(name, v1, "value.gini", 0.90).promoted
    run_id = client.get_model_version(name, v1).run_id
    client.delete_run(run_id)
    uri = mlflow.get_tracking_uri()
    gc = ["gc", "--backend-store-uri", uri, "--tracking-uri", uri, "--run-ids", run_id]
    done = subprocess.run([sys.executable, "-m", "mlflow", *gc], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.50})
    second = promote(name, v2, "value.gini", 0.50)
    assert second.promoted
    assert "no usable metric" in second.reason


@pytest.mark.slow
def test_a_champion_that_cannot_score_the_data_gives_way(trained, gate):
    from kamml.tracking.runs import _champion_unusable

    _, _, result = trained
    name = "gate-test-unusable"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, result.model_uri)
    assert promote(name, v1, "value.gini", 0.60).promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.55}, result.model_uri)
    kept = promote(name, v2, "value.gini", 0.55, champion_unusable=lambda version: None)
    assert not kept.promoted
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.55}, result.model_uri)
    gone = promote(name, v3, "value.gini", 0.55, champion_unusable=lambda v: "cannot score this data")
    assert gone.promoted
    assert gone.reason.startswith(f"the champion (version {v1}) cannot score this data; ")
    # the check itself: every version here is the session's model, which scores its own features
    features = result.features
    assert _champion_unusable(name, result.bundle, features, v3) is None
    lacking = features.drop(columns=["spend_90d"])
    reason = _champion_unusable(name, result.bundle, lacking, v3)
    assert reason is not None
    assert "1 column the data no longer gives (spend_90d)" in reason


def test_a_champion_that_fails_to_load_stays_champion(monkeypatch):
    """A locked store or a server down is passing: it must not hand the alias to a worse version."""
    import pandas as pd

    from kamml.errors import TrackingStoreError
    from kamml.tracking import runs

    def locked(uri):
        raise TrackingStoreError("the MLflow tracking store is locked by another process: retry when it ends")

    monkeypatch.setattr(runs, "load_model", locked)
    # no bundle and features without a single column: had the failed load gone on to compare the
    # champion's columns with these, it would have crashed or named every column as missing
    assert runs._champion_unusable("any", None, pd.DataFrame(), "1") is None  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_champion_whose_model_files_are_gone_gives_way(trained, gate, tmp_path):
    """An artifact clean-up left a champion no job could load: every later job failed with exit 5."""
    import shutil

    from kamml.tracking.runs import _champion_unusable

    _, _, result = trained
    copy = tmp_path / "model"
    shutil.copytree(mlflow.artifacts.download_artifacts(result.model_uri), copy)
    name = "gate-test-files-gone"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, str(copy))
    assert promote(name, v1, "value.gini", 0.60).promoted
    assert _champion_unusable(name, result.bundle, result.features, v1) is None  # it loads
    shutil.rmtree(copy)
    reason = _champion_unusable(name, result.bundle, result.features, v1)
    assert reason is not None
    assert reason.startswith("cannot be loaded, for good: No such")
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.55}, result.model_uri)
    check = functools.partial(_champion_unusable, name, result.bundle, result.features)
    gone = promote(name, v2, "value.gini", 0.55, champion_unusable=check)
    assert gone.promoted
    assert gone.reason.startswith(f"the champion (version {v1}) cannot be loaded, for good")


@pytest.mark.slow
def test_a_champion_saved_before_a_features_key_existed_is_still_checked(trained):
    """Bundles saved before `static_columns` existed lacked the key: the specs never compared equal."""
    import copy

    from kamml.tracking.runs import _builds

    _, _, result = trained
    older = copy.copy(result.bundle)
    older.feature_config = {k: v for k, v in result.bundle.feature_config.items() if k != "static_columns"}
    assert "static_columns" in result.bundle.feature_config
    assert _builds(older) == _builds(result.bundle)


@pytest.mark.parametrize(
    ("code", "message"),
    [("INTERNAL_ERROR", "server error"), ("PERMISSION_DENIED", "not allowed to read aliases")],
)
def test_a_failed_champion_lookup_stops_the_gate(gate, monkeypatch, code, message):
    """Only "alias not found" means no champion: a server or permission error must not promote."""
    from mlflow.exceptions import MlflowException

    from kamml.errors import ModelError

    name = f"gate-test-lookup-{code.lower()}"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})
    assert promote(name, v1, "value.gini", 0.60).promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.10})

    def failing(self, model, alias):
        raise MlflowException(message, error_code=code)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", failing)
    with pytest.raises(ModelError, match=f"cannot read the champion alias of '{name}' in the MLflow store"):
        promote(name, v2, "value.gini", 0.10)
    monkeypatch.undo()
    assert str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version) == v1


def test_an_unset_champion_alias_means_no_champion(gate):
    """What MLflow raises for an alias that is not set is read as "no champion yet"."""
    name = "gate-test-no-alias"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})
    first = promote(name, v1, "value.gini", 0.60)
    assert first.promoted
    assert "first version" in first.reason


def test_a_removed_champion_alias_is_not_called_a_first_version(gate):
    """With versions already registered but no alias (removed by hand, or its version deleted), the
    reason said "first version: no champion yet"; it now says no version holds the alias."""
    name = "gate-test-removed-alias"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})
    assert promote(name, v1, "value.gini", 0.60).promoted
    MlflowClient().delete_registered_model_alias(name, CHAMPION)
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.50})
    second = promote(name, v2, "value.gini", 0.50)
    assert second.promoted
    assert "first version" not in second.reason
    assert f"no version holds the {CHAMPION} alias" in second.reason
    assert f"beside 1 earlier version (version {v1})" in second.reason


_HOLDOUT = {
    "backtest.label_window": "['2025-07-05', '2025-12-31']",
    "backtest.unit": "days",
    "backtest.test_accounts": "4000",
    "backtest.actual_total_value": "1234.5",
}


def test_a_champion_of_another_horizon_gives_way_without_comparing_figures(gate):
    """A 180-day champion's backtest does not compare with a 90-day one, and cannot serve a 90-day config."""
    client = MlflowClient()
    name = "gate-test-horizon"
    client.create_registered_model(name)
    with mlflow.start_run(experiment_id=gate) as run:
        mlflow.log_metrics({"value.kamml.gini": 0.90})
        mlflow.log_params({"backtest.horizon_days": "180", "time.horizon_days": "180", **_HOLDOUT})
    source = f"{run.info.artifact_uri}/model"  # the gate reads the run, not the model
    v1 = str(client.create_model_version(name, source, run_id=run.info.run_id).version)
    assert promote(name, v1, "value.gini", 0.90, horizon_days=180).promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.50})
    same = promote(name, v2, "value.gini", 0.50, horizon_days=180)
    assert not same.promoted  # the same horizon: figures compared as ever
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.50})
    shorter = {**_HOLDOUT, "backtest.label_window": "['2025-10-03', '2025-12-31']"}
    other = promote(name, v3, "value.gini", 0.50, horizon_days=90, holdout=shorter)
    assert other.promoted
    assert other.reason.startswith(
        f"the champion (version {v1}) predicts over 180 days, not this config's 90"
    )
    assert other.same_holdout is None  # no figures compared, so no word on their holdouts
    # nor the champion's figure: logged beside this version's, it read as a worse version promoted
    assert other.champion_value is None
    assert other.champion_version == v1
    assert same.champion_value == 0.90  # compared
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v3


def test_a_champion_of_another_churn_label_gives_way(gate):
    """A config's new models.churn_label never took effect while the value model's figure tied."""
    name = "gate-test-churn-label"
    label = {"models.churn_label": "no_purchase"}
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=label)
    assert promote(name, v1, "value.gini", 0.60, churn_label="no_purchase").promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})
    assert not promote(name, v2, "value.gini", 0.60, churn_label="no_purchase").promoted  # a tie
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})
    other = promote(name, v3, "value.gini", 0.60, churn_label="no_purchase_or_nonrenewal")
    assert other.promoted
    assert other.reason.startswith(
        f"the champion (version {v1}) was trained with models.churn_label no_purchase, not this config's "
        "no_purchase_or_nonrenewal"
    )
    assert str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version) == v3


def test_a_version_promoted_as_asked_takes_the_alias_and_says_what_the_gate_would_have_done(gate):
    """A leaky champion's figure kept every honest version out: the user had no way past the gate."""
    name = "gate-test-forced"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.95})
    assert promote(name, v1, "value.gini", 0.95).promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.80})
    forced = promote(name, v2, "value.gini", 0.80, force=True)
    assert forced.promoted
    assert forced.reason.startswith("promoted as asked (--promote), over the gate's decision: ")
    assert "does not beat the champion's" in forced.reason
    assert str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version) == v2
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.90})
    better = promote(name, v3, "value.gini", 0.90, force=True)  # the gate's own reason when it agrees
    assert better.promoted
    assert not better.reason.startswith("promoted as asked")


def test_a_champion_whose_effort_response_was_fitted_under_other_settings_gives_way(gate):
    """A changed allocation.effort_clip moved no backtest figure: the new version tied, and the plan kept
    reading the champion's old response (a config audit)."""
    from kamml.config import Config
    from kamml.tracking.runs import effort_params

    name = "gate-test-effort"
    fitted = effort_params(Config())
    assert fitted == {
        "allocation.effort_scale": "auto",
        "allocation.effort_clip": "[0.25, 4.0]",
        "allocation.effort_exponent": "0.5",
        "allocation.effort_size_column": "size",
    }
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=fitted)
    assert promote(name, v1, "value.gini", 0.60, effort=fitted).promoted
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=fitted)
    assert not promote(name, v2, "value.gini", 0.60, effort=fitted).promoted  # a tie
    clipped = effort_params(Config.from_dict({"allocation": {"effort_clip": [0.5, 2.0]}}))
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=clipped)
    other = promote(name, v3, "value.gini", 0.60, effort=clipped)
    assert other.promoted
    assert other.reason == (
        f"the champion (version {v1}) fitted its effort response under other settings "
        "(allocation.effort_clip [0.25, 4.0], not [0.5, 2.0]): the plan reads the response from the "
        "scoring model, and no backtest figure measures it"
    )
    # with a number in both the plan follows the config's fixed rule: nothing to give way for
    fixed = effort_params(Config.from_dict({"allocation": {"effort_scale": 6, "effort_clip": [0.5, 2.0]}}))
    v4 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=fixed)
    assert promote(name, v4, "value.gini", 0.60, effort=fixed).promoted  # from auto to a number
    wider = effort_params(Config.from_dict({"allocation": {"effort_scale": 6}}))
    v5 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=wider)
    assert not promote(name, v5, "value.gini", 0.60, effort=wider).promoted
    # a champion logged without the settings is compared by its figure alone
    old = f"{name}-unrecorded"
    w1 = _version_with_metrics(gate, old, {"value.kamml.gini": 0.60})
    assert promote(old, w1, "value.gini", 0.60).promoted
    w2 = _version_with_metrics(gate, old, {"value.kamml.gini": 0.60}, params=clipped)
    assert not promote(old, w2, "value.gini", 0.60, effort=clipped).promoted


def test_figures_of_different_holdouts_are_compared_and_said_to_be(gate, caplog):
    """New data moves the holdout: the gate still compares, and says the figures are not of one holdout."""
    name = "gate-test-holdout"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60}, params=_HOLDOUT)
    assert promote(name, v1, "value.gini", 0.60, holdout=_HOLDOUT).same_holdout is None  # no champion
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.55})
    same = promote(name, v2, "value.gini", 0.55, holdout=dict(_HOLDOUT))
    assert (same.promoted, same.same_holdout) == (False, True)
    assert "holdout" not in same.reason
    later = {
        **_HOLDOUT,
        "backtest.label_window": "['2025-08-04', '2026-01-30']",
        "backtest.test_accounts": "4100",
    }
    v3 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.70})
    with caplog.at_level(logging.WARNING, logger="kamml.tracking.registry"):
        moved = promote(name, v3, "value.gini", 0.70, holdout=later)
    assert (moved.promoted, moved.same_holdout) == (True, False)  # the rule decides as ever
    assert "on different holdouts" in moved.reason
    assert "label_window ['2025-07-05', '2025-12-31'] against ['2025-08-04', '2026-01-30']" in moved.reason
    assert "test_accounts 4000 against 4100" in moved.reason
    assert "actual_total_value" not in moved.reason  # only what differs
    assert any("another holdout" in r.getMessage() for r in caplog.records)
    assert moved.to_dict()["same_holdout"] is False


def test_a_holdout_not_recorded_is_not_called_different(gate):
    name = "gate-test-holdout-unrecorded"
    v1 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.60})  # a run from before the params
    promote(name, v1, "value.gini", 0.60)
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.50})
    decision = promote(name, v2, "value.gini", 0.50, holdout=_HOLDOUT)
    assert decision.same_holdout is None
    assert "holdout" not in decision.reason
    assert holdout_difference({}, _HOLDOUT) is None
    assert holdout_difference(_HOLDOUT, {"backtest.unit": "weeks"}) == (
        "label_window ['2025-07-05', '2025-12-31'] against not recorded; unit days against weeks; "
        "test_accounts 4000 against not recorded; actual_total_value 1234.5 against not recorded"
    )


@pytest.mark.slow
def test_a_training_run_logs_the_horizon_the_gate_reads(trained):
    cfg, _, result = trained
    assert _run_horizon(MlflowClient().get_run(result.run_id)) == cfg.time.horizon_days


@pytest.mark.slow
def test_the_configs_promotion_models_are_the_backtests(trained):
    """The config refuses a model name the backtest does not log: both lists must stay the same."""
    from kamml.config import PROMOTION_METRICS, PROMOTION_MODELS
    from kamml.tracking import backtest_metrics

    _, _, result = trained
    logged = {tuple(key.split(".")) for key in backtest_metrics(result.backtest)}
    assert {(task, model) for task, model, _ in logged} == {
        (task, model) for task, models in PROMOTION_MODELS.items() for model in models
    }
    assert all(metric in PROMOTION_METRICS[task] for task, _, metric in logged if metric != "base_rate")


@pytest.mark.parametrize(
    ("key", "value", "champion", "promoted"),
    [
        ("value.kamml.gini", 0.90, 0.90, False),  # a tie keeps the champion
        ("value.kamml.gini", 0.9001, 0.90, True),
        ("value.kamml.gini", 0.60, 0.90, False),
        ("value.kamml.aggregate_error", -0.05, 0.10, True),  # errors by their size, either sign
        ("value.kamml.aggregate_error", 0.10, -0.05, False),
        ("value.kamml.aggregate_error", -0.05, 0.05, False),  # the same size is a tie
        ("churn.kamml.brier", 0.15, 0.16, True),
        ("churn.kamml.brier", 0.16, 0.15, False),
    ],
)
def test_the_gate_promotes_only_a_strictly_better_figure(key, value, champion, promoted):
    """Higher is better but for error metrics, which compare by size (a -5 % total beats +10 %)."""
    decided, reason = _decide(key, value, "3", champion)
    assert decided is promoted
    assert ("beats the champion's" if promoted else "does not beat") in reason


def test_the_gate_never_promotes_on_rounding_and_keeps_the_configured_margin():
    """A version was promoted on 0.2531 against 0.2531, a gain of 1.4e-17 (a data-science audit)."""
    champion = 0.25312345
    assert _decide("value.kamml.aggregate_error", champion - 1.4e-17, "3", champion)[0] is False
    assert _decide("value.kamml.gini", 0.9 + 1e-12, "3", 0.9)[0] is False
    assert _decide("value.kamml.gini", 0.9 + 1e-6, "3", 0.9)[0] is True
    assert _decide("value.kamml.gini", 0.905, "3", 0.9, margin=0.01) == (
        False,
        "value.kamml.gini 0.9050 does not beat the champion's 0.9000 by more than 0.01 "
        "(tracking.promote_margin)",
    )
    assert _decide("value.kamml.gini", 0.911, "3", 0.9, margin=0.01)[0] is True
    assert _decide("churn.kamml.brier", 0.149, "3", 0.16, margin=0.01)[0] is True  # errors: smaller by it
    assert _decide("churn.kamml.brier", 0.151, "3", 0.16, margin=0.01)[0] is False


def test_a_champion_of_an_infinite_error_is_beaten_by_any_finite_one():
    """The rounding allowance grew with the champion's figure: at inf no version could ever beat it."""
    inf = float("inf")
    assert _decide("value.kamml.decile_mape", 0.3, "3", inf) == (
        True,
        "value.kamml.decile_mape 0.3000 beats the champion's inf",
    )
    assert _decide("value.kamml.aggregate_error", 0.1, "3", -inf)[0] is True  # by its size
    assert _decide("value.kamml.decile_mape", inf, "3", inf)[0] is False  # inf against inf: a tie
    assert _decide("value.kamml.decile_mape", inf, "3", 0.3)[0] is False
    assert _decide("value.kamml.gini", inf, "3", 0.9)[0] is True  # a figure that cannot be bettered


def test_the_gate_without_a_usable_figure():
    assert _decide("value.kamml.gini", float("nan"), "3", 0.9) == (
        False,
        "this run has no usable metric value.kamml.gini (nan)",
    )
    assert _decide("value.kamml.gini", 0.5, "3", None)[0] is True


def test_a_versions_backtest_is_read_from_its_run_and_none_when_absent(gate, caplog):
    from kamml.tracking.registry import version_backtest

    client = MlflowClient()
    name = "gate-test-backtest"
    client.create_registered_model(name)
    with mlflow.start_run(experiment_id=gate) as run:
        mlflow.log_dict(
            {"protocol": {"cutoff": "2025-07-05"}, "value": {"kamml": {"gini": 0.5}}}, "backtest.json"
        )
    with_json = str(
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    )
    v2 = _version_with_metrics(gate, name, {"value.kamml.gini": 0.4})  # a run without backtest.json
    assert version_backtest(name, with_json) == {
        "protocol": {"cutoff": "2025-07-05"},
        "value": {"kamml": {"gini": 0.5}},
    }
    with caplog.at_level(logging.WARNING, logger="kamml.tracking.registry"):
        assert version_backtest(name, v2) is None
        assert version_backtest(name, "99") is None
    assert sum("could not be read" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("unit", [1e-9, 1e-6, 1.0, 1e6, 1e9])
def test_the_gate_decides_on_money_errors_alike_in_any_unit_of_the_amounts(unit):
    """RMSE and MAE are in the amounts' unit: the rounding allowance was at least 1e-9 in that unit.

    In amounts x1e-9 an RMSE of 5e-8 improving by 1 % (5e-10) was called rounding and never promoted,
    and the reason read "0.0000 does not beat the champion's 0.0000".
    """
    champion, better = 5e4 * unit, 4.95e4 * unit
    promoted, reason = _decide("value.kamml.rmse", better, "3", champion)
    assert promoted is True
    assert reason == f"value.kamml.rmse {better:.4g} beats the champion's {champion:.4g}"
    assert _decide("value.kamml.mae", champion * (1 - 1e-12), "3", champion)[0] is False  # rounding
    assert _decide("value.kamml.mae", champion * (1 - 1e-6), "3", champion)[0] is True


def test_the_gates_reason_shows_figures_that_differ_when_they_do():
    """A notebook audit read "value.kamml.gini 0.9511 beats the champion's 0.9511" (0.95108 vs 0.95106)."""
    promoted, reason = _decide("value.kamml.gini", 0.9510823544545413, "3", 0.9510571882017285)
    assert promoted is True
    assert reason == "value.kamml.gini 0.95108 beats the champion's 0.95106"
    assert _decide("value.kamml.gini", 0.95106, "3", 0.95108)[1] == (
        "value.kamml.gini 0.95106 does not beat the champion's 0.95108"
    )
    assert _decide("value.kamml.gini", 0.9, "3", 0.9)[1] == (  # a tie keeps four decimals
        "value.kamml.gini 0.9000 does not beat the champion's 0.9000"
    )
    assert _decide("value.kamml.rmse", 12345.6, "3", 12346.1)[1] == (
        "value.kamml.rmse 12345.6 beats the champion's 12346.1"
    )
    # a difference within rounding (1e-9) promotes nothing and reads as the tie it is
    assert _decide("value.kamml.gini", 0.9 + 1e-12, "3", 0.9)[1] == (
        "value.kamml.gini 0.9000 does not beat the champion's 0.9000"
    )


def test_holdout_totals_that_differ_by_rounding_are_the_same_holdout():
    """The same data summed by another engine (Spark beside DuckDB) or in another order differ in the last
    digits of the total: compared as text, the gate called that another holdout and warned."""
    other = {**_HOLDOUT, "backtest.actual_total_value": repr(1234.5 * (1 + 4e-16))}
    assert other["backtest.actual_total_value"] != _HOLDOUT["backtest.actual_total_value"]
    assert holdout_difference(_HOLDOUT, other) is None
    moved = {**_HOLDOUT, "backtest.actual_total_value": "1234.6"}
    assert holdout_difference(_HOLDOUT, moved) == "actual_total_value 1234.5 against 1234.6"
    text = {**_HOLDOUT, "backtest.actual_total_value": "n/a"}  # not a number: compared as written
    assert holdout_difference(_HOLDOUT, text) == "actual_total_value 1234.5 against n/a"


def test_a_champion_of_an_infinite_figure_is_read_as_infinite_from_its_run(gate, tracked_config):
    """A SQL store keeps inf as 1.797e308: the gate's reason printed that number in 309 digits."""
    from types import SimpleNamespace

    from kamml.tracking import TrainingRun

    name = "gate-test-inf"
    client = MlflowClient()
    client.create_registered_model(name)
    value = {"kamml": {"decile_mape": float("inf")}}
    fake = SimpleNamespace(value=value, churn={}, referral={}, protocol={}, to_dict=lambda: {"value": value})
    with TrainingRun(tracked_config()) as run:
        run.log_backtest(fake)
    v1 = str(client.create_model_version(name, "file:///nowhere/model", run_id=run.run_id).version)
    assert promote(name, v1, "value.decile_mape", float("inf")).promoted  # the first
    v2 = _version_with_metrics(gate, name, {"value.kamml.decile_mape": 0.3})
    second = promote(name, v2, "value.decile_mape", 0.3)
    assert (second.promoted, second.champion_value) == (True, float("inf"))
    assert second.reason == "value.kamml.decile_mape 0.3000 beats the champion's inf"
    # a champion logged before kamml left inf out: MLflow's float max is its inf
    v3 = _version_with_metrics(gate, name, {"value.kamml.decile_mape": float("inf")})
    client.set_registered_model_alias(name, CHAMPION, v3)
    v4 = _version_with_metrics(gate, name, {"value.kamml.decile_mape": 0.4})
    fourth = promote(name, v4, "value.decile_mape", 0.4)
    assert fourth.reason == "value.kamml.decile_mape 0.4000 beats the champion's inf"
