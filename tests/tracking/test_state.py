"""The caller's MLflow state around kamml's calls: URIs, URI variables and active run as they were."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from kamml.config import Config, TrackingConfig

_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _state() -> tuple[object, ...]:
    """MLflow's tracking and registry URIs as set (None: unset), the URI variables, the active run's id."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    active = mlflow.active_run()
    return (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        *(os.environ.get(name) for name in _VARIABLES),
        active.info.run_id if active is not None else None,
    )


def _config(root: Path, experiment: str = "kamml-state") -> Config:
    """A config whose store, given by tracking.uri, lives under `root`."""
    return Config.from_dict(
        {
            "tracking": {
                "uri": f"sqlite:///{root / 'kamml.db'}",
                "artifact_location": str(root / "art"),
                "experiment": experiment,
            }
        }
    )


@pytest.fixture
def notebook(tmp_path, monkeypatch, mlflow_state):
    """A notebook's session: no exported variable, ``mlflow.set_tracking_uri`` on its own store.

    Returns the user's store URI; MLflow's setter has written MLFLOW_TRACKING_URI, as in MLflow 3.
    """
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default store, if anything used it, would be here
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    mlflow.set_tracking_uri(mine)
    assert os.environ["MLFLOW_TRACKING_URI"] == mine
    yield mine
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow_state then puts back what was there


@pytest.mark.parametrize("callers_store", ["mlflow_default", "set_tracking_uri"])
def test_a_run_in_the_callers_run_of_another_store_is_top_level_and_the_callers_run_goes_on(
    callers_store, tmp_path, monkeypatch, mlflow_state, caplog
):
    """kamml's run went to its store as a child of a run that store lacks, and MLflow stayed on kamml's
    store: the caller's next log_metric and end_run failed ("Run ... not found"), leaving it RUNNING.

    The caller's run in MLflow's default store (nothing set), or in one a notebook set.
    """
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from kamml.tracking import TrainingRun

    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default store, mlflow.db, is made here
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    if callers_store == "set_tracking_uri":
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mine.db'}")
    notebook = mlflow.get_tracking_uri()
    cfg = _config(tmp_path / "kamml")
    kamml_store = cfg.tracking.uri
    with mlflow.start_run() as parent:
        before = _state()
        with caplog.at_level(logging.WARNING, logger="kamml"), TrainingRun(cfg, run_name="child") as run:
            mlflow.log_metric("k", 1.0)
        mlflow.log_metric("user_after", 2.0)  # the caller's run, in the caller's store
        assert _state() == before
    callers = MlflowClient(notebook).get_run(parent.info.run_id)
    assert callers.info.status == "FINISHED"
    assert callers.data.metrics == {"user_after": 2.0}
    ours = MlflowClient(kamml_store).get_run(run.run_id)
    assert ours.info.status == "FINISHED"
    assert ours.data.metrics == {"k": 1.0}
    assert "mlflow.parentRunId" not in ours.data.tags
    assert ours.data.tags["kamml.caller.run_id"] == parent.info.run_id
    assert ours.data.tags["kamml.caller.tracking_uri"] == notebook
    assert (
        f"not nested in the active run {parent.info.run_id}, which is in another MLflow store" in caplog.text
    )


def test_a_run_in_the_callers_run_of_the_same_store_is_its_child_and_mlflow_is_as_before(
    tmp_path, monkeypatch, mlflow_state
):
    """The caller's run in the config's store: kamml's run is a real child there."""
    from kamml.tracking import TrainingRun, experiment_id

    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    cfg = _config(tmp_path)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a fresh session's state, but MLflow on kamml's store
    with mlflow.start_run(experiment_id=experiment_id(cfg.tracking)) as parent:
        before = _state()
        with TrainingRun(cfg) as run:
            pass
        assert _state() == before
        mlflow.log_metric("user_after", 2.0)
    tags = MlflowClient(cfg.tracking.uri).get_run(run.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert "kamml.caller.run_id" not in tags


def test_a_failing_training_run_leaves_the_callers_state_and_run_as_they_were(notebook, tmp_path):
    from kamml.tracking import TrainingRun

    cfg = _config(tmp_path / "kamml")
    with mlflow.start_run() as parent:
        before = _state()
        run = TrainingRun(cfg)
        with pytest.raises(RuntimeError, match="boom"), run:
            raise RuntimeError("boom")
        assert _state() == before
        mlflow.log_metric("user_after", 2.0)
    assert MlflowClient(notebook).get_run(parent.info.run_id).info.status == "FINISHED"
    assert MlflowClient(cfg.tracking.uri).get_run(run.run_id).info.status == "FAILED"


@pytest.mark.parametrize("users", ["unset", "set"])
def test_kammls_calls_leave_mlflows_uris_and_variables_as_they_were(
    users, tmp_path, monkeypatch, mlflow_state
):
    """experiment_id, a models:/ lookup and tagging a failed job left MLflow on kamml's store for good,
    so the user's later mlflow.start_run() landed there; unset must stay unset (MLflow's default)."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from kamml.errors import ModelError
    from kamml.tracking import experiment_id, record_job_failure, resolve_model

    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    if users == "set":
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mine.db'}")
        mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'registry.db'}")
    cfg = _config(tmp_path / "kamml")
    before = _state()
    experiment_id(cfg.tracking)
    assert _state() == before
    with pytest.raises(ModelError, match="cannot load the model models:/nothing@champion"):
        resolve_model("models:/nothing@champion", cfg.tracking)
    assert _state() == before
    record_job_failure(cfg, "0" * 32, "score", RuntimeError("x"))  # no such run: a warning, not an error
    assert _state() == before
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow_state puts back what was there
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    assert not (tmp_path / "mlflow.db").exists()


def test_mlflows_setter_does_not_override_the_configs_uri_and_says_which_wins(notebook, tmp_path, caplog):
    """MLflow 3's set_tracking_uri writes MLFLOW_TRACKING_URI: kamml took it for the user's override and
    silently ignored the config's tracking.uri."""
    from kamml.tracking import tracking_uri, use_tracking
    from kamml.tracking.store import tracking_source

    cfg = _config(tmp_path / "kamml").tracking
    assert tracking_uri(cfg) == cfg.uri
    assert tracking_source(cfg) == "the config's tracking.uri"
    assert tracking_uri(TrackingConfig()) == notebook  # a config without tracking.uri: MLflow's URI
    assert tracking_uri() == notebook
    from kamml.tracking import tracking_scope

    with caplog.at_level(logging.WARNING, logger="kamml"), tracking_scope(cfg) as uri:
        assert uri == cfg.uri
        assert tracking_uri(cfg) == cfg.uri  # inside the scope too, where MLflow's URI is kamml's
    assert mlflow.get_tracking_uri() == notebook
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert f"the config's tracking.uri {cfg.uri} wins over MLflow's tracking URI {notebook}" in warned[0]
    assert "only an exported variable overrides the config" in warned[0]
    # kamml's own lasting use_tracking moves MLflow's URI: the variable is still the setter's
    other = _config(tmp_path / "other").tracking
    assert use_tracking(cfg) == cfg.uri
    assert tracking_uri(other) == other.uri


def test_an_exported_variable_wins_over_the_config_with_a_warning(
    tmp_path, monkeypatch, mlflow_state, caplog
):
    """A scheduler's exported MLFLOW_TRACKING_URI still overrides the config, now saying so."""
    from kamml.tracking import tracking_uri, use_tracking

    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    exported = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", exported)
    cfg = _config(tmp_path / "kamml").tracking
    assert tracking_uri(cfg) == exported
    with caplog.at_level(logging.WARNING, logger="kamml"):
        assert use_tracking(cfg) == exported
    assert tracking_uri(cfg) == exported  # kamml's own setter call does not make it MLflow's
    assert os.environ["MLFLOW_TRACKING_URI"] == exported
    assert (
        f"the MLFLOW_TRACKING_URI environment variable {exported} wins over the config's tracking.uri "
        f"{cfg.uri} (an exported variable overrides the config)" in caplog.text
    )


@pytest.mark.slow
def test_a_whole_job_scores_from_the_configs_store_and_leaves_mlflow_as_it_was(
    notebook, tracked_config, world_path, tmp_path
):
    """`kamml run` in one process loaded the new version through MLflow's current URI, which training
    left on the config's store; with the switch scoped it must look the model up in the config's store."""
    from kamml.jobs.run import run

    cfg = tracked_config(experiment="kamml-state-run", model_name="kamml-state-run")
    cfg.output.dir = tmp_path / "out"
    before = _state()
    result = run(cfg, world_path, echo=lambda line: None)
    assert _state() == before
    assert (
        str(result.scores["model_uri"].iat[0])
        == f"models:/kamml-state-run/{result.training.promotion.version}"
    )
    assert (cfg.output.dir / "allocation.parquet").is_file()
    assert not Path(notebook.removeprefix("sqlite:///")).exists()  # nothing of the job in the user's store
