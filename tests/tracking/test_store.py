from __future__ import annotations

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
