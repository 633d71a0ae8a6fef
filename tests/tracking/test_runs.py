from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from kamml.config import FEATURE_GROUPS, Config
from kamml.io import json_text
from kamml.tracking import backtest_metrics, flatten
from kamml.tracking.runs import built_groups

#: MLflow's own API in these tests reads the session's store: kamml's calls leave MLflow as it was
pytestmark = pytest.mark.usefixtures("mlflow_at_session_store")


def test_flatten_nests_dotted_keys_and_lists_as_json():
    flat = flatten({"time": {"horizon_days": 90, "cutoff": None}, "features": {"windows": [30, 90]}, "g": {}})
    assert flat == {
        "time.horizon_days": "90",
        "time.cutoff": "",
        "features.windows": "[30, 90]",
        "g": "{}",
    }


@pytest.mark.slow
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
    # what fits BTYD, draws the drivers, compiles and reads the SQL (a data-science audit found them absent)
    assert {"version.scipy", "version.numba", "version.sqlglot", "version.pyarrow"} <= set(tags)
    # every feature group by name, so a search on one finds the runs with it on (the default {} was "{}")
    assert run.data.params["features.groups.trend"] == "True"
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"config.yaml", "data.json", "backtest.json", "promotion.json", "versions.json"} <= artifacts
    plots = {a.path for a in MlflowClient().list_artifacts(result.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots), plots
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="config.yaml")
    assert "horizon_days: 90" in Path(local).read_text(encoding="utf-8")


@pytest.mark.slow
def test_training_run_keeps_the_data_quality_notes(trained):
    """A scheduled `kamml train` logged its notes only to its log: the run kept no word of the refunds,
    repeats dropped or accounts missing from the accounts table that it trained on."""
    _, data, result = trained
    assert data.quality.notes  # the synthetic world has some (refunds at least)
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="data_quality.json")
    logged = json.loads(Path(local).read_text(encoding="utf-8"))
    assert logged == json.loads(json_text(data.quality.to_dict()))
    assert [n["rule"] for n in logged["notes"]] == [n.rule for n in data.quality.notes]
    assert MlflowClient().get_run(result.run_id).data.tags["data.notes"] == str(len(data.quality.notes))


@pytest.mark.slow
def test_training_run_logs_effective_settings_fitted_facts_and_the_data_input(trained):
    """Runs compare on the same keys: LightGBM's effective settings, what training settled on, the data."""
    _, _, result = trained
    run = MlflowClient().get_run(result.run_id)
    params, metrics = run.data.params, run.data.metrics
    bundle = result.bundle
    for name in ("clv", "churn"):
        assert params[f"lgbm.{name}.num_leaves"] == "15"  # kamml's default, absent from the config
        assert params[f"lgbm.{name}.max_depth"] == "5"
        assert f"lgbm.{name}.n_estimators" in params
    assert params["lgbm.clv.offset_weight"] == str(bundle.clv.offset_weight)
    built = params["features.groups_built"].split(",")
    assert {"rfm", "windows", "btyd"} <= set(built)
    assert built == [g for g in FEATURE_GROUPS if g in built]
    assert metrics["fit.clv.best_iteration"] == bundle.clv.best_iteration_
    assert metrics["fit.churn.best_iteration"] == bundle.churn.best_iteration_
    assert metrics["fit.clv.scale"] == bundle.clv.scale_
    assert metrics["fit.clv.label_unit"] == pytest.approx(bundle.clv.label_unit_)
    assert metrics["fit.bgnbd.r"] == bundle.btyd.bgnbd["r"]
    if bundle.value_level is not None:
        assert metrics["fit.value_level"] == bundle.value_level
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name.startswith("kamml-data-")
    assert len(dataset.dataset.digest) == 16
    assert {tag.key: tag.value for tag in dataset.tags}.get("mlflow.data.context") == "training"


def test_a_training_run_inside_the_callers_run_is_nested(tracked_config):
    from kamml.tracking.runs import TrainingRun
    from kamml.tracking.store import experiment_id

    cfg = tracked_config()
    experiment = experiment_id(cfg.tracking)  # and the config's store is MLflow's current one
    with mlflow.start_run(experiment_id=experiment) as parent, TrainingRun(cfg) as child:
        pass
    tags = MlflowClient().get_run(child.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id


def test_data_input_names_the_folder_and_digests_the_table_hashes(tmp_path):
    from kamml.tracking.runs import data_input

    tables = {"end": "2025-01-01", "tables": {"transactions": {"hash": "ab"}, "accounts": {"hash": "cd"}}}
    folder = data_input(tables, tmp_path).to_dict()
    assert folder["source_type"] == "local"
    assert str(tmp_path) in folder["source"]
    memory = data_input(tables).to_dict()
    assert memory["source_type"] == "code"
    assert memory["digest"] != folder["digest"]  # the source is part of what the digest names
    changed = {**tables, "tables": {**tables["tables"], "accounts": {"hash": "ce"}}}
    assert data_input(changed).to_dict()["digest"] != memory["digest"]
    assert data_input(tables).to_dict()["digest"] == memory["digest"]


def test_runs_on_the_same_tables_in_other_folders_each_show_their_own_folder(tracked_config, tmp_path):
    """MLflow keeps one dataset per name and digest in an experiment, with the source it was first logged
    with: a run on a copy of the data in another folder showed the first run's folder as its input."""
    from kamml.tracking.runs import data_input
    from kamml.tracking.store import experiment_id

    experiment = experiment_id(tracked_config().tracking)
    tables = {"end": "2031-02-03", "tables": {"transactions": {"hash": "source-reuse"}}}
    shown = {}
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_input(data_input(tables, folder), context="training")
        (found,) = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
        shown[name] = found.dataset.source
    assert str(tmp_path / "first") in shown["first"]
    assert str(tmp_path / "second") in shown["second"]


def test_the_users_autolog_makes_no_stray_runs_from_kammls_boosters(tracked_config, world_path):
    """mlflow.autolog() patched lightgbm.train: each of kamml's boosters became a run of its own."""
    from kamml.data import load_data
    from kamml.features import build_features
    from kamml.models import ClvModel
    from kamml.tracking.store import experiment_id

    cfg = tracked_config()
    data = load_data(world_path, cfg)
    features = build_features(data, data.end.normalize(), cfg)  # the features a training job scores with
    client = MlflowClient()
    experiment = experiment_id(cfg.tracking)  # and the config's store is MLflow's current one
    mlflow.autolog(log_models=False, silent=True)
    try:
        with mlflow.start_run(experiment_id=experiment) as parent:
            rows = features.select_dtypes("number").head(300).fillna(0.0)
            ClvModel(horizon_days=90, n_estimators=5).fit(rows, rows.iloc[:, 0].clip(lower=0) + 1)
    finally:
        mlflow.autolog(disable=True)
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert children == []
    assert not client.get_run(parent.info.run_id).data.params  # nothing autologged into the run


def test_backtest_json_on_the_run_is_strict_json(tracked_config):
    """A NaN metric is logged as null in backtest.json (MLflow's log_dict wrote a bare NaN)."""
    import json
    from types import SimpleNamespace

    from kamml.tracking import TrainingRun

    metrics = {"kamml": {"auc": float("nan"), "brier": 0.25}}
    fake = SimpleNamespace(
        value={},
        churn=metrics,
        referral={},
        protocol={"cutoff": "2024-01-01"},
        to_dict=lambda: {"churn": metrics},
    )
    with TrainingRun(tracked_config()) as run:
        run.log_backtest(fake)
    local = mlflow.artifacts.download_artifacts(run_id=run.run_id, artifact_path="backtest.json")

    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    parsed = json.loads(Path(local).read_text(encoding="utf-8"), parse_constant=refuse)
    assert parsed == {"churn": {"kamml": {"auc": None, "brier": 0.25}}}


def _killed_job(cfg, body: str) -> str:
    """Run `body` (binding `run` to a TrainingRun of `cfg`) in a process that then kills itself; its run."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, os, signal, sys\n"
        "from kamml.config import Config\n"
        "from kamml.tracking import TrainingRun\n"
        "config = Config.model_validate(json.loads(sys.argv[1]))\n"
        f"{body}\n"
        "print(run.run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cfg.model_dump(mode="json"))],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()},
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    return killed.stdout.split()[-1]


def test_a_run_left_running_by_a_killed_job_is_closed_by_the_next(tracked_config):
    """SIGKILL (the OOM killer) cannot end a run: the next run on this machine marks it KILLED."""
    import os

    from kamml.tracking import TrainingRun
    from kamml.tracking.store import experiment_id

    cfg = tracked_config()
    experiment = experiment_id(cfg.tracking)  # and the config's store is MLflow's current one
    orphan = _killed_job(cfg, "run = TrainingRun(config).__enter__()")
    assert MlflowClient().get_run(orphan).info.status == "RUNNING"
    with mlflow.start_run(experiment_id=experiment, run_name="a live run of this process"):
        live = mlflow.active_run().info.run_id
        MlflowClient().set_tag(live, "kamml.pid", str(os.getppid()))  # another, live process
        MlflowClient().set_tag(live, "kamml.host", os.uname().nodename)
    MlflowClient().update_run(live, status="RUNNING")
    with TrainingRun(cfg) as run:
        pass
    assert MlflowClient().get_run(orphan).info.status == "KILLED"
    assert MlflowClient().get_run(run.run_id).info.status == "FINISHED"
    assert MlflowClient().get_run(live).info.status == "RUNNING"  # its process is alive


def test_a_job_killed_after_training_is_marked_by_the_next_run(tracked_config):
    """`kamml run` killed while scoring left a FINISHED training run: it read as a success in MLflow."""
    from kamml.tracking import JOB_STATUS_TAG, TrainingRun

    cfg = tracked_config()
    # training ends, then the job is killed (while scoring, say)
    orphan = MlflowClient().get_run(
        _killed_job(cfg, "with TrainingRun(config, ends_job=False) as run:\n    pass")
    )
    assert (orphan.info.status, orphan.data.tags[JOB_STATUS_TAG]) == ("FINISHED", "running")
    with TrainingRun(cfg) as run:  # the next run, a whole job (`kamml train`)
        pass
    orphan = MlflowClient().get_run(orphan.info.run_id)
    assert (orphan.info.status, orphan.data.tags[JOB_STATUS_TAG]) == ("KILLED", "killed")
    done = MlflowClient().get_run(run.run_id)
    assert (done.info.status, done.data.tags[JOB_STATUS_TAG]) == ("FINISHED", "complete")


def _publishing_job(cfg, folder, manifest_run: str = "run.run_id") -> str:
    """A job that trains, tags its outputs folder, publishes a set naming `manifest_run`, then is killed."""
    return _killed_job(
        cfg,
        "from kamml.jobs.outputs import OutputSet\n"
        "from kamml.tracking.runs import JOB_OUTPUTS_TAG\n"
        "with TrainingRun(config, ends_job=False) as run:\n"
        f"    run.set_tags({{JOB_OUTPUTS_TAG: {str(folder)!r}}})\n"
        f"outputs = OutputSet({str(folder)!r}).__enter__()  # killed holding the folder's lock\n"
        "outputs.stage('scores.csv').write_text('account_id\\n1\\n')\n"
        f"outputs.publish({{'run_id': {manifest_run}}})\n",
    )


def test_a_job_killed_after_publishing_is_marked_complete_not_killed(tracked_config, tmp_path):
    """Killed outright between publishing its set and tagging its run ``complete`` (one tag call), a job
    was marked ``killed`` by the next, although the published set in its folder is its result."""
    from kamml.io import read_manifest
    from kamml.tracking import JOB_STATUS_TAG, TrainingRun

    cfg = tracked_config()
    orphan = _publishing_job(cfg, tmp_path / "out")
    assert read_manifest(tmp_path / "out")["run_id"] == orphan
    assert MlflowClient().get_run(orphan).data.tags[JOB_STATUS_TAG] == "running"
    with TrainingRun(cfg):
        pass
    found = MlflowClient().get_run(orphan)
    assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("FINISHED", "complete")


def test_a_killed_job_whose_folder_holds_another_runs_set_is_marked_killed(tracked_config, tmp_path):
    """Only a manifest naming the run vouches for it: another run's set, or none, leaves it ``killed``."""
    from kamml.tracking import JOB_STATUS_TAG, TrainingRun

    cfg = tracked_config()
    other = _publishing_job(cfg, tmp_path / "other", manifest_run="'an earlier run'")
    none = _publishing_job(cfg, tmp_path / "empty", manifest_run="run.run_id")
    (tmp_path / "empty" / "manifest.json").unlink()  # as if killed before the manifest was written
    with TrainingRun(cfg):
        pass
    for orphan in (other, none):
        found = MlflowClient().get_run(orphan)
        assert (found.info.status, found.data.tags[JOB_STATUS_TAG]) == ("KILLED", "killed")


def test_a_training_run_stopped_or_failing_says_so_in_its_tags(tracked_config):
    import pytest

    from kamml.tracking import JOB_STATUS_TAG, TrainingRun

    for error, status, job, why in [
        (KeyboardInterrupt(), "KILLED", "stopped", "stopped by Ctrl-C (KeyboardInterrupt)"),
        (SystemExit(143), "KILLED", "stopped", "stopped by SIGTERM (exit 143)"),  # it read "143"
        (ValueError("bad"), "FAILED", "failed", "bad"),
    ]:
        with pytest.raises(type(error)), TrainingRun(tracked_config()) as run:
            raise error
        ended = MlflowClient().get_run(run.run_id)
        assert (ended.info.status, ended.data.tags[JOB_STATUS_TAG]) == (status, job)
        assert ended.data.tags["kamml.job.failed_stage"] == "train"
        assert ended.data.tags["kamml.job.error"] == why


def _disk_full() -> Exception:
    """SQLAlchemy's error for a write SQLite could not make, as MLflow raises it."""
    import sqlite3

    import sqlalchemy.exc

    return sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))


def test_a_store_that_cannot_be_written_is_named_as_the_configs_store(tracked_config, monkeypatch):
    """A full disk while starting or logging the run named MLflow's default store, not the config's: the
    error was named after MLflow's URIs were put back (an audit, with a file-size limit on the store)."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking import TrainingRun
    from kamml.tracking.store import tracking_uri

    cfg = tracked_config()
    with pytest.raises(TrackingStoreError) as logging_failed, TrainingRun(cfg):
        raise _disk_full()
    real_start = mlflow.start_run

    def full(*args, **kwargs):
        raise _disk_full()

    monkeypatch.setattr(mlflow, "start_run", full)
    with pytest.raises(TrackingStoreError) as start_failed, TrainingRun(cfg):
        pass
    monkeypatch.setattr(mlflow, "start_run", real_start)
    for caught in (logging_failed, start_failed):
        assert f"store {tracking_uri(cfg.tracking)} (from the config's tracking.uri)" in str(caught.value)
        assert "could not be written (disk i/o error" in str(caught.value)
    with pytest.raises(ValueError, match="bad"), TrainingRun(cfg):  # other errors stay as they are
        raise ValueError("bad")


def test_a_run_that_cannot_be_ended_after_a_failure_leaves_the_jobs_own_error(
    tracked_config, monkeypatch, caplog
):
    """Ending the run of a failed job in a store that fails too (locked, full) raised the store's error
    instead of the job's (`kamml train` said "retry when it ends", exit 5, for a training error)."""
    from kamml.tracking import JOB_STATUS_TAG, TrainingRun

    def full(self, *args, **kwargs):
        raise _disk_full()

    run = TrainingRun(tracked_config())

    def fails_and_the_store_too() -> None:
        with run:
            monkeypatch.setattr(MlflowClient, "set_terminated", full)
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        fails_and_the_store_too()
    monkeypatch.undo()
    assert mlflow.active_run() is None
    left = MlflowClient().get_run(run.run_id)
    assert (left.info.status, left.data.tags[JOB_STATUS_TAG]) == ("RUNNING", "failed")
    assert f"could not end MLflow run {run.run_id} as FAILED" in caplog.text


def test_registering_and_the_champion_gate_hold_the_store_lock(tracked_config, monkeypatch):
    """Two jobs passing the gate at once both took the alias: the last one won, even the worse model."""
    import fcntl

    from kamml.tracking import TrainingRun, runs
    from kamml.tracking.registry import Promotion
    from kamml.tracking.store import store_lock_file

    cfg = tracked_config()
    lock = store_lock_file(mlflow.get_tracking_uri())
    held: list[bool] = []

    def probe() -> None:
        with lock.open("a+") as other:
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(True)
            else:
                held.append(False)

    def register(uri: str, name: str) -> str:
        probe()
        return "7"

    def promote(name: str, version: str, metric: str, value: object, **kw: object) -> Promotion:
        probe()
        return Promotion(name, version, metric, None, None, None, False, "probed")

    monkeypatch.setattr(runs, "register", register)
    monkeypatch.setattr(runs, "promote", promote)
    with TrainingRun(cfg) as run:
        run.register("models:/m/1")
    assert held == [True, True]


def test_a_reused_process_id_is_not_the_runs_process_and_another_containers_is_left_alone(tracked_config):
    """A live process with the run's id but another start time took a dead job's id (PID reuse); a run
    of another PID namespace (a container of the same host name) is not this machine's to judge."""
    import os

    from kamml.tracking import TrainingRun
    from kamml.tracking.runs import PID_NAMESPACE_TAG, PID_START_TAG, process_identity
    from kamml.tracking.store import experiment_id

    cfg = tracked_config()
    experiment = experiment_id(cfg.tracking)
    ours = process_identity()
    if PID_START_TAG not in ours:
        import pytest

        pytest.skip("no /proc to read process start times from")
    cases = {
        "reused": {"kamml.pid": str(os.getppid()), PID_START_TAG: "1"},  # alive, but started at another time
        "live": {
            "kamml.pid": str(os.getppid()),
            PID_START_TAG: process_identity(os.getppid())[PID_START_TAG],
        },
        "container": {"kamml.pid": "999999999", PID_NAMESPACE_TAG: "pid:[1]"},
    }
    ids = {}
    for name, tags in cases.items():
        with mlflow.start_run(experiment_id=experiment, run_name=name) as run:
            ids[name] = run.info.run_id
        MlflowClient().set_tag(ids[name], "kamml.host", os.uname().nodename)
        for key, value in tags.items():
            MlflowClient().set_tag(ids[name], key, value)
        MlflowClient().update_run(ids[name], status="RUNNING")
    with TrainingRun(cfg):
        pass
    status = {name: MlflowClient().get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"reused": "KILLED", "live": "RUNNING", "container": "RUNNING"}


def test_the_groups_built_are_named_from_the_model_columns():
    """The config's params say a group is on; a group on without its table (effort without activities,
    as on CDNOW) builds no column, and `features.groups_built` leaves it out."""
    columns = ["frequency", "spend_90d", "btyd_value", "spend_slope_12m", "attr_size", "not_a_feature"]
    assert built_groups(columns) == "rfm,windows,trend,static,btyd"
    assert built_groups([]) == ""


def test_a_run_reopens_after_the_session_set_another_experiment(tracked_config, tmp_path):
    """A notebook's `mlflow.set_experiment` (another store, another id) made MLflow refuse to reopen
    kamml's run: `kamml.run` failed after publishing its outputs (a tracking audit)."""
    from mlflow.tracking import fluent

    from kamml.tracking.runs import TrainingRun
    from kamml.tracking.store import tracking_scope

    cfg = tracked_config()
    with TrainingRun(cfg) as first:
        pass
    saved = fluent._active_experiment_id
    saved_variable = os.environ.get("MLFLOW_EXPERIMENT_ID")  # set_experiment sets it too
    try:
        notebook = tmp_path / "notebook.db"
        with tracking_scope(cfg.tracking.model_copy(update={"uri": f"sqlite:///{notebook}"})):
            mlflow.set_experiment("scratch")
            mine = mlflow.set_experiment("my-notebook").experiment_id
        assert mine != MlflowClient().get_run(first.run_id).info.experiment_id
        with TrainingRun(cfg, run_id=first.run_id) as again:
            mlflow.log_metric("later", 1.0)
        assert again.run_id == first.run_id
        assert MlflowClient().get_run(first.run_id).data.metrics["later"] == 1.0
        assert fluent._active_experiment_id == mine  # the notebook's choice is put back
    finally:
        fluent._active_experiment_id = saved
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        if saved_variable is not None:
            os.environ["MLFLOW_EXPERIMENT_ID"] = saved_variable


def test_a_map_with_keys_mlflow_refuses_is_one_json_param():
    """Reps named by e-mail or "Smith, J." in allocation.capacity stopped every train and run: MLflow
    refuses '@' and ',' in a param's name (a tracking audit)."""
    from kamml.tracking.runs import param_key_ok

    flat = flatten({"allocation": {"capacity": {"ann@corp.com": 100.0, "Smith, J.": 200.0}, "hours": 5}})
    assert flat == {
        "allocation.capacity": '{"ann@corp.com": 100.0, "Smith, J.": 200.0}',
        "allocation.hours": "5",
    }
    assert flatten({"capacity": {"rep 1": 1.0, "x:y/z": 2.0}}) == {
        "capacity.rep 1": "1.0",
        "capacity.x:y/z": "2.0",
    }
    assert not param_key_ok("tiers.A+")
    assert not param_key_ok("capacity.a//b")
    assert not param_key_ok("capacity." + "r" * 250)
    assert param_key_ok("allocation.capacity.rep_00")


def test_a_config_with_such_names_trains_and_logs_them(tracked_config, caplog):
    """The run logs the map whole, and a param cut at MLflow's 6,000 characters is said."""
    import logging

    from kamml.tracking.runs import TrainingRun

    cfg = tracked_config()
    cfg.allocation.tiers = {"A+": 0.2, "B": 1.0}
    cfg.allocation.capacity = {f"rep{i}@corp.com": 10.0 for i in range(400)}
    with caplog.at_level(logging.WARNING, logger="kamml"), TrainingRun(cfg) as run:
        run.log_config()
    params = MlflowClient().get_run(run.run_id).data.params
    assert params["allocation.tiers"] == '{"A+": 0.2, "B": 1.0}'
    assert len(params["allocation.capacity"]) == 6000
    assert "allocation.capacity cut there (the whole config is in the run's config.yaml)" in caplog.text


def test_the_logged_config_names_the_store_the_run_is_in(tracked_config, tmp_path, monkeypatch):
    """With MLFLOW_TRACKING_URI exported the run went there, but its params and config.yaml named the
    config's store (a tracking audit); a password in a URI is never logged."""
    import yaml

    from kamml.tracking.runs import TrainingRun
    from kamml.tracking.store import without_password

    cfg = tracked_config()
    other = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    with TrainingRun(cfg) as run:
        run.log_config()
    client = MlflowClient(other)
    logged = client.get_run(run.run_id)
    assert logged.data.params["tracking.uri"] == other
    assert "MLFLOW_TRACKING_URI" in logged.data.tags["kamml.tracking.uri_from"]
    local = client.download_artifacts(run.run_id, "config.yaml", str(tmp_path))
    assert yaml.safe_load(Path(local).read_text())["tracking"]["uri"] == other
    assert (
        without_password("postgresql://kamml:s3cret@db:5432/mlflow")
        == "postgresql://kamml:***@db:5432/mlflow"
    )
    assert without_password("http://host:5000") == "http://host:5000"


def test_the_plans_figures_are_the_runs_not_its_models(tracked_config):
    """MLflow links a metric logged after a run's model to that model: a version that was not promoted
    showed the champion's plan figures as its own in the Models view (a tracking audit)."""
    from kamml.tracking.runs import TrainingRun

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    with TrainingRun(tracked_config()) as run:
        model = mlflow.pyfunc.log_model(name="model", python_model=Constant())
        mlflow.log_metric("fit.linked", 1.0)  # MLflow's own call: linked, the test's control
        run.log_summary({"allocation.expected_gain": 123.0})
    logged = {m.key for m in mlflow.get_logged_model(model.model_id).metrics or []}
    assert "fit.linked" in logged
    assert "allocation.expected_gain" not in logged
    assert MlflowClient().get_run(run.run_id).data.metrics["allocation.expected_gain"] == 123.0


def test_a_password_in_the_configs_uri_replaced_by_the_variable_is_not_tagged_or_logged(
    tmp_path, monkeypatch, caplog
):
    """With MLFLOW_TRACKING_URI exported, the run's ``kamml.tracking.uri_from`` tag and the warning named
    the config's store whole, its database password included (a tracking audit)."""
    from kamml.tracking.runs import TrainingRun

    other = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    secret = f"postgresql://kamml:s3cret-{tmp_path.name}@db:5432/mlflow"  # a new pair: warned once each
    cfg = Config.from_dict(
        {"tracking": {"uri": secret, "experiment": "pw", "artifact_location": str(tmp_path / "art")}}
    )
    with caplog.at_level(logging.WARNING, logger="kamml"), TrainingRun(cfg) as run:
        run.log_config()
    source = MlflowClient(other).get_run(run.run_id).data.tags["kamml.tracking.uri_from"]
    assert source.endswith("the config's tracking.uri postgresql://kamml:***@db:5432/mlflow")
    assert "wins over the config's tracking.uri postgresql://kamml:***@db:5432/mlflow" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_run_ended_after_its_server_stopped_answering_does_not_wait_for_retries(
    tracked_config, monkeypatch
):
    """With the server gone, tagging the outcome and ending the run each waited MLflow's ~4 minutes of
    retries (twelve minutes before the error, an audit): they are made without retries, a short timeout."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    from kamml.errors import TrackingStoreError
    from kamml.tracking import TrainingRun
    from kamml.tracking.runs import GONE_SERVER_TIMEOUT_SECONDS

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    seen = []
    real_set_tags, real_end_run = mlflow.set_tags, mlflow.end_run

    def set_tags(*args, **kwargs):
        seen.append(("tags", MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()))
        return real_set_tags(*args, **kwargs)

    def end_run(*args, **kwargs):
        seen.append(("end", MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()))
        return real_end_run(*args, **kwargs)

    monkeypatch.setattr(mlflow, "set_tags", set_tags)
    monkeypatch.setattr(mlflow, "end_run", end_run)
    gone = MlflowException(
        "API request to http://127.0.0.1:5999/api/2.0/mlflow/runs/log-batch failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: ... "
        "(Caused by NewConnectionError(...: [Errno 111] Connection refused))"
    )
    with pytest.raises(TrackingStoreError, match="stopped answering"), TrainingRun(tracked_config()):
        raise gone
    assert seen == [("tags", 0, GONE_SERVER_TIMEOUT_SECONDS), ("end", 0, GONE_SERVER_TIMEOUT_SECONDS)]
    # the job's settings are put back, and another failure keeps MLflow's retries
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120"
    seen.clear()
    with pytest.raises(ValueError, match="bad"), TrainingRun(tracked_config()):
        raise ValueError("bad")
    default_retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
    assert seen == [("tags", default_retries, 120), ("end", default_retries, 120)]


def test_the_logged_config_names_the_artifact_root_the_run_really_uses(tmp_path, caplog):
    """MLflow keeps an experiment's first artifact location (a tracking server its own store): the run's
    param and config.yaml named the config's tracking.artifact_location all the same, only a console
    warning saying it was not used (a tracking audit)."""
    import yaml

    from kamml.tracking.runs import TrainingRun

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    first, second = tmp_path / "first", tmp_path / "second"

    def logged(location: Path) -> tuple[str, str, dict[str, str]]:
        cfg = Config.from_dict(
            {"tracking": {"uri": uri, "experiment": "arts", "artifact_location": str(location)}}
        )
        with caplog.at_level(logging.WARNING, logger="kamml"), TrainingRun(cfg) as run:
            run.log_config()
        client = MlflowClient(uri)
        found = client.get_run(run.run_id)
        assert found.info.artifact_uri.startswith(first.as_uri())  # MLflow's own word: the first root
        local = client.download_artifacts(run.run_id, "config.yaml", str(tmp_path / run.run_id))
        in_yaml = yaml.safe_load(Path(local).read_text())["tracking"]["artifact_location"]
        return found.data.params["tracking.artifact_location"], in_yaml, found.data.tags

    param, in_yaml, tags = logged(first)  # the experiment is made with it: the config's own root
    assert param == in_yaml == first.as_uri()
    assert "kamml.tracking.artifact_location_from" not in tags
    param, in_yaml, tags = logged(second)  # set aside: MLflow keeps the experiment's first root
    assert "keeps its artifacts at" in caplog.text
    assert param == in_yaml == first.as_uri()
    said = tags["kamml.tracking.artifact_location_from"]
    assert said.startswith("the artifact location of the experiment 'arts'")
    assert f"the config's tracking.artifact_location {second} is not used" in said


def test_a_run_its_gone_server_could_not_end_is_named_in_the_error_with_how_to_end_it(
    tracked_config, monkeypatch
):
    """With the server gone mid-run the run stays RUNNING there, and the error named neither it nor how to
    end it (only a warning did, before the error): it says both."""
    from kamml.errors import TrackingStoreError
    from kamml.tracking import TrainingRun

    gone = MlflowException(
        "API request to http://127.0.0.1:5999/api/2.0/mlflow/runs/update failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: ... "
        "(Caused by NewConnectionError(...: [Errno 111] Connection refused))"
    )
    real_end_run = mlflow.end_run

    def refused(*args, **kwargs):  # the store gets no word (here: MLflow's stack is cleared all the same)
        real_end_run(*args, **kwargs)
        raise gone

    monkeypatch.setattr(mlflow, "end_run", refused)
    with pytest.raises(TrackingStoreError) as info, TrainingRun(tracked_config()) as run:
        raise gone
    said = str(info.value)
    assert said.startswith("the MLflow tracking server ")
    assert f"the MLflow run {run.run_id} could not be ended: it shows as RUNNING" in said
    assert "the next kamml training run in the experiment 'kamml-test' on this machine marks it KILLED" in (
        said
    )
    assert f"set_terminated('{run.run_id}', 'FAILED')" in said
    assert "set_tag" in said
    assert "kamml.job.status', 'failed')" in said
    with pytest.raises(TrackingStoreError) as info, TrainingRun(tracked_config()) as run:
        pass  # the job's work done, the server gone when the run ends
    assert f"the MLflow run {run.run_id} could not be ended: it shows as RUNNING" in str(info.value)
    monkeypatch.setattr(mlflow, "end_run", real_end_run)
    with pytest.raises(TrackingStoreError) as info, TrainingRun(tracked_config()):
        raise gone  # ended: nothing to say of the run
    assert "could not be ended" not in str(info.value)


def test_a_backtest_without_referral_metrics_says_why_in_a_param(tracked_config):
    """Runs compared in MLflow showed referral.* metrics in one and none in the other, with no word why:
    the reason was only in backtest.json, where the btyd value's is also a param."""
    from types import SimpleNamespace

    from kamml.tracking import TrainingRun

    note = "no referred account brought in value in the test window 2024-01-01 to 2024-03-30"
    fake = SimpleNamespace(
        value={"kamml": {"gini": 0.5}},
        churn={},
        referral={},
        referral_note=note,
        protocol={"cutoff": "2024-01-01"},
        to_dict=lambda: {},
    )
    with TrainingRun(tracked_config()) as run:
        run.log_backtest(fake)
    params = mlflow.MlflowClient().get_run(run.run_id).data.params
    assert params["backtest.referral_note"] == note
    assert run.protocol["backtest.referral_note"] == note
    evaluated = SimpleNamespace(**{**vars(fake), "referral": {"kamml": {"gini": 0.4}}})
    with TrainingRun(tracked_config()) as run:
        run.log_backtest(evaluated)
    assert "backtest.referral_note" not in mlflow.MlflowClient().get_run(run.run_id).data.params


def test_the_effort_params_say_the_horizon_and_size_their_figures_are_in(tracked_config):
    """effort.scale (hours over the response's horizon) and effort.reference_value (value per that
    horizon) were logged without the horizon, and the size term without its reference size or the clip:
    runs of other horizons compared hours over different spans."""
    from kamml.models.effort import EffortResponse
    from kamml.tracking import TrainingRun

    response = EffortResponse(
        scale=2.0,
        exponent=0.1,
        reference_value=500.0,
        size_column="size",
        size_exponent=0.7,
        size_reference=47.0,
        horizon_days=90,
        period_months=3,
        uplift=0.5,
    )
    with TrainingRun(tracked_config()) as run:
        run.log_effort(response.to_dict())
    params = mlflow.MlflowClient().get_run(run.run_id).data.params
    assert params["effort.horizon_days"] == "90"
    assert params["effort.period_months"] == "3"
    assert params["effort.size_reference"] == "47.0"
    assert params["effort.clip"] == "[0.25, 4.0]"
    assert params["effort.scale"] == "2.0"


def test_an_infinite_backtest_metric_is_not_logged_as_the_largest_float(tracked_config):
    """MLflow's SQL stores write inf as 1.797e308: the run's metrics showed a huge finite decile_mape
    where backtest.json has null and ``non_finite``; the run records which figures were infinite."""
    import math
    from types import SimpleNamespace

    from kamml.tracking import TrainingRun

    value = {"kamml": {"gini": 0.5, "decile_mape": math.inf}, "btyd": {"aggregate_error": -math.inf}}
    fake = SimpleNamespace(
        value=value,
        churn={},
        referral={},
        protocol={"cutoff": "2024-01-01"},
        to_dict=lambda: {"value": value},
    )
    with TrainingRun(tracked_config()) as run:
        logged = run.log_backtest(fake)
    assert logged == {"value.kamml.gini": 0.5}
    found = MlflowClient().get_run(run.run_id).data
    assert {k: v for k, v in found.metrics.items() if k.startswith("value.")} == {"value.kamml.gini": 0.5}
    assert json.loads(found.params["backtest.non_finite"]) == {
        "value.kamml.decile_mape": "inf",
        "value.btyd.aggregate_error": "-inf",
    }
    assert backtest_metrics(fake) == {"value.kamml.gini": 0.5}


def test_a_later_stages_infinite_figure_is_not_logged_as_the_largest_float(tracked_config):
    """`log_summary` left out NaN but logged inf, which a SQL store keeps as 1.797e308 (as the gate's
    ``promotion.champion_value`` of an infinite champion figure)."""
    import math

    import pandas as pd

    from kamml.tracking import TrainingRun

    with TrainingRun(tracked_config()) as run:
        run.log_summary(
            {"allocation.team_price": math.inf, "allocation.accounts": 3.0, "x": math.nan, "y": pd.NA}
        )
    assert MlflowClient().get_run(run.run_id).data.metrics == {"allocation.accounts": 3.0}


@pytest.mark.slow
def test_an_infinite_or_nan_fit_metric_is_not_logged_and_the_run_names_it(trained, tracked_config):
    """``fit.*`` went to MLflow unfiltered: an infinite held-out score or BG/NBD parameter read 1.797e308
    in a SQL store, as a backtest figure did; each is left out and named in ``fit.non_finite``."""
    import copy
    import dataclasses
    import math

    from kamml.tracking import TrainingRun

    bundle = copy.copy(trained[2].bundle)  # shallow copies: the session's bundle is left as it is
    bundle.clv = copy.copy(bundle.clv)
    bundle.clv.validation_score_ = {"l2": math.inf}
    bundle.churn = copy.copy(bundle.churn)
    bundle.churn.validation_score_ = {"binary_logloss": math.nan}
    bundle.btyd = dataclasses.replace(bundle.btyd, bgnbd={**bundle.btyd.bgnbd, "r": -math.inf})
    with TrainingRun(tracked_config()) as run:
        run.log_fitted(bundle)
    found = MlflowClient().get_run(run.run_id).data
    fit = {k: v for k, v in found.metrics.items() if k.startswith("fit.")}
    assert all(math.isfinite(v) and abs(v) < 1e300 for v in fit.values()), fit
    assert not {"fit.clv.validation_l2", "fit.churn.validation_binary_logloss", "fit.bgnbd.r"} & set(fit)
    assert fit["fit.bgnbd.alpha"] == bundle.btyd.bgnbd["alpha"]
    assert json.loads(found.params["fit.non_finite"]) == {
        "fit.clv.validation_l2": "inf",
        "fit.churn.validation_binary_logloss": "nan",
        "fit.bgnbd.r": "-inf",
    }


def _documented_keys() -> dict[str, list[tuple[re.Pattern[str], bool]]]:
    """docs/tracking.md's table of run keys: per kind, each key pattern and whether every run logs it.

    In a pattern ``{a,b}`` is one of a and b, ``<name>`` one dotted part, ``*`` anything.
    """
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tracking.md").read_text(encoding="utf-8")
    section = doc.split("### Every key a training run logs", 1)[1].split("\n#", 1)[0]
    found: dict[str, list[tuple[re.Pattern[str], bool]]] = {"param": [], "metric": [], "tag": []}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in found:
            continue
        for written in re.findall(r"`([^`]+)`", cells[1]):
            text = re.escape(written).replace(r"\*", ".+")
            text = re.sub(r"<[^>]+>", r"[^.]+", text)
            text = re.sub(r"\\\{([^}]+)\\\}", lambda m: "(?:" + m.group(1).replace(",", "|") + ")", text)
            found[cells[0]].append((re.compile(text), cells[2] == "every run"))
    return found


@pytest.mark.slow
def test_every_key_a_run_logs_is_documented_and_every_documented_key_is_logged(trained):
    """A data scientist comparing runs reads their names in docs/tracking.md: each key a real run logs is
    there, and each key the table says every run logs is in a real run."""
    _, _, result = trained
    data = MlflowClient().get_run(result.run_id).data
    logged = {"param": set(data.params), "metric": set(data.metrics), "tag": set(data.tags)}
    documented = _documented_keys()
    for kind, keys in logged.items():
        missing = sorted(k for k in keys if not any(p.fullmatch(k) for p, _ in documented[kind]))
        assert not missing, f"{kind}s not in docs/tracking.md: {missing}"
        unlogged = [
            p.pattern for p, always in documented[kind] if always and not any(p.fullmatch(k) for k in keys)
        ]
        assert not unlogged, f"{kind}s the docs say every run logs, not logged: {unlogged}"


def test_a_data_uri_is_the_run_inputs_source_as_written():
    """``data.path: hdfs:///crm/kamml`` (a Spark job's tables) was recorded as ``<cwd>/hdfs:/crm/kamml``."""
    from kamml.tracking.runs import data_folder, data_input

    config = Config.from_dict({"data": {"path": "hdfs:///crm/kamml"}, "engine": {"name": "spark"}})
    assert data_folder(config) == "hdfs:///crm/kamml"
    tables = {"end": "2025-01-01", "tables": {"transactions": {"hash": "ab"}}}
    assert "hdfs:///crm/kamml" in json.dumps(data_input(tables, data_folder(config)).to_dict())
