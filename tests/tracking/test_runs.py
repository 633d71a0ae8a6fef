from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from kamml.tracking import backtest_metrics, flatten


def test_flatten_nests_dotted_keys_and_lists_as_json():
    flat = flatten({"time": {"horizon_days": 90, "cutoff": None}, "features": {"windows": [30, 90]}, "g": {}})
    assert flat == {
        "time.horizon_days": "90",
        "time.cutoff": "",
        "features.windows": "[30, 90]",
        "g": "{}",
    }


def test_training_run_logs_config_data_versions_metrics_and_plots(trained):
    _, data, result = trained
    run = MlflowClient().get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["time.horizon_days"] == "90"
    assert params["models.threads"] == "1"
    assert params["backtest.cutoff"] == result.backtest.protocol["cutoff"]
    for key in (
        "value.kamml.gini",
        "value.btyd.gini",
        "value.last_period.gini",
        "churn.kamml.roc_auc",
        "churn.btyd.roc_auc",
        "referral.kamml.gini",
        "referral.past_rate.gini",
    ):
        assert key in metrics, key
    assert metrics == {**metrics, **backtest_metrics(result.backtest)}
    rows = data.tables["transactions"].count().to_pandas()
    assert tags["data.transactions.rows"] == str(rows)
    assert len(tags["data.transactions.hash"]) == 16
    assert tags["version.lightgbm"]
    assert tags["version.mlflow"] == mlflow.__version__
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"config.yaml", "data.json", "backtest.json", "promotion.json", "versions.json"} <= artifacts
    plots = {a.path for a in MlflowClient().list_artifacts(result.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots), plots
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="config.yaml")
    assert "horizon_days: 90" in Path(local).read_text(encoding="utf-8")
