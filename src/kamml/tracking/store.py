"""Where MLflow records runs: the tracking store and experiment from the config or the environment.

The embedded default is a SQLite store and a local artifact folder in the working directory
(``sqlite:///mlruns.db``, ``./mlartifacts``). ``MLFLOW_TRACKING_URI`` in the environment wins over the
config, so a scheduler can point the same config at a shared server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from kamml.config import TrackingConfig
from kamml.errors import ConfigError

__all__ = ["experiment_id", "tracking_uri", "use_tracking"]

log = logging.getLogger(__name__)


def tracking_uri(config: TrackingConfig | None = None) -> str:
    """The tracking URI in force: ``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking.uri``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return (config or TrackingConfig()).uri


def _artifact_root(location: str) -> str:
    """A local artifact folder as an absolute ``file:`` URI (MLflow needs one); other URIs unchanged."""
    if "://" in location or location.startswith("file:"):
        return location
    return Path(location).expanduser().resolve().as_uri()


#: Environment variables MLflow's setters write; `use_tracking` puts them back, so they stay the user's.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def use_tracking(config: TrackingConfig | None = None) -> str:
    """Point MLflow at the configured store and return its URI (also sets the registry URI).

    MLflow's setters also write ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` into the environment;
    left there, the first store kamml used would pass for the user's variable and win over every later
    config in the process (a notebook training with one config and scoring with another). They are
    restored to what they were, and MLflow keeps the URI in its own state.
    """
    uri = tracking_uri(config)
    before = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return uri


def experiment_id(config: TrackingConfig | None = None) -> str:
    """The id of the configured experiment, created (with the configured artifact root) if missing."""
    cfg = config or TrackingConfig()
    use_tracking(cfg)
    try:
        found = mlflow.get_experiment_by_name(cfg.experiment)
        if found is not None:
            return str(found.experiment_id)
        root = _artifact_root(cfg.artifact_location) if cfg.artifact_location else None
        created = mlflow.create_experiment(cfg.experiment, artifact_location=root)
    except MlflowException as exc:
        raise ConfigError(
            f"cannot use the MLflow experiment '{cfg.experiment}' at {tracking_uri(cfg)}: {exc.message}"
        ) from exc
    log.info("created MLflow experiment '%s' at %s", cfg.experiment, tracking_uri(cfg))
    return str(created)
