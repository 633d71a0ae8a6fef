"""Session fixtures of the MLflow and job tests: one SQLite store, one trained and registered model.

A fresh SQLite tracking store costs ~4 s of migrations, so the session shares one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamml.config import Config
from kamml.data import load_data
from kamml.datasets import synthetic

FAST = {"n_estimators": 40, "early_stopping_rounds": 10}


@pytest.fixture(autouse=True)
def _kamml_logger_restored() -> Iterator[None]:
    """Undo what a CLI run does to the ``kamml`` logger (its level, and a handler on the runner's stream).

    Without this a test that counts log records saw INFO lines of other kamml modules, and handlers
    writing to a closed stream, whenever it ran after a CLI test.
    """
    logger = logging.getLogger("kamml")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


def _tracked_config(root: Path, **tracking: str) -> Config:
    """A small, fast job config whose MLflow store lives under `root`."""
    return Config.from_dict(
        {
            "time": {"horizon_days": 90, "snapshots": 2, "step_days": 60},
            "models": {"threads": 1, "clv": FAST, "churn": FAST, "influence": FAST},
            "tracking": {
                "uri": f"sqlite:///{root / 'mlruns.db'}",
                "artifact_location": str(root / "mlartifacts"),
                "experiment": "kamml-test",
                "model_name": "kamml-test",
                **tracking,
            },
        }
    )


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder for the session's tracking store, with MLFLOW_TRACKING_URI out of the way."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def tracked_config(store_root: Path):
    """Factory of small, fast job configs using the session's tracking store."""

    def make(**tracking: str) -> Config:
        return _tracked_config(store_root, **tracking)

    return make


@pytest.fixture(scope="session")
def world_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world on disk (transactions, accounts, referrals, activities)."""
    path = tmp_path_factory.mktemp("world")
    synthetic.generate(400, seed=5, years=2.0).write(path)
    return path


@pytest.fixture(scope="session")
def trained(store_root: Path, world_path: Path):
    """The training job run once: (config, data, TrainResult)."""
    from kamml.jobs.train import train

    cfg = _tracked_config(store_root)
    data = load_data(world_path, cfg)
    return cfg, data, train(data, cfg)
