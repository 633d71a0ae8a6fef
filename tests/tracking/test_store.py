from __future__ import annotations

import os

from kamml.config import TrackingConfig
from kamml.tracking import tracking_uri


def test_environment_overrides_the_configured_store(monkeypatch):
    cfg = TrackingConfig(uri="sqlite:///here.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(cfg) == "sqlite:///here.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri(cfg) == "http://mlflow.example:5000"


def test_embedded_default_is_sqlite_in_the_working_folder(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == "sqlite:///mlruns.db"


def test_a_later_config_wins_and_the_environment_stays_the_users(monkeypatch, tmp_path):
    """MLflow's setters write MLFLOW_TRACKING_URI; left there, the first store used won for good."""
    import mlflow

    from kamml.tracking import use_tracking

    before = mlflow.get_tracking_uri()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    try:
        assert use_tracking(TrackingConfig(uri=first)) == first
        assert use_tracking(TrackingConfig(uri=second)) == second
        assert mlflow.get_tracking_uri() == second
        assert mlflow.get_registry_uri() == second
        assert "MLFLOW_TRACKING_URI" not in os.environ
        assert "MLFLOW_REGISTRY_URI" not in os.environ
        monkeypatch.setenv("MLFLOW_TRACKING_URI", first)  # the user's variable still wins
        assert use_tracking(TrackingConfig(uri=second)) == first
        assert os.environ["MLFLOW_TRACKING_URI"] == first
    finally:
        mlflow.set_tracking_uri(before)
        mlflow.set_registry_uri(before)
